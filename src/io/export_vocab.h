// What the exports carry of the tokenizer, gathered by the tokenizer
// subsystem (tokenizer/vocab_export.h) so that io need not depend on it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hessgpt {

// GGUF token types (llama.cpp's llama_token_type).
enum class GgufTokenType : int32_t {
  kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6
};

// The piece an export gives an id that no SentencePiece piece has (ids between
// the model's pieces and the special tokens, rows past the tokenizer's ids).
inline std::string unused_piece(int64_t id) { return "[PAD" + std::to_string(id) + "]"; }

struct ExportVocab {
  std::vector<std::string> pieces;  // per id, SentencePiece spelling ("▁the", "<0x0A>")
  std::vector<float> scores;        // per id
  std::vector<GgufTokenType> types;  // per id
  int32_t unk = 0, bos = 1, eos = 2;
  int32_t end_of_turn = 0;          // <|end|>: where a turn (and generation) stops
  std::string chat_template;        // Jinja, as HF and llama.cpp read it
  std::string sentencepiece_model;  // path of the .model file (HF's tokenizer.model)
};

}  // namespace hessgpt
