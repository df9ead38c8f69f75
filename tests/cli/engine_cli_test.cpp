// The engine's commands as a user runs them: JSON contracts and clear errors
// (non-zero exit, a message naming the problem) for bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "io/npy.h"

namespace hessgpt {
namespace {

using hessgpt::testing::run_command;
using hessgpt::testing::TempDir;

std::string bin() { return hessgpt::testing::hessgpt_binary(); }

nlohmann::json run_json(const std::string& args) {
  const auto r = run_command(bin() + " " + args + " 2>/dev/null");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return nlohmann::json::parse(r.out);
}

void expect_error(const std::string& args, const std::string& needle) {
  const auto r = run_command(bin() + " " + args);
  EXPECT_NE(r.exit_code, 0) << args << "\n" << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << "expected '" << needle << "' in:\n" << r.out;
}

TEST(EngineCli, InfoParameterCounts) {
  EXPECT_EQ(run_json("info --model model1 --json")["parameters"], 419472896);
  EXPECT_EQ(run_json("info --model model2 --json")["parameters"], 303362048);
  const auto j = run_json("info --model small --batch 8 --seq 256 --json");
  EXPECT_GT(j["training_memory"]["activations_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(j["training_memory"]["total_bytes"].get<int64_t>(),
            j["training_memory"]["weights_bytes"].get<int64_t>() +
                j["training_memory"]["gradients_bytes"].get<int64_t>() +
                j["training_memory"]["optimizer_bytes"].get<int64_t>() +
                j["training_memory"]["activations_bytes"].get<int64_t>());
  const auto b = run_json("info --backends --json");
  EXPECT_NE(b["compiled"].dump().find("cpu"), std::string::npos);
  // The GPUs (none on a machine without one): each with the code it runs.
  ASSERT_TRUE(b["gpus"].is_array()) << b.dump();
  const bool cuda_available = b["available"].dump().find("cuda") != std::string::npos;
  EXPECT_EQ(b["gpus"].empty(), !cuda_available) << b.dump();
  for (const auto& g : b["gpus"]) {
    EXPECT_FALSE(g["name"].get<std::string>().empty()) << g.dump();
    EXPECT_GT(g["memory_bytes"].get<int64_t>(), 0) << g.dump();
    const auto arch = [&](const char* key) { return g[key].get<std::string>(); };
    EXPECT_EQ(g["native_code"].get<bool>(),
              arch("code_architecture") == arch("compute_capability"))
        << g.dump();
  }
  const auto text = run_command(bin() + " info --backends");
  EXPECT_EQ(text.exit_code, 0) << text.out;
  size_t gpu_lines = 0;
  for (size_t at = text.out.find("\ngpu "); at != std::string::npos;
       at = text.out.find("\ngpu ", at + 1))
    ++gpu_lines;
  EXPECT_EQ(gpu_lines, b["gpus"].size()) << text.out;
}

// The memory options as flags: each one shrinks the estimate, and
// --bf16-activations refuses FP32 products, naming the flag it needs.
TEST(EngineCli, MemoryOptionsShrinkTheEstimate) {
  const auto bytes = [](const std::string& flags) {
    return run_json("info --model model1 --json " + flags)["training_memory"]["total_bytes"].get<int64_t>();
  };
  const int64_t plain = bytes(""), redo = bytes("--recompute"), ffn = bytes("--recompute --bf16-ffn"),
                inputs = bytes("--recompute --bf16-activations");
  EXPECT_LT(redo, plain);
  EXPECT_LT(ffn, redo);
  EXPECT_LT(inputs, ffn);
  expect_error("bench train --model tiny --steps 1 --device cpu --bf16-activations",
               "--bf16-activations needs --precision bf16");
  const auto r = run_command(bin() + " info --model model1 --recompute --bf16-activations");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("selective recomputation, BF16 product inputs, gate/up and q/k"), std::string::npos) << r.out;
}

// bench train --profile: the step's time per backend op, as JSON rows.
TEST(EngineCli, BenchTrainProfileListsTheOps) {
  const auto j = run_json("bench train --model tiny --batch 1 --seq 16 --steps 2 --device cpu --profile --json");
  EXPECT_TRUE(j["profiled"].get<bool>());
  double attention_calls = 0, total_ms = 0;
  for (const auto& row : j["profile"]) {
    if (row["op"] == "attention_forward") attention_calls += row["calls_per_step"].get<double>();
    total_ms += row["ms_per_step"].get<double>();
  }
  EXPECT_EQ(attention_calls, 2.0);  // one per layer of tiny
  EXPECT_GT(total_ms, 0.0);
  EXPECT_LE(total_ms, 1000.0 * j["seconds_per_step"].get<double>() * 1.05);
}

TEST(EngineCli, InitThenScoreWithLogitsDump) {
  TempDir dir;
  ASSERT_EQ(run_command(bin() + " init --model tiny --seed 3 --out " + dir / "ck").exit_code, 0);
  EXPECT_TRUE(std::filesystem::exists(dir / "ck/config.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "ck/model.safetensors"));
  const auto j = run_json("score --checkpoint " + dir / "ck" + " --ids 1,5,9,300,2 --json --dump-logits " +
                          dir / "logits.npy");
  EXPECT_EQ(j["tokens"], 4);
  EXPECT_NEAR(j["loss"].get<double>(), std::log(512.0), 0.3);  // near-uniform at init
  MappedNpy logits(dir / "logits.npy");
  EXPECT_EQ(logits.descr(), "<f4");
  EXPECT_EQ(logits.shape(), (std::vector<int64_t>{5, 512}));
  // Same seed, same weights: init is deterministic.
  ASSERT_EQ(run_command(bin() + " init --model tiny --seed 3 --out " + dir / "ck2").exit_code, 0);
  const auto j2 = run_json("score --checkpoint " + dir / "ck2" + " --ids 1,5,9,300,2 --json");
  EXPECT_EQ(j2["loss"], j["loss"]);
}

TEST(EngineCli, ImpossibleShapesAreRefusedNamingTheField) {
  TempDir dir;
  std::ofstream(dir / "bad.json") << R"({"vocab_size": 512, "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 3, "head_dim": 16, "intermediate_size": 176})";
  expect_error("init --model " + dir / "bad.json" + " --out " + dir / "x", "num_key_value_heads");
  expect_error("info --model nonsense --json", "nonsense");
  std::ofstream(dir / "broken.json") << "{ not json";
  expect_error("info --model " + dir / "broken.json", "not valid JSON");
}

TEST(EngineCli, TruncatedOrMismatchedWeightsAreClearErrors) {
  TempDir dir;
  ASSERT_EQ(run_command(bin() + " init --model tiny --out " + dir / "ck").exit_code, 0);
  const std::string weights = dir / "ck/model.safetensors";
  std::filesystem::resize_file(weights, std::filesystem::file_size(weights) / 2);
  expect_error("score --checkpoint " + dir / "ck" + " --ids 1,2,3", "truncated");
  std::filesystem::resize_file(weights, 4);
  expect_error("score --checkpoint " + dir / "ck" + " --ids 1,2,3", "truncated");

  // Weights of one shape under a config of another.
  ASSERT_EQ(run_command(bin() + " init --model tiny --out " + dir / "a").exit_code, 0);
  std::ofstream(dir / "a/config.json") << R"({"vocab_size": 512, "hidden_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "intermediate_size": 176})";
  expect_error("score --checkpoint " + dir / "a" + " --ids 1,2,3", "has shape");
  expect_error("score --checkpoint " + dir / "missing" + " --ids 1,2,3", "not a directory");
}

TEST(EngineCli, IdsOutsideTheVocabularyAreRefused) {
  TempDir dir;
  ASSERT_EQ(run_command(bin() + " init --model tiny --out " + dir / "ck").exit_code, 0);
  expect_error("score --checkpoint " + dir / "ck" + " --ids 1,2,512", "outside the vocabulary");
  expect_error("score --checkpoint " + dir / "ck" + " --ids 1,x,3", "not a token id");
  expect_error("score --checkpoint " + dir / "ck" + " --ids 7", "at least two");
}

}  // namespace
}  // namespace hessgpt
