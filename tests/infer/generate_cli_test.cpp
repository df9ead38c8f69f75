// hessgpt generate / quantize / bench generate through the binary.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "core/model_config.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt {
namespace {

using testing::run_command;
using testing::TempDir;

std::string bin() { return testing::hessgpt_binary(); }

nlohmann::json run_json(const std::string& args) {
  const auto r = run_command(bin() + " " + args + " 2>/dev/null");
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.out;
  return nlohmann::json::parse(r.out);
}

class GenerateCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_EQ(run_command(bin() + " init --model small --seed 1 --out " + *dir_ / "ck").exit_code, 0);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string ck() { return *dir_ / "ck"; }
  static TempDir* dir_;
};
TempDir* GenerateCli::dir_ = nullptr;

TEST_F(GenerateCli, GreedyJsonIsDeterministicAndMatchesTheStream) {
  const std::string args = "generate --checkpoint " + ck() +
                           " --prompt 'Hello world' --max-new 10 --temperature 0 --threads 2";
  const nlohmann::json a = run_json(args + " --json");
  const nlohmann::json b = run_json(args + " --json");
  EXPECT_EQ(a["ids"], b["ids"]);
  const auto prompt = a["prompt_ids"].get<std::vector<int32_t>>();
  ASSERT_FALSE(prompt.empty());
  EXPECT_EQ(prompt[0], token::kBos);
  const auto ids = a["ids"].get<std::vector<int32_t>>();
  EXPECT_LE(ids.size(), 10u);
  auto tok = Tokenizer::load_default();
  EXPECT_EQ(a["text"].get<std::string>(), tok->decode(ids));
  EXPECT_GT(a["prefill_tokens_per_s"].get<double>(), 0.0);
  EXPECT_TRUE(a.contains("decode_tokens_per_s"));
  // The streamed text is the same text, then a newline.
  const auto r = run_command(bin() + " " + args + " 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, a["text"].get<std::string>() + "\n");
}

TEST_F(GenerateCli, ChatPromptUsesTheTemplate) {
  const nlohmann::json j = run_json("generate --checkpoint " + ck() +
                                    " --prompt Hi --chat --max-new 3 --seed 5 --threads 1 --json");
  const auto prompt = j["prompt_ids"].get<std::vector<int32_t>>();
  ASSERT_GE(prompt.size(), 4u);
  EXPECT_EQ(prompt[0], token::kBos);
  EXPECT_EQ(prompt[1], token::kUser);
  EXPECT_EQ(prompt.back(), token::kAssistant);
}

TEST_F(GenerateCli, QuantizedCheckpointGenerates) {
  for (const std::string bits : {"8", "4"}) {
    const std::string out = *dir_ / ("q" + bits);
    ASSERT_EQ(run_command(bin() + " quantize " + ck() + " --bits " + bits + " --out " + out).exit_code, 0);
    const nlohmann::json j = run_json("generate --checkpoint " + out +
                                      " --prompt Hello --max-new 4 --temperature 0 --threads 1 --json");
    EXPECT_EQ(j["weights"], bits == "8" ? "int8" : "int4");
    EXPECT_EQ(j["ids"].size(), 4u);
  }
}

TEST_F(GenerateCli, BadInputIsAClearError) {
  auto r = run_command(bin() + " generate --checkpoint /nonexistent --prompt hi");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("/nonexistent"), std::string::npos) << r.out;
  r = run_command(bin() + " generate --checkpoint " + ck() + " --prompt ''");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("empty"), std::string::npos) << r.out;
  r = run_command(bin() + " generate --checkpoint " + ck() + " --prompt hi --top-p 0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("top-p"), std::string::npos) << r.out;
  // A prompt longer than the context.
  ModelConfig c = preset_config("small");
  c.max_position_embeddings = 8;
  save_config_file(c, *dir_ / "short.json");
  ASSERT_EQ(run_command(bin() + " init --model " + *dir_ / "short.json" + " --out " + *dir_ / "short").exit_code, 0);
  r = run_command(bin() + " generate --checkpoint " + *dir_ / "short" +
                  " --prompt 'one two three four five six seven eight nine ten'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("more than the model's context"), std::string::npos) << r.out;
  // A model whose vocabulary cannot hold the tokenizer's ids.
  ASSERT_EQ(run_command(bin() + " init --model tiny --out " + *dir_ / "tiny").exit_code, 0);
  r = run_command(bin() + " generate --checkpoint " + *dir_ / "tiny" + " --prompt hi");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("vocabulary"), std::string::npos) << r.out;
}

// The GPU decodes FP32 checkpoints (matrices in FP32 or BF16); the check runs
// before any backend is made, so it reads the same on machines without CUDA.
TEST_F(GenerateCli, QuantisedWeightsOnCudaAreAClearError) {
  auto r = run_command(bin() + " generate --checkpoint " + ck() + " --prompt hi --device cuda --bits 8");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("--device cuda decodes FP32 checkpoints; --bits 8 is a CPU format: use --device cpu"),
            std::string::npos) << r.out;
  const std::string q = *dir_ / "q8-cuda";
  ASSERT_EQ(run_command(bin() + " quantize " + ck() + " --bits 8 --out " + q).exit_code, 0);
  r = run_command(bin() + " generate --checkpoint " + q + " --prompt hi --device cuda");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("holds quantised weights"), std::string::npos) << r.out;
  r = run_command(bin() + " bench generate --model tiny --bits 4 --device cuda --json");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("--bits 4 is a CPU format"), std::string::npos) << r.out;
  // Without --device, quantised weights pick the CPU (even where a GPU is).
  const nlohmann::json j = run_json("generate --checkpoint " + q + " --prompt hi --max-new 2 --threads 1 --json");
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(j["weights"], "int8");
}

// --profile over a checkpoint: the FP32 one is profiled at 16 bits; a
// quantised one is refused by name (the backend-op path decodes FP32 files).
TEST_F(GenerateCli, ProfileOfACheckpoint) {
  const nlohmann::json j = run_json("bench generate --checkpoint " + ck() +
                                    " --bits 16 --prompt-len 8 --gen 3 --threads 1 --no-bandwidth "
                                    "--profile --json");
  EXPECT_EQ(j["bits"], 16);
  EXPECT_TRUE(j["profiled"].get<bool>());
  EXPECT_FALSE(j["profile"].empty());
  const std::string q = *dir_ / "q8-profile";
  ASSERT_EQ(run_command(bin() + " quantize " + ck() + " --bits 8 --out " + q).exit_code, 0);
  const auto r = run_command(bin() + " bench generate --checkpoint " + q + " --bits 32 --profile");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("'" + q + "' holds quantised weights"), std::string::npos) << r.out;
}

TEST(BenchGenerateCli, ReportsThroughputAndTheBound) {
  for (int bits : {32, 16, 8, 4}) {
    const nlohmann::json j = run_json("bench generate --model tiny --bits " + std::to_string(bits) +
                                      " --prompt-len 16 --gen 8 --threads 1 --no-bandwidth --json");
    EXPECT_GT(j["prefill_tokens_per_s"].get<double>(), 0.0);
    EXPECT_GT(j["decode_tokens_per_s"].get<double>(), 0.0);
    EXPECT_EQ(j["bits"], bits);
    EXPECT_TRUE(j.contains("device"));
    EXPECT_GT(j["weight_bytes_per_token"].get<double>(), 0.0);
  }
  // Drawn tokens: the same number of steps, the temperature reported; a
  // negative one refused.
  const nlohmann::json drawn = run_json(
      "bench generate --model tiny --prompt-len 16 --gen 8 --threads 1 --no-bandwidth "
      "--temperature 0.7 --json");
  EXPECT_EQ(drawn["temperature"].get<double>(), 0.7);
  EXPECT_EQ(drawn["gen"], 8);
  EXPECT_GT(drawn["decode_tokens_per_s"].get<double>(), 0.0);
  const auto bad = run_command(bin() + " bench generate --model tiny --temperature -1 --json");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("temperature"), std::string::npos) << bad.out;
  // bench train still answers next to it.
  const auto r = run_command(bin() + " bench train --help");
  EXPECT_EQ(r.exit_code, 0);
}

// --profile: the backend-op path (here on the CPU) with every op timed; a
// row per (op, shape) per token, the parts and the gaps between ops; the
// CPU decoder's formats and paths refused by name.
TEST(BenchGenerateCli, ProfileTellsWhereATokensTimeGoes) {
  const nlohmann::json j = run_json(
      "bench generate --model tiny --prompt-len 16 --gen 6 --threads 1 --no-bandwidth --profile "
      "--json");
  EXPECT_EQ(j["decode_path"], "backend-ops");
  EXPECT_TRUE(j["profiled"].get<bool>());
  double ms = 0.0;
  bool attention = false;
  for (const auto& row : j["profile"]) {
    EXPECT_GT(row["calls_per_token"].get<double>(), 0.0) << row.dump();
    ms += row["ms_per_token"].get<double>();
    attention = attention || (row["op"] == "attention_decode" &&
                              row["calls_per_token"].get<double>() == 2.0);  // tiny: 2 layers
  }
  EXPECT_TRUE(attention) << j["profile"].dump();
  EXPECT_NEAR(j["profile_ops_ms"].get<double>(), ms, 1e-9);
  EXPECT_GT(j["profile_categories_ms"]["products"].get<double>(), 0.0);
  for (const char* flags : {"--bits 8", "--per-op-decode"}) {
    const auto bad = run_command(bin() + " bench generate --model tiny --profile " + flags);
    EXPECT_NE(bad.exit_code, 0) << flags;
    EXPECT_NE(bad.out.find("--profile times the backend-op path"), std::string::npos) << bad.out;
  }
}

}  // namespace
}  // namespace hessgpt
