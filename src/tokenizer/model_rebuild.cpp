#include "tokenizer/model_rebuild.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/sha256.h"
#include "tokenizer/utf8.h"

namespace hessgpt {
namespace {

// The text between the quotes of `const <name> = "..."`.
std::string_view js_string_constant(std::string_view js, std::string_view name, const std::string& source) {
  const std::string marker = str_cat("const ", name, " = \"");
  const size_t start = js.find(marker);
  if (start == std::string_view::npos) {
    HG_FAIL(source, ": no `const ", name, "` found; is this mistral-tokenizer.js from the npm package mistral-tokenizer-js?");
  }
  const size_t begin = start + marker.size();
  const size_t end = js.find('"', begin);
  if (end == std::string_view::npos) HG_FAIL(source, ": unterminated string for ", name);
  return js.substr(begin, end - begin);
}

bool is_byte_piece(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return false;
  const auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return hex(piece[3]) && hex(piece[4]);
}

}  // namespace

std::string base64_decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const int v = value(text[i]);
    if (v < 0) HG_FAIL("base64: invalid character at offset ", i);
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (bits >= 6) HG_FAIL("base64: truncated input (", text.size(), " characters)");
  return out;
}

BpeVocabMerges parse_mistral_tokenizer_js(std::string_view js, const std::string& source) {
  BpeVocabMerges bpe;
  const std::string vocab_text = base64_decode(js_string_constant(js, "vocab_base64", source));
  if (!utf8::is_valid(vocab_text)) HG_FAIL(source, ": vocab_base64 is not valid UTF-8");
  // One piece per line; no piece contains a newline (it is the byte piece <0x0A>).
  size_t begin = 0;
  while (true) {
    const size_t end = vocab_text.find('\n', begin);
    bpe.vocab.emplace_back(vocab_text.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) break;
    begin = end + 1;
  }

  // Little-endian uint16 ids, two per merge.
  const std::string merges = base64_decode(js_string_constant(js, "merges_binary", source));
  if (merges.size() % 4 != 0) HG_FAIL(source, ": merges_binary has ", merges.size(), " bytes, not a multiple of 4");
  const auto id_at = [&](size_t offset) {
    return int32_t(uint8_t(merges[offset])) | (int32_t(uint8_t(merges[offset + 1])) << 8);
  };
  for (size_t offset = 0; offset < merges.size(); offset += 4) {
    bpe.merges.emplace_back(id_at(offset), id_at(offset + 2));
  }
  return bpe;
}

spm::BpeModelSpec bpe_model_from_merges(const BpeVocabMerges& bpe) {
  const size_t n = bpe.vocab.size();
  std::unordered_map<std::string, int32_t> id_of;
  id_of.reserve(n * 2);
  for (size_t id = 0; id < n; ++id) {
    if (!id_of.emplace(bpe.vocab[id], int32_t(id)).second) {
      HG_FAIL("vocabulary: piece '", bpe.vocab[id], "' appears twice (ids ", id_of[bpe.vocab[id]], " and ", id, ")");
    }
  }

  // rank[id]: position of the piece's first appearance as a merge result.
  std::vector<int64_t> rank(n, -1);
  int64_t next_rank = 0;
  for (size_t k = 0; k < bpe.merges.size(); ++k) {
    const auto [left, right] = bpe.merges[k];
    if (left < 0 || right < 0 || size_t(left) >= n || size_t(right) >= n) {
      HG_FAIL("merges[", k, "]: id ", left, " or ", right, " is outside the vocabulary of ", n);
    }
    const std::string joined = bpe.vocab[left] + bpe.vocab[right];
    const auto it = id_of.find(joined);
    if (it == id_of.end()) HG_FAIL("merges[", k, "]: '", joined, "' is not in the vocabulary");
    if (rank[it->second] < 0) rank[it->second] = next_rank++;
  }

  spm::BpeModelSpec spec;
  spec.pieces.resize(n);
  spec.unk_id = spec.bos_id = spec.eos_id = -1;
  int n_bytes = 0;
  for (size_t id = 0; id < n; ++id) {
    spm::Piece& piece = spec.pieces[id];
    piece.text = bpe.vocab[id];
    if (piece.text.empty()) HG_FAIL("vocabulary: piece ", id, " is empty");
    if (piece.text == "<unk>") {
      piece.type = spm::PieceType::kUnknown;
      spec.unk_id = int(id);
    } else if (piece.text == "<s>" || piece.text == "</s>") {
      piece.type = spm::PieceType::kControl;
      (piece.text == "<s>" ? spec.bos_id : spec.eos_id) = int(id);
    } else if (is_byte_piece(piece.text)) {
      piece.type = spm::PieceType::kByte;
      ++n_bytes;
    } else {
      // Pieces no merge produces (single characters) rank after all merge
      // results; BPE never compares their scores, so any order would do.
      if (rank[id] < 0) rank[id] = next_rank++;
      piece.score = -static_cast<float>(rank[id]);
    }
  }
  if (spec.unk_id < 0) HG_FAIL("vocabulary: no '<unk>' piece (SentencePiece requires one)");
  if (n_bytes != 0 && n_bytes != 256) HG_FAIL("vocabulary: ", n_bytes, " byte pieces <0xNN>; byte fallback needs all 256");
  spec.byte_fallback = n_bytes == 256;
  // Scores are whole numbers below 2^24, so float holds them exactly.
  if (next_rank >= (int64_t(1) << 24)) HG_FAIL("vocabulary: too many pieces (", n, ") for exact float scores");
  return spec;
}

std::string rebuild_mistral_model(const std::string& js_path, const std::string& out_path) {
  std::ifstream in(js_path, std::ios::binary);
  if (!in) HG_FAIL("cannot read ", js_path, " (install the npm package mistral-tokenizer-js: scripts/setup.sh)");
  const std::string js((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const BpeVocabMerges bpe = parse_mistral_tokenizer_js(js, js_path);
  if (bpe.vocab.size() != 32000) {
    HG_FAIL(js_path, ": ", bpe.vocab.size(), " pieces; the Mistral-7B-v0.1 tokenizer has 32000");
  }
  const std::string model = spm::serialize_bpe_model(bpe_model_from_merges(bpe));

  namespace fs = std::filesystem;
  const fs::path out(out_path);
  std::error_code ec;
  if (out.has_parent_path()) fs::create_directories(out.parent_path(), ec);
  const fs::path tmp = fs::path(out_path + ".tmp");
  {
    std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
    if (!file) HG_FAIL("cannot write ", tmp.string());
    file.write(model.data(), std::streamsize(model.size()));
    if (!file) HG_FAIL("error writing ", tmp.string());
  }
  fs::rename(tmp, out, ec);
  if (ec) HG_FAIL("cannot move ", tmp.string(), " to ", out_path, ": ", ec.message());
  return sha256_hex(model);
}

}  // namespace hessgpt
