#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace hessgpt::infer {

void SamplingOptions::validate() const {
  if (!(temperature >= 0.0) || !std::isfinite(temperature))
    HG_FAIL("temperature must be >= 0 (got ", temperature, ")");
  if (top_k < 0) HG_FAIL("top-k must be >= 0 (got ", top_k, ")");
  if (!(top_p > 0.0 && top_p <= 1.0)) HG_FAIL("top-p must be in (0, 1] (got ", top_p, ")");
  if (!(repetition_penalty > 0.0) || !std::isfinite(repetition_penalty))
    HG_FAIL("repetition penalty must be > 0 (got ", repetition_penalty, ")");
  for (int32_t id : banned)
    if (id < 0) HG_FAIL("banned token ids must be >= 0 (got ", id, ")");
}

Sampler::Sampler(const SamplingOptions& options) : o_(options), rng_(options.seed) {
  o_.validate();
}

namespace {

// The first id of the largest logit: a vectorised max, then its first place
// (std::max_element's compare-and-branch per value took ~25 us of a token).
int32_t first_argmax(std::span<const float> z) {
  float m = z[0];
#pragma omp simd reduction(max : m)
  for (size_t i = 1; i < z.size(); ++i) m = z[i] > m ? z[i] : m;
  auto at = std::find(z.begin(), z.end(), m);
  if (at == z.end()) at = std::max_element(z.begin(), z.end());  // a NaN took the max
  return static_cast<int32_t>(at - z.begin());
}

}  // namespace

std::span<const float> Sampler::adjusted(std::span<const float> logits,
                                        std::span<const int32_t> history) {
  const int64_t v = static_cast<int64_t>(logits.size());
  if (o_.banned.empty() && o_.repetition_penalty == 1.0) return logits;
  work_.assign(logits.begin(), logits.end());
  for (int32_t id : o_.banned)
    if (id >= 0 && id < v) work_[static_cast<size_t>(id)] = -std::numeric_limits<float>::infinity();
  if (o_.repetition_penalty != 1.0) {
    const float r = static_cast<float>(o_.repetition_penalty);
    seen_.assign(static_cast<size_t>(v), false);
    for (int32_t id : history) {
      if (id < 0 || id >= v || seen_[static_cast<size_t>(id)]) continue;
      seen_[static_cast<size_t>(id)] = true;
      float& z = work_[static_cast<size_t>(id)];
      z = z > 0.0f ? z / r : z * r;
    }
  }
  return work_;
}

void Sampler::sort_candidates(std::span<const float> z, int64_t from, int64_t to) {
  const auto better = [z](int32_t a, int32_t b) {
    const float za = z[static_cast<size_t>(a)], zb = z[static_cast<size_t>(b)];
    return za > zb || (za == zb && a < b);
  };
  // A heap of the next (to - from): cheaper than a selection for the few that
  // top-k and a nucleus take.
  std::partial_sort(order_.begin() + from, order_.begin() + to, order_.end(), better);
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  HG_CHECK(!logits.empty(), "sample: empty logits");
  const std::span<const float> z = adjusted(logits, history);
  if (o_.temperature == 0.0) return first_argmax(z);  // greedy; ties go to the lowest id
  if (o_.top_k == 0 && o_.top_p >= 1.0) return draw_from_all(z);
  return draw_from_best(z);
}

Sampler::Weight Sampler::weights(std::span<const float> z, float zmax) const {
  return {z, zmax, static_cast<float>(1.0 / o_.temperature)};
}

// Every id stays a candidate: no order is needed, the draw walks the ids.
int32_t Sampler::draw_from_all(std::span<const float> z) {
  const auto v = static_cast<int32_t>(z.size());
  const Weight weight = weights(z, z[static_cast<size_t>(first_argmax(z))]);
  probs_.resize(z.size());
  double total = 0.0;
  for (int32_t id = 0; id < v; ++id) total += probs_[static_cast<size_t>(id)] = weight(id);
  double u = rng_.uniform() * total;
  int32_t last = 0;
  for (int32_t id = 0; id < v; ++id) {
    if (probs_[static_cast<size_t>(id)] <= 0.0) continue;
    last = id;
    u -= probs_[static_cast<size_t>(id)];
    if (u < 0.0) return id;
  }
  return last;  // rounding at the very end
}

// Candidates by logit, best first (ties by id, so the order is stable),
// sorted only as far as needed: top-k's k of them, and top-p's nucleus,
// sorted further as it grows.
int32_t Sampler::draw_from_best(std::span<const float> z) {
  const auto v = static_cast<int64_t>(z.size());
  const int64_t keep_k = o_.top_k > 0 && o_.top_k < v ? o_.top_k : v;
  order_.resize(z.size());
  std::iota(order_.begin(), order_.end(), 0);
  int64_t sorted = 0;
  const auto sort_to = [&](int64_t n) {
    sort_candidates(z, sorted, n);
    sorted = n;
  };
  if (keep_k < v) sort_to(keep_k);  // the best first: the max for free
  const int32_t best = keep_k < v ? order_[0] : first_argmax(z);
  const Weight weight = weights(z, z[static_cast<size_t>(best)]);
  double total = 0.0;  // of the top-k candidates (all ids without top-k)
  if (keep_k < v) {
    for (int64_t i = 0; i < keep_k; ++i) total += weight(order_[static_cast<size_t>(i)]);
  } else {
    for (int32_t id = 0; id < v; ++id) total += weight(id);
  }
  probs_.clear();
  double kept = 0.0;
  int64_t keep = 0;
  while (keep < keep_k) {
    if (keep == sorted) sort_to(std::min(keep_k, std::max<int64_t>(64, 4 * sorted)));
    kept += probs_.emplace_back(weight(order_[static_cast<size_t>(keep)]));
    ++keep;
    if (o_.top_p < 1.0 && kept / total >= o_.top_p) break;
  }
  double u = rng_.uniform() * kept;
  for (int64_t i = 0; i < keep; ++i) {
    u -= probs_[static_cast<size_t>(i)];
    if (u < 0.0) return order_[static_cast<size_t>(i)];
  }
  return order_[static_cast<size_t>(keep - 1)];  // rounding at the very end
}

}  // namespace hessgpt::infer
