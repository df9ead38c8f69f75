// Next-token choice from one row of logits: greedy (temperature 0) or
// sampling with temperature, top-k, top-p (nucleus) and a repetition penalty,
// drawn from a seeded Rng so a seed always gives the same text.
//
// Order of operations (as in HF transformers): repetition penalty on the raw
// logits (positive / r, negative * r, each distinct earlier id once), then
// temperature, top-k, softmax, top-p (the smallest set of most likely ids
// whose probability reaches p), renormalise, draw.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/rng.h"

namespace hessgpt::infer {

struct SamplingOptions {
  double temperature = 0.7;        // 0: greedy
  int64_t top_k = 0;               // 0: off
  double top_p = 1.0;              // 1: off
  double repetition_penalty = 1.0; // 1: off
  uint64_t seed = 0;
  // Ids never sampled (their logits are treated as -inf), e.g. the routing
  // tokens when Model 1 must answer without Model 2.
  std::vector<int32_t> banned;
  // Throws Error naming the field when out of range.
  void validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // history: the ids the penalty applies to (prompt and generated so far).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

 private:
  SamplingOptions o_;
  Rng rng_;
  std::vector<float> work_;
  std::vector<int32_t> order_;
  std::vector<double> probs_;
};

}  // namespace hessgpt::infer
