#include "data/quality_filter.h"

#include <string>
#include <unordered_set>

#include <xxhash.h>

namespace hessgpt::data {
namespace {

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && is_space(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

TextStats measure_text(std::string_view text) {
  TextStats st;
  bool in_word = false, word_has_alpha = false;
  int64_t line_chars = 0;
  size_t line_start = 0;
  std::unordered_set<uint64_t> seen_lines;
  const auto end_line = [&](size_t end) {
    const std::string_view line = trim(text.substr(line_start, end - line_start));
    if (line.size() >= 4) {  // "}", "end", "" are not evidence of repetition
      ++st.lines;
      if (!seen_lines.insert(XXH3_64bits(line.data(), line.size())).second) ++st.repeated_lines;
    }
    if (line_chars > st.longest_line) st.longest_line = line_chars;
    line_chars = 0;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const bool continuation = (c & 0xC0) == 0x80;
    if (!continuation) {
      ++st.chars;
      ++line_chars;
    }
    if (c == '\n') {
      --line_chars;
      end_line(i);
      line_start = i + 1;
    }
    if (is_space(c)) {
      if (in_word) {
        ++st.words;
        if (word_has_alpha) ++st.alpha_words;
      }
      in_word = false;
      word_has_alpha = false;
      continue;
    }
    if (!in_word) in_word = true;
    ++st.word_bytes;
    if (continuation) continue;
    ++st.non_space;
    if (c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) word_has_alpha = true;
    else if (c >= '0' && c <= '9') ++st.digits;
    else if (c < 0x80) ++st.symbols;
  }
  if (in_word) {
    ++st.words;
    if (word_has_alpha) ++st.alpha_words;
  }
  end_line(text.size());
  return st;
}

std::optional<DropReason> check_quality(std::string_view text, const FilterConfig& f) {
  const TextStats st = measure_text(text);
  if (st.non_space == 0) return DropReason::kEmpty;
  if (f.min_chars > 0 && st.chars < f.min_chars) return DropReason::kTooShort;
  if (f.max_chars > 0 && st.chars > f.max_chars) return DropReason::kTooLong;
  if (f.min_words > 0 && st.words < f.min_words) return DropReason::kFewWords;
  const double ns = static_cast<double>(st.non_space);
  if (f.max_symbol_ratio > 0 && st.symbols / ns > f.max_symbol_ratio) return DropReason::kSymbolRatio;
  if (f.max_digit_ratio > 0 && st.digits / ns > f.max_digit_ratio) return DropReason::kDigitRatio;
  if (f.max_repeated_lines > 0 && st.lines > 0 &&
      static_cast<double>(st.repeated_lines) / static_cast<double>(st.lines) > f.max_repeated_lines)
    return DropReason::kRepeatedLines;
  if (st.words > 0 && (f.min_mean_word_len > 0 || f.max_mean_word_len > 0)) {
    const double mean = static_cast<double>(st.word_bytes) / static_cast<double>(st.words);
    if ((f.min_mean_word_len > 0 && mean < f.min_mean_word_len) ||
        (f.max_mean_word_len > 0 && mean > f.max_mean_word_len))
      return DropReason::kWordLength;
  }
  if (f.min_alpha_words > 0 && st.words > 0 &&
      static_cast<double>(st.alpha_words) / static_cast<double>(st.words) < f.min_alpha_words)
    return DropReason::kAlphaWords;
  if (f.max_line_chars > 0 && st.longest_line > f.max_line_chars) return DropReason::kLongLines;
  return std::nullopt;
}

}  // namespace hessgpt::data
