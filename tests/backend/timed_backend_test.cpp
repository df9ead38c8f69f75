// TimedBackend (bench train --profile) forwards every op unchanged and
// counts each call once under its op and shapes.
#include <gtest/gtest.h>

#include <algorithm>

#include <map>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/timed_backend.h"
#include "common/gpu_test_backend.h"
#include "core/rng.h"
#include "model/model.h"

namespace hessgpt {
namespace {

struct Step {
  double loss = 0;
  std::vector<float> grads;
};

Step one_step(Backend& be, const ModelConfig& c, bool bf16_activations = false) {
  Model m(c, be);
  m.init_random(5);
  MemoryOptions memory;
  memory.recompute = true;
  memory.bf16_activations = bf16_activations;
  m.set_memory_options(memory);
  const int64_t b = 2, t = 16, n = b * t;
  Rng rng(6);
  std::vector<int32_t> ids(n), targets(n);
  for (int64_t i = 0; i < n; ++i) {
    ids[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(c.vocab_size)));
    targets[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(c.vocab_size)));
  }
  m.zero_grads();
  Step s;
  s.loss = m.forward_backward(ids.data(), targets.data(), b, t, 1.0 / n).sum;
  s.grads = m.grads_host();
  return s;
}

// The default timing marks (the host clock): numbered from 0 after a clear,
// ordered in time, and only those recorded can be read.
TEST(TimingMarks, HostClockByDefault) {
  CpuBackend be(1);
  const int64_t a = be.timing_mark(), b = be.timing_mark();
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 1);
  EXPECT_GE(be.ms_between(a, b), 0.0);
  EXPECT_THROW(be.ms_between(b, a), Error);
  EXPECT_THROW(be.ms_between(a, 2), Error);
  be.clear_timing_marks();
  EXPECT_THROW(be.ms_between(0, 0), Error);
  EXPECT_EQ(be.timing_mark(), 0);
}

TEST(TimedBackend, ForwardsEveryOpUnchanged) {
  const ModelConfig c = preset_config("tiny");
  CpuBackend plain(2), inner(2);
  TimedBackend timed(inner);
  const Step a = one_step(plain, c), b = one_step(timed, c);
  EXPECT_EQ(b.loss, a.loss);
  EXPECT_EQ(b.grads, a.grads);
}

// One training step of tiny (2 layers, recomputation): one attention forward
// and backward per layer, two fused QK-Norm + RoPE per layer forward and again
// when backward rebuilds q and k, and the table sorted by time.
TEST(TimedBackend, CountsEachCallUnderItsOp) {
  const ModelConfig c = preset_config("tiny");
  CpuBackend inner(2);
  TimedBackend timed(inner);
  one_step(timed, c);
  std::map<std::string, int64_t> calls;
  double previous = 1e300;
  for (const TimedBackend::Entry& e : timed.entries()) {
    calls[e.op] += e.calls;
    EXPECT_LE(e.ms, previous) << "sorted by time, largest first";
    EXPECT_GE(e.ms, 0.0);
    previous = e.ms;
  }
  const int64_t layers = c.num_hidden_layers;
  EXPECT_EQ(calls["attention_forward"], layers);
  EXPECT_EQ(calls["attention_backward"], layers);
  EXPECT_EQ(calls["qk_norm_rope_forward"], 2 * layers * 2);
  EXPECT_EQ(calls["qk_norm_rope_backward"], 2 * layers);
  EXPECT_EQ(calls["matmul_add"], 2 * layers);
  // The categories cover every op once: they add up to the whole.
  double total = 0, by_parts = 0;
  for (const TimedBackend::Entry& e : timed.entries()) total += e.ms;
  const auto parts = TimedBackend::by_category(timed.entries());
  for (const auto& [name, ms] : parts) by_parts += ms;
  EXPECT_NEAR(by_parts, total, 1e-9 * std::max(1.0, total));
  EXPECT_TRUE(std::is_sorted(parts.begin(), parts.end(),
                             [](const auto& a, const auto& b) { return a.second > b.second; }));
  timed.reset();
  EXPECT_TRUE(timed.entries().empty());
}

// More calls than are timed before a read back (kMaxPendingCalls): every one
// counted, none negative; on the GPU the profiled step is the plain one.
void expect_many_calls_counted(Backend& inner) {
  TimedBackend timed(inner);
  Buffer buffer(&inner, 1024 * sizeof(float));
  const Tensor x = buffer.tensor(DType::F32, {1024});
  for (int i = 0; i < 5000; ++i) timed.fill(x, i);
  const auto entries = timed.entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].calls, 5000);
  EXPECT_GE(entries[0].ms, 0.0);
}

TEST(TimedBackend, CountsPastTheReadBackBatch) {
  CpuBackend inner(1);
  expect_many_calls_counted(inner);
}

TEST(TimedBackend, TimesTheGpuStepWithoutChangingIt) {
  const std::unique_ptr<Backend> plain = testing::gpu_test_backend(),
                                 inner = testing::gpu_test_backend();
  if (!plain) GTEST_SKIP() << "no CUDA device";
  expect_many_calls_counted(*inner);
  const ModelConfig c = preset_config("tiny");
  TimedBackend timed(*inner);
  const Step a = one_step(*plain, c), b = one_step(timed, c);
  EXPECT_EQ(b.loss, a.loss);
  EXPECT_EQ(b.grads, a.grads);
  double total = 0;
  for (const TimedBackend::Entry& e : timed.entries()) {
    EXPECT_GE(e.ms, 0.0) << e.op;
    total += e.ms;
  }
  EXPECT_GT(total, 0.0);
}

// The categories are torch_train_step.py --profile's, so the two line up.
TEST(TimedBackend, OpsFallIntoTorchProfileCategories) {
  EXPECT_STREQ(TimedBackend::category("matmul"), "products");
  EXPECT_STREQ(TimedBackend::category("matmul (accumulate)"), "products");
  EXPECT_STREQ(TimedBackend::category("matmul_add"), "products");
  EXPECT_STREQ(TimedBackend::category("attention_backward"), "attention");
  EXPECT_STREQ(TimedBackend::category("adamw_step"), "optimizer");
  EXPECT_STREQ(TimedBackend::category("rmsnorm_backward_copy"), "elementwise");
  EXPECT_STREQ(TimedBackend::category("softcap_cross_entropy_into"), "elementwise");
  EXPECT_STREQ(TimedBackend::category("copy_to_host"), "other");
}

// Under BF16 product inputs the norms' backward also writes dres's BF16 copy
// (the final norm's, and each layer's but the input norm of layer 0, whose
// dres goes to the embedding as F32); the step is the plain backend's.
TEST(TimedBackend, Bf16ActivationsCopyTheResidualGradient) {
  const ModelConfig c = preset_config("tiny");
  CpuBackend plain(2), inner(2);
  if (!plain.supports_matmul_precision(MatmulPrecision::BF16))
    GTEST_SKIP() << "no BF16 products in this build";
  plain.set_matmul_precision(MatmulPrecision::BF16);
  inner.set_matmul_precision(MatmulPrecision::BF16);
  TimedBackend timed(inner);
  const Step a = one_step(plain, c, true), b = one_step(timed, c, true);
  EXPECT_EQ(b.loss, a.loss);
  EXPECT_EQ(b.grads, a.grads);
  std::map<std::string, int64_t> calls;
  for (const TimedBackend::Entry& e : timed.entries()) calls[e.op] += e.calls;
  const int64_t layers = c.num_hidden_layers;
  EXPECT_EQ(calls["rmsnorm_backward_copy"], 2 * layers);
  EXPECT_EQ(calls["rmsnorm_backward"], 1);
}

TEST(TimedBackend, TakesAndSetsTheInnerPrecision) {
  CpuBackend inner(1);
  if (!inner.supports_matmul_precision(MatmulPrecision::BF16)) GTEST_SKIP() << "no BF16 products";
  inner.set_matmul_precision(MatmulPrecision::BF16);
  TimedBackend timed(inner);
  EXPECT_EQ(timed.matmul_precision(), MatmulPrecision::BF16);
  timed.set_matmul_precision(MatmulPrecision::FP32);
  EXPECT_EQ(inner.matmul_precision(), MatmulPrecision::FP32);
}

}  // namespace
}  // namespace hessgpt
