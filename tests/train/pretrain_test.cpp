// The pretraining loop: schedule, exact resume, interrupted and corrupted
// checkpoints, the non-finite guard, accumulation, clipping, memory refusal.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "backend/cpu/cpu_backend.h"
#include "common/test_util.h"
#include "train/byte_dataset.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"
#include "train/metrics_log.h"
#include "train/optimizer.h"
#include "train/pretrain.h"
#include "train/schedule.h"

namespace hessgpt {
namespace {

namespace fs = std::filesystem;
using hessgpt::testing::TempDir;

using hessgpt::testing::read_bytes;
using hessgpt::testing::prepare_bytes;

class Pretrain : public ::testing::Test {
 protected:
  void SetUp() override { prepare_bytes(dir_.path().string()); }
  PretrainConfig base(const std::string& run) const {
    PretrainConfig c;
    c.model = "tiny";
    c.data_dir = dir_ / "data";
    c.run_dir = dir_ / run;
    c.steps = 8;
    c.batch = 2;
    c.accum = 2;
    c.seq = 32;
    c.lr = 3e-3;
    c.eval_every = 4;
    c.eval_batches = 2;
    c.save_every = 4;
    c.log_every = 0;
    return c;
  }
  TempDir dir_;
  CpuBackend be_{2};
};

TEST(WsdSchedule, BoundaryValues) {
  WsdSchedule s{1e-3, 100, 0.03, 0.15, 0.10};
  EXPECT_EQ(s.warmup_steps(), 3);
  EXPECT_EQ(s.decay_start(), 85);
  EXPECT_DOUBLE_EQ(s.lr(1), 1e-3 / 3);
  EXPECT_DOUBLE_EQ(s.lr(3), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr(4), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr(85), 1e-3);
  EXPECT_NEAR(s.lr(86), 1e-3 * (1 - 0.9 / 15), 1e-15);
  EXPECT_NEAR(s.lr(100), 1e-4, 1e-15);  // floor 10 % at the last step
  WsdSchedule bad = s;
  bad.decay_fraction = 0.99;
  EXPECT_THROW(bad.validate(), Error);
}

TEST_F(Pretrain, ResumedRunIsBitIdenticalToAnUninterruptedOne) {
  const PretrainResult straight = run_pretrain(base("straight"), be_);
  ASSERT_TRUE(straight.completed);
  PretrainConfig part = base("resumed");
  part.stop_after = 4;
  const PretrainResult first = run_pretrain(part, be_);
  EXPECT_FALSE(first.completed);
  EXPECT_FALSE(fs::exists(dir_ / "resumed/final"));
  part.stop_after = 0;  // the same command again resumes by itself
  const PretrainResult second = run_pretrain(part, be_);
  EXPECT_EQ(second.resumed_from, 4);
  ASSERT_TRUE(second.completed);
  EXPECT_EQ(read_bytes(dir_ / "straight/final/model.safetensors"),
            read_bytes(dir_ / "resumed/final/model.safetensors"));
  const auto a = read_metrics(dir_ / "straight/metrics.jsonl");
  const auto b = read_metrics(dir_ / "resumed/metrics.jsonl");
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 8u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["loss"], b[i]["loss"]) << "step " << i + 1;
    EXPECT_EQ(a[i]["lr"], b[i]["lr"]);
  }
  EXPECT_TRUE(a[3].contains("val_loss"));
  EXPECT_TRUE(a[7].contains("val_loss_all_chunks"));
  // Running a finished run again changes nothing.
  EXPECT_TRUE(run_pretrain(part, be_).completed);
}

TEST_F(Pretrain, CheckpointInterruptedMidWriteLeavesThePreviousOneUsable) {
  PretrainConfig c = base("run");
  c.stop_after = 4;
  run_pretrain(c, be_);
  // A crash while writing step 6: a temporary folder with a torn file.
  const std::string tmp = dir_ / "run/checkpoints/.tmp-step_6";
  fs::create_directories(tmp);
  std::ofstream(tmp + "/model.safetensors") << "torn";
  ASSERT_EQ(find_latest_checkpoint(dir_ / "run").value(), dir_ / "run/checkpoints/step_4");
  EXPECT_FALSE(fs::exists(tmp));
  c.stop_after = 0;
  EXPECT_EQ(run_pretrain(c, be_).resumed_from, 4);
}

TEST_F(Pretrain, CorruptOrTruncatedCheckpointIsAClearError) {
  PretrainConfig c = base("run");
  c.stop_after = 4;
  run_pretrain(c, be_);
  c.stop_after = 0;
  const std::string weights = dir_ / "run/checkpoints/step_4/model.safetensors";
  std::string bytes = read_bytes(weights);
  bytes[bytes.size() / 2] ^= 0x5a;
  std::ofstream(weights, std::ios::binary) << bytes;
  try {
    run_pretrain(c, be_);
    FAIL() << "resumed from a corrupt checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
  }
  fs::resize_file(weights, bytes.size() - 100);
  try {
    run_pretrain(c, be_);
    FAIL() << "resumed from a truncated checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

TEST_F(Pretrain, ResumeWithOtherSettingsIsRefused) {
  PretrainConfig c = base("run");
  c.stop_after = 4;
  run_pretrain(c, be_);
  c.stop_after = 0;
  c.lr = 1e-2;
  EXPECT_THROW(run_pretrain(c, be_), Error);
}

TEST_F(Pretrain, NonFiniteStepsAreSkippedThenTheRunStops) {
  PretrainConfig c = base("run");
  c.lr = 1e38;  // the first update overflows the weights
  c.max_bad_steps = 3;
  try {
    run_pretrain(c, be_);
    FAIL() << "a diverged run went on";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  }
  const auto m = read_metrics(dir_ / "run/metrics.jsonl");
  ASSERT_GE(m.size(), 3u);
  EXPECT_TRUE(m.back().value("skipped", false));
  EXPECT_EQ(m.back()["skipped_total"], 3);
}

TEST_F(Pretrain, AccumulationMatchesOneLargeBatch) {
  PretrainConfig a = base("accum");  // 4 micro-batches of 8 ...
  a.batch = 8;
  a.accum = 4;
  a.steps = 2;
  PretrainConfig b = base("big");    // ... equal one batch of 32
  b.batch = 32;
  b.accum = 1;
  b.steps = 2;
  run_pretrain(a, be_);
  run_pretrain(b, be_);
  SafetensorsReader ra(dir_ / "accum/final/model.safetensors"), rb(dir_ / "big/final/model.safetensors");
  double diff = 0, norm = 0;
  for (const auto& [name, e] : ra.entries()) {
    const auto x = ra.read_float(name), y = rb.read_float(name);
    for (size_t i = 0; i < x.size(); ++i) {
      diff += (x[i] - y[i]) * static_cast<double>(x[i] - y[i]);
      norm += static_cast<double>(y[i]) * y[i];
    }
  }
  EXPECT_LT(std::sqrt(diff / norm), 1e-5);
}

TEST_F(Pretrain, RunThatCannotFitIsRefusedWithTheFigure) {
  PretrainConfig c = base("huge");
  c.model = "model1";
  c.batch = 4000;
  c.seq = 16;
  try {
    run_pretrain(c, be_);
    FAIL() << "started a run larger than memory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("GiB"), std::string::npos) << e.what();
  }
}

TEST(AdamW, ClippingScalesTheGradientToTheClipNorm) {
  CpuBackend be(1);
  Model a(preset_config("tiny"), be), b(preset_config("tiny"), be);
  a.init_random(1);
  b.init_random(1);
  AdamWConfig clip;
  clip.clip_norm = 0.5;
  AdamWConfig none;
  none.clip_norm = 0;
  AdamW oa(a, clip), ob(b, none);
  // The same gradient in both, with norm 2 (> 0.5).
  std::vector<float> g(static_cast<size_t>(a.layout().total));
  for (size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>((i % 7) - 3);
  double n2 = 0;
  for (float x : g) n2 += static_cast<double>(x) * x;
  for (auto& x : g) x = static_cast<float>(x * 2.0 / std::sqrt(n2));
  be.copy_from_host(a.grads(), g.data());
  be.copy_from_host(b.grads(), g.data());
  EXPECT_NEAR(oa.step(1e-3), 2.0, 1e-5);       // reports the pre-clip norm
  ob.step(1e-3, 0.25);                         // the clipped gradient by hand
  const auto pa = a.params_host(), pb = b.params_host();
  for (size_t i = 0; i < pa.size(); ++i) ASSERT_FLOAT_EQ(pa[i], pb[i]) << i;
  // Second moments show the gradient actually used: (1 - beta2) g^2 with g clipped.
  std::vector<float> va(g.size());
  be.copy_to_host(va.data(), oa.second_moment());
  EXPECT_NEAR(va[1], 0.05 * std::pow(g[1] * 0.25, 2), 1e-12);
}

}  // namespace
}  // namespace hessgpt
