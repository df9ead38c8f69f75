// The arena's memory options (activations.h). Selective recomputation:
// backward rebuilds ln1, q, k, ln2 and act instead of keeping one copy per
// layer; it runs the same kernels on the same inputs, so losses and gradients
// must be bit for bit those of the run that keeps everything, and the arena
// must shrink by exactly the per-layer copies it no longer holds. BF16 gate/up
// storage: a rounding of two activations, so the step stays close (not equal).
// BF16 storage of the products' inputs under BF16 products: the products read
// the same values, so the forward pass is bit for bit the same.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/timed_backend.h"
#include "common/test_util.h"
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
Passes train_twice(const ModelConfig& c, bool recompute, bool lora, MemoryOptions memory = {},
                   bool bf16_products = false, double lora_dropout = 0.2) {
  CpuBackend be(2);
  if (bf16_products) be.set_matmul_precision(MatmulPrecision::BF16);
  Model m(c, be);
  if (lora) {
    LoraConfig lc;
    lc.rank = 4;
    lc.dropout = lora_dropout;
    m.enable_lora(lc, 3);
  }
  lora_test::randomise(m, 11, 0.2);
  memory.recompute = recompute;
  m.set_memory_options(memory);
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

// The backend ops of one training step of c (memory options, BF16 products
// or not, rank-4 adapters without dropout or none): calls of an op, those
// whose shape note contains `note` where given.
struct StepOps {
  std::vector<TimedBackend::Entry> entries;
  int64_t calls(const std::string& op, const std::string& note = "") const {
    int64_t n = 0;
    for (const TimedBackend::Entry& e : entries)
      if (e.op == op && e.shape.find(note) != std::string::npos) n += e.calls;
    return n;
  }
};
StepOps timed_step(const ModelConfig& c, const MemoryOptions& memory, bool bf16_products = true,
                   bool lora = false) {
  CpuBackend inner(2);
  if (bf16_products) inner.set_matmul_precision(MatmulPrecision::BF16);
  TimedBackend timed(inner);
  Model m(c, timed);
  if (lora) {
    LoraConfig lc;
    lc.rank = 4;
    lc.dropout = 0.0;
    m.enable_lora(lc, 3);
  }
  lora_test::randomise(m, 11, 0.2);
  m.set_memory_options(memory);
  const lora_test::Batch batch = lora_test::random_batch(2 * 24, 1);
  m.forward_backward(batch.ids.data(), batch.targets.data(), 2, 24, 0.01);
  return {timed.entries()};
}

// Every layer's tensors kept, against both recomputations: all five shared,
// and only the MLP's two (--recompute-mlp).
void expect_identical(const ModelConfig& c, bool lora, const MemoryOptions& memory = {},
                      bool bf16_products = false) {
  MemoryOptions mlp_only = memory;
  mlp_only.recompute_mlp = true;
  const Passes keep = train_twice(c, false, lora, memory, bf16_products);
  for (const auto& [name, redo] :
       {std::pair{"recompute", train_twice(c, true, lora, memory, bf16_products)},
        std::pair{"recompute-mlp", train_twice(c, false, lora, mlp_only, bf16_products)}}) {
    ASSERT_EQ(keep.losses, redo.losses) << name;
    ASSERT_EQ(keep.grads.size(), redo.grads.size()) << name;
    for (size_t i = 0; i < keep.grads.size(); ++i)
      ASSERT_EQ(keep.grads[i], redo.grads[i]) << name << ", gradient " << i;
  }
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

MemoryOptions bf16_ffn() {
  MemoryOptions m;
  m.bf16_ffn = true;
  return m;
}
MemoryOptions bf16_activations() {
  MemoryOptions m;
  m.bf16_activations = true;
  return m;
}
bool cpu_has_bf16_products() {
  return CpuBackend(1).supports_matmul_precision(MatmulPrecision::BF16);
}

// train_twice under BF16 products and --bf16-activations, with the
// environment switch `var` (one of the A/B forms) set to `value`.
Passes bf16_train_twice_with(const char* var, const char* value, const ModelConfig& c,
                             bool recompute = false) {
  const testing::ScopedEnv form(var, value);
  return train_twice(c, recompute, false, bf16_activations(), true);
}

TEST(Recompute, BitIdenticalWithBf16GateAndUp) { expect_identical(preset_config("tiny"), false, bf16_ffn()); }

// tiny with an FFN width that is not a multiple of 8, so that the FFN's
// tensors are stored padded under --bf16-activations (173 -> 176).
ModelConfig tiny_odd_ffn() {
  ModelConfig c = preset_config("tiny");
  c.intermediate_size = 173;
  return c;
}

TEST(Recompute, BitIdenticalWithBf16Activations) {
  if (!cpu_has_bf16_products()) GTEST_SKIP() << "no BF16 products in this build (oneDNN)";
  expect_identical(preset_config("tiny"), false, bf16_activations(), true);
  expect_identical(tiny_odd_ffn(), false, bf16_activations(), true);
}

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
  const Passes f32 = train_twice(c, false, false), bf16 = train_twice(c, false, false, bf16_ffn());
  for (size_t i = 0; i < f32.losses.size(); ++i)
    EXPECT_NEAR(bf16.losses[i], f32.losses[i], 1e-3 * std::abs(f32.losses[i])) << i;
  const double err = rel_error(bf16.grads, f32.grads);
  EXPECT_LT(err, 2e-2);
  EXPECT_GT(err, 0.0);
  std::printf("[ tiny ] bf16 gate/up: loss %.6f vs %.6f, gradient relative error %.2e\n",
              bf16.losses[0], f32.losses[0], err);
}

// Under BF16 products the products read ln1, att, ln2 and act rounded either
// way: the losses of both training passes and of the evaluations are bit for
// bit those of BF16 gate/up alone. Only attention's backward reads att
// otherwise (its row term dout . out), and dact is stored in BF16 (a rounding
// of its own, as under autocast), so the gradients move, a little: 3.0e-3
// from att alone, 4.9-5.0e-3 with dact. (q and k before QK-Norm are product
// outputs in BF16 by default, a rounding of the forward's own: below.)
TEST(Bf16Activations, SameLossAsF32InputsUnderBf16Products) {
  if (!cpu_has_bf16_products()) GTEST_SKIP() << "no BF16 products in this build (oneDNN)";
  const testing::ScopedEnv f32_raw("HESSGPT_BF16_QK_RAW", "0");
  const testing::ScopedEnv f32_logits("HESSGPT_BF16_LOGITS", "0");  // Bf16Logits below
  for (const ModelConfig& c : {preset_config("tiny"), tiny_odd_ffn()}) {
    const Passes f32 = train_twice(c, false, false, bf16_ffn(), true),
                 bf16 = train_twice(c, false, false, bf16_activations(), true);
    EXPECT_EQ(bf16.losses, f32.losses) << "FFN " << c.intermediate_size;
    const double err = rel_error(bf16.grads, f32.grads);
    EXPECT_LT(err, 1e-2);
    EXPECT_GT(err, 0.0);
    std::printf("[ tiny, FFN %lld ] bf16 activations: loss %.6f (same), gradient relative error %.2e\n",
                static_cast<long long>(c.intermediate_size), bf16.losses[0], err);
  }
}

// q and k before QK-Norm in BF16 (the default under --bf16-activations;
// HESSGPT_BF16_QK_RAW=0 keeps them F32): product outputs that only QK-Norm
// reads, rounded once as --bf16-ffn rounds gate and up (and as autocast
// does). The loss moves by that rounding (4.9e-4 on tiny; bound 2e-3, as the
// BF16 gate/up test's 1e-3 with margin), the gradients by ~1e-2, and each
// layer keeps half the bytes of q_raw and k_raw.
TEST(Bf16Activations, QkRawInBf16) {
  if (!cpu_has_bf16_products()) GTEST_SKIP() << "no BF16 products in this build (oneDNN)";
  const ModelConfig c = preset_config("tiny");
  const Passes f32_raw = bf16_train_twice_with("HESSGPT_BF16_QK_RAW", "0", c);
  const Passes bf16_raw = train_twice(c, false, false, bf16_activations(), true);
  for (size_t i = 0; i < f32_raw.losses.size(); ++i)
    EXPECT_NEAR(bf16_raw.losses[i], f32_raw.losses[i], 2e-3 * std::abs(f32_raw.losses[i])) << i;
  EXPECT_NE(bf16_raw.losses, f32_raw.losses);
  const double err = rel_error(bf16_raw.grads, f32_raw.grads);
  EXPECT_LT(err, 3e-2);
  std::printf("[ tiny ] BF16 q/k before QK-Norm: loss %.6f vs %.6f, gradient relative error %.2e\n",
              bf16_raw.losses[0], f32_raw.losses[0], err);
  ArenaOptions o;
  o.memory = bf16_activations();
  size_t f32_bytes = 0;
  {
    const testing::ScopedEnv off("HESSGPT_BF16_QK_RAW", "0");
    f32_bytes = activation_bytes(c, 2, 24, DType::F32, o);
  }
  const auto saved = [](int64_t elements) {  // F32 against BF16, each 64-byte aligned
    return (static_cast<size_t>(elements) * 4 + 63) / 64 * 64 -
           (static_cast<size_t>(elements) * 2 + 63) / 64 * 64;
  };
  const int64_t n = 2 * 24;
  EXPECT_EQ(f32_bytes - activation_bytes(c, 2, 24, DType::F32, o),
            static_cast<size_t>(c.num_hidden_layers) *
                (saved(n * c.q_dim()) + saved(n * c.kv_dim())));
  EXPECT_THROW(bf16_train_twice_with("HESSGPT_BF16_QK_RAW", "yes", c), Error);
}

// The head's logits in BF16 while training (the default under
// --bf16-activations): the product rounds them, as autocast's does, and the
// cross-entropy scores them widened and writes its gradient over them. The
// training losses move by that rounding (tiny: ~1e-4 relative), the
// evaluations' stay the F32 logits' bit for bit (an evaluation carves F32
// ones), and the gradients move by about a BF16 step. Twice the rows a chunk
// for the logits' 256 MiB, and no separate BF16 gradient: less memory.
TEST(Bf16Activations, Bf16Logits) {
  if (!cpu_has_bf16_products()) GTEST_SKIP() << "no BF16 products in this build (oneDNN)";
  for (const ModelConfig& c : {preset_config("tiny"), tiny_odd_ffn()}) {
    const Passes f32 = bf16_train_twice_with("HESSGPT_BF16_LOGITS", "0", c);
    const Passes bf16 = train_twice(c, false, false, bf16_activations(), true);
    ASSERT_EQ(bf16.losses.size(), 4u);
    for (size_t i = 0; i < f32.losses.size(); ++i) {
      EXPECT_NEAR(bf16.losses[i], f32.losses[i], 1e-3 * std::abs(f32.losses[i])) << i;
      if (i % 2 == 1) EXPECT_EQ(bf16.losses[i], f32.losses[i]) << "evaluation " << i;
      else EXPECT_NE(bf16.losses[i], f32.losses[i]) << "training pass " << i;
    }
    const double err = rel_error(bf16.grads, f32.grads);
    EXPECT_LT(err, 3e-2);
    EXPECT_GT(err, 0.0);
    std::printf("[ tiny, FFN %lld ] BF16 logits: loss %.6f vs %.6f, gradient relative error %.2e\n",
                static_cast<long long>(c.intermediate_size), bf16.losses[0], f32.losses[0], err);
  }
  const ModelConfig c = preset_config("tiny");
  EXPECT_EQ(timed_step(c, bf16_activations()).calls("softcap_cross_entropy_into", "BF16 ->"), 1);
  ArenaOptions o;
  o.memory = bf16_activations();
  const size_t f32_bytes = activation_bytes(c, 2, 24, DType::F32, o);
  o.bf16_logits = true;
  const int64_t n = 2 * 24;  // one chunk: the logits halve, the BF16 gradient goes
  const auto bytes = [](int64_t elements, size_t size) {
    return (static_cast<size_t>(elements) * size + 63) / 64 * 64;
  };
  EXPECT_EQ(f32_bytes - activation_bytes(c, 2, 24, DType::F32, o),
            bytes(n * c.vocab_size, 4) + bytes(n * c.vocab_size, 2) - bytes(n * c.vocab_size, 2));
  EXPECT_THROW(bf16_train_twice_with("HESSGPT_BF16_LOGITS", "yes", c), Error);
}

// q's, k's and v's projection backward as one product each over dq_raw, dk_raw
// and dv side by side (Model::qkv_projections_backward; HESSGPT_FUSED_QKV=0:
// k and v only, Model::kv_projections_backward): the losses are the separate
// products' (the forward is the same) and the gradients agree to F32
// summation order; the fused paths really run, two concats per layer for
// q, k, v (k|v, then q beside it), one for k, v.
TEST(Bf16Activations, FusedKvProjectionsMatchSeparateProducts) {
  if (!cpu_has_bf16_products()) GTEST_SKIP() << "no BF16 products in this build (oneDNN)";
  // (The separate products accumulate dln in F32; the fused product's BF16
  // dln is a rounding of its own: Bf16Activations.Bf16Dln.)
  const testing::ScopedEnv f32_dln("HESSGPT_BF16_DLN", "0");
  for (const ModelConfig& c : {preset_config("tiny"), tiny_odd_ffn()}) {
    const Passes fused = train_twice(c, false, false, bf16_activations(), true);
    const Passes separate = bf16_train_twice_with("HESSGPT_FUSED_KV", "0", c);
    const Passes kv_only = bf16_train_twice_with("HESSGPT_FUSED_QKV", "0", c);
    for (const Passes* other : {&separate, &kv_only}) {
      EXPECT_EQ(fused.losses, other->losses) << "FFN " << c.intermediate_size;
      EXPECT_LT(rel_error(fused.grads, other->grads), 1e-5) << "FFN " << c.intermediate_size;
    }
  }
  // Where it applies: BF16 activations without adapters, unless switched
  // off; none with F32 activations or with adapters. Fused q/k/v copies dv
  // beside dq_raw and dk_raw, which QK-Norm's backward wrote in place (one
  // copy a layer); fused k/v alone concatenates dk_raw | dv (one a layer).
  const ModelConfig c = preset_config("tiny");
  const int64_t layers = c.num_hidden_layers;
  using Counts = std::pair<int64_t, int64_t>;  // concat_columns, copy_columns calls
  const auto joins = [&](const char* setting, const MemoryOptions& memory, bool lora,
                         const char* qkv = "1") {
    const testing::ScopedEnv choice("HESSGPT_FUSED_KV", setting);
    const testing::ScopedEnv with_q("HESSGPT_FUSED_QKV", qkv);
    const StepOps ops = timed_step(c, memory, true, lora);
    return Counts{ops.calls("concat_columns"), ops.calls("copy_columns")};
  };
  EXPECT_EQ(joins("1", bf16_activations(), false), Counts(0, layers));
  EXPECT_EQ(joins("1", bf16_activations(), false, "0"), Counts(layers, 0));
  EXPECT_EQ(joins("0", bf16_activations(), false), Counts(0, 0));
  EXPECT_EQ(joins("1", bf16_ffn(), false), Counts(0, 0)) << "F32 products' inputs";
  EXPECT_EQ(joins("1", bf16_activations(), true), Counts(0, 0)) << "adapters";
}

// The products' BF16 copies of the weights (weight_copies.h) are the roundings
// the products made on the fly: losses and gradients bit for bit those of
// HESSGPT_BF16_WEIGHT_COPIES=0 where the FFN needs no padding. Where it does
// (173 -> 176), the padding multiplies zeros by zeros, but the products over
// the padded width may sum in another order: oneDNN's AMX kernels (a Xeon
// with amx_bf16) block 176 otherwise than 173, the AVX-512 ones did not. The
// step then moves as under any change of summation order (as on the GPU:
// CudaModel.WeightCopies*).
// A pass converts each matrix once (down's into its padded columns), where
// the products converted it at each use, matrices back to back on both sides
// in one launch (q|k|v; gate|up|down where the FFN is not padded); none with
// F32 products or adapters.
TEST(Bf16Activations, WeightCopiesChangeNothing) {
  if (!cpu_has_bf16_products()) GTEST_SKIP() << "no BF16 products in this build (oneDNN)";
  const testing::ScopedEnv apart("HESSGPT_JOINED_GATE_UP", "0");  // (it needs the copies)
  for (const ModelConfig& c : {preset_config("tiny"), tiny_odd_ffn()}) {
    const Passes copies = train_twice(c, false, false, bf16_activations(), true);
    const Passes on_the_fly = bf16_train_twice_with("HESSGPT_BF16_WEIGHT_COPIES", "0", c);
    ASSERT_EQ(copies.grads.size(), on_the_fly.grads.size());
    if (padded_width(c.intermediate_size) == c.intermediate_size) {
      EXPECT_EQ(copies.losses, on_the_fly.losses) << "FFN " << c.intermediate_size;
      for (size_t i = 0; i < copies.grads.size(); ++i)
        ASSERT_EQ(copies.grads[i], on_the_fly.grads[i])
            << "FFN " << c.intermediate_size << ", " << i;
      continue;
    }
    ASSERT_EQ(copies.losses.size(), on_the_fly.losses.size());
    for (size_t i = 0; i < copies.losses.size(); ++i)
      EXPECT_NEAR(copies.losses[i], on_the_fly.losses[i], 1e-5 * std::abs(on_the_fly.losses[i]))
          << "FFN " << c.intermediate_size;
    EXPECT_LT(rel_error(copies.grads, on_the_fly.grads), 1e-4) << "FFN " << c.intermediate_size;
  }
  using Counts = std::pair<int64_t, int64_t>;  // convert, copy_columns calls in one step
  const auto conversions = [](const ModelConfig& c, const char* setting, bool bf16_products,
                              bool lora) {
    const testing::ScopedEnv choice("HESSGPT_BF16_WEIGHT_COPIES", setting);
    const StepOps ops = timed_step(c, bf16_activations(), bf16_products, lora);
    return Counts{ops.calls("convert"), ops.calls("copy_columns")};
  };
  for (const ModelConfig& c : {preset_config("tiny"), tiny_odd_ffn()}) {
    const int64_t layers = c.num_hidden_layers, padded = c.intermediate_size % 8 != 0;
    const Counts on = conversions(c, "1", true, false), off = conversions(c, "0", true, false);
    // q|k|v, o, gate|up|down; padded: q|k|v, o, gate, up (and down's copy_columns).
    EXPECT_EQ(on.first - off.first, (padded ? 4 : 3) * layers) << "FFN " << c.intermediate_size;
    EXPECT_EQ(on.second - off.second, padded * layers) << "FFN " << c.intermediate_size;
    EXPECT_EQ(conversions(c, "1", true, true), conversions(c, "0", true, true)) << "adapters";
  }
  const ModelConfig c = preset_config("tiny");
  EXPECT_THROW(conversions(c, "yes", true, false), Error);
  EXPECT_NO_THROW(conversions(c, "yes", false, false)) << "F32 products never read it";
}

// Gate and up side by side (Activations::joined_gate_up, the default with
// the weight copies; HESSGPT_JOINED_GATE_UP=0 keeps them apart): one product
// for both, SwiGLU over their halves, one product for dln and one for their
// weights' gradient (through scratch where the FFN is padded, 173 -> 176).
// The forward computes the same values, so the losses are equal. dln sums
// gate's and up's terms in one product: F32 summation order, which the last
// block's norm shows (2.4e-7) and gate's and up's weight gradients do not
// (the same products of the same values). Below it, a BF16-stored gradient
// (dres16, dact, dgate|up) that rounds the other way spreads a little
// further with each layer: 2.4e-8 overall at FFN 176, where none did, 7.5e-4
// at 173. A misplaced row or half would be off by O(1). One joined SwiGLU a
// layer each way and no separate one.
TEST(Bf16Activations, JoinedGateUpMatchesSeparateProducts) {
  if (!cpu_has_bf16_products()) GTEST_SKIP() << "no BF16 products in this build (oneDNN)";
  const testing::ScopedEnv f32_dln("HESSGPT_BF16_DLN", "0");  // (as above)
  for (const ModelConfig& c : {preset_config("tiny"), tiny_odd_ffn()}) {
    for (const bool recompute : {false, true}) {
      const Passes joined = train_twice(c, recompute, false, bf16_activations(), true);
      const Passes apart = bf16_train_twice_with("HESSGPT_JOINED_GATE_UP", "0", c, recompute);
      EXPECT_EQ(joined.losses, apart.losses) << "FFN " << c.intermediate_size;
      const ParamLayout layout = make_param_layout(c);
      const LayerParamIndex& last = layout.layers.back();
      for (const int i : {last.gate_proj, last.up_proj, last.post_norm}) {
        const ParamInfo& p = layout.params[static_cast<size_t>(i)];
        const auto part = [&](const Passes& r) {
          const auto first = r.grads.begin() + p.offset;
          return std::vector<float>(first, first + p.numel);
        };
        EXPECT_LT(rel_error(part(joined), part(apart)), 1e-5)
            << p.name << ", FFN " << c.intermediate_size;
      }
      const double err = rel_error(joined.grads, apart.grads);
      EXPECT_LT(err, 2e-3) << "FFN " << c.intermediate_size << ", recompute " << recompute;
      std::printf("[ tiny, FFN %lld%s ] gate|up joined: gradient relative error %.2e\n",
                  static_cast<long long>(c.intermediate_size), recompute ? ", recompute" : "", err);
    }
    const StepOps ops = timed_step(c, bf16_activations());
    EXPECT_EQ(ops.calls("swiglu_forward_joined"), c.num_hidden_layers);
    EXPECT_EQ(ops.calls("swiglu_backward_joined"), c.num_hidden_layers);
    EXPECT_EQ(ops.calls("swiglu_forward") + ops.calls("swiglu_backward"), 0);
    EXPECT_EQ(ops.calls("add_inplace"), c.intermediate_size % 8 ? 2 * c.num_hidden_layers : 0);
  }
  EXPECT_THROW(bf16_train_twice_with("HESSGPT_JOINED_GATE_UP", "yes", preset_config("tiny")),
               Error);
}

// dln in BF16 where one product writes it (Activations::dln16, the default;
// HESSGPT_BF16_DLN=0 keeps it F32): the fused q|k|v and joined gate|up
// products round it once, as autocast's do, and the norms' backward reads it
// widened. The forward is untouched, so the losses are equal; the gradients
// move by that rounding (the same order as BF16 attention gradients), and
// every block's two norms read the BF16 copy.
TEST(Bf16Activations, Bf16Dln) {
  if (!cpu_has_bf16_products()) GTEST_SKIP() << "no BF16 products in this build (oneDNN)";
  const ModelConfig c = tiny_odd_ffn();
  const Passes f32_dln = bf16_train_twice_with("HESSGPT_BF16_DLN", "0", c);
  const Passes bf16_dln = train_twice(c, false, false, bf16_activations(), true);
  EXPECT_EQ(bf16_dln.losses, f32_dln.losses);
  const double err = rel_error(bf16_dln.grads, f32_dln.grads);
  EXPECT_LT(err, 1e-2);
  EXPECT_GT(err, 0.0);
  std::printf("[ tiny, FFN 173 ] BF16 dln: gradient relative error %.2e\n", err);
  const StepOps ops = timed_step(c, bf16_activations());
  EXPECT_EQ(ops.calls("rmsnorm_backward", "bf16 dout") +
                ops.calls("rmsnorm_backward_copy", "bf16 dout"),
            2 * c.num_hidden_layers);
  EXPECT_THROW(bf16_train_twice_with("HESSGPT_BF16_DLN", "yes", c), Error);
}

// Attention's gradients in BF16 too (the default; HESSGPT_BF16_ATTENTION_GRADS=0
// keeps them in F32): the forward is unchanged, so are the losses; the
// gradients move by the roundings of datt and of dq, dk, dv (on the GPU,
// cuDNN's backward rounds dout and writes BF16 anyway), and the fused q/k/v
// backward still runs once per layer (one copy of dv beside dq_raw, dk_raw).
TEST(Bf16Activations, AttentionGradientsInBf16) {
  if (!cpu_has_bf16_products()) GTEST_SKIP() << "no BF16 products in this build (oneDNN)";
  const ModelConfig c = preset_config("tiny");
  const Passes f32_grads = bf16_train_twice_with("HESSGPT_BF16_ATTENTION_GRADS", "0", c);
  const Passes bf16_grads = train_twice(c, false, false, bf16_activations(), true);
  EXPECT_EQ(timed_step(c, bf16_activations()).calls("copy_columns"), c.num_hidden_layers);
  EXPECT_EQ(bf16_grads.losses, f32_grads.losses);
  const double err = rel_error(bf16_grads.grads, f32_grads.grads);
  EXPECT_LT(err, 1e-2);
  EXPECT_GT(err, 0.0);
  std::printf("[ tiny ] BF16 attention gradients: gradient relative error %.2e\n", err);
  EXPECT_THROW(bf16_train_twice_with("HESSGPT_BF16_ATTENTION_GRADS", "yes", c), Error);
}

// With adapters (no dropout) the products' inputs are BF16 too, at the exact
// FFN width and with F32 gradients: the adapters' products read x rounded
// anyway (their scaled products are FP32 but read u, not x), so again the
// same losses, and adapter gradients a rounding of att away.
TEST(Bf16Activations, LoraWithoutDropoutKeepsTheLoss) {
  if (!cpu_has_bf16_products()) GTEST_SKIP() << "no BF16 products in this build (oneDNN)";
  const testing::ScopedEnv f32_logits("HESSGPT_BF16_LOGITS", "0");  // Bf16Logits below
  const ModelConfig c = tiny_odd_ffn();
  const Passes f32 = train_twice(c, false, true, bf16_ffn(), true, 0.0),
               bf16 = train_twice(c, false, true, bf16_activations(), true, 0.0);
  EXPECT_EQ(bf16.losses, f32.losses);
  const double err = rel_error(bf16.grads, f32.grads);
  EXPECT_LT(err, 1e-2);
  EXPECT_GT(err, 0.0);
}

// LoRA adapters on gate or up accumulate into those outputs, so they keep
// F32; LoRA dropout reads its inputs as F32, so the products' inputs do too.
TEST(Bf16Ffn, OffWhereLoraAdaptsGateOrUp) {
  CpuBackend be(2);
  for (const bool on_ffn : {false, true}) {
    for (const double dropout : {0.0, 0.1}) {
      Model m(preset_config("tiny"), be);
      LoraConfig lc;
      lc.rank = 2;
      lc.dropout = dropout;
      lc.targets = on_ffn ? std::vector<std::string>{"q", "up"} : std::vector<std::string>{"q", "v"};
      m.enable_lora(lc, 1);
      m.set_memory_options(bf16_ffn());
      EXPECT_EQ(m.memory_options().bf16_ffn, !on_ffn);
      m.set_memory_options(bf16_activations());
      EXPECT_EQ(m.memory_options().bf16_ffn, !on_ffn);  // implied where allowed
      EXPECT_EQ(m.memory_options().bf16_activations, dropout == 0.0);
    }
  }
  Model f64(preset_config("tiny"), be, DType::F64);
  f64.set_memory_options(bf16_activations());
  EXPECT_FALSE(f64.memory_options().bf16_ffn);  // BF16 storage is for F32 models
  EXPECT_FALSE(f64.memory_options().bf16_activations);
}

TEST(Bf16Activations, NeedBf16Products) {
  CpuBackend be(1);
  try {
    check_memory_options(bf16_activations(), be);
    FAIL() << "accepted under FP32 products";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--bf16-activations needs --precision bf16"), std::string::npos)
        << e.what();
  }
  check_memory_options(bf16_ffn(), be);
  if (!be.supports_matmul_precision(MatmulPrecision::BF16)) return;
  be.set_matmul_precision(MatmulPrecision::BF16);
  check_memory_options(bf16_activations(), be);
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
  redo_some.memory.recompute = true;
  const size_t keep = activation_bytes(c, b, t, DType::F32, keep_all);
  const size_t redo = activation_bytes(c, b, t, DType::F32, redo_some);
  EXPECT_EQ(keep - redo, static_cast<size_t>(c.num_hidden_layers - 1) * per_layer);
  MemoryOptions recompute;
  recompute.recompute = true;
  const TrainingMemory m = estimate_training_memory(c, b, t, DType::F32, recompute);
  EXPECT_EQ(m.activations, redo);
  // BF16 gate/up: two [N, FFN] tensors per layer at half the bytes.
  ArenaOptions half = redo_some;
  half.memory.bf16_ffn = true;
  const auto bytes16 = [](int64_t elements) { return (static_cast<size_t>(elements) * 2 + 63) / 64 * 64; };
  const auto saved = [&](int64_t elements) { return bytes(elements) - bytes16(elements); };
  const size_t ffn_bytes = activation_bytes(c, b, t, DType::F32, half);
  EXPECT_EQ(redo - ffn_bytes, static_cast<size_t>(c.num_hidden_layers) * 2 * saved(n * c.intermediate_size));
  // The products' inputs too: each layer's att, the shared ln1, ln2, act, and
  // in the backward scratch dgate, dup, dq_raw, dk_raw (the MLP's and the
  // attention's scratch overlay: the larger counts); attention's inputs, each
  // layer's v and the shared q and k; the FFN's tensors now at the padded
  // width (3416), and the head's BF16 embedding and gradient and the BF16
  // copies of the residual gradient and of dln, which cost a little back.
  // (q_raw and k_raw kept F32 here: Bf16Activations.QkRawInBf16 counts them.)
  const testing::ScopedEnv f32_raw("HESSGPT_BF16_QK_RAW", "0");
  ArenaOptions inputs = half;
  inputs.memory.bf16_activations = true;
  const int64_t kvd = c.num_key_value_heads * c.head_dim, ffn = c.intermediate_size;
  const int64_t ffnp = padded_width(ffn);
  const auto i64 = [](size_t x) { return static_cast<int64_t>(x); };
  const int64_t mlp32 = i64(3 * bytes(n * ffn));
  const int64_t mlp16 = i64(3 * bytes16(n * ffnp));
  const int64_t attn32 = i64(3 * bytes(n * c.q_dim()) + 3 * bytes(n * kvd));
  const int64_t attn16 = i64(2 * bytes(n * c.q_dim()) + bytes16(n * c.q_dim()) + 2 * bytes(n * kvd) + bytes16(n * kvd));
  const int64_t layers = c.num_hidden_layers;
  EXPECT_EQ(i64(ffn_bytes) - i64(activation_bytes(c, b, t, DType::F32, inputs)),
            layers * i64(saved(n * c.q_dim())) + 2 * i64(saved(n * c.hidden_size)) +
                layers * i64(saved(n * kvd)) + i64(saved(n * c.q_dim())) + i64(saved(n * kvd)) +
                i64(bytes(n * ffn)) - i64(bytes16(n * ffnp)) +
                layers * 2 * (i64(bytes16(n * ffn)) - i64(bytes16(n * ffnp))) +
                std::max(mlp32, attn32) - std::max(mlp16, attn16) -
                i64(bytes16(c.vocab_size * c.hidden_size)) -
                i64(bytes16(head_chunk_rows(n, c.vocab_size) * c.vocab_size)) -
                2 * i64(bytes16(n * c.hidden_size)));
  // Evaluation shares them too, whatever the setting.
  keep_all.training = redo_some.training = false;
  EXPECT_EQ(activation_bytes(c, b, t, DType::F32, keep_all),
            activation_bytes(c, b, t, DType::F32, redo_some));
}

// --recompute-mlp: L - 1 copies of ln2 and act only, F32 or (under
// --bf16-activations) BF16 at the FFN's padded width; --recompute implies it.
TEST(Recompute, MlpOnlyDropsTheMlpInputsPerLayerCopies) {
  const ModelConfig c = preset_config("model1");
  const int64_t b = 32, t = 1024, n = b * t, layers = c.num_hidden_layers;
  const auto bytes = [](int64_t elements, size_t size) {
    return (static_cast<size_t>(elements) * size + 63) / 64 * 64;
  };
  for (const bool inputs16 : {false, true}) {
    ArenaOptions keep, mlp, both;
    keep.memory.bf16_activations = inputs16;
    mlp.memory = both.memory = keep.memory;
    mlp.memory.recompute_mlp = true;
    both.memory.recompute = both.memory.recompute_mlp = true;
    const size_t size = inputs16 ? 2 : 4;
    const int64_t ffn = inputs16 ? padded_width(c.intermediate_size) : c.intermediate_size;
    const size_t per_layer = bytes(n * c.hidden_size, size) + bytes(n * ffn, size);
    const size_t kept = activation_bytes(c, b, t, DType::F32, keep);
    EXPECT_EQ(kept - activation_bytes(c, b, t, DType::F32, mlp),
              static_cast<size_t>(layers - 1) * per_layer) << "bf16 activations " << inputs16;
    ArenaOptions all = keep;
    all.memory.recompute = true;
    EXPECT_EQ(activation_bytes(c, b, t, DType::F32, both), activation_bytes(c, b, t, DType::F32, all));
  }
}

// The advice of a run that does not fit names the options not in use, each
// with its estimate, smallest last, then the batch.
// Under FP32 products the BF16 option is --bf16-ffn; under BF16 products it
// is --bf16-activations (which implies it; its figures count the products'
// BF16 copies of the weights, 0.7 GiB for model1: weight_copies.h).
TEST(MemoryAdvice, NamesTheUnusedOptionsWithTheirEstimates) {
  const ModelConfig c = preset_config("model1");
  MemoryOptions m;
  const std::string none = memory_advice(c, 32, 1024, m, false);
  EXPECT_NE(none.find("--recompute-mlp needs "), std::string::npos) << none;
  EXPECT_LT(none.find("--recompute-mlp needs "), none.find("--recompute needs")) << none;
  EXPECT_NE(none.find("--recompute needs 43.5 GiB"), std::string::npos) << none;
  EXPECT_NE(none.find("--recompute --bf16-ffn needs 34.4 GiB"), std::string::npos) << none;
  EXPECT_NE(none.find("lower --batch"), std::string::npos);
  const std::string none16 = memory_advice(c, 32, 1024, m, true);
  EXPECT_NE(none16.find("--recompute --bf16-activations needs 29.9 GiB"), std::string::npos)
      << none16;
  EXPECT_EQ(none16.find("--bf16-ffn"), std::string::npos) << none16;
  m.recompute_mlp = true;
  const std::string mlp = memory_advice(c, 32, 1024, m, false);
  EXPECT_EQ(mlp.find("--recompute-mlp"), std::string::npos) << mlp;
  EXPECT_NE(mlp.find("--recompute needs 43.5 GiB"), std::string::npos) << mlp;
  m.recompute = true;
  const std::string some = memory_advice(c, 32, 1024, m, false);
  EXPECT_EQ(some.find("--recompute needs"), std::string::npos) << some;
  EXPECT_EQ(some.find("--recompute-mlp"), std::string::npos) << some;
  EXPECT_NE(some.find("--bf16-ffn needs 34.4 GiB"), std::string::npos) << some;
  m.bf16_ffn = true;
  const std::string done = "or lower --batch (raise --accum to keep the tokens per step) or --seq";
  EXPECT_EQ(memory_advice(c, 32, 1024, m, false), done);
  EXPECT_NE(memory_advice(c, 32, 1024, m, true).find("--bf16-activations needs 29.9 GiB"),
            std::string::npos);
  m.bf16_activations = true;
  EXPECT_EQ(memory_advice(c, 32, 1024, m, true), done);
}

}  // namespace
}  // namespace hessgpt
