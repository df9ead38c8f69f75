// Next-token choice from one row of logits: greedy (temperature 0) or
// sampling with temperature, top-k, top-p (nucleus) and a repetition penalty,
// drawn from a seeded Rng so a seed always gives the same text.
//
// Order of operations (as in HF transformers): repetition penalty on the raw
// logits (positive / r, negative * r, each distinct earlier id once), then
// temperature, top-k, softmax, top-p (the smallest set of most likely ids
// whose probability reaches p), renormalise, draw. Candidates are sorted only
// as far as top-k and top-p need (none without either): a full sort of the
// 32008 ids took ~3 ms a token, more than a GPU's whole forward.
#pragma once

#include <cmath>
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
  // The logits after the bans and the repetition penalty (logits itself when
  // neither applies: no copy).
  std::span<const float> adjusted(std::span<const float> logits, std::span<const int32_t> history);
  // order_[from, to) = the next best candidates by z, in order, given that
  // order_[0, from) holds the best ones in order already.
  void sort_candidates(std::span<const float> z, int64_t from, int64_t to);
  // Each id's weight exp((z - max) / t), in float (its rounding, 6e-8 of a
  // weight, is far below what a draw can tell) and summed in double; 1 / t
  // worked out once a draw, not once an id.
  struct Weight {
    std::span<const float> z;
    float zmax, inv_t;
    double operator()(int32_t id) const {
      return static_cast<double>(std::exp((z[static_cast<size_t>(id)] - zmax) * inv_t));
    }
  };
  Weight weights(std::span<const float> z, float zmax) const;
  int32_t draw_from_all(std::span<const float> z);   // no top-k, no top-p
  int32_t draw_from_best(std::span<const float> z);  // top-k and/or top-p

  SamplingOptions o_;
  Rng rng_;
  std::vector<float> work_;
  std::vector<bool> seen_;
  std::vector<int32_t> order_;
  std::vector<double> probs_;
};

}  // namespace hessgpt::infer
