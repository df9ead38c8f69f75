// End-to-end learning: the tiny model memorises a fixed 64-token sequence.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "core/rng.h"
#include "model/model.h"
#include "train/optimizer.h"

namespace hessgpt {
namespace {

TEST(TrainTiny, MemorisesA64TokenSequence) {
  const ModelConfig c = preset_config("tiny");
  CpuBackend be(2);
  Model model(c, be);
  model.init_random(42);
  AdamWConfig oc;
  oc.weight_decay = 0.0;
  AdamW opt(model, oc);
  Rng rng(3);
  std::vector<int32_t> seq(65);
  for (auto& id : seq) id = static_cast<int32_t>(rng.below(512));
  const std::vector<int32_t> ids(seq.begin(), seq.end() - 1), targets(seq.begin() + 1, seq.end());
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    model.zero_grads();
    const LossSum l = model.forward_backward(ids.data(), targets.data(), 1, 64, 1.0 / 64);
    if (step == 0) first = l.mean();
    last = l.mean();
    opt.step(1e-2);
  }
  EXPECT_GT(first, 5.5);  // ~ln(512) = 6.24 at initialisation
  EXPECT_LT(last, 0.1) << "loss went from " << first << " to " << last;
}

// Splitting the batch into micro-batches and accumulating gives the same gradients.
TEST(TrainTiny, GradientAccumulationMatchesOneBigBatch) {
  const ModelConfig c = preset_config("tiny");
  CpuBackend be(2);
  Model model(c, be);
  model.init_random(5);
  Rng rng(9);
  const int64_t b = 8, t = 16;
  std::vector<int32_t> ids(b * t), targets(b * t);
  for (auto& x : ids) x = static_cast<int32_t>(rng.below(512));
  for (auto& x : targets) x = static_cast<int32_t>(rng.below(512));
  model.zero_grads();
  model.forward_backward(ids.data(), targets.data(), b, t, 1.0 / (b * t));
  const std::vector<float> full = model.grads_host();
  model.zero_grads();
  for (int64_t m = 0; m < 4; ++m)
    model.forward_backward(ids.data() + m * 2 * t, targets.data() + m * 2 * t, 2, t, 1.0 / (b * t));
  const std::vector<float> accum = model.grads_host();
  // FP32 sums in a different order: compare as vectors (relative L2 error).
  double diff = 0, norm = 0;
  for (size_t i = 0; i < full.size(); ++i) {
    diff += (full[i] - accum[i]) * static_cast<double>(full[i] - accum[i]);
    norm += full[i] * static_cast<double>(full[i]);
  }
  EXPECT_LT(std::sqrt(diff / norm), 1e-5);
}

}  // namespace
}  // namespace hessgpt
