// Small helpers shared by the routing-data generators: held-out picking,
// template filling, number formats and Python literals/number printing that
// match what /usr/bin/python3 prints, so a recorded result is byte-for-byte
// the stdout of the recorded program.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/rng.h"

namespace hessgpt::synth {

enum class Split { kTrain, kEval };

// Held-out rule for lists of phrasings and words: every 4th entry (index % 4
// == 3) is reserved for evaluation, so eval items are phrased in ways the
// training data never shows. Lists shorter than 4 are shared by both splits.
inline bool held_out_index(size_t i, size_t n) { return n >= 4 && i % 4 == 3; }

template <typename T>
const T& pick(Rng& rng, const std::vector<T>& items, Split split) {
  HG_CHECK(!items.empty());
  const size_t n = items.size();
  if (n < 4) return items[rng.below(n)];
  // Indices of the split's share, counted without building a list.
  const size_t n_eval = n / 4;
  if (split == Split::kEval) return items[4 * rng.below(n_eval) + 3];
  const size_t k = rng.below(n - n_eval);  // k-th index that is not held out
  return items[k + k / 3];
}

template <typename T>
const T& pick_any(Rng& rng, const std::vector<T>& items) {
  HG_CHECK(!items.empty());
  return items[rng.below(items.size())];
}

inline int64_t uniform_int(Rng& rng, int64_t lo, int64_t hi) {  // inclusive
  HG_CHECK(lo <= hi);
  return lo + static_cast<int64_t>(rng.below(static_cast<uint64_t>(hi - lo + 1)));
}
inline bool chance(Rng& rng, double p) { return rng.uniform() < p; }

// Replaces each "{name}" with its value.
std::string fill(std::string_view pattern, std::initializer_list<std::pair<std::string_view, std::string>> values);

// 1234567 -> "1,234,567" (user-facing variety; requests always use plain digits).
std::string with_commas(int64_t v);
// 0..20 and tens as English words ("seven"), else digits.
std::string number_words(int64_t v);
// A user-facing rendering of an integer: plain, with thousands commas, or words.
std::string user_number(Rng& rng, int64_t v);

// What Python's print(x) writes for an int.
inline std::string py_int(int64_t v) { return std::to_string(v); }
// What print(float) writes: the shortest repr, "12.0" for integral values.
// Only for |x| in [1e-4, 1e16), where Python does not switch to exponents.
std::string py_float_repr(double x);
// What print(round(x, 2)) writes for a float x.
std::string py_round2(double x);
// A single-quoted Python string literal; text is restricted to printable ASCII
// without quotes or backslashes (checked), so no escaping is ever needed.
std::string py_str(std::string_view text);
// A JavaScript string literal under the same restriction.
std::string js_str(std::string_view text);

// A decimal literal both Python and C++ read as the same double ("12.5").
struct Decimal {
  std::string text;
  double value = 0;
};
// n_decimals = 0 gives an integer literal.
Decimal random_decimal(Rng& rng, int64_t lo, int64_t hi, int n_decimals);

std::string capitalise_first(std::string s);
std::string lower_first(std::string s);

// Stable 64-bit hash (FNV-1a) for deterministic held-out assignments of
// source items (countries, terms, questions) independent of the seed.
uint64_t stable_hash(std::string_view s);

}  // namespace hessgpt::synth
