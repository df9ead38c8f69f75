#include "tokenizer/spm_model_writer.h"

#include <bit>
#include <cstdint>
#include <cstdio>

namespace hessgpt::spm {
namespace {

enum WireType : uint32_t { kVarint = 0, kLengthDelimited = 2, kFixed32 = 5 };

// Appends protobuf wire-format fields to a byte string.
class WireWriter {
 public:
  void varint_field(uint32_t field, int64_t value) {
    tag(field, kVarint);
    // Negative int32/enum values are sign-extended to 64 bits (10 bytes), as protobuf does.
    varint(static_cast<uint64_t>(value));
  }
  void bool_field(uint32_t field, bool value) { varint_field(field, value ? 1 : 0); }
  void float_field(uint32_t field, float value) {
    tag(field, kFixed32);
    const uint32_t bits = std::bit_cast<uint32_t>(value);
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
  }
  void bytes_field(uint32_t field, const std::string& bytes) {
    tag(field, kLengthDelimited);
    varint(bytes.size());
    out_.append(bytes);
  }
  const std::string& bytes() const { return out_; }

 private:
  void tag(uint32_t field, WireType type) { varint((uint64_t(field) << 3) | type); }
  void varint(uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<char>((value & 0x7F) | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<char>(value));
  }
  std::string out_;
};

}  // namespace

std::string byte_piece_name(int byte) {
  char name[8];
  std::snprintf(name, sizeof name, "<0x%02X>", byte & 0xFF);
  return name;
}

std::string serialize_bpe_model(const BpeModelSpec& spec) {
  WireWriter model;
  for (const Piece& piece : spec.pieces) {
    WireWriter p;
    p.bytes_field(1, piece.text);
    p.float_field(2, piece.score);
    p.varint_field(3, static_cast<int>(piece.type));
    model.bytes_field(1, p.bytes());
  }

  WireWriter trainer;
  trainer.varint_field(3, 2);  // model_type = BPE
  trainer.varint_field(4, static_cast<int64_t>(spec.pieces.size()));
  trainer.bool_field(35, spec.byte_fallback);
  trainer.varint_field(40, spec.unk_id);
  trainer.varint_field(41, spec.bos_id);
  trainer.varint_field(42, spec.eos_id);
  trainer.varint_field(43, spec.pad_id);
  model.bytes_field(2, trainer.bytes());

  WireWriter normalizer;
  normalizer.bytes_field(1, "identity");
  normalizer.bool_field(3, spec.add_dummy_prefix);
  normalizer.bool_field(4, spec.remove_extra_whitespaces);
  normalizer.bool_field(5, spec.escape_whitespaces);
  model.bytes_field(3, normalizer.bytes());
  return model.bytes();
}

}  // namespace hessgpt::spm
