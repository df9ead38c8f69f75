#include "train/train_bench.h"

#include <chrono>
#include <vector>

#include "core/rng.h"
#include "model/memory_estimate.h"
#include "model/model.h"
#include "train/optimizer.h"

namespace hessgpt {

namespace {
// 6 per weight a token meets (the tied head once).
double dense_flops_per_token(const ModelConfig& c) {
  return 6.0 * static_cast<double>(c.non_embedding_parameter_count() +
                                   c.vocab_size * c.hidden_size);
}
// QK^T and PV over all seq keys: 2 matmuls x 2 FLOPs x seq x q_dim, x3 for fwd+bwd.
double full_attention_flops_per_token(const ModelConfig& c, int64_t seq) {
  return 3.0 * 2.0 * 2.0 * static_cast<double>(c.num_hidden_layers) *
         static_cast<double>(c.q_dim()) * static_cast<double>(seq);
}
}  // namespace

double training_flops_per_token(const ModelConfig& c, int64_t seq) {
  return dense_flops_per_token(c) + full_attention_flops_per_token(c, seq) / 2.0;  // causal half
}

double palm_flops_per_token(const ModelConfig& c, int64_t seq) {
  return dense_flops_per_token(c) + full_attention_flops_per_token(c, seq);
}

TrainBenchResult run_train_bench(const ModelConfig& config, Backend& backend, int64_t batch,
                                 int64_t seq, int64_t steps, int64_t warmup, uint64_t seed,
                                 const MemoryOptions& memory,
                                 const std::function<void(bool)>& on_timed) {
  check_memory_options(memory, backend);
  Model model(config, backend);
  model.set_memory_options(memory);
  model.init_random(seed);
  AdamW optimizer(model, AdamWConfig{});
  Rng rng(seed + 1);
  const int64_t n = batch * seq;
  std::vector<int32_t> ids(static_cast<size_t>(n)), targets(static_cast<size_t>(n));
  auto next_batch = [&] {
    for (int64_t i = 0; i < n; ++i) {
      ids[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(config.vocab_size)));
      targets[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(config.vocab_size)));
    }
  };
  TrainBenchResult r;
  auto one_step = [&] {
    next_batch();
    model.zero_grads();
    const LossSum loss = model.forward_backward(ids.data(), targets.data(), batch, seq,
                                                1.0 / static_cast<double>(n));
    optimizer.step(1e-4);
    backend.synchronize();
    return loss.mean();
  };
  for (int64_t i = 0; i < warmup; ++i) r.first_loss = one_step();
  if (on_timed) on_timed(true);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) r.last_loss = one_step();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (on_timed) on_timed(false);
  r.steps = steps;
  r.seconds_per_step = seconds / static_cast<double>(steps);
  r.tokens_per_s = static_cast<double>(n) / r.seconds_per_step;
  r.flops_per_token = training_flops_per_token(config, seq);
  r.gflops_per_s = r.tokens_per_s * r.flops_per_token / 1e9;
  return r;
}

}  // namespace hessgpt
