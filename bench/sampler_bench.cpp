// The sampler on one token's logits at the tokenizer's vocabulary (32008):
// greedy, temperature alone (generate's default: 0.7, no top-k or top-p),
// top-k 50, top-p 0.9, and the repetition penalty over a 512-token history.
// On the GPU a token's forward takes ~1 ms (model1, BF16 weights), so the
// host's draw must stay far below that. FullSort is the baseline in the same
// run: the draw as the sampler made it before (every candidate sorted by
// logit, then softmax and the draw over that order).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "core/rng.h"
#include "infer/sampler.h"

namespace {

using hessgpt::infer::Sampler;
using hessgpt::infer::SamplingOptions;

// Logits shaped like a trained model's: most ids far below a few dozen.
std::vector<float> model_like_logits(uint64_t seed) {
  std::vector<float> z(32008);
  hessgpt::Rng rng(seed);
  for (auto& x : z) x = static_cast<float>(2.0 * rng.normal());
  for (int i = 0; i < 40; ++i) z[static_cast<size_t>(rng.next_u64() % z.size())] += 12.0f;
  return z;
}

void Sample(benchmark::State& state, SamplingOptions o) {
  const std::vector<float> z = model_like_logits(3);
  std::vector<int32_t> history;
  if (o.repetition_penalty != 1.0)
    for (int i = 0; i < 512; ++i) history.push_back((i * 7919) % 32008);
  Sampler sampler(o);
  for (auto _ : state) benchmark::DoNotOptimize(sampler.sample(z, history));
}

SamplingOptions with(double temperature, int64_t top_k, double top_p, double penalty = 1.0) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.repetition_penalty = penalty;
  return o;
}

// The former draw at temperature 0.7 with neither top-k nor top-p.
void FullSort(benchmark::State& state) {
  const std::vector<float> z = model_like_logits(3);
  hessgpt::Rng rng(0);
  std::vector<float> work;
  std::vector<int32_t> order(z.size());
  std::vector<double> probs(z.size());
  for (auto _ : state) {
    work.assign(z.begin(), z.end());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      const float za = work[static_cast<size_t>(a)], zb = work[static_cast<size_t>(b)];
      return za > zb || (za == zb && a < b);
    });
    const double zmax = work[static_cast<size_t>(order[0])];
    double total = 0.0;
    for (size_t i = 0; i < order.size(); ++i)
      total += probs[i] = std::exp((work[static_cast<size_t>(order[i])] - zmax) / 0.7);
    double u = rng.uniform() * total;
    size_t i = 0;
    while (i + 1 < order.size() && (u -= probs[i]) >= 0.0) ++i;
    benchmark::DoNotOptimize(order[i]);
  }
}
BENCHMARK(FullSort)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Sample, greedy, with(0.0, 0, 1.0))->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Sample, temperature, with(0.7, 0, 1.0))->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Sample, top_k_50, with(0.7, 50, 1.0))->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Sample, top_p_0_9, with(0.7, 0, 0.9))->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(Sample, penalty_1_1, with(0.7, 0, 1.0, 1.1))->Unit(benchmark::kMicrosecond);

}  // namespace
