// UTF-8 validation and repair for raw input text. Repair replaces each
// maximal invalid subsequence with U+FFFD (the WHATWG/Unicode "substitution of
// maximal subparts" practice), so repaired text is always valid UTF-8 and the
// tokenizer never sees broken bytes. Also normalises CRLF/CR line ends to LF.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hessgpt::data {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when invalid
// (overlongs, surrogates, > U+10FFFF and truncated sequences are invalid).
int utf8_sequence_length(std::string_view s, size_t i);

bool is_valid_utf8(std::string_view s);

struct Utf8Cleaned {
  std::string text;
  int64_t invalid_sequences = 0;  // how many U+FFFD were inserted
  bool has_nul = false;           // NUL bytes seen (binary data)
};

// Repairs invalid sequences, turns CRLF and lone CR into LF.
Utf8Cleaned clean_utf8(std::string_view raw);

}  // namespace hessgpt::data
