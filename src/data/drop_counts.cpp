#include "data/drop_counts.h"

namespace hessgpt::data {

std::string_view drop_reason_name(DropReason reason) {
  switch (reason) {
    case DropReason::kUnreadable: return "unreadable";
    case DropReason::kMalformedJson: return "malformed_json";
    case DropReason::kMissingTextField: return "missing_text_field";
    case DropReason::kInvalidUtf8: return "invalid_utf8";
    case DropReason::kBinary: return "binary";
    case DropReason::kEmpty: return "empty";
    case DropReason::kTooShort: return "too_short";
    case DropReason::kTooLong: return "too_long";
    case DropReason::kFewWords: return "few_words";
    case DropReason::kSymbolRatio: return "symbol_ratio";
    case DropReason::kDigitRatio: return "digit_ratio";
    case DropReason::kRepeatedLines: return "repeated_lines";
    case DropReason::kWordLength: return "word_length";
    case DropReason::kAlphaWords: return "alpha_words";
    case DropReason::kLongLines: return "long_lines";
    case DropReason::kExactDuplicate: return "exact_duplicate";
    case DropReason::kNearDuplicate: return "near_duplicate";
    case DropReason::kCount: break;
  }
  return "unknown";
}

void DropCounts::merge(const DropCounts& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
}

int64_t DropCounts::total() const {
  int64_t n = 0;
  for (int64_t c : counts_) n += c;
  return n;
}

nlohmann::json DropCounts::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (int i = 0; i < static_cast<int>(DropReason::kCount); ++i)
    j[std::string(drop_reason_name(static_cast<DropReason>(i)))] = counts_[i];
  return j;
}

}  // namespace hessgpt::data
