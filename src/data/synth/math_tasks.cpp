// <|math|> tasks: arithmetic, multi-step expressions, percentages, unit
// conversions. Every value is computed here in the same operation order the
// recorded Python program uses (this file is built with -ffp-contract=off so
// no multiply-add is fused differently from Python's).
#include <cstdio>

#include "data/synth/routed_tasks.h"

namespace hessgpt::synth {
namespace {

using chat::RouteKind;

RoutedTask math(std::string task) {
  RoutedTask t;
  t.task = std::move(task);
  t.kind = RouteKind::kMath;
  t.language = "python";
  return t;
}

// ---- binary arithmetic ----------------------------------------------------

const std::vector<std::string> kAdd = {
    "What is {a} plus {b}?", "What's {a} + {b}?", "Add {a} and {b}.", "What is the sum of {a} and {b}?",
    "Compute {a} + {b}.", "How much is {a} plus {b}?", "Can you add {a} to {b}?", "{a} + {b} = ?",
    "Work out {a}+{b} for me.", "I need the total of {a} and {b}.", "What do {a} and {b} add up to?",
    "Calculate {a} + {b}.", "Sum {a} and {b}.", "If I add {b} to {a}, what do I get?",
    "What is {a}+{b}?", "Tell me what {a} plus {b} is."};
const std::vector<std::string> kSub = {
    "What is {a} minus {b}?", "Subtract {b} from {a}.", "What's {a} - {b}?", "How much is {a} take away {b}?",
    "What is the difference between {a} and {b}?", "Compute {a} - {b}.", "{a} - {b} = ?",
    "If I have {a} and remove {b}, how many are left?", "Calculate {a}-{b}.", "Take {b} away from {a}.",
    "What do you get when you subtract {b} from {a}?", "Work out {a} minus {b}."};
const std::vector<std::string> kMul = {
    "What is {a} times {b}?", "What's {a} × {b}?", "Multiply {a} by {b}.", "What is the product of {a} and {b}?",
    "Compute {a}*{b}.", "How much is {a} multiplied by {b}?", "{a} x {b} = ?",
    "What do you get if you multiply {a} and {b}?", "Calculate {a} * {b}.", "Work out {a} times {b}.",
    "What is {a}*{b}?", "I need {a} multiplied by {b}."};
const std::vector<std::string> kDiv = {
    "What is {a} divided by {b}?", "Divide {a} by {b}.", "What's {a} ÷ {b}?", "How much is {a} / {b}?",
    "Compute {a}/{b}.", "What do you get when you divide {a} by {b}?", "Calculate {a} ÷ {b}.",
    "If {a} is split into {b} equal parts, how big is each part?"};
const std::vector<std::string> kDivRound = {
    "What is {a} divided by {b}, to two decimal places?", "Divide {a} by {b} and round to 2 decimals.",
    "What's {a} ÷ {b} rounded to two decimals?", "Compute {a}/{b} to 2 decimal places.",
    "Calculate {a} / {b}, rounded to two decimal places."};

RoutedTask binary_op(char op, Split split, Rng& rng) {
  // Operand sizes vary so the model sees 1- to 4-digit numbers.
  const int64_t hi_a = chance(rng, 0.5) ? 99 : (chance(rng, 0.6) ? 999 : 9999);
  int64_t a = uniform_int(rng, 2, hi_a), b = uniform_int(rng, 2, chance(rng, 0.5) ? 99 : 999);
  RoutedTask t = math("arithmetic");
  const std::vector<std::string>* templates = nullptr;
  int64_t r = 0;
  std::string sym;
  switch (op) {
    case '+': templates = &kAdd; r = a + b; sym = "+"; break;
    case '-':
      if (a < b) std::swap(a, b);
      templates = &kSub; r = a - b; sym = "-"; break;
    case '*': templates = &kMul; r = a * b; sym = "×"; break;
    default: {
      // Exact division: a = b * q; "/" in the request, "//" in the program
      // so Python prints an int, not "30.0".
      b = uniform_int(rng, 2, 99);
      const int64_t q = uniform_int(rng, 2, chance(rng, 0.5) ? 99 : 999);
      a = b * q;
      templates = &kDiv; r = q; sym = "÷";
    }
  }
  const std::string sa = std::to_string(a), sb = std::to_string(b);
  t.user = fill(pick(rng, *templates, split), {{"a", user_number(rng, a)}, {"b", user_number(rng, b)}});
  const std::string expr = sa + (op == '/' ? "/" : std::string(1, op)) + sb;
  t.request = "Calculate " + expr;
  t.program = op == '/' ? str_cat("print(", sa, "//", sb, ")") : str_cat("print(", expr, ")");
  t.result = py_int(r);
  t.answer = str_cat(sa, " ", sym, " ", sb, " = ", t.result, ".");
  return t;
}

RoutedTask division_rounded(Split split, Rng& rng) {
  RoutedTask t = math("arithmetic");
  int64_t a = uniform_int(rng, 10, 9999), b = uniform_int(rng, 3, 97);
  if (a % b == 0) a += 1;
  const std::string sa = std::to_string(a), sb = std::to_string(b);
  t.user = fill(pick(rng, kDivRound, split), {{"a", user_number(rng, a)}, {"b", user_number(rng, b)}});
  t.request = str_cat("Calculate ", sa, "/", sb, " to 2 decimal places");
  t.program = str_cat("print(round(", sa, "/", sb, ", 2))");
  t.result = py_round2(static_cast<double>(a) / static_cast<double>(b));
  t.answer = str_cat(sa, " ÷ ", sb, " ≈ ", t.result, ".");
  return t;
}

// ---- multi-step expressions ---------------------------------------------

const std::vector<std::string> kExpr = {
    "What is {e}?", "Evaluate {e}.", "Compute {e}.", "Can you work out {e}?", "What does {e} come to?",
    "Solve {e}.", "Calculate {e} for me.", "What's the value of {e}?", "{e} = ?", "Please evaluate {e}.",
    "How much is {e}?", "Work out {e}."};

struct Expr {
  std::string code;    // "(12+7)*3": request and program
  std::string pretty;  // "(12 + 7) × 3": user text and answer
  int64_t value = 0;
};

Expr random_expr(Rng& rng) {
  const int64_t a = uniform_int(rng, 2, 99), b = uniform_int(rng, 2, 99), c = uniform_int(rng, 2, 30),
                d = uniform_int(rng, 2, 30);
  const std::string A = std::to_string(a), B = std::to_string(b), C = std::to_string(c), D = std::to_string(d);
  switch (rng.below(8)) {
    case 0: return {"(" + A + "+" + B + ")*" + C, "(" + A + " + " + B + ") × " + C, (a + b) * c};
    case 1: return {"(" + A + "-" + B + ")*" + C, "(" + A + " - " + B + ") × " + C, (a - b) * c};
    case 2: return {A + "*" + C + "+" + B, A + " × " + C + " + " + B, a * c + b};
    case 3: return {A + "*" + C + "-" + B, A + " × " + C + " - " + B, a * c - b};
    case 4: return {A + "+" + B + "*" + C, A + " + " + B + " × " + C, a + b * c};
    case 5: return {"(" + A + "+" + B + ")*(" + C + "-" + D + ")", "(" + A + " + " + B + ") × (" + C + " - " + D + ")",
                    (a + b) * (c - d)};
    case 6: return {A + "+" + B + "+" + C + "+" + D, A + " + " + B + " + " + C + " + " + D, a + b + c + d};
    default: return {A + "*" + C + "*" + D, A + " × " + C + " × " + D, a * c * d};
  }
}

RoutedTask multi_step(Split split, Rng& rng) {
  RoutedTask t = math("multi_step");
  const Expr e = random_expr(rng);
  // The user writes the expression spaced with ×, compact with *, or spaced with *.
  std::string shown = e.pretty;
  const double u = rng.uniform();
  if (u < 0.3) {
    shown = e.code;
  } else if (u < 0.6) {
    for (size_t p = shown.find("×"); p != std::string::npos; p = shown.find("×")) shown.replace(p, 2, "*");
  }
  t.user = fill(pick(rng, kExpr, split), {{"e", shown}});
  t.request = "Calculate " + e.code;
  t.program = "print(" + e.code + ")";
  t.result = py_int(e.value);
  t.answer = e.pretty + " = " + t.result + ".";
  return t;
}

// ---- percentages ----------------------------------------------------------

const std::vector<std::string> kPercentOf = {
    "What is {p}% of {n}?", "What's {p} percent of {n}?", "Calculate {p}% of {n}.", "How much is {p} per cent of {n}?",
    "Find {p}% of {n}.", "What is {p} percent of {n}?", "Work out {p}% of {n}.", "{p}% of {n} is how much?",
    "Can you tell me what {p}% of {n} is?", "Take {p}% of {n}."};
const std::vector<std::string> kPercentWhat = {
    "What percentage of {b} is {a}?", "{a} is what percent of {b}?", "What percent is {a} out of {b}?",
    "Express {a} out of {b} as a percentage.", "What percentage is {a} of {b}?", "As a percent, what is {a} of {b}?",
    "If I scored {a} out of {b}, what percentage is that?", "What is {a} out of {b} in percent?"};

RoutedTask percentage(Split split, Rng& rng) {
  RoutedTask t = math("percentage");
  if (chance(rng, 0.6)) {
    static const std::vector<int64_t> kCommon = {5, 10, 15, 20, 25, 30, 40, 50, 75};
    const int64_t p = chance(rng, 0.5) ? pick_any(rng, kCommon) : uniform_int(rng, 1, 99);
    const int64_t n = uniform_int(rng, 10, chance(rng, 0.5) ? 500 : 5000);
    t.user = fill(pick(rng, kPercentOf, split), {{"p", std::to_string(p)}, {"n", user_number(rng, n)}});
    t.request = str_cat("Calculate ", p, "% of ", n);
    t.program = str_cat("print(round(", p, "*", n, "/100, 2))");
    // Python: p*n is an exact int, then one correctly rounded true division.
    t.result = py_round2(static_cast<double>(p * n) / 100.0);
    t.answer = str_cat(p, "% of ", n, " is ", t.result, ".");
  } else {
    const int64_t b = uniform_int(rng, 10, 1000), a = uniform_int(rng, 1, b);
    t.user = fill(pick(rng, kPercentWhat, split), {{"a", user_number(rng, a)}, {"b", user_number(rng, b)}});
    t.request = str_cat("Calculate what percent ", a, " is of ", b);
    t.program = str_cat("print(round(", a, "/", b, "*100, 2))");
    const double q = static_cast<double>(a) / static_cast<double>(b);
    t.result = py_round2(q * 100.0);
    t.answer = str_cat(a, " is ", t.result, "% of ", b, ".");
  }
  return t;
}

// ---- unit conversions -------------------------------------------------------

enum class Op { kMul, kDiv, kCToF, kFToC };
struct Conversion {
  std::vector<std::string> from_names;  // first: the request's name
  std::vector<std::string> to_names;
  Op op;
  std::string factor;  // a Python/C++ literal
  int64_t lo, hi;
};

const std::vector<Conversion>& conversions() {
  static const std::vector<Conversion> k = {
      {{"km", "kilometers", "kilometres"}, {"miles"}, Op::kDiv, "1.609344", 1, 500},
      {{"miles", "mi"}, {"km", "kilometers", "kilometres"}, Op::kMul, "1.609344", 1, 500},
      {{"kg", "kilograms", "kilos"}, {"pounds", "lb"}, Op::kMul, "2.20462", 1, 200},
      {{"pounds", "lb", "lbs"}, {"kg", "kilograms"}, Op::kDiv, "2.20462", 1, 400},
      {{"degrees Celsius", "°C", "Celsius"}, {"degrees Fahrenheit", "°F", "Fahrenheit"}, Op::kCToF, "", 0, 100},
      {{"degrees Fahrenheit", "°F", "Fahrenheit"}, {"degrees Celsius", "°C", "Celsius"}, Op::kFToC, "", 0, 212},
      {{"hours", "hrs", "h"}, {"minutes"}, Op::kMul, "60", 1, 48},
      {{"minutes", "mins"}, {"hours"}, Op::kDiv, "60", 1, 600},
      {{"meters", "metres", "m"}, {"feet", "ft"}, Op::kDiv, "0.3048", 1, 1000},
      {{"feet", "ft"}, {"meters", "metres"}, Op::kMul, "0.3048", 1, 3000},
      {{"inches", "in"}, {"centimeters", "cm", "centimetres"}, Op::kMul, "2.54", 1, 100},
      {{"centimeters", "cm", "centimetres"}, {"inches"}, Op::kDiv, "2.54", 1, 300},
      {{"gallons", "gal"}, {"liters", "litres", "L"}, Op::kMul, "3.785411784", 1, 100},
      {{"liters", "litres", "L"}, {"gallons"}, Op::kDiv, "3.785411784", 1, 300},
      {{"days"}, {"hours"}, Op::kMul, "24", 1, 60},
      {{"ounces", "oz"}, {"grams", "g"}, Op::kMul, "28.349523125", 1, 64},
  };
  return k;
}

const std::vector<std::string> kConvert = {
    "How many {to} is {v} {from}?", "Convert {v} {from} to {to}.", "What is {v} {from} in {to}?",
    "{v} {from} is how many {to}?", "Can you convert {v} {from} into {to}?",
    "I have {v} {from}; how much is that in {to}?", "What's {v} {from} in {to}?", "Change {v} {from} to {to}.",
    "Express {v} {from} in {to}.", "How much is {v} {from} in {to}?", "Turn {v} {from} into {to}.",
    "What do {v} {from} equal in {to}?"};

RoutedTask unit_conversion(Split split, Rng& rng) {
  RoutedTask t = math("unit_conversion");
  const Conversion& c = pick_any(rng, conversions());
  const Decimal v = random_decimal(rng, c.lo, c.hi, chance(rng, 0.25) ? 1 : 0);
  const std::string& from = c.from_names.front();
  const std::string& to = c.to_names.front();
  t.user = fill(pick(rng, kConvert, split),
                {{"v", v.text}, {"from", pick_any(rng, c.from_names)}, {"to", pick_any(rng, c.to_names)}});
  t.request = str_cat("Convert ", v.text, " ", from, " to ", to);
  double r = 0;
  std::string expr;
  const double f = c.factor.empty() ? 0.0 : std::strtod(c.factor.c_str(), nullptr);
  // Python evaluates left to right; a literal without '.' is an int, and
  // int * int stays exact, so integral factors keep integral values exact.
  switch (c.op) {
    case Op::kMul: expr = v.text + "*" + c.factor; r = v.value * f; break;
    case Op::kDiv: expr = v.text + "/" + c.factor; r = v.value / f; break;
    case Op::kCToF: {
      expr = v.text + "*9/5+32";
      const double nine = v.value * 9.0;  // exact for our small inputs
      r = nine / 5.0 + 32.0;
      break;
    }
    case Op::kFToC: {
      expr = "(" + v.text + "-32)*5/9";
      const double m = (v.value - 32.0) * 5.0;
      r = m / 9.0;
      break;
    }
  }
  t.program = "print(round(" + expr + ", 2))";
  // round(int, 2) is an int in Python: hours->minutes with an integer input prints "120".
  const bool int_result = c.op == Op::kMul && v.text.find('.') == std::string::npos &&
                          c.factor.find('.') == std::string::npos;
  t.result = int_result ? py_int(static_cast<int64_t>(r)) : py_round2(r);
  t.answer = str_cat(v.text, " ", from, " is ", t.result, " ", to, ".");
  return t;
}

}  // namespace

const std::vector<std::string>& math_task_names() {
  static const std::vector<std::string> k = {"arithmetic", "multi_step", "percentage", "unit_conversion"};
  return k;
}

RoutedTask make_math_task(std::string_view name, Split split, Rng& rng) {
  if (name == "arithmetic") {
    const uint64_t k = rng.below(9);
    if (k == 8) return division_rounded(split, rng);
    return binary_op("+-*/"[k % 4], split, rng);
  }
  if (name == "multi_step") return multi_step(split, rng);
  if (name == "percentage") return percentage(split, rng);
  if (name == "unit_conversion") return unit_conversion(split, rng);
  HG_FAIL("unknown math task '", name, "'");
}

std::vector<TemplateCount> math_template_counts() {
  return {{"arithmetic", kAdd.size() + kSub.size() + kMul.size() + kDiv.size() + kDivRound.size()},
          {"multi_step", kExpr.size()},
          {"percentage", kPercentOf.size() + kPercentWhat.size()},
          {"unit_conversion", kConvert.size()}};
}

}  // namespace hessgpt::synth
