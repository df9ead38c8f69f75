// Shared by the LoRA tests: a model with random base and adapter weights, and
// a random batch with some ignored targets.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "model/model.h"

namespace hessgpt::lora_test {

// Random base and adapters (B non-zero, so that the adapter path and A's
// gradient are not trivially 0). Norm weights stay near 1.
inline void randomise(Model& m, uint64_t seed, double scale) {
  Rng rng(seed);
  std::vector<float> w(static_cast<size_t>(m.layout().total));
  for (auto& x : w) x = static_cast<float>(rng.normal() * scale);
  for (const ParamInfo& p : m.layout().params)
    if (p.kind == ParamKind::Norm)
      for (int64_t i = 0; i < p.numel; ++i) w[p.offset + i] = 1.0f + w[p.offset + i];
  m.set_params_host(w);
  if (m.has_lora()) {
    std::vector<float> a(static_cast<size_t>(m.lora_layout().total));
    for (auto& x : a) x = static_cast<float>(rng.normal() * scale);
    m.set_lora_params_host(a);
  }
}

struct Batch {
  std::vector<int32_t> ids, targets;
};

// Ids below 512 (the tiny preset's vocabulary); every 4th target ignored.
inline Batch random_batch(int64_t n, uint64_t seed) {
  Rng rng(seed);
  Batch b;
  for (int64_t i = 0; i < n; ++i) {
    b.ids.push_back(static_cast<int32_t>(rng.below(512)));
    b.targets.push_back(i % 4 == 1 ? -100 : static_cast<int32_t>(rng.below(512)));
  }
  return b;
}

}  // namespace hessgpt::lora_test
