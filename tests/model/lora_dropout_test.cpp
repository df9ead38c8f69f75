// LoRA dropout: gradients through the same regenerated mask match finite
// differences, p = 0 and evaluate() never see a mask, the dropped share is p,
// masks move with the pass counter and not with the thread count, and the
// setting survives an adapter folder round trip.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "backend/cpu/cpu_backend.h"
#include "common/fd_check.h"
#include "common/test_util.h"
#include "core/rng.h"
#include "io/adapter_dir.h"
#include "model/lora_dropout.h"
#include "model/lora_test_util.h"
#include "model/model.h"

namespace hessgpt {
namespace {

LoraConfig with_dropout(double p) {
  LoraConfig l;
  l.rank = 3;
  l.alpha = 5.0;
  l.targets = {"q", "k", "v", "o", "gate", "up", "down"};
  l.dropout = p;
  return l;
}

using lora_test::Batch;
using lora_test::random_batch;
using lora_test::randomise;

struct Pass {
  double loss = 0;
  std::vector<float> grads;
};

Pass train_pass(Model& m, const Batch& b, int64_t batch, int64_t seq, uint64_t counter) {
  m.zero_grads();
  m.set_lora_dropout_counter(counter);
  Pass p;
  p.loss = m.forward_backward(b.ids.data(), b.targets.data(), batch, seq, 1.0).sum;
  p.grads = m.lora_grads_host();
  return p;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]));
  return d;
}

TEST(LoraDropout, AdapterGradientsMatchFiniteDifferencesUnderOneMask) {
  CpuBackend be(2);
  ModelConfig c = preset_config("tiny");
  c.logit_softcap = 5.0;
  Model model(c, be, DType::F64);
  model.enable_lora(with_dropout(0.3), 1);
  randomise(model, 2, 0.3);
  const int64_t b = 2, t = 10;
  const Batch batch = random_batch(b * t, 3);
  const uint64_t counter = 7;
  model.zero_grads();
  model.set_lora_dropout_counter(counter);
  const double with_mask = model.forward_backward(batch.ids.data(), batch.targets.data(), b, t, 1.0).sum;
  std::vector<double> grads(static_cast<size_t>(model.lora_layout().total));
  be.copy_to_host(grads.data(), model.lora_grads());
  const double no_mask = model.evaluate(batch.ids.data(), batch.targets.data(), b, t).sum;
  EXPECT_GT(std::abs(with_mask - no_mask), 1e-6) << "dropout changed nothing";
  auto* params = model.lora_params().as<double>();
  // Every evaluation replays the counter, hence the mask; its gradients are discarded.
  auto loss = [&] {
    model.set_lora_dropout_counter(counter);
    return model.forward_backward(batch.ids.data(), batch.targets.data(), b, t, 1.0).sum;
  };
  for (const ParamInfo& p : model.lora_layout().params)
    hessgpt::testing::expect_fd_match(params + p.offset, static_cast<size_t>(p.numel),
                                      grads.data() + p.offset, loss, p.name, 10, 1e-5, 1e-3);
}

TEST(LoraDropout, ZeroDropoutIgnoresTheCounterBitForBit) {
  CpuBackend be(2);
  Model model(preset_config("tiny"), be);
  model.enable_lora(with_dropout(0.0), 1);
  randomise(model, 4, 0.2);
  const Batch batch = random_batch(48, 5);
  const Pass a = train_pass(model, batch, 2, 24, 0);
  const Pass b = train_pass(model, batch, 2, 24, 123456789);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(a.grads, b.grads);
}

TEST(LoraDropout, EvaluateAndMergeIgnoreDropout) {
  CpuBackend be(2);
  Model plain(preset_config("tiny"), be), dropped(preset_config("tiny"), be);
  plain.enable_lora(with_dropout(0.0), 1);
  dropped.enable_lora(with_dropout(0.5), 1);
  randomise(plain, 6, 0.2);
  randomise(dropped, 6, 0.2);
  const Batch batch = random_batch(48, 7);
  // Training passes first, so that evaluate() runs on training arenas in both.
  train_pass(plain, batch, 2, 24, 3);
  train_pass(dropped, batch, 2, 24, 3);
  std::vector<float> l1(48 * 512), l2(48 * 512);
  const double e1 = plain.evaluate(batch.ids.data(), batch.targets.data(), 2, 24, l1.data()).sum;
  const double e2 = dropped.evaluate(batch.ids.data(), batch.targets.data(), 2, 24, l2.data()).sum;
  EXPECT_EQ(e1, e2);
  EXPECT_EQ(l1, l2);
  plain.merge_lora();
  dropped.merge_lora();
  EXPECT_EQ(plain.params_host(), dropped.params_host());
}

TEST(LoraDropout, DroppedShareIsPAndKeptValuesAreRescaled) {
  const int64_t rows = 500, cols = 1000;
  const std::vector<float> ones(static_cast<size_t>(rows * cols), 1.0f);
  for (double p : {0.05, 0.1, 0.5}) {
    const LoraDropoutKey key = lora_dropout_key(11, 0, 0, 0, p);
    std::vector<float> out(ones.size());
    lora_dropout_apply(key, out.data(), ones.data(), 0, rows, cols, false);
    int64_t dropped = 0;
    for (float v : out) {
      if (v == 0.0f) ++dropped;
      else ASSERT_FLOAT_EQ(v, static_cast<float>(1.0 / (1.0 - p)));
    }
    // 5e5 Bernoulli draws: 5 standard deviations are below 0.004.
    EXPECT_NEAR(static_cast<double>(dropped) / static_cast<double>(out.size()), p, 0.004) << "p = " << p;
  }
}

TEST(LoraDropout, MasksDifferAcrossCountersLayersAndTargets) {
  const double p = 0.5;
  const LoraDropoutKey base = lora_dropout_key(1, 10, 2, 3, p);
  const LoraDropoutKey others[] = {lora_dropout_key(1, 11, 2, 3, p), lora_dropout_key(1, 10, 3, 3, p),
                                   lora_dropout_key(1, 10, 2, 4, p), lora_dropout_key(2, 10, 2, 3, p)};
  const uint64_t n = 100000;
  for (const LoraDropoutKey& other : others) {
    uint64_t same = 0;
    for (uint64_t i = 0; i < n; ++i) same += lora_dropout_keeps(base, i) == lora_dropout_keeps(other, i);
    // Independent masks at p = 0.5 agree on half the elements.
    EXPECT_NEAR(static_cast<double>(same) / static_cast<double>(n), 0.5, 0.01);
  }
}

TEST(LoraDropout, EachTrainingPassDrawsANewMaskAndACounterReplaysIt) {
  CpuBackend be(2);
  Model model(preset_config("tiny"), be);
  model.enable_lora(with_dropout(0.2), 1);
  randomise(model, 8, 0.2);
  const Batch batch = random_batch(48, 9);
  model.set_lora_dropout_counter(40);
  model.zero_grads();
  const double first = model.forward_backward(batch.ids.data(), batch.targets.data(), 2, 24, 1.0).sum;
  const std::vector<float> first_grads = model.lora_grads_host();
  EXPECT_EQ(model.lora_dropout_counter(), 41u);
  model.zero_grads();
  const double second = model.forward_backward(batch.ids.data(), batch.targets.data(), 2, 24, 1.0).sum;
  EXPECT_NE(first, second);
  EXPECT_NE(first_grads, model.lora_grads_host());
  const Pass replay = train_pass(model, batch, 2, 24, 40);
  EXPECT_EQ(replay.loss, first);
  EXPECT_EQ(replay.grads, first_grads);
}

TEST(LoraDropout, ThreadCountDoesNotChangeTheMasks) {
  const int64_t rows = 64, cols = 333;
  std::vector<double> x(static_cast<size_t>(rows * cols));
  Rng rng(3);
  for (auto& v : x) v = rng.normal();
  const LoraDropoutKey key = lora_dropout_key(5, 6, 1, 2, 0.3);
  CpuBackend be(1);
  std::vector<double> one(x.size()), two(x.size());
  lora_dropout_apply(key, one.data(), x.data(), 17, rows, cols, false);
  be.set_threads(2);
  lora_dropout_apply(key, two.data(), x.data(), 17, rows, cols, false);
  EXPECT_EQ(one, two);

  // The whole pass: only the order of BLAS sums may differ between thread counts,
  // far below what one changed mask element would move.
  Model model(preset_config("tiny"), be, DType::F64);
  model.enable_lora(with_dropout(0.3), 1);
  randomise(model, 10, 0.2);
  const Batch batch = random_batch(48, 11);
  be.set_threads(1);
  const Pass single = train_pass(model, batch, 2, 24, 5);
  be.set_threads(2);
  const Pass dual = train_pass(model, batch, 2, 24, 5);
  const Pass other_mask = train_pass(model, batch, 2, 24, 6);
  EXPECT_NEAR(single.loss, dual.loss, 1e-10 * std::abs(single.loss));
  EXPECT_LT(max_abs_diff(single.grads, dual.grads), 1e-6);
  EXPECT_GT(max_abs_diff(single.grads, other_mask.grads), 1e-3);
}

TEST(LoraDropout, ConfigRefusesBadProbabilitiesAndRoundTripsThroughAdapterFolders) {
  for (double bad : {-0.1, 1.0, 1.5, std::nan("")}) {
    LoraConfig l = with_dropout(bad);
    try {
      l.validate();
      ADD_FAILURE() << "dropout " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--lora-dropout"), std::string::npos) << e.what();
    }
  }
  hessgpt::testing::TempDir dir;
  CpuBackend be(2);
  Model model(preset_config("tiny"), be);
  model.enable_lora(with_dropout(0.25), 1);
  save_adapter_dir(model, dir / "adapter", "base");
  EXPECT_EQ(load_adapter_config(dir / "adapter").dropout, 0.25);
}

// Timing only (run with --gtest_also_run_disabled_tests): one training pass of
// the small preset with p = 0 and p = 0.1.
TEST(LoraDropout, DISABLED_CostPerPassOnSmall) {
  CpuBackend be(2);
  const Batch batch = random_batch(4 * 256, 12);
  for (double p : {0.0, 0.1, 0.0, 0.1}) {
    Model model(preset_config("small"), be);
    model.init_random(1);
    LoraConfig l = with_dropout(p);
    l.rank = 16;
    model.enable_lora(l, 2);
    train_pass(model, batch, 4, 256, 0);  // warm-up (arena, page faults)
    const auto t0 = std::chrono::steady_clock::now();
    const int reps = 5;
    for (int i = 0; i < reps; ++i) train_pass(model, batch, 4, 256, static_cast<uint64_t>(i + 1));
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
    std::printf("[lora-dropout] small, 4 x 256 tokens, rank 16, all targets, p = %.2f: %.1f ms per pass\n", p, ms);
  }
}

}  // namespace
}  // namespace hessgpt
