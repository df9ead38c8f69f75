// The HessGPT tokenizer: a SentencePiece BPE model (Mistral-7B-v0.1, 32,000
// pieces, byte fallback) plus eight special tokens at 32000..32007.
// Invariant: decode(encode(x)) == x for valid UTF-8 x (one exception inherited
// from SentencePiece: a literal U+2581 "▁" in x decodes as a space).
// Special tokens never come out of encode(): user text "<|end|>" is ordinary
// text; they enter sequences only through the chat template or the router.
// encode/decode are const and safe to call from several threads at once.
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
// The special tokens sit at fixed ids whatever the SentencePiece model, so a
// model may have at most this many pieces (ids in between are never used).
constexpr int32_t kFirstSpecial = kSystem;
constexpr int32_t kSpecialCount = kVocabSize - kFirstSpecial;

inline bool is_special(int32_t id) { return id >= kFirstSpecial && id < kVocabSize; }
// "<|end|>" for kEnd; "" when `id` is not a special token.
std::string_view special_name(int32_t id);
}  // namespace token

class Tokenizer {
 public:
  // Loads any SentencePiece model file; throws Error naming the file.
  static std::unique_ptr<Tokenizer> load(const std::string& model_path);
  // Same from the file's bytes; `name` stands for the file in messages.
  static std::unique_ptr<Tokenizer> load_from_memory(std::string_view model_bytes, const std::string& name);
  // The offline-rebuilt Mistral model (or $HESSGPT_TOKENIZER when set).
  static std::unique_ptr<Tokenizer> load_default();
  // load(model_path), or load_default() where model_path is empty (the
  // commands' --tokenizer).
  static std::unique_ptr<Tokenizer> load_or_default(const std::string& model_path);
  // Where load_default() looks: $HESSGPT_TOKENIZER if set and non-empty, else
  // data/mistral-tokenizer.model next to the running executable if present,
  // else the build folder's data/mistral-tokenizer.model (compiled in).
  static std::string default_path();

  ~Tokenizer();

  // Ordinary text to ids: no BOS/EOS, SentencePiece's dummy prefix applied.
  // Invalid UTF-8 is first repaired as utf8::repair() describes.
  std::vector<int32_t> encode(std::string_view text) const;
  // A pretraining document: <s> + encode(text) + </s>.
  std::vector<int32_t> encode_document(std::string_view text) const;
  // Ids to text; special tokens render as their names ("<|end|>"); <s> and
  // </s> render as nothing, as in SentencePiece. Each run of ordinary ids
  // between special tokens loses its dummy-prefix space, so
  // decode(encode(a) + [<|end|>] + encode(b)) == a + "<|end|>" + b.
  // Throws Error on an id outside the vocabulary.
  std::string decode(std::span<const int32_t> ids) const;
  // The piece of one id ("▁the", "<0x0A>", "<|end|>").
  std::string id_to_piece(int32_t id) const;
  // What an id is, for exports that carry the vocabulary (GGUF token types):
  // kUnused for ids between the last piece and the special tokens.
  enum class PieceKind { kNormal, kUnknown, kControl, kByte, kUnused };
  PieceKind piece_kind(int32_t id) const;
  // The SentencePiece score of a piece (its merge priority); 0 for special
  // and unused ids. Throws Error on an id outside 0..vocab_size()-1.
  float piece_score(int32_t id) const;

  // Ids this tokenizer can produce or read: always token::kVocabSize (32008),
  // since the special tokens sit at 32000..32007 whatever the model's size.
  int32_t vocab_size() const;
  // Number of SentencePiece pieces (32000 for Mistral).
  int32_t piece_count() const;
  // Hex digest identifying the model file (SHA-256 of its bytes, as
  // `sha256sum` prints it; recorded in data manifests).
  const std::string& checksum() const;
  const std::string& path() const;

 private:
  Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hessgpt
