// Generators of routed tasks: a user's phrasing, the normalised request
// Model 1 sends, the program Model 2 writes, the true result and Model 1's
// final sentence.
//
// Which route each task takes (SPEC §3):
//   <|math|>   numbers: arithmetic (+ - * /, multi-step, parentheses),
//              percentages, unit conversions
//   <|logic|>  exact symbol manipulation: counting letters/vowels/words,
//              reversing, upper-casing, string length, sorting words
//   <|code|>   "write a function that ..." requests: the code is the result
//
// For math and logic the program is Python that prints the result; the
// generator computes the same value in C++ and records exactly what the
// program's stdout would be (integers as Python prints them, floats through
// round(x, 2) and Python's repr). Requests are one fixed, explicit form per
// task ("Calculate 37*41", "Count the vowels in 'banana'") so the program is
// a direct transformation of the request; the variety lives in the user text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/rng.h"
#include "data/synth/synth_util.h"
#include "tokenizer/chat_template.h"

namespace hessgpt::synth {

struct RoutedTask {
  std::string task;      // e.g. "arithmetic", "unit_conversion", "count_vowels", "code_function"
  chat::RouteKind kind = chat::RouteKind::kMath;
  std::string user;      // the user's message
  std::string request;   // what Model 1 sends to Model 2
  std::string program;   // Model 2's answer
  std::string language;  // "python" or "javascript"
  std::string result;    // program's stdout (math/logic) or the code itself (code)
  std::string answer;    // Model 1's final answer, restating the result
};

// The task names, grouped by route kind.
const std::vector<std::string>& math_task_names();
const std::vector<std::string>& logic_task_names();
const std::vector<std::string>& code_task_names();

// One task of that name; eval items use held-out phrasings and words.
RoutedTask make_math_task(std::string_view name, Split split, Rng& rng);
RoutedTask make_logic_task(std::string_view name, Split split, Rng& rng);
RoutedTask make_code_task(std::string_view name, Split split, Rng& rng);
RoutedTask make_task(std::string_view name, Split split, Rng& rng);

// Number of user phrasing templates per task (for the manifest and report).
struct TemplateCount {
  std::string task;
  size_t templates = 0;
};
std::vector<TemplateCount> template_counts();
// Per route kind (each defined next to its templates).
std::vector<TemplateCount> math_template_counts();
std::vector<TemplateCount> logic_template_counts();
std::vector<TemplateCount> code_template_counts();

// Politeness/wrapping around a user message ("Please ...", "... Thanks!"),
// from the split's share of wrappers.
std::string wrap_politely(const std::string& message, Split split, Rng& rng);
size_t wrapper_count();

}  // namespace hessgpt::synth
