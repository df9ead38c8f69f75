// UTF-8 validation and repair for tokenizer input.
// Invalid input is repaired exactly like the WHATWG Encoding Standard decoder
// (what TextDecoder, Node and Python's errors="replace" do): each maximal
// invalid subpart becomes one U+FFFD. SentencePiece's own normaliser would
// instead emit one U+FFFD per bad byte, so repairing first keeps our ids equal
// to those of any JavaScript/Python tokenizer fed the same bytes.
#pragma once

#include <string>
#include <string_view>

namespace hessgpt::utf8 {

// Length of the valid UTF-8 prefix of `text` (== text.size() when valid).
size_t valid_prefix_length(std::string_view text);

inline bool is_valid(std::string_view text) { return valid_prefix_length(text) == text.size(); }

// `text` with every maximal invalid subpart replaced by U+FFFD (EF BF BD).
std::string repair(std::string_view text);

}  // namespace hessgpt::utf8
