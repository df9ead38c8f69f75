// `hessgpt demo` end to end at a reduced size (--size tiny): every stage runs
// for real (prepare from the bundled corpora, pretrain, synth, SFT of both
// models, evaluation with the sandbox), the report has the contract's fields,
// a second run reuses every stage, and other settings over an earlier demo
// are refused rather than mixed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/test_util.h"

namespace hessgpt {
namespace {

using hessgpt::testing::run_command;
using hessgpt::testing::TempDir;

std::string demo(const TempDir& dir, const std::string& extra = "") {
  return hessgpt::testing::hessgpt_binary() + " demo --size tiny --threads 2 --out " + dir / "demo" + " " + extra;
}

TEST(DemoCli, TinyDemoEndToEndThenReuse) {
  TempDir dir;
  const auto first = run_command(demo(dir));
  ASSERT_EQ(first.exit_code, 0) << first.out;
  for (const char* stage : {"1/5 prepare", "2/5 pretrain", "3/5 routing", "4/5 routing SFT", "5/5 held-out"})
    EXPECT_NE(first.out.find(stage), std::string::npos) << stage;
  EXPECT_NE(first.out.find("routed system accuracy"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("Model 1 alone accuracy"), std::string::npos);

  std::ifstream in(dir / "demo/report.json");
  const nlohmann::json report = nlohmann::json::parse(in);
  for (const char* key : {"routed_accuracy", "model1_alone_accuracy", "route_decision_accuracy"}) {
    ASSERT_TRUE(report.contains(key)) << key;
    EXPECT_GE(report[key].get<double>(), 0.0);
    EXPECT_LE(report[key].get<double>(), 1.0);
  }
  EXPECT_GT(report["tasks"].get<int64_t>(), 0);
  EXPECT_LE(report["tasks"].get<int64_t>(), 12);
  EXPECT_EQ(report["decision_items"].get<int64_t>(), 12);
  EXPECT_GT(report["seconds"].get<double>(), 0.0);
  EXPECT_FALSE(report["examples"].empty());
  // The generalisation figures on unseen phrasings and words, and Model 2 alone.
  for (const char* key : {"routed_accuracy", "model1_alone_accuracy", "route_decision_accuracy", "tasks"})
    EXPECT_TRUE(report["unseen_phrasing"].contains(key)) << key;
  EXPECT_TRUE(report["model2"].contains("model2_accuracy")) << report["model2"];
  EXPECT_EQ(report["checkpoints"]["model1"], dir / "demo/sft-model1/final");
  for (const char* path : {"data/model1/manifest.json", "data/model2/manifest.json", "model1/final/model.safetensors",
                           "model2/final/model.safetensors", "synth/model1_eval_routing.jsonl",
                           "sft-model1/final/model.safetensors", "sft-model2/final/model.safetensors",
                           "sft-model1/metrics.jsonl"})
    EXPECT_TRUE(std::filesystem::exists(dir / ("demo/" + std::string(path)))) << path;

  // Again: every stage is reused, only the evaluation runs.
  const auto second = run_command(demo(dir));
  ASSERT_EQ(second.exit_code, 0) << second.out;
  EXPECT_EQ(second.out.find("$ hessgpt"), std::string::npos) << second.out;
  std::ifstream in2(dir / "demo/report.json");
  const nlohmann::json again = nlohmann::json::parse(in2);
  for (const auto& [name, stage] : again["stages"].items()) EXPECT_TRUE(stage["reused"].get<bool>()) << name;
  // Greedy decoding: the same models give the same figures.
  EXPECT_EQ(again["routed_accuracy"], report["routed_accuracy"]);
  EXPECT_EQ(again["route_decision_accuracy"], report["route_decision_accuracy"]);

  // A stage made again makes the stages that read it stale: here the synth
  // folder of an older demo (without the second eval file) is remade, then
  // both SFT stages; prepare and pretraining are reused.
  std::filesystem::remove(dir / "demo/synth/model1_eval_routing_unseen.jsonl");
  const auto third = run_command(demo(dir));
  ASSERT_EQ(third.exit_code, 0) << third.out;
  std::ifstream in3(dir / "demo/report.json");
  const nlohmann::json remade = nlohmann::json::parse(in3);
  for (const char* name : {"data/model1", "data/model2", "model1", "model2"})
    EXPECT_TRUE(remade["stages"][name]["reused"].get<bool>()) << name;
  for (const char* name : {"synth", "sft-model1", "sft-model2"})
    EXPECT_FALSE(remade["stages"][name]["reused"].get<bool>()) << name;
  EXPECT_NE(third.out.find("making " + dir / "demo/sft-model1" + " again"), std::string::npos) << third.out;

  // Other settings over the same folder are refused, naming the folder.
  const auto other = run_command(demo(dir, "--precision fp32"));
  EXPECT_NE(other.exit_code, 0);
  EXPECT_NE(other.out.find("holds the result of other settings"), std::string::npos) << other.out;
  EXPECT_NE(other.out.find("--fresh"), std::string::npos);
}

TEST(DemoCli, BadSizeIsRefused) {
  TempDir dir;
  const auto r = run_command(hessgpt::testing::hessgpt_binary() + " demo --size huge --out " + dir / "demo");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("--size must be full or tiny"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace hessgpt
