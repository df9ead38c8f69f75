// Model 1's answer as text deltas while it is written. The router's final
// answer is the trimmed decode of the answer ids (router.h), so a stream
// that sent every new piece of text would disagree with it at both ends.
// Invariant: the deltas of push() followed by finish(answer) concatenate to
// `answer` exactly, for the answer the router returns for the same ids:
//   - leading whitespace is never sent;
//   - trailing whitespace is held back until text follows it (so spaces and
//     line breaks inside the answer do arrive, late by one piece);
//   - a character split over byte-fallback pieces waits for its last byte
//     (infer::TextStream).
#pragma once

#include <cstdint>
#include <string>

#include "infer/text_stream.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::serve {

class AnswerStream {
 public:
  explicit AnswerStream(const Tokenizer& tokenizer) : text_(tokenizer) {}

  // The text that became final with this answer id (often empty).
  std::string push(int32_t id);
  // What remains of the final answer after everything sent so far.
  std::string finish(const std::string& answer);
  const std::string& sent() const { return sent_; }

 private:
  infer::TextStream text_;
  std::string sent_;
};

}  // namespace hessgpt::serve
