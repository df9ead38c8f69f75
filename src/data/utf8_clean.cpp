#include "data/utf8_clean.h"

namespace hessgpt::data {

int utf8_sequence_length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  const size_t left = s.size() - i;
  const auto cont = [&](size_t k) { return (b(k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return (left >= 2 && cont(i + 1)) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3 || !cont(i + 1) || !cont(i + 2)) return 0;
    if (c == 0xE0 && b(i + 1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(i + 1) > 0x9F) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4 || !cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if (c == 0xF0 && b(i + 1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(i + 1) > 0x8F) return 0;  // beyond U+10FFFF
    return 4;
  }
  return 0;
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const int n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += static_cast<size_t>(n);
  }
  return true;
}

namespace {

// Bytes of the maximal prefix of a (possibly truncated) valid sequence at s[i]:
// those are replaced by a single U+FFFD. At least 1.
size_t invalid_span(std::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) need = 1;
  else if (c >= 0xE0 && c <= 0xEF) { need = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
  else if (c >= 0xF0 && c <= 0xF4) { need = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
  else return 1;
  size_t k = 1;
  for (; k <= need && i + k < s.size(); ++k) {
    const unsigned char d = static_cast<unsigned char>(s[i + k]);
    if (d < lo || d > hi) break;
    lo = 0x80;
    hi = 0xBF;
  }
  return k;
}

}  // namespace

Utf8Cleaned clean_utf8(std::string_view raw) {
  Utf8Cleaned out;
  out.text.reserve(raw.size());
  for (size_t i = 0; i < raw.size();) {
    const char ch = raw[i];
    if (ch == '\r') {  // CRLF and lone CR both become LF
      out.text += '\n';
      i += (i + 1 < raw.size() && raw[i + 1] == '\n') ? 2 : 1;
      continue;
    }
    if (ch == '\0') out.has_nul = true;
    const int n = utf8_sequence_length(raw, i);
    if (n > 0) {
      out.text.append(raw.data() + i, static_cast<size_t>(n));
      i += static_cast<size_t>(n);
    } else {
      out.text += "\xEF\xBF\xBD";
      ++out.invalid_sequences;
      i += invalid_span(raw, i);
    }
  }
  return out;
}

}  // namespace hessgpt::data
