#include "data/encoder.h"

#include "tokenizer/tokenizer.h"

namespace hessgpt::data {
namespace {

class TokenizerEncoder final : public Encoder {
 public:
  explicit TokenizerEncoder(std::shared_ptr<const Tokenizer> t) : tok_(std::move(t)) {}
  std::vector<int32_t> encode(std::string_view text) const override { return tok_->encode(text); }
  int32_t vocab_size() const override { return tok_->vocab_size(); }
  int32_t bos_id() const override { return token::kBos; }
  int32_t eos_id() const override { return token::kEos; }
  std::string checksum() const override { return tok_->checksum(); }
  std::string description() const override { return tok_->path(); }

 private:
  std::shared_ptr<const Tokenizer> tok_;
};

class ByteEncoder final : public Encoder {
 public:
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids(text.size());
    for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]) + 3;
    return ids;
  }
  int32_t vocab_size() const override { return 259; }
  int32_t bos_id() const override { return 1; }
  int32_t eos_id() const override { return 2; }
  std::string checksum() const override { return "byte-encoder-v1"; }
  std::string description() const override { return "bytes"; }
};

}  // namespace

std::unique_ptr<Encoder> make_tokenizer_encoder(std::shared_ptr<const Tokenizer> tokenizer) {
  return std::make_unique<TokenizerEncoder>(std::move(tokenizer));
}

std::unique_ptr<Encoder> make_byte_encoder() { return std::make_unique<ByteEncoder>(); }

}  // namespace hessgpt::data
