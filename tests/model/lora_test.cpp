// LoRA: adapter gradients by finite differences (double precision), merging
// equals base + adapter, the base stays frozen under training, and the
// trainable-parameter counts.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "common/fd_check.h"
#include "core/rng.h"
#include "model/lora_test_util.h"
#include "model/model.h"
#include "train/optimizer.h"

namespace hessgpt {
namespace {

LoraConfig all_targets(int64_t rank) {
  LoraConfig l;
  l.rank = rank;
  l.alpha = 5.0;
  l.targets = {"q", "k", "v", "o", "gate", "up", "down"};
  return l;
}

using lora_test::Batch;
using lora_test::random_batch;
using lora_test::randomise;

TEST(Lora, AdapterGradientsMatchFiniteDifferences) {
  CpuBackend be(2);
  ModelConfig c = preset_config("tiny");
  c.logit_softcap = 5.0;
  Model model(c, be, DType::F64);
  model.enable_lora(all_targets(3), 1);
  randomise(model, 2, 0.3);
  const int64_t b = 2, t = 10;
  const Batch batch = random_batch(b * t, 3);
  model.zero_grads();
  model.forward_backward(batch.ids.data(), batch.targets.data(), b, t, 1.0);
  EXPECT_FALSE(model.has_grads()) << "a frozen base must not allocate gradients";
  std::vector<double> grads(static_cast<size_t>(model.lora_layout().total));
  be.copy_to_host(grads.data(), model.lora_grads());
  auto* params = model.lora_params().as<double>();
  auto loss = [&] { return model.evaluate(batch.ids.data(), batch.targets.data(), b, t).sum; };
  for (const ParamInfo& p : model.lora_layout().params)
    hessgpt::testing::expect_fd_match(params + p.offset, static_cast<size_t>(p.numel),
                                      grads.data() + p.offset, loss, p.name, 10, 1e-5, 1e-3);
}

TEST(Lora, MergedModelEqualsBasePlusAdapter) {
  CpuBackend be(2);
  Model model(preset_config("tiny"), be, DType::F64);
  model.enable_lora(all_targets(4), 1);
  randomise(model, 5, 0.2);
  const Batch batch = random_batch(24, 6);
  std::vector<float> adapted(24 * 512), merged(24 * 512);
  const double l1 = model.evaluate(batch.ids.data(), batch.targets.data(), 1, 24, adapted.data()).sum;
  model.merge_lora();
  EXPECT_FALSE(model.has_lora());
  const double l2 = model.evaluate(batch.ids.data(), batch.targets.data(), 1, 24, merged.data()).sum;
  EXPECT_NEAR(l1, l2, 1e-9);
  for (size_t i = 0; i < adapted.size(); ++i) ASSERT_NEAR(adapted[i], merged[i], 1e-5) << i;
}

TEST(Lora, BaseWeightsStayFrozenWhileAdaptersLearn) {
  CpuBackend be(2);
  Model model(preset_config("tiny"), be);
  model.init_random(7);
  model.enable_lora(LoraConfig{}, 8);
  const std::vector<float> base_before = model.params_host();
  AdamW opt(model, AdamWConfig{});
  EXPECT_TRUE(opt.optimises_lora());
  const Batch batch = random_batch(64, 9);
  double first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    model.zero_grads();
    last = model.forward_backward(batch.ids.data(), batch.targets.data(), 1, 64, 1.0 / 48).mean();
    if (step == 0) first = last;
    opt.step(5e-3);
  }
  EXPECT_EQ(model.params_host(), base_before);
  EXPECT_LT(last, first - 0.5) << "adapters did not learn";
}

TEST(Lora, TrainableParameterCounts) {
  const ModelConfig m1 = preset_config("model1");
  LoraConfig r16, r64;
  r16.rank = 16;
  r64.rank = 64;
  const int64_t n16 = make_lora_layout(m1, r16).params.total;
  const int64_t n64 = make_lora_layout(m1, r64).params.total;
  // Per layer r * ((d + q) + 2 (d + kv) + (q + d) + 2 (d + ffn)) for q, k, v, o, gate, up.
  const int64_t d = 1280, q = 1280, kv = 320, ffn = 3413;
  EXPECT_EQ(n16, 22 * 16 * ((d + q) + 2 * (d + kv) + (q + d) + 2 * (d + ffn)));
  EXPECT_EQ(n64, 4 * n16);
  std::printf("[lora] model1 trainable parameters: rank 16 = %lld, rank 64 = %lld\n",
              static_cast<long long>(n16), static_cast<long long>(n64));
  LoraConfig bad;
  bad.targets = {"q", "lm_head"};
  EXPECT_THROW(make_lora_layout(m1, bad), Error);
}

}  // namespace
}  // namespace hessgpt
