#include "tokenizer/utf8.h"

#include <cstdint>

namespace hessgpt::utf8 {
namespace {

// Length of the well-formed sequence at text[i], or 0 when the bytes there
// start an invalid subpart; `consumed` is then the length of that maximal
// subpart (at least 1), following Unicode Table 3-7 / the WHATWG decoder.
size_t sequence_length(std::string_view text, size_t i, size_t* consumed) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t lead = byte(i);
  *consumed = 1;
  if (lead < 0x80) return 1;
  size_t need = 0;
  uint8_t lower = 0x80, upper = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 2;
    if (lead == 0xE0) lower = 0xA0;  // no overlong 3-byte forms
    if (lead == 0xED) upper = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 3;
    if (lead == 0xF0) lower = 0x90;  // no overlong 4-byte forms
    if (lead == 0xF4) upper = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;  // continuation byte or C0, C1, F5..FF as a lead
  }
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= text.size()) return 0;  // truncated: the bytes so far are one subpart
    const uint8_t b = byte(i + k);
    if (b < lower || b > upper) return 0;  // the bad byte starts the next attempt
    lower = 0x80;
    upper = 0xBF;
    *consumed = k + 1;
  }
  return need + 1;
}

}  // namespace

size_t valid_prefix_length(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    // Fast path for ASCII, which is most of any corpus.
    if (static_cast<uint8_t>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t consumed = 0;
    const size_t n = sequence_length(text, i, &consumed);
    if (n == 0) return i;
    i += n;
  }
  return text.size();
}

std::string repair(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  size_t i = 0;
  while (i < text.size()) {
    size_t consumed = 0;
    const size_t n = sequence_length(text, i, &consumed);
    if (n > 0) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += consumed;
    }
  }
  return out;
}

}  // namespace hessgpt::utf8
