#include "tokenizer/tokenizer.h"

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <type_traits>

#include <sentencepiece_processor.h>

#include "core/error.h"
#include "tokenizer/sha256.h"
#include "tokenizer/utf8.h"

#ifndef HESSGPT_DEFAULT_TOKENIZER
#define HESSGPT_DEFAULT_TOKENIZER "data/mistral-tokenizer.model"
#endif

namespace hessgpt {

// SentencePiece speaks std::vector<int>; ours is int32_t, the same type here.
static_assert(std::is_same_v<int, int32_t>);

namespace token {
namespace {
constexpr std::array<std::string_view, kSpecialCount> kSpecialNames = {
    "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|code|>", "<|math|>", "<|logic|>", "<|result|>"};
}  // namespace

std::string_view special_name(int32_t id) {
  return is_special(id) ? kSpecialNames[id - kFirstSpecial] : std::string_view();
}
}  // namespace token

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
  int32_t piece_count = 0;
  std::string checksum;
  std::string path;
};

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& model_path) {
  std::ifstream in(model_path, std::ios::binary);
  if (!in) HG_FAIL("tokenizer ", model_path, ": cannot open the file");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) HG_FAIL("tokenizer ", model_path, ": read error");
  return load_from_memory(bytes, model_path);
}

std::unique_ptr<Tokenizer> Tokenizer::load_from_memory(std::string_view model_bytes, const std::string& name) {
  if (model_bytes.empty()) HG_FAIL("tokenizer ", name, ": the file is empty");
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  Impl& impl = *tok->impl_;
  const auto status = impl.sp.LoadFromSerializedProto(model_bytes);
  if (!status.ok()) HG_FAIL("tokenizer ", name, ": not a usable SentencePiece model (", status.ToString(), ")");
  impl.piece_count = impl.sp.GetPieceSize();
  if (impl.piece_count <= 0 || impl.piece_count > token::kFirstSpecial) {
    HG_FAIL("tokenizer ", name, ": ", impl.piece_count, " pieces; HessGPT needs 1..", token::kFirstSpecial,
            " because ids ", token::kFirstSpecial, "..", token::kVocabSize - 1, " are its special tokens");
  }
  // A model that already knows a special token's name could turn user text
  // into that token, which the template's guarantees forbid.
  for (int32_t id = token::kFirstSpecial; id < token::kVocabSize; ++id) {
    const std::string name_piece(token::special_name(id));
    const int found = impl.sp.PieceToId(name_piece);
    if (impl.sp.IdToPiece(found) == name_piece) {
      HG_FAIL("tokenizer ", name, ": piece ", found, " is '", name_piece,
              "', a name HessGPT reserves for its special token ", id);
    }
  }
  impl.checksum = sha256_hex(model_bytes);
  impl.path = name;
  return tok;
}

std::string Tokenizer::default_path() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("HESSGPT_TOKENIZER"); env != nullptr && env[0] != '\0') return env;
  // Next to the executable first, so a build folder that was moved or copied
  // to another machine still finds its own model.
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path beside = exe.parent_path() / "data" / "mistral-tokenizer.model";
    if (fs::exists(beside, ec)) return beside.string();
  }
  return HESSGPT_DEFAULT_TOKENIZER;
}

std::unique_ptr<Tokenizer> Tokenizer::load_default() {
  const std::string path = default_path();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    HG_FAIL("no tokenizer at ", path,
            ": build the CMake target mistral_tokenizer_model (needs scripts/setup.sh for the npm package "
            "mistral-tokenizer-js), run `hessgpt tokenize --rebuild-from <mistral-tokenizer.js> --out ", path,
            "`, or set HESSGPT_TOKENIZER to a tokenizer.model");
  }
  return load(path);
}

std::unique_ptr<Tokenizer> Tokenizer::load_or_default(const std::string& model_path) {
  return model_path.empty() ? load_default() : load(model_path);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  // The scan is cheap next to BPE; the copy happens only for invalid input.
  const bool valid = utf8::is_valid(text);
  const std::string repaired = valid ? std::string() : utf8::repair(text);
  const auto status = impl_->sp.Encode(valid ? text : std::string_view(repaired), &ids);
  if (!status.ok()) HG_FAIL("tokenizer ", impl_->path, ": encode failed (", status.ToString(), ")");
  return ids;
}

std::vector<int32_t> Tokenizer::encode_document(std::string_view text) const {
  std::vector<int32_t> ids = encode(text);
  ids.insert(ids.begin(), token::kBos);
  ids.push_back(token::kEos);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  std::vector<int> run;
  const auto flush = [&] {
    if (run.empty()) return;
    std::string text;
    const auto status = impl_->sp.Decode(run, &text);
    if (!status.ok()) HG_FAIL("tokenizer ", impl_->path, ": decode failed (", status.ToString(), ")");
    out += text;
    run.clear();
  };
  for (const int32_t id : ids) {
    if (token::is_special(id)) {
      flush();
      out += token::special_name(id);
    } else if (id >= 0 && id < impl_->piece_count) {
      run.push_back(id);
    } else {
      HG_FAIL("token id ", id, " is outside the vocabulary (0..", impl_->piece_count - 1, " and ",
              token::kFirstSpecial, "..", token::kVocabSize - 1, ")");
    }
  }
  flush();
  return out;
}

std::string Tokenizer::id_to_piece(int32_t id) const {
  if (token::is_special(id)) return std::string(token::special_name(id));
  if (id < 0 || id >= impl_->piece_count) HG_FAIL("token id ", id, " is outside the vocabulary");
  return impl_->sp.IdToPiece(id);
}

Tokenizer::PieceKind Tokenizer::piece_kind(int32_t id) const {
  if (id < 0 || id >= token::kVocabSize) HG_FAIL("token id ", id, " is outside the vocabulary");
  if (token::is_special(id)) return PieceKind::kControl;
  if (id >= impl_->piece_count) return PieceKind::kUnused;
  const auto& sp = impl_->sp;
  if (sp.IsUnknown(id)) return PieceKind::kUnknown;
  if (sp.IsControl(id)) return PieceKind::kControl;
  if (sp.IsByte(id)) return PieceKind::kByte;
  if (sp.IsUnused(id)) return PieceKind::kUnused;
  return PieceKind::kNormal;
}

float Tokenizer::piece_score(int32_t id) const {
  if (id < 0 || id >= token::kVocabSize) HG_FAIL("token id ", id, " is outside the vocabulary");
  return id < impl_->piece_count ? impl_->sp.GetScore(id) : 0.0f;
}

int32_t Tokenizer::vocab_size() const { return token::kVocabSize; }
int32_t Tokenizer::piece_count() const { return impl_->piece_count; }
const std::string& Tokenizer::checksum() const { return impl_->checksum; }
const std::string& Tokenizer::path() const { return impl_->path; }

}  // namespace hessgpt
