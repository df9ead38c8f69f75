// hessgpt export end to end: the Hugging Face directory (read back by our own
// loader and by the independent PyTorch oracle, tests/oracle/hessgpt_torch.py)
// and the refusals. The GGUF side is checked by llama.cpp in
// llama_cpp_oracle.mjs.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_export.h"

namespace hessgpt {
namespace {

using testing::run_command;
using testing::TempDir;

// Full vocabulary (exports carry the tokenizer), otherwise tiny.
constexpr const char* kConfig =
    R"({"vocab_size": 32008, "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "intermediate_size": 176, "max_position_embeddings": 256})";
constexpr const char* kIds = "1,415,2936,9060,285,1142,461,10575,754,272,17898,3914";

std::string bin() { return testing::hessgpt_binary(); }

class ExportCli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir / "config.json") << kConfig;
    const auto r = run_command(bin() + " init --model " + dir / "config.json" + " --seed 3 --out " +
                               dir / "ck");
    ASSERT_EQ(r.exit_code, 0) << r.out;
  }
  // Mean loss and logits of `hessgpt score` on a model directory.
  std::pair<double, std::vector<float>> score(const std::string& model) {
    const std::string npy = dir / "logits.npy";
    const auto r = run_command("(" + bin() + " score --checkpoint " + model + " --ids " + kIds +
                               " --dump-logits " + npy + " --json 2>/dev/null)");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    MappedNpy logits(npy);
    const float* p = logits.as<float>();
    return {nlohmann::json::parse(r.out)["loss"].get<double>(),
            std::vector<float>(p, p + logits.numel())};
  }
  TempDir dir;
};

TEST_F(ExportCli, HuggingFaceDirectoryHoldsTheSameModel) {
  const auto r = run_command("(" + bin() + " export --checkpoint " + dir / "ck" +
                             " --format hf --out " + dir / "hf" + " --json 2>/dev/null)");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["dtype"], "f32");
  nlohmann::json config;
  std::ifstream(dir / "hf/config.json") >> config;
  EXPECT_EQ(config["architectures"][0], "Qwen3ForCausalLM");
  EXPECT_EQ(config["model_type"], "qwen3");
  EXPECT_EQ(config["torch_dtype"], "float32");
  EXPECT_EQ(config["eos_token_id"], nlohmann::json::array({2, 32003}));
  EXPECT_EQ(config["head_dim"], 16);
  nlohmann::json tok;
  std::ifstream(dir / "hf/tokenizer_config.json") >> tok;
  EXPECT_EQ(tok["chat_template"], kChatTemplateJinja);
  EXPECT_EQ(tok["added_tokens_decoder"]["32003"]["content"], "<|end|>");
  EXPECT_EQ(tok["added_tokens_decoder"].size(), 11u) << "<unk>, <s>, </s> and the 8 specials";
  const auto tokenizer = Tokenizer::load_default();
  EXPECT_EQ(testing::read_bytes(dir / "hf/tokenizer.model"),
            testing::read_bytes(tokenizer->path()));
  EXPECT_NE(testing::read_bytes(dir / "hf/README.md").find("soft-cap"), std::string::npos);

  // Our loader reads the export as a checkpoint: the same logits exactly.
  const auto [loss, logits] = score(dir / "ck");
  const auto [hf_loss, hf_logits] = score(dir / "hf");
  EXPECT_EQ(hf_loss, loss);
  EXPECT_EQ(hf_logits, logits);

  // The PyTorch oracle, written from the spec, reads it independently.
  if (run_command("/usr/bin/python3 -c 'import torch, numpy'").exit_code != 0)
    GTEST_SKIP() << "python3-torch not installed";
  std::vector<int32_t> ids;
  for (const char* p = kIds; *p;) {
    ids.push_back(static_cast<int32_t>(std::strtol(p, nullptr, 10)));
    while (*p && *p != ',') ++p;
    if (*p) ++p;
  }
  write_npy(dir / "x.npy", "<i4", {static_cast<int64_t>(ids.size())}, ids.data(), ids.size() * 4);
  const auto ref = run_command(std::string("/usr/bin/python3 ") + HESSGPT_SOURCE_DIR +
                               "/tests/oracle/hessgpt_torch.py --checkpoint " + dir / "hf" +
                               " --inputs " + dir / "x.npy" + " --out " + dir / "ref --no-grads");
  ASSERT_EQ(ref.exit_code, 0) << ref.out;
  MappedNpy ref_logits(dir / "ref/logits.npy");
  ASSERT_EQ(static_cast<size_t>(ref_logits.numel()), logits.size());
  double worst = 0, scale = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(logits[i]) - ref_logits.as<float>()[i]));
    scale = std::max(scale, std::abs(static_cast<double>(ref_logits.as<float>()[i])));
  }
  EXPECT_LT(worst, 1e-4 * scale);
}

TEST_F(ExportCli, Bf16DirectoryStoresRoundedWeights) {
  const auto r = run_command(bin() + " export --checkpoint " + dir / "ck" +
                             " --format hf --dtype bf16 --out " + dir / "hf16");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  SafetensorsReader original(dir / "ck/model.safetensors"),
      exported(dir / "hf16/model.safetensors");
  ASSERT_EQ(exported.entries().size(), original.entries().size());
  for (const auto& [name, entry] : original.entries()) {
    ASSERT_EQ(exported.at(name).dtype, DType::BF16) << name;
    const std::vector<float> a = original.read_float(name), b = exported.read_float(name);
    for (size_t i = 0; i < a.size(); ++i)
      ASSERT_LE(std::abs(a[i] - b[i]), std::abs(a[i]) * (1.0f / 256)) << name << " " << i;
  }
  const auto [loss, logits] = score(dir / "ck");
  const auto [bf16_loss, bf16_logits] = score(dir / "hf16");
  EXPECT_NEAR(bf16_loss, loss, 1e-3 * loss);
}

TEST_F(ExportCli, RefusesWhatItCannotDoWithAClearMessage) {
  const auto fails_with = [&](const std::string& args, const std::string& message) {
    const auto r = run_command(bin() + " export --checkpoint " + dir / "ck" + " " + args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.out.find(message), std::string::npos) << args << "\n" << r.out;
  };
  std::filesystem::create_directories(dir / "taken");
  std::ofstream(dir / "taken/notes.txt") << "keep me";
  fails_with("--format hf --out " + dir / "taken", "exists: choose another --out, or pass --force");
  fails_with("--format hf --out " + dir / "taken --force", "is not a model directory");
  EXPECT_EQ(testing::read_bytes(dir / "taken/notes.txt"), "keep me");
  fails_with("--format hf --dtype q8_0 --out " + dir / "x", "not offered for --format hf");
  fails_with("--format gguf --dtype q4 --out " + dir / "x.gguf", "not a GGUF type");
  fails_with("--format gguf --dtype q8_0 --out " + dir / "x.gguf", "multiple of 32");
  fails_with("--format gguf --out " + dir / "taken --force", "writes a file");
  fails_with("--format onnx --out " + dir / "x", "--format");
  const auto tiny = run_command(bin() + " init --model tiny --seed 1 --out " + dir / "tiny");
  ASSERT_EQ(tiny.exit_code, 0) << tiny.out;
  const auto r = run_command(bin() + " export --checkpoint " + dir / "tiny" +
                             " --format gguf --out " + dir / "tiny.gguf");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("vocab_size (512) is smaller than the tokenizer's 32008"), std::string::npos)
      << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir / "tiny.gguf"));

  const auto quantize = run_command(bin() + " quantize " + dir / "ck" + " --bits 8 --out " +
                                    dir / "q8");
  ASSERT_EQ(quantize.exit_code, 0) << quantize.out;
  const auto q = run_command(bin() + " export --checkpoint " + dir / "q8" +
                             " --format gguf --out " + dir / "q.gguf");
  EXPECT_NE(q.exit_code, 0);
  EXPECT_NE(q.out.find("holds quantized weights"), std::string::npos) << q.out;
  const auto empty = run_command(bin() + " export --checkpoint " + dir / "taken" +
                                 " --format gguf --out " + dir / "e.gguf");
  EXPECT_NE(empty.out.find("is not a model directory (no config.json)"), std::string::npos)
      << empty.out;

  // --force replaces an earlier export.
  for (int i = 0; i < 2; ++i) {
    const auto ok = run_command(bin() + " export --checkpoint " + dir / "ck" +
                                " --format gguf --out " + dir / "m.gguf --force");
    EXPECT_EQ(ok.exit_code, 0) << ok.out;
  }
}

}  // namespace
}  // namespace hessgpt
