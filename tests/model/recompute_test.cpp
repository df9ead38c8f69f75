// Selective activation recomputation (activations.h): backward rebuilds ln1,
// q, k, ln2 and act instead of keeping one copy per layer. It runs the same
// kernels on the same inputs, so losses and gradients must be bit for bit
// those of the run that keeps everything, and the arena must shrink by
// exactly the per-layer copies it no longer holds.
#include <gtest/gtest.h>

#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "lora_test_util.h"
#include "model/activations.h"
#include "model/memory_estimate.h"
#include "model/model.h"

namespace hessgpt {
namespace {

struct Run {
  std::vector<double> losses;
  std::vector<float> grads;
};

// Two training passes with an evaluation between them (which may re-carve
// the arena in its own layout), gradients accumulated over both.
Run train_twice(const ModelConfig& c, bool recompute, bool lora) {
  CpuBackend be(2);
  Model m(c, be);
  if (lora) {
    LoraConfig lc;
    lc.rank = 4;
    lc.dropout = 0.2;
    m.enable_lora(lc, 3);
  }
  lora_test::randomise(m, 11, 0.2);
  m.set_recompute(recompute);
  const int64_t b = 2, t = 24;
  Run r;
  if (lora) m.zero_lora_grads();
  else m.zero_grads();
  for (uint64_t seed : {1u, 2u}) {
    const lora_test::Batch batch = lora_test::random_batch(b * t, seed);
    r.losses.push_back(m.forward_backward(batch.ids.data(), batch.targets.data(), b, t, 0.01).sum);
    r.losses.push_back(m.evaluate(batch.ids.data(), batch.targets.data(), b, t).sum);
  }
  r.grads = lora ? m.lora_grads_host() : m.grads_host();
  return r;
}

void expect_identical(const ModelConfig& c, bool lora) {
  const Run keep = train_twice(c, false, lora), redo = train_twice(c, true, lora);
  ASSERT_EQ(keep.losses, redo.losses);
  ASSERT_EQ(keep.grads.size(), redo.grads.size());
  for (size_t i = 0; i < keep.grads.size(); ++i)
    ASSERT_EQ(keep.grads[i], redo.grads[i]) << "gradient " << i;
}

TEST(Recompute, GradientsAreBitIdentical) { expect_identical(preset_config("tiny"), false); }

TEST(Recompute, GradientsAreBitIdenticalWithoutQkNormAndWithYarn) {
  ModelConfig c = preset_config("tiny");
  c.qk_norm = false;
  c.rope_scaling = YarnConfig{};
  expect_identical(c, false);
}

TEST(Recompute, LoraGradientsWithDropoutAreBitIdentical) {
  expect_identical(preset_config("tiny"), true);
}

// The arena drops L - 1 copies of ln1, q, k, ln2 and act (each rounded up to
// 64 bytes, as the arena carves them).
TEST(Recompute, ArenaShrinksByThePerLayerCopies) {
  const ModelConfig c = preset_config("model1");
  const int64_t b = 32, t = 1024, n = b * t;
  const auto bytes = [](int64_t floats) { return (static_cast<size_t>(floats) * 4 + 63) / 64 * 64; };
  const size_t per_layer = 2 * bytes(n * c.hidden_size) + bytes(n * c.q_dim()) +
                           bytes(n * c.num_key_value_heads * c.head_dim) +
                           bytes(n * c.intermediate_size);
  const size_t keep = activation_bytes(c, b, t, DType::F32, true);
  const size_t redo = activation_bytes(c, b, t, DType::F32, true, {}, true);
  EXPECT_EQ(keep - redo, static_cast<size_t>(c.num_hidden_layers - 1) * per_layer);
  const TrainingMemory m = estimate_training_memory(c, b, t, DType::F32, true);
  EXPECT_EQ(m.activations, redo);
  // Evaluation shares them too, whatever the setting.
  EXPECT_EQ(activation_bytes(c, b, t, DType::F32, false),
            activation_bytes(c, b, t, DType::F32, false, {}, true));
}

}  // namespace
}  // namespace hessgpt
