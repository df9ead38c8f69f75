#include "data/synth/synth_util.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace hessgpt::synth {

std::string fill(std::string_view pattern, std::initializer_list<std::pair<std::string_view, std::string>> values) {
  std::string out;
  out.reserve(pattern.size() + 32);
  for (size_t i = 0; i < pattern.size();) {
    if (pattern[i] == '{') {
      const size_t close = pattern.find('}', i);
      HG_CHECK(close != std::string_view::npos, "unclosed placeholder in ", pattern);
      const std::string_view name = pattern.substr(i + 1, close - i - 1);
      bool found = false;
      for (const auto& [key, value] : values) {
        if (key == name) {
          out += value;
          found = true;
          break;
        }
      }
      HG_CHECK(found, "no value for {", name, "} in ", pattern);
      i = close + 1;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

std::string with_commas(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string number_words(int64_t v) {
  static const char* const kSmall[] = {"zero",    "one",     "two",       "three",    "four",
                                       "five",    "six",     "seven",     "eight",    "nine",
                                       "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                       "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                                       "twenty"};
  static const char* const kTens[] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty",
                                      "ninety"};
  if (v >= 0 && v <= 20) return kSmall[v];
  if (v > 20 && v < 100 && v % 10 == 0) return kTens[v / 10];
  return std::to_string(v);
}

std::string user_number(Rng& rng, int64_t v) {
  const double u = rng.uniform();
  if (v >= 1000 && u < 0.4) return with_commas(v);
  if (v <= 20 && v >= 0 && u < 0.25) return number_words(v);
  return std::to_string(v);
}

std::string py_float_repr(double x) {
  HG_CHECK(std::isfinite(x));
  HG_CHECK(x == 0 || (std::fabs(x) >= 1e-4 && std::fabs(x) < 1e16), "value outside Python's fixed repr range: ", x);
  // to_chars without a precision gives the shortest string that reads back
  // as x, the same digits as Python's repr (both pick the closest shortest).
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::fixed);
  HG_CHECK(res.ec == std::errc());
  std::string s(buf, res.ptr);
  if (s.find('.') == std::string::npos) s += ".0";
  return s;
}

std::string py_round2(double x) {
  // round(x, 2) in CPython: the correctly rounded 2-decimal string of the
  // exact binary value (ties to even), read back as a float. glibc's printf is
  // correctly rounded with the same tie rule.
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f", x);
  return py_float_repr(std::strtod(buf, nullptr));
}

namespace {
void check_literal_text(std::string_view text) {
  for (const char c : text) {
    HG_CHECK(c >= 0x20 && c < 0x7f && c != '\'' && c != '"' && c != '\\' && c != '`',
             "text unsafe for a string literal: ", text);
  }
}
}  // namespace

std::string py_str(std::string_view text) {
  check_literal_text(text);
  return str_cat('\'', text, '\'');
}

std::string js_str(std::string_view text) {
  check_literal_text(text);
  return str_cat('\'', text, '\'');
}

Decimal random_decimal(Rng& rng, int64_t lo, int64_t hi, int n_decimals) {
  const int64_t whole = uniform_int(rng, lo, hi);
  Decimal d;
  d.text = std::to_string(whole);
  if (n_decimals > 0) {
    int64_t scale = 1;
    for (int i = 0; i < n_decimals; ++i) scale *= 10;
    int64_t frac = uniform_int(rng, 1, scale - 1);
    if (frac % 10 == 0) frac += 1;  // no trailing zero: "12.50" reads as a different phrasing
    std::string f = std::to_string(frac);
    while (static_cast<int>(f.size()) < n_decimals) f = "0" + f;
    d.text += "." + f;
  }
  d.value = std::strtod(d.text.c_str(), nullptr);  // the same correctly rounded parse as Python's
  return d;
}

std::string capitalise_first(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

std::string lower_first(std::string s) {
  // Keep acronyms and "I" as they are: only lower a capital followed by a lower-case letter.
  if (s.size() > 1 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'a' && s[1] <= 'z') {
    s[0] = static_cast<char>(s[0] - 'A' + 'a');
  }
  return s;
}

uint64_t stable_hash(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace hessgpt::synth
