// The offline rebuild of a SentencePiece BPE model from a vocabulary and an
// HF-style merge list, on tiny models built in memory.
#include "tokenizer/model_rebuild.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include <unistd.h>

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/sha256.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt {
namespace {

using testing::tiny_bpe;
using Ids = std::vector<int32_t>;

std::string base64_encode(const std::string& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out.push_back(kAlphabet[(v >> k) & 63]);
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += {kAlphabet[(v >> 18) & 63], kAlphabet[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {kAlphabet[(v >> 18) & 63], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63], '='};
  }
  return out;
}

std::unique_ptr<Tokenizer> load_bpe(const BpeVocabMerges& bpe) {
  return Tokenizer::load_from_memory(spm::serialize_bpe_model(bpe_model_from_merges(bpe)), "tiny");
}

// The pitfall of the Mistral rebuild in miniature: "▁▁" has a lower id than
// "▁a" but comes later in the merge list, so " a" (normalised "▁▁a") must
// become "▁" "▁a", not "▁▁" "a".
TEST(ModelRebuild, PriorityIsFirstAppearanceInMergesNotId) {
  const auto tok = load_bpe(tiny_bpe({"▁▁", "▁a", "▁", "a", "b"}, {{"▁", "a"}, {"▁", "▁"}}));
  constexpr int32_t kSpaceSpace = 259, kSpaceA = 260, kSpace = 261, kA = 262;
  EXPECT_EQ(tok->encode(" a"), (Ids{kSpace, kSpaceA}));
  EXPECT_EQ(tok->encode("a"), (Ids{kSpaceA}));
  EXPECT_EQ(tok->encode("  "), (Ids{kSpaceSpace, kSpace}));  // equal scores: leftmost first
  EXPECT_EQ(tok->encode("aa"), (Ids{kSpaceA, kA}));
  EXPECT_EQ(tok->decode(tok->encode(" a")), " a");
}

TEST(ModelRebuild, ByteFallbackForUnknownCharacters) {
  const auto tok = load_bpe(tiny_bpe({"▁", "a"}, {}));
  // "é" is not a piece: its UTF-8 bytes C3 A9 become <0xC3> <0xA9> (id 3 + byte).
  EXPECT_EQ(tok->encode("é"), (Ids{259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok->decode(tok->encode("aé a")), "aé a");
}

TEST(ModelRebuild, PieceTypesAndScores) {
  const spm::BpeModelSpec spec =
      bpe_model_from_merges(tiny_bpe({"▁▁", "▁a", "▁", "a"}, {{"▁", "a"}, {"▁", "▁"}}));
  EXPECT_EQ(spec.unk_id, 0);
  EXPECT_EQ(spec.bos_id, 1);
  EXPECT_EQ(spec.eos_id, 2);
  EXPECT_TRUE(spec.byte_fallback);
  EXPECT_EQ(spec.pieces[0].type, spm::PieceType::kUnknown);
  EXPECT_EQ(spec.pieces[1].type, spm::PieceType::kControl);
  EXPECT_EQ(spec.pieces[3 + 0x0A].type, spm::PieceType::kByte);
  EXPECT_EQ(spec.pieces[3 + 0x0A].text, "<0x0A>");
  EXPECT_EQ(spec.pieces[259].score, -1.0f);  // "▁▁": second merge result
  EXPECT_EQ(spec.pieces[260].score, 0.0f);   // "▁a": first merge result
  EXPECT_LT(spec.pieces[261].score, -1.0f);  // single characters rank after merges
}

TEST(ModelRebuild, RejectsInconsistentVocabularies) {
  EXPECT_THROW(bpe_model_from_merges(tiny_bpe({"a", "b"}, {{"a", "b"}})), Error);  // "ab" not a piece
  EXPECT_THROW(bpe_model_from_merges(tiny_bpe({"a", "a"}, {})), Error);           // duplicate
  BpeVocabMerges no_unk = tiny_bpe({"a"}, {});
  no_unk.vocab[0] = "<nothing>";
  EXPECT_THROW(bpe_model_from_merges(no_unk), Error);
  BpeVocabMerges partial_bytes = tiny_bpe({"a"}, {});
  partial_bytes.vocab.erase(partial_bytes.vocab.begin() + 3);
  EXPECT_THROW(bpe_model_from_merges(partial_bytes), Error);
  BpeVocabMerges bad_id = tiny_bpe({"a"}, {});
  bad_id.merges.emplace_back(0, 99999);
  try {
    bpe_model_from_merges(bad_id);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("merges[0]"), std::string::npos) << e.what();
  }
}

TEST(ModelRebuild, ParsesTheNpmPackageLayout) {
  const std::string vocab = "<unk>\n<s>\n</s>\n▁a\nb";
  const std::string merges("\x03\x00\x04\x00\x04\x00\x03\x00", 8);  // (3,4) (4,3), uint16 LE
  const std::string js = "const x = 1\nconst vocab_base64 = \"" + base64_encode(vocab) +
                         "\"\n\nconst merges_binary = \"" + base64_encode(merges) + "\"\n";
  const BpeVocabMerges bpe = parse_mistral_tokenizer_js(js, "fake.js");
  EXPECT_EQ(bpe.vocab, (std::vector<std::string>{"<unk>", "<s>", "</s>", "▁a", "b"}));
  ASSERT_EQ(bpe.merges.size(), 2u);
  EXPECT_EQ(bpe.merges[0], std::make_pair(3, 4));
  EXPECT_EQ(bpe.merges[1], std::make_pair(4, 3));
  EXPECT_THROW(parse_mistral_tokenizer_js("const vocab_base64 = \"\"", "fake.js"), Error);  // no merges
  EXPECT_THROW(parse_mistral_tokenizer_js("nothing here", "fake.js"), Error);
}

TEST(ModelRebuild, Base64) {
  EXPECT_EQ(base64_decode("aGVsbG8="), "hello");
  EXPECT_EQ(base64_decode("aGVsbG8"), "hello");
  EXPECT_EQ(base64_decode(""), "");
  EXPECT_EQ(base64_decode(base64_encode(std::string("\0\xff\x10", 3))), std::string("\0\xff\x10", 3));
  EXPECT_THROW(base64_decode("a$b="), Error);
  EXPECT_THROW(base64_decode("a"), Error);
}

// The real package: the rebuild is deterministic and gives the build's model.
TEST(ModelRebuild, MistralRebuildIsDeterministic) {
  const std::string js = HESSGPT_SOURCE_DIR "/.deps/npm/node_modules/mistral-tokenizer-js/mistral-tokenizer.js";
  ASSERT_TRUE(std::filesystem::exists(js)) << js << " missing: run scripts/setup.sh";
  const auto dir = std::filesystem::temp_directory_path() / ("hessgpt-rebuild-" + std::to_string(::getpid()));
  const std::string out = (dir / "nested" / "m.model").string();
  const std::string digest = rebuild_mistral_model(js, out);
  std::ifstream in(out, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(sha256_hex(bytes), digest);
  EXPECT_EQ(digest, testing::mistral().checksum());
  std::filesystem::remove_all(dir);
  EXPECT_THROW(rebuild_mistral_model("/nonexistent/mistral-tokenizer.js", out), Error);
}

}  // namespace
}  // namespace hessgpt
