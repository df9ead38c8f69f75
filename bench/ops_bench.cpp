// Kernel-level benchmarks: OpenBLAS's large SGEMM (the ceiling the engine is
// measured against) and the CPU kernels of one training step of `small`.
#include <benchmark/benchmark.h>

#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/rng.h"

namespace hessgpt {
namespace {

std::vector<float> random_floats(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

Tensor f32(std::vector<float>& v, std::initializer_list<int64_t> dims) {
  return Tensor(v.data(), DType::F32, Device::CPU, dims);
}

int threads_arg(const benchmark::State& state) { return static_cast<int>(state.range(0)); }

void BM_SgemmLarge(benchmark::State& state) {
  CpuBackend be(threads_arg(state));
  const int64_t n = 2048;
  auto a = random_floats(n * n, 1), b = random_floats(n * n, 2), c = random_floats(n * n, 3);
  for (auto _ : state) be.matmul(f32(c, {n, n}), f32(a, {n, n}), false, f32(b, {n, n}), true, 1, 0);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_SgemmLarge)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// The tied head of `small` at batch 8 x 256: [2048, 256] x [32008, 256]^T.
void BM_HeadMatmul(benchmark::State& state) {
  CpuBackend be(threads_arg(state));
  const int64_t n = 2048, d = 256, v = 32008;
  auto h = random_floats(n * d, 1), e = random_floats(v * d, 2);
  std::vector<float> out(n * v);
  for (auto _ : state) be.matmul(f32(out, {n, v}), f32(h, {n, d}), false, f32(e, {v, d}), true, 1, 0);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * d * v, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_HeadMatmul)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_SoftcapCrossEntropy(benchmark::State& state) {
  CpuBackend be(threads_arg(state));
  const int64_t n = 2048, v = 32008;
  auto z = random_floats(n * v, 1), work = z, losses = std::vector<float>(n);
  std::vector<int32_t> targets(n, 7);
  for (auto _ : state) {
    state.PauseTiming();
    work = z;
    state.ResumeTiming();
    be.softcap_cross_entropy(f32(work, {n, v}), f32(losses, {n}),
                             Tensor(targets.data(), DType::I32, Device::CPU, {n}), 30.0, 1.0);
  }
}
BENCHMARK(BM_SoftcapCrossEntropy)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Attention(benchmark::State& state) {
  CpuBackend be(threads_arg(state));
  const int64_t b = 8, t = 256, h = 4, kv = 2, d = 64;
  auto q = random_floats(b * t * h * d, 1), k = random_floats(b * t * kv * d, 2),
       v = random_floats(b * t * kv * d, 3);
  std::vector<float> out(q.size()), lse(b * h * t), dq(q.size()), dk(k.size()), dv(v.size());
  for (auto _ : state) {
    be.attention_forward(f32(out, {b, t, h, d}), f32(lse, {b, h, t}), f32(q, {b, t, h, d}),
                         f32(k, {b, t, kv, d}), f32(v, {b, t, kv, d}), 0.125, 0);
    if (state.range(1))
      be.attention_backward(f32(dq, {b, t, h, d}), f32(dk, {b, t, kv, d}), f32(dv, {b, t, kv, d}),
                            f32(out, {b, t, h, d}), f32(q, {b, t, h, d}), f32(k, {b, t, kv, d}),
                            f32(v, {b, t, kv, d}), f32(out, {b, t, h, d}), f32(lse, {b, h, t}),
                            0.125);
  }
}
BENCHMARK(BM_Attention)->Args({2, 0})->Args({2, 1})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace hessgpt
