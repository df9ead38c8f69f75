// The arena's memory options (activations.h). Selective recomputation:
// backward rebuilds ln1, q, k, ln2 and act instead of keeping one copy per
// layer; it runs the same kernels on the same inputs, so losses and gradients
// must be bit for bit those of the run that keeps everything, and the arena
// must shrink by exactly the per-layer copies it no longer holds. BF16 gate/up
// storage: a rounding of two activations, so the step stays close (not equal).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "lora_test_util.h"
#include "model/activations.h"
#include "model/memory_estimate.h"
#include "model/model.h"

namespace hessgpt {
namespace {

struct Passes {
  std::vector<double> losses;
  std::vector<float> grads;
};

// Two training passes with an evaluation between them (which may re-carve
// the arena in its own layout), gradients accumulated over both.
Passes train_twice(const ModelConfig& c, bool recompute, bool lora, bool bf16_ffn = false) {
  CpuBackend be(2);
  Model m(c, be);
  m.set_bf16_ffn(bf16_ffn);
  if (lora) {
    LoraConfig lc;
    lc.rank = 4;
    lc.dropout = 0.2;
    m.enable_lora(lc, 3);
  }
  lora_test::randomise(m, 11, 0.2);
  m.set_recompute(recompute);
  const int64_t b = 2, t = 24;
  Passes r;
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

void expect_identical(const ModelConfig& c, bool lora, bool bf16_ffn = false) {
  const Passes keep = train_twice(c, false, lora, bf16_ffn), redo = train_twice(c, true, lora, bf16_ffn);
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

TEST(Recompute, BitIdenticalWithBf16GateAndUp) { expect_identical(preset_config("tiny"), false, true); }

double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff / norm);
}

// Rounding gate and up to BF16 (2^-9 relative) moves the loss by well under
// 0.1 % and the gradient by about that rounding (measured on tiny: loss 6e-6,
// gradients 3.9e-3 relative); the bounds leave margin. The gradients must
// differ at all, or the option did nothing.
TEST(Bf16Ffn, StepStaysCloseToF32Storage) {
  const ModelConfig c = preset_config("tiny");
  const Passes f32 = train_twice(c, false, false, false), bf16 = train_twice(c, false, false, true);
  for (size_t i = 0; i < f32.losses.size(); ++i)
    EXPECT_NEAR(bf16.losses[i], f32.losses[i], 1e-3 * std::abs(f32.losses[i])) << i;
  const double err = rel_error(bf16.grads, f32.grads);
  EXPECT_LT(err, 2e-2);
  EXPECT_GT(err, 0.0);
  std::printf("[ tiny ] bf16 gate/up: loss %.6f vs %.6f, gradient relative error %.2e\n",
              bf16.losses[0], f32.losses[0], err);
}

// LoRA adapters on gate or up accumulate into those outputs, so they keep F32.
TEST(Bf16Ffn, OffWhereLoraAdaptsGateOrUp) {
  CpuBackend be(2);
  for (const bool on_ffn : {false, true}) {
    Model m(preset_config("tiny"), be);
    LoraConfig lc;
    lc.rank = 2;
    lc.targets = on_ffn ? std::vector<std::string>{"q", "up"} : std::vector<std::string>{"q", "v"};
    m.enable_lora(lc, 1);
    m.set_bf16_ffn(true);
    EXPECT_EQ(m.bf16_ffn(), !on_ffn);
  }
  Model f64(preset_config("tiny"), be, DType::F64);
  f64.set_bf16_ffn(true);
  EXPECT_FALSE(f64.bf16_ffn());  // BF16 storage is for F32 models
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
  ArenaOptions keep_all, redo_some;
  redo_some.recompute = true;
  const size_t keep = activation_bytes(c, b, t, DType::F32, keep_all);
  const size_t redo = activation_bytes(c, b, t, DType::F32, redo_some);
  EXPECT_EQ(keep - redo, static_cast<size_t>(c.num_hidden_layers - 1) * per_layer);
  const TrainingMemory m = estimate_training_memory(c, b, t, DType::F32, true);
  EXPECT_EQ(m.activations, redo);
  // BF16 gate/up: two [N, FFN] tensors per layer at half the bytes.
  ArenaOptions half = redo_some;
  half.bf16_ffn = true;
  const auto bytes16 = [](int64_t elements) { return (static_cast<size_t>(elements) * 2 + 63) / 64 * 64; };
  EXPECT_EQ(redo - activation_bytes(c, b, t, DType::F32, half),
            static_cast<size_t>(c.num_hidden_layers) * 2 *
                (bytes(n * c.intermediate_size) - bytes16(n * c.intermediate_size)));
  // Evaluation shares them too, whatever the setting.
  keep_all.training = redo_some.training = false;
  EXPECT_EQ(activation_bytes(c, b, t, DType::F32, keep_all),
            activation_bytes(c, b, t, DType::F32, redo_some));
}

// The advice of a run that does not fit names the options not in use, each
// with its estimate, smallest last, then the batch.
TEST(MemoryAdvice, NamesTheUnusedOptionsWithTheirEstimates) {
  const ModelConfig c = preset_config("model1");
  const std::string none = memory_advice(c, 32, 1024, false, false);
  EXPECT_NE(none.find("--recompute needs 43.5 GiB"), std::string::npos) << none;
  EXPECT_NE(none.find("--recompute --bf16-ffn needs 34.4 GiB"), std::string::npos) << none;
  EXPECT_NE(none.find("lower --batch"), std::string::npos);
  const std::string some = memory_advice(c, 32, 1024, true, false);
  EXPECT_EQ(some.find("--recompute needs"), std::string::npos) << some;
  EXPECT_NE(some.find("--bf16-ffn needs 34.4 GiB"), std::string::npos) << some;
  EXPECT_EQ(memory_advice(c, 32, 1024, true, true),
            "or lower --batch (raise --accum to keep the tokens per step) or --seq");
}

}  // namespace
}  // namespace hessgpt
