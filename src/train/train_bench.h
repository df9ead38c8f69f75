// Full training steps (forward, backward, AdamW) on random tokens, timed:
// the engine's throughput figure (hessgpt bench train).
#pragma once

#include <cstdint>
#include <functional>

#include "backend/backend.h"
#include "core/model_config.h"
#include "model/activations.h"

namespace hessgpt {

struct TrainBenchResult {
  double tokens_per_s = 0;
  double seconds_per_step = 0;
  double gflops_per_s = 0;      // model FLOPs (6 per parameter-token + attention) per second
  double flops_per_token = 0;
  double first_loss = 0, last_loss = 0;
  int64_t steps = 0;
};

// Training FLOPs per token: 6 x (non-embedding params + tied head) + causal attention.
double training_flops_per_token(const ModelConfig& config, int64_t seq);
// The same by PaLM's MFU formula (Chowdhery et al. 2022, appendix B; nanoGPT's
// estimate_mfu): attention's products counted over all seq keys, not the
// causal half, 6N + 12 L H Q T. Reported beside ours, which counts the work done.
double palm_flops_per_token(const ModelConfig& config, int64_t seq);

// memory: Model::set_memory_options. on_timed(true) runs right before the
// timed steps, on_timed(false) right after them (a profiler's window).
TrainBenchResult run_train_bench(const ModelConfig& config, Backend& backend, int64_t batch,
                                 int64_t seq, int64_t steps, int64_t warmup, uint64_t seed,
                                 const MemoryOptions& memory = {},
                                 const std::function<void(bool)>& on_timed = {});

}  // namespace hessgpt
