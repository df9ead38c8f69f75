// `hessgpt pretrain --config F.json`: the file's settings apply, flags on the
// command line win, and a bad file is a clear error naming the key.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "train/pretrain_cli_util.h"

namespace hessgpt {
namespace {

using hessgpt::testing::run_command;
using hessgpt::testing::TempDir;

int metrics_lines(const std::string& path, double* first_lr) {
  std::ifstream in(path);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (n == 0 && first_lr) *first_lr = j.at("lr").get<double>();
    ++n;
  }
  return n;
}

TEST(PretrainConfig, FileSettingsApplyAndFlagsWin) {
  TempDir dir;
  pretrain_test::prepare_tiny_run(dir);
  if (HasFatalFailure()) return;
  std::ofstream(dir / "run.json") << nlohmann::json({{"model", dir / "model.json"}, {"data", dir / "data"},
                                                     {"steps", 3}, {"batch", 2}, {"accum", 1}, {"seq", 32},
                                                     {"lr", 0.005}, {"warmup", 0.0}, {"eval_every", 0},
                                                     {"eval_batches", 1}, {"save_every", 0}, {"log_every", 0}});
  const std::string bin = hessgpt::testing::hessgpt_binary();
  const auto a = run_command(bin + " pretrain --config " + dir / "run.json" + " --out " + dir / "a --threads 1");
  ASSERT_EQ(a.exit_code, 0) << a.out;
  double lr = 0;
  EXPECT_EQ(metrics_lines(dir / "a/metrics.jsonl", &lr), 3);  // one line per step
  EXPECT_DOUBLE_EQ(lr, 0.005);
  // --steps and --lr on the command line override the file.
  const auto b = run_command(bin + " pretrain --config " + dir / "run.json" + " --steps 2 --lr 0.001 --out " +
                             dir / "b --threads 1");
  ASSERT_EQ(b.exit_code, 0) << b.out;
  EXPECT_EQ(metrics_lines(dir / "b/metrics.jsonl", &lr), 2);
  EXPECT_DOUBLE_EQ(lr, 0.001);
}

TEST(PretrainConfig, BadFilesNameTheProblem) {
  TempDir dir;
  const std::string bin = hessgpt::testing::hessgpt_binary();
  const auto fails_with = [&](const std::string& content, const std::string& needle) {
    std::ofstream(dir / "bad.json") << content;
    const auto r = run_command(bin + " pretrain --config " + dir / "bad.json" + " --out " + dir / "x");
    EXPECT_NE(r.exit_code, 0) << content;
    EXPECT_NE(r.out.find(needle), std::string::npos) << "expected '" << needle << "' in:\n" << r.out;
  };
  fails_with(R"({"stepz": 3})", "unknown key 'stepz'");
  fails_with(R"({"steps": "many"})", "key 'steps' has the wrong type");
  fails_with(R"({"steps": )", "is not valid JSON");
  fails_with(R"([1, 2])", "must hold a JSON object");
  const auto missing = run_command(bin + " pretrain --config " + dir / "none.json" + " --out " + dir / "x");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.out.find("cannot open --config"), std::string::npos) << missing.out;
}

// A run larger than the free memory stops before allocating anything, with
// the estimate and the ways to shrink it (memory_advice).
TEST(PretrainConfig, TooLargeARunNamesTheWaysToShrinkIt) {
  TempDir dir;
  pretrain_test::prepare_tiny_run(dir);
  if (HasFatalFailure()) return;
  const auto r = run_command(hessgpt::testing::hessgpt_binary() + " pretrain --model model1 --data " +
                             dir / "data" + " --batch 100000 --seq 64 --steps 1 --device cpu --out " +
                             dir / "big --threads 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("GiB are free on cpu"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--recompute needs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lower --batch"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace hessgpt
