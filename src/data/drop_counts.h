// Why documents were dropped, counted by reason. Every reason the pipeline can
// drop a document for has a name here, so reports and manifests list them all
// (with zeros) and a test can ask for any of them.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

namespace hessgpt::data {

enum class DropReason : int {
  kUnreadable = 0,     // file missing/unreadable or corrupt gzip
  kMalformedJson,      // a JSONL line or JSON file that does not parse (to an object)
  kMissingTextField,   // JSON without the configured text field, or not a string
  kInvalidUtf8,        // invalid UTF-8 under the "drop" policy
  kBinary,             // NUL bytes: not text
  kEmpty,              // nothing but whitespace
  kTooShort,           // fewer than min_chars characters
  kTooLong,            // more than max_chars characters
  kFewWords,           // fewer than min_words words
  kSymbolRatio,        // too many punctuation/symbol characters
  kDigitRatio,         // too many digits
  kRepeatedLines,      // too many lines repeating an earlier line
  kWordLength,         // mean word length outside [min, max]
  kAlphaWords,         // too few words containing a letter
  kLongLines,          // a line longer than max_line_chars (minified code)
  kExactDuplicate,     // same normalised text as an earlier document
  kNearDuplicate,      // MinHash/LSH: estimated Jaccard >= threshold with an earlier one
  kCount
};

std::string_view drop_reason_name(DropReason reason);

class DropCounts {
 public:
  void add(DropReason reason, int64_t n = 1) { counts_[static_cast<int>(reason)] += n; }
  void merge(const DropCounts& other);
  int64_t get(DropReason reason) const { return counts_[static_cast<int>(reason)]; }
  int64_t total() const;
  // {"reason": count, ...} for every reason, zeros included.
  nlohmann::json to_json() const;

 private:
  std::array<int64_t, static_cast<int>(DropReason::kCount)> counts_{};
};

}  // namespace hessgpt::data
