#include "model/memory_estimate.h"

#include <cstdio>

#include "model/activations.h"

namespace hessgpt {

TrainingMemory estimate_training_memory(const ModelConfig& config, int64_t batch, int64_t seq,
                                        DType dtype, bool recompute, bool bf16_ffn) {
  TrainingMemory m;
  const size_t params = static_cast<size_t>(config.parameter_count());
  m.weights = params * dtype_size(dtype);
  m.gradients = params * dtype_size(dtype);
  m.optimizer = 2 * params * dtype_size(dtype);
  ArenaOptions o;
  o.recompute = recompute;
  o.bf16_ffn = bf16_ffn;
  m.activations = activation_bytes(config, batch, seq, dtype, o);
  return m;
}

std::string memory_advice(const ModelConfig& config, int64_t batch, int64_t seq, bool recompute,
                          bool bf16_ffn) {
  const auto gib = [](size_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
    return std::string(text);
  };
  std::string advice;
  if (!recompute)
    advice += "--recompute needs " + gib(estimate_training_memory(config, batch, seq, DType::F32, true, bf16_ffn).total()) + "; ";
  if (!bf16_ffn)
    advice += std::string(recompute ? "--bf16-ffn" : "--recompute --bf16-ffn") + " needs " +
              gib(estimate_training_memory(config, batch, seq, DType::F32, true, true).total()) + "; ";
  return advice + "or lower --batch (raise --accum to keep the tokens per step) or --seq";
}

TrainingMemory estimate_lora_training_memory(const ModelConfig& config, const LoraConfig& lora,
                                             int64_t batch, int64_t seq, DType dtype,
                                             bool recompute, bool bf16_ffn) {
  TrainingMemory m;
  const size_t adapters = static_cast<size_t>(make_lora_layout(config, lora).params.total);
  m.weights = (static_cast<size_t>(config.parameter_count()) + adapters) * dtype_size(dtype);
  m.gradients = adapters * dtype_size(dtype);
  m.optimizer = 2 * adapters * dtype_size(dtype);
  ArenaOptions o;
  o.lora = {lora.rank, lora.target_mask()};
  o.recompute = recompute;
  o.bf16_ffn = bf16_ffn && !lora.adapts_gate_or_up();
  m.activations = activation_bytes(config, batch, seq, dtype, o);
  return m;
}

}  // namespace hessgpt
