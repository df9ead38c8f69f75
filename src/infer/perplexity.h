// Mean next-token cross-entropy of a model in any weight format (FP32, BF16,
// INT8, INT4) over windows of token ids, through a decoder session's
// batched prefill: what quantisation costs, measured on the same windows.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>

#include "infer/session_interface.h"

namespace hessgpt::infer {

struct PerplexityResult {
  double nll_sum = 0.0;  // nats
  int64_t tokens = 0;    // targets scored
  double mean_nll() const { return tokens ? nll_sum / static_cast<double>(tokens) : 0.0; }
  double perplexity() const { return std::exp(mean_nll()); }
};

// inputs and targets hold whole windows of `window` ids (row-major); each
// window is scored from an empty cache (the session's capacity must hold
// it). Targets < 0 are not scored. Logits are the soft-capped ones, as in
// training's loss.
PerplexityResult evaluate_perplexity(Session& session, std::span<const int32_t> inputs,
                                     std::span<const int32_t> targets, int64_t window);

}  // namespace hessgpt::infer
