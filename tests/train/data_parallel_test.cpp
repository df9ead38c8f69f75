// Data-parallel pretraining under mpirun (dist/communicator.h): two ranks at
// --batch B train the same run as one process at --batch 2B (same losses,
// gradient norms, validation and weights up to summation order), write the
// run directory once, and resume exactly. Skipped where the binary has no MPI
// or mpirun is missing.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "io/safetensors.h"
#include "train/byte_dataset.h"
#include "train/metrics_log.h"

namespace hessgpt {
namespace {

using testing::run_command;
using testing::TempDir;

bool mpi_ready() {
  const auto info =
      run_command("(" + testing::hessgpt_binary() + " info --backends --json 2>/dev/null)");
  if (info.exit_code != 0) return false;
  const auto transports = nlohmann::json::parse(info.out)["data_parallel"];
  return std::find(transports.begin(), transports.end(), "mpi") != transports.end() &&
         run_command("command -v mpirun").exit_code == 0;
}

// mpirun as the CI's root user, two ranks on however many cores there are.
std::string mpirun(int ranks) {
  return "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
         "OMPI_MCA_btl_vader_single_copy_mechanism=none "
         "mpirun --oversubscribe --bind-to none -np " +
         std::to_string(ranks) + " ";
}

std::vector<nlohmann::json> metrics(const std::string& run) {
  return read_metrics(run + "/metrics.jsonl");
}

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!mpi_ready()) GTEST_SKIP() << "built without MPI, or mpirun missing";
    testing::prepare_bytes(dir.path().string());
  }
  std::string pretrain(const std::string& run, int batch, const std::string& extra = "") {
    return testing::hessgpt_binary() + " pretrain --model tiny --data " + dir / "data" + " --out " +
           dir / run + " --steps 6 --batch " + std::to_string(batch) +
           " --accum 2 --seq 32 --lr 3e-3 --eval-every 3 --eval-batches 4 --save-every 3"
           " --threads 1 --seed 5 " +
           extra;
  }
  TempDir dir;
};

TEST_F(DataParallel, TwoRanksTrainTheRunOfOneRankWithTwiceTheBatch) {
  const auto two = run_command(mpirun(2) + pretrain("two", 2));
  ASSERT_EQ(two.exit_code, 0) << two.out;
  EXPECT_NE(two.out.find("data parallel over 2 ranks (mpi)"), std::string::npos) << two.out;
  const auto one = run_command(pretrain("one", 4));
  ASSERT_EQ(one.exit_code, 0) << one.out;

  const auto a = metrics(dir / "two"), b = metrics(dir / "one");
  ASSERT_EQ(a.size(), 6u) << "one line per step: only rank 0 writes";
  ASSERT_EQ(b.size(), 6u);
  for (size_t i = 0; i < a.size(); ++i) {
    const double la = a[i]["loss"], lb = b[i]["loss"];
    EXPECT_NEAR(la, lb, 1e-5 * lb) << "step " << i + 1;
    EXPECT_NEAR(a[i]["grad_norm"].get<double>(), b[i]["grad_norm"].get<double>(),
                1e-4 * b[i]["grad_norm"].get<double>())
        << "step " << i + 1;
    EXPECT_EQ(a[i].contains("val_loss"), b[i].contains("val_loss"));
    if (!b[i].contains("val_loss")) continue;
    EXPECT_NEAR(a[i]["val_loss"].get<double>(), b[i]["val_loss"].get<double>(),
                1e-5 * b[i]["val_loss"].get<double>())
        << "validation, step " << i + 1;
  }
  // Training changed the weights, the same way in both runs.
  SafetensorsReader wa(dir / "two/final/model.safetensors"),
      wb(dir / "one/final/model.safetensors");
  double worst = 0, scale = 0;
  for (const auto& [name, entry] : wb.entries()) {
    const std::vector<float> x = wa.read_float(name), y = wb.read_float(name);
    for (size_t i = 0; i < y.size(); ++i) {
      worst = std::max(worst, std::abs(static_cast<double>(x[i]) - y[i]));
      scale = std::max(scale, std::abs(static_cast<double>(y[i])));
    }
  }
  EXPECT_LT(worst, 1e-4 * scale);
  EXPECT_LT(b.back()["loss"].get<double>(), b.front()["loss"].get<double>());
}

TEST_F(DataParallel, ResumedRunIsTheUninterruptedOne) {
  const auto straight = run_command(mpirun(2) + pretrain("straight", 2));
  ASSERT_EQ(straight.exit_code, 0) << straight.out;
  const auto first = run_command(mpirun(2) + pretrain("parts", 2, "--stop-after 3"));
  ASSERT_EQ(first.exit_code, 0) << first.out;
  const auto second = run_command(mpirun(2) + pretrain("parts", 2));
  ASSERT_EQ(second.exit_code, 0) << second.out;
  EXPECT_NE(second.out.find("resuming from"), std::string::npos) << second.out;
  EXPECT_EQ(testing::read_bytes(dir / "parts/final/model.safetensors"),
            testing::read_bytes(dir / "straight/final/model.safetensors"));
  // The same run with another number of ranks is another run: refused.
  const auto other = run_command(pretrain("parts", 4));
  EXPECT_NE(other.exit_code, 0);
  EXPECT_NE(other.out.find("holds a run with other settings"), std::string::npos) << other.out;
}

// Fine-tuning: LoRA and full, on conversations of different lengths (so the
// ranks' micro-batches are padded differently than the one process's).
TEST_F(DataParallel, FineTuningOnTwoRanksIsFineTuningWithTwiceTheBatch) {
  std::ofstream(dir / "model.json")
      << R"({"vocab_size": 32008, "hidden_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
             "intermediate_size": 176, "max_position_embeddings": 256})";
  ASSERT_EQ(run_command(testing::hessgpt_binary() + " init --model " + dir / "model.json" +
                        " --seed 5 --out " + dir / "base")
                .exit_code,
            0);
  {
    std::ofstream chat(dir / "chat.jsonl");
    for (int i = 0; i < 40; ++i) {
      std::string answer = "Item " + std::to_string(i) + ":";
      for (int w = 0; w < i % 7; ++w) answer += " word" + std::to_string(w * i);
      chat << nlohmann::json({{"messages",
                               {{{"role", "user"}, {"content", "Tell me " + std::to_string(i)}},
                                {{"role", "assistant"}, {"content", answer}}}}})
                  .dump()
           << "\n";
    }
  }
  for (const std::string mode : {"--lora-rank 4", "--full"}) {
    const auto sft = [&](const std::string& run, int batch) {
      return testing::hessgpt_binary() + " sft --base " + dir / "base" + " --data " +
             dir / "chat.jsonl" + " --out " + dir / run + " " + mode +
             " --steps 4 --accum 2 --lr 1e-2 --eval-every 2 --eval-batches 2 --save-every 2"
             " --threads 1 --seed 5 --batch " +
             std::to_string(batch);
    };
    const std::string tag = mode == "--full" ? "full" : "lora";
    const auto two = run_command(mpirun(2) + sft(tag + "-two", 2));
    ASSERT_EQ(two.exit_code, 0) << two.out;
    const auto one = run_command(sft(tag + "-one", 4));
    ASSERT_EQ(one.exit_code, 0) << one.out;
    const auto a = metrics(dir / (tag + "-two")), b = metrics(dir / (tag + "-one"));
    ASSERT_EQ(a.size(), 4u) << tag;
    ASSERT_EQ(b.size(), 4u) << tag;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i]["trained_tokens"], b[i]["trained_tokens"]) << tag << " step " << i + 1;
      EXPECT_NEAR(a[i]["loss"].get<double>(), b[i]["loss"].get<double>(),
                  1e-5 * b[i]["loss"].get<double>())
          << tag << " step " << i + 1;
      EXPECT_NEAR(a[i]["grad_norm"].get<double>(), b[i]["grad_norm"].get<double>(),
                  1e-4 * b[i]["grad_norm"].get<double>())
          << tag << " step " << i + 1;
      if (!b[i].contains("val_loss")) continue;
      EXPECT_NEAR(a[i]["val_loss"].get<double>(), b[i]["val_loss"].get<double>(),
                  1e-5 * b[i]["val_loss"].get<double>())
          << tag << " step " << i + 1;
    }
    EXPECT_LT(b.back()["loss"].get<double>(), b.front()["loss"].get<double>()) << tag;
  }
}

TEST_F(DataParallel, AnErrorEndsEveryRank) {
  // Too large a step for the data: every rank refuses, none is left waiting.
  const auto r = run_command("timeout 60 " + mpirun(2) + pretrain("big", 5000));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, 124) << "timed out: a rank hung";
  EXPECT_NE(r.out.find("fewer than one step"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace hessgpt
