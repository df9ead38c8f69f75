// The HessGPT tokenizer: a SentencePiece BPE model (Mistral-7B-v0.1, 32,000
// pieces, byte fallback) plus eight special tokens at 32000..32007.
// Invariant: decode(encode(x)) == x for valid UTF-8 x.
// Special tokens never come out of encode(): user text "<|end|>" is ordinary
// text; they enter sequences only through the chat template or the router.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hessgpt {

namespace token {
constexpr int32_t kUnk = 0;
constexpr int32_t kBos = 1;  // <s>
constexpr int32_t kEos = 2;  // </s>
constexpr int32_t kSystem = 32000;
constexpr int32_t kUser = 32001;
constexpr int32_t kAssistant = 32002;
constexpr int32_t kEnd = 32003;
constexpr int32_t kCode = 32004;
constexpr int32_t kMath = 32005;
constexpr int32_t kLogic = 32006;
constexpr int32_t kResult = 32007;
constexpr int32_t kVocabSize = 32008;
}  // namespace token

class Tokenizer {
 public:
  // Loads any SentencePiece model file; throws Error naming the file.
  static std::unique_ptr<Tokenizer> load(const std::string& model_path);
  // The offline-rebuilt Mistral model (or $HESSGPT_TOKENIZER when set).
  static std::unique_ptr<Tokenizer> load_default();

  ~Tokenizer();

  // Ordinary text to ids: no BOS/EOS, SentencePiece's dummy prefix applied.
  std::vector<int32_t> encode(std::string_view text) const;
  // Ids to text; special tokens render as their names ("<|end|>").
  std::string decode(std::span<const int32_t> ids) const;

  // SentencePiece pieces + the eight special tokens (32008 for Mistral).
  int32_t vocab_size() const;
  // Hex digest identifying the model file (recorded in data manifests).
  const std::string& checksum() const;
  const std::string& path() const;

 private:
  Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hessgpt
