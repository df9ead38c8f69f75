// Writes SentencePiece model files (a serialised sentencepiece.ModelProto)
// without the upstream .proto: only the handful of fields a BPE model needs,
// in protobuf wire format. Field numbers follow sentencepiece_model.proto:
//   ModelProto      1 pieces (repeated), 2 trainer_spec, 3 normalizer_spec
//   SentencePiece   1 piece, 2 score (float), 3 type (enum)
//   TrainerSpec     3 model_type (BPE = 2), 4 vocab_size, 35 byte_fallback,
//                   40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id
//   NormalizerSpec  1 name, 3 add_dummy_prefix, 4 remove_extra_whitespaces,
//                   5 escape_whitespaces
#pragma once

#include <string>
#include <vector>

namespace hessgpt::spm {

// SentencePiece's piece types (ModelProto.SentencePiece.Type).
enum class PieceType : int { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct Piece {
  std::string text;  // UTF-8, spaces written as U+2581 "▁"
  float score = 0.0f;  // BPE merges the adjacent pair whose joined piece scores highest
  PieceType type = PieceType::kNormal;
};

struct BpeModelSpec {
  std::vector<Piece> pieces;  // id = index
  bool byte_fallback = true;
  // Identity normalisation (no NFKC table); the dummy prefix is the space
  // SentencePiece puts before the text, which Mistral/Llama models expect.
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = false;
  bool escape_whitespaces = true;
  int unk_id = 0;
  int bos_id = 1;  // -1: none
  int eos_id = 2;  // -1: none
  int pad_id = -1;
};

// The model file bytes, loadable by SentencePieceProcessor.
std::string serialize_bpe_model(const BpeModelSpec& spec);

// "<0x0A>" for 10: SentencePiece's name for a byte-fallback piece.
std::string byte_piece_name(int byte);

}  // namespace hessgpt::spm
