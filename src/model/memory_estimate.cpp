#include "model/memory_estimate.h"

#include "model/activations.h"

namespace hessgpt {

TrainingMemory estimate_training_memory(const ModelConfig& config, int64_t batch, int64_t seq,
                                        DType dtype, bool recompute) {
  TrainingMemory m;
  const size_t params = static_cast<size_t>(config.parameter_count());
  m.weights = params * dtype_size(dtype);
  m.gradients = params * dtype_size(dtype);
  m.optimizer = 2 * params * dtype_size(dtype);
  m.activations = activation_bytes(config, batch, seq, dtype, true, {}, recompute);
  return m;
}

TrainingMemory estimate_lora_training_memory(const ModelConfig& config, const LoraConfig& lora,
                                             int64_t batch, int64_t seq, DType dtype,
                                             bool recompute) {
  TrainingMemory m;
  const size_t adapters = static_cast<size_t>(make_lora_layout(config, lora).params.total);
  m.weights = (static_cast<size_t>(config.parameter_count()) + adapters) * dtype_size(dtype);
  m.gradients = adapters * dtype_size(dtype);
  m.optimizer = 2 * adapters * dtype_size(dtype);
  m.activations = activation_bytes(config, batch, seq, dtype, true,
                                   {lora.rank, lora.target_mask()}, recompute);
  return m;
}

}  // namespace hessgpt
