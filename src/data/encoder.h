// What the pipeline needs from a tokenizer, as an interface: the real
// SentencePiece tokenizer in production, a byte-level stand-in in tests that
// must not depend on a model file. encode() is called from many threads at
// once and must be thread-safe (SentencePiece's Encode is const and is).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hessgpt {
class Tokenizer;
}

namespace hessgpt::data {

class Encoder {
 public:
  virtual ~Encoder() = default;
  // Text to ids, without BOS/EOS.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  virtual std::string checksum() const = 0;
  virtual std::string description() const = 0;  // path or name, for the manifest
};

// Wraps the project tokenizer (token::kBos / token::kEos).
std::unique_ptr<Encoder> make_tokenizer_encoder(std::shared_ptr<const Tokenizer> tokenizer);

// Test stand-in: id = byte + 3 (0 unk, 1 <s>, 2 </s>), vocabulary 259.
std::unique_ptr<Encoder> make_byte_encoder();

}  // namespace hessgpt::data
