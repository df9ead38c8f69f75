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

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const int64_t v = static_cast<int64_t>(logits.size());
  HG_CHECK(v > 0, "sample: empty logits");
  work_.assign(logits.begin(), logits.end());
  for (int32_t id : o_.banned)
    if (id >= 0 && id < v) work_[static_cast<size_t>(id)] = -std::numeric_limits<float>::infinity();
  if (o_.repetition_penalty != 1.0) {
    const float r = static_cast<float>(o_.repetition_penalty);
    std::vector<bool> seen(static_cast<size_t>(v), false);
    for (int32_t id : history) {
      if (id < 0 || id >= v || seen[static_cast<size_t>(id)]) continue;
      seen[static_cast<size_t>(id)] = true;
      float& z = work_[static_cast<size_t>(id)];
      z = z > 0.0f ? z / r : z * r;
    }
  }
  if (o_.temperature == 0.0)  // greedy; ties go to the lowest id
    return static_cast<int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin());

  // Candidates sorted by logit (descending; ties by id, so the order is stable).
  order_.resize(static_cast<size_t>(v));
  std::iota(order_.begin(), order_.end(), 0);
  const auto better = [this](int32_t a, int32_t b) {
    const float za = work_[static_cast<size_t>(a)], zb = work_[static_cast<size_t>(b)];
    return za > zb || (za == zb && a < b);
  };
  int64_t keep = v;
  if (o_.top_k > 0 && o_.top_k < v) {
    keep = o_.top_k;
    std::partial_sort(order_.begin(), order_.begin() + keep, order_.end(), better);
  } else {
    std::sort(order_.begin(), order_.end(), better);
  }
  const double inv_t = 1.0 / o_.temperature;
  const double zmax = work_[static_cast<size_t>(order_[0])];
  probs_.resize(static_cast<size_t>(keep));
  double total = 0.0;
  for (int64_t i = 0; i < keep; ++i) {
    probs_[static_cast<size_t>(i)] =
        std::exp((work_[static_cast<size_t>(order_[static_cast<size_t>(i)])] - zmax) * inv_t);
    total += probs_[static_cast<size_t>(i)];
  }
  if (o_.top_p < 1.0) {
    double cum = 0.0;
    int64_t n = 0;
    while (n < keep) {
      cum += probs_[static_cast<size_t>(n)] / total;
      ++n;
      if (cum >= o_.top_p) break;
    }
    keep = n;
    total = 0.0;
    for (int64_t i = 0; i < keep; ++i) total += probs_[static_cast<size_t>(i)];
  }
  double u = rng_.uniform() * total;
  for (int64_t i = 0; i < keep; ++i) {
    u -= probs_[static_cast<size_t>(i)];
    if (u < 0.0) return order_[static_cast<size_t>(i)];
  }
  return order_[static_cast<size_t>(keep - 1)];  // rounding at the very end
}

}  // namespace hessgpt::infer
