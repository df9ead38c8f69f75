// Shared setup for the inference tests: small random models with weights
// large enough that attention is far from uniform (N(0, 0.02) is nearly flat).
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "core/rng.h"
#include "model/model.h"

namespace hessgpt::testing {

inline ModelConfig tiny_config(int64_t max_positions = 64) {
  ModelConfig c = preset_config("tiny");
  c.max_position_embeddings = max_positions;
  return c;
}

inline std::unique_ptr<Model> random_model(const ModelConfig& c, Backend& be, uint64_t seed,
                                           double matrix_std = 0.08) {
  auto m = std::make_unique<Model>(c, be);
  m->init_random(seed);
  std::vector<float> p = m->params_host();
  Rng rng(seed + 100);
  for (const ParamInfo& info : m->layout().params)
    for (int64_t i = 0; i < info.numel; ++i) {
      float& x = p[static_cast<size_t>(info.offset + i)];
      x = info.kind == ParamKind::Norm ? static_cast<float>(1.0 + 0.2 * rng.normal())
                                       : static_cast<float>(matrix_std * rng.normal());
    }
  m->set_params_host(p);
  return m;
}

// max |a - b| / max(1, max |b|) over one position's logits.
inline double rel_err(const float* a, const float* b, int64_t n) {
  double diff = 0.0, scale = 1.0;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
  }
  return diff / scale;
}

inline std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab)));
  return ids;
}

// Soft-capped logits [n, V] of the full (uncached) forward pass.
inline std::vector<float> full_logits(Model& m, const std::vector<int32_t>& ids) {
  const int64_t n = static_cast<int64_t>(ids.size());
  std::vector<float> logits(static_cast<size_t>(n * m.config().vocab_size));
  m.evaluate(ids.data(), nullptr, 1, n, logits.data());
  return logits;
}

}  // namespace hessgpt::testing
