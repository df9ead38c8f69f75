#include "infer/text_stream.h"

namespace hessgpt::infer {

size_t unfinished_utf8_tail(const std::string& s) {
  size_t n = s.size();
  size_t tail = 0;
  // Trailing replacement characters (EF BF BD).
  while (n - tail >= 3 && s.compare(n - tail - 3, 3, "\xEF\xBF\xBD") == 0) tail += 3;
  // A lead byte whose continuation bytes have not all arrived.
  const size_t end = n - tail;
  for (size_t back = 1; back <= 4 && back <= end; ++back) {
    const auto c = static_cast<unsigned char>(s[end - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (need > back) tail += back;
    break;
  }
  return tail;
}

std::string TextStream::push(int32_t id) {
  ids_.push_back(id);
  text_ = tok_.decode(ids_);
  const size_t stable = text_.size() - unfinished_utf8_tail(text_);
  if (stable <= emitted_) return {};
  std::string out = text_.substr(emitted_, stable - emitted_);
  emitted_ = stable;
  return out;
}

std::string TextStream::flush() {
  if (text_.size() <= emitted_) return {};
  std::string out = text_.substr(emitted_);
  emitted_ = text_.size();
  return out;
}

}  // namespace hessgpt::infer
