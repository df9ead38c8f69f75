// The quality ("academic") filter: cheap per-document heuristics in the spirit
// of Gopher/C4/FineWeb rules. Each test is one threshold of FilterConfig (0 = off)
// and maps to one DropReason, so reports say exactly why text was refused.
#pragma once

#include <optional>
#include <string_view>

#include "data/drop_counts.h"
#include "data/mix.h"

namespace hessgpt::data {

// Measurements of one document (exposed for tests and for tuning thresholds).
struct TextStats {
  int64_t chars = 0;           // code points
  int64_t non_space = 0;       // non-whitespace code points
  int64_t symbols = 0;         // ASCII punctuation and symbols
  int64_t digits = 0;
  int64_t words = 0;
  int64_t word_bytes = 0;
  int64_t alpha_words = 0;     // words containing a letter (any non-ASCII counts as a letter)
  int64_t lines = 0;           // lines with 4+ non-space characters
  int64_t repeated_lines = 0;  // of those, lines equal (after trimming) to an earlier one
  int64_t longest_line = 0;    // code points
};

TextStats measure_text(std::string_view text);

// Why the document fails the filter, or nothing when it passes.
std::optional<DropReason> check_quality(std::string_view text, const FilterConfig& config);

}  // namespace hessgpt::data
