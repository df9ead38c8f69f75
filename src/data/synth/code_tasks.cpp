// <|code|> tasks: small Python/JavaScript functions from templates (the code
// itself is the route's result, SPEC §3), plus the task dispatcher and the
// politeness wrappers shared by every routed task.
#include "data/synth/routed_tasks.h"

namespace hessgpt::synth {
namespace {

using chat::RouteKind;

// {k} is a small integer parameter; descriptions come in third person
// ("returns ...") and infinitive ("return ...") to fit every phrasing.
struct FunctionSpec {
  std::string name;  // may contain {k}
  std::string args;
  std::string does;  // "returns the square of a number"
  std::string todo;  // "return the square of a number"
  std::string python_body;
  std::string js_body;
  bool uses_k = false;
};

const std::vector<FunctionSpec>& functions() {
  static const std::vector<FunctionSpec> k = {
      {"square", "x", "returns the square of a number", "compute the square of a number", "return x * x",
       "return x * x;", false},
      {"add_{k}", "x", "adds {k} to a number", "add {k} to a number", "return x + {k}", "return x + {k};", true},
      {"times_{k}", "x", "multiplies a number by {k}", "multiply a number by {k}", "return x * {k}",
       "return x * {k};", true},
      {"is_even", "n", "checks whether a number is even", "check whether a number is even", "return n % 2 == 0",
       "return n % 2 === 0;", false},
      {"is_divisible_by_{k}", "n", "checks whether a number is divisible by {k}",
       "test whether a number is divisible by {k}", "return n % {k} == 0", "return n % {k} === 0;", true},
      {"reverse_string", "s", "reverses a string", "reverse a string", "return s[::-1]",
       "return s.split('').reverse().join('');", false},
      {"count_vowels", "s", "counts the vowels in a string", "count the vowels in a string",
       "return sum(1 for c in s.lower() if c in 'aeiou')",
       "return s.toLowerCase().split('').filter(c => 'aeiou'.includes(c)).length;", false},
      {"factorial", "n", "returns the factorial of n", "compute the factorial of n",
       "result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result",
       "let result = 1;\n  for (let i = 2; i <= n; i++) result *= i;\n  return result;", false},
      {"largest", "numbers", "returns the largest number in a list", "find the largest number in a list",
       "return max(numbers)", "return Math.max(...numbers);", false},
      {"total", "numbers", "returns the sum of a list of numbers", "add up a list of numbers", "return sum(numbers)",
       "return numbers.reduce((a, b) => a + b, 0);", false},
      {"average", "numbers", "returns the average of a list of numbers", "compute the average of a list of numbers",
       "return sum(numbers) / len(numbers)", "return numbers.reduce((a, b) => a + b, 0) / numbers.length;", false},
      {"celsius_to_fahrenheit", "c", "converts Celsius to Fahrenheit", "convert Celsius to Fahrenheit",
       "return c * 9 / 5 + 32", "return c * 9 / 5 + 32;", false},
      {"is_palindrome", "s", "checks whether a string is a palindrome", "check if a string is a palindrome",
       "return s == s[::-1]", "return s === s.split('').reverse().join('');", false},
      {"fibonacci", "n", "returns the n-th Fibonacci number", "compute the n-th Fibonacci number",
       "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
       "let a = 0, b = 1;\n  for (let i = 0; i < n; i++) [a, b] = [b, a + b];\n  return a;", false},
      {"power_{k}", "x", "raises a number to the power {k}", "raise a number to the power {k}", "return x ** {k}",
       "return x ** {k};", true},
      {"count_words", "text", "counts the words in a text", "count the words in a text", "return len(text.split())",
       "return text.split(/\\s+/).filter(w => w.length > 0).length;", false},
      {"first_{k}", "items", "returns the first {k} items of a list", "take the first {k} items of a list",
       "return items[:{k}]", "return items.slice(0, {k});", true},
      {"greet", "name", "returns a greeting for a name", "build a greeting for a name",
       "return 'Hello, ' + name + '!'", "return 'Hello, ' + name + '!';", false},
  };
  return k;
}

const std::vector<std::string> kCode = {
    "Write a {lang} function that {does}.", "Can you write a {lang} function to {todo}?",
    "I need a {lang} function that {does}.", "Please give me {lang} code to {todo}.",
    "Show me how to {todo} in {lang}.", "Create a {lang} function which {does}.",
    "How would I write a function in {lang} that {does}?", "Could you code a {lang} function that {does}?",
    "Write {lang} code that {does}.", "Help me write a {lang} function to {todo}.",
    "Give me a {lang} function that {does}.", "What is a {lang} function to {todo}?"};

// Keeps the list's per-split picking meaningful: 2..25, every 4th held out.
const std::vector<int64_t>& k_values() {
  static const std::vector<int64_t> k = [] {
    std::vector<int64_t> v;
    for (int64_t i = 2; i <= 25; ++i) v.push_back(i);
    return v;
  }();
  return k;
}

RoutedTask code_function(Split split, Rng& rng) {
  RoutedTask t;
  t.task = "code_function";
  t.kind = RouteKind::kCode;
  const FunctionSpec& f = pick_any(rng, functions());
  const std::string k = std::to_string(pick(rng, k_values(), split));
  const bool python = chance(rng, 0.7);
  t.language = python ? "python" : "javascript";
  const std::string lang = python ? "Python" : "JavaScript";
  const std::string name = fill(f.name, {{"k", k}});
  const std::string does = fill(f.does, {{"k", k}}), todo = fill(f.todo, {{"k", k}});
  if (python) {
    t.program = str_cat("def ", name, "(", f.args, "):\n    ", fill(f.python_body, {{"k", k}}));
  } else {
    std::string js_name = name;  // JavaScript naming: camelCase
    for (size_t p = js_name.find('_'); p != std::string::npos; p = js_name.find('_')) {
      js_name.erase(p, 1);
      if (p < js_name.size() && js_name[p] >= 'a' && js_name[p] <= 'z') js_name[p] = static_cast<char>(js_name[p] - 32);
    }
    t.program = str_cat("function ", js_name, "(", f.args, ") {\n  ", fill(f.js_body, {{"k", k}}), "\n}");
  }
  t.user = fill(pick(rng, kCode, split), {{"lang", lang}, {"does", does}, {"todo", todo}});
  t.request = str_cat("Write a ", lang, " function ", name, "(", f.args, ") that ", does);
  t.result = t.program;
  t.answer = str_cat("Here is a ", lang, " function that ", does, ":\n\n```", t.language, "\n", t.program, "\n```");
  return t;
}

const std::vector<std::string> kPrefixes = {"",        "",        "",          "Please ", "Hi! ",   "Quick question: ",
                                            "Hey, ",   "",        "Could you help? ", "",  "Hello. ", "I wonder: "};
const std::vector<std::string> kSuffixes = {"", "", " Thanks!", "", " Thank you.", "", " Please.", " Thanks in advance.",
                                            "", ""};

}  // namespace

const std::vector<std::string>& code_task_names() {
  static const std::vector<std::string> k = {"code_function"};
  return k;
}

RoutedTask make_code_task(std::string_view name, Split split, Rng& rng) {
  if (name == "code_function") return code_function(split, rng);
  HG_FAIL("unknown code task '", name, "'");
}

RoutedTask make_task(std::string_view name, Split split, Rng& rng) {
  for (const auto& n : math_task_names())
    if (n == name) return make_math_task(name, split, rng);
  for (const auto& n : logic_task_names())
    if (n == name) return make_logic_task(name, split, rng);
  for (const auto& n : code_task_names())
    if (n == name) return make_code_task(name, split, rng);
  HG_FAIL("unknown routed task '", name, "'");
}

std::vector<TemplateCount> code_template_counts() {
  return {{"code_function", kCode.size() * functions().size()}};
}

std::vector<TemplateCount> template_counts() {
  std::vector<TemplateCount> all = math_template_counts();
  for (auto& c : logic_template_counts()) all.push_back(c);
  for (auto& c : code_template_counts()) all.push_back(c);
  return all;
}

std::string wrap_politely(const std::string& message, Split split, Rng& rng) {
  std::string prefix = pick(rng, kPrefixes, split);
  const std::string& suffix = pick(rng, kSuffixes, split);
  if (prefix == "Please " && !message.empty() && message.back() == '?') prefix.clear();  // not "Please what is ...?"
  // "Please What is ..." reads badly: lower the first letter after a prefix
  // that runs into the sentence.
  const bool runs_in = !prefix.empty() && (prefix == "Please " || prefix == "Hey, ");
  return prefix + (runs_in ? lower_first(message) : message) + suffix;
}

size_t wrapper_count() { return kPrefixes.size() * kSuffixes.size(); }

}  // namespace hessgpt::synth
