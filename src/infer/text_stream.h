// Incremental detokenisation for streaming: each new id re-decodes the
// generated ids and hands out only the new, complete text. A character split
// across byte-fallback pieces (<0xE2><0x82><0xAC>) is held back until its last
// byte arrives, so the stream never shows a broken or replacement character
// that the final text would not have.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace hessgpt::infer {

class TextStream {
 public:
  explicit TextStream(const Tokenizer& tokenizer) : tok_(tokenizer) {}
  // The text that became final with this id (may be empty).
  std::string push(int32_t id);
  // Whatever is still held back (call once at the end).
  std::string flush();
  const std::string& text() const { return text_; }  // decode of all ids so far

 private:
  const Tokenizer& tok_;
  std::vector<int32_t> ids_;
  std::string text_;
  size_t emitted_ = 0;
};

// Bytes at the end of s that are an unfinished UTF-8 sequence or U+FFFD
// (what a decoder shows for one).
size_t unfinished_utf8_tail(const std::string& s);

}  // namespace hessgpt::infer
