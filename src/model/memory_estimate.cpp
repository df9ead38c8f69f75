#include "model/memory_estimate.h"

#include <cstdio>

#include "model/activations.h"
#include "model/weight_copies.h"

namespace hessgpt {

TrainingMemory estimate_training_memory(const ModelConfig& config, int64_t batch, int64_t seq,
                                        DType dtype, const MemoryOptions& memory) {
  TrainingMemory m;
  const size_t params = static_cast<size_t>(config.parameter_count());
  m.weights = params * dtype_size(dtype);
  m.gradients = params * dtype_size(dtype);
  m.optimizer = 2 * params * dtype_size(dtype);
  ArenaOptions o;
  o.memory = effective_memory_options(memory, dtype, nullptr);
  o.join_gate_up = o.memory.bf16_activations;  // as Model::prepare does by default
  o.bf16_logits = bf16_logits_wanted(o.memory);
  m.activations = activation_bytes(config, batch, seq, dtype, o);
  // The products' BF16 copies of the matrices (weight_copies.h): BF16
  // activations need BF16 products (check_memory_options).
  if (o.memory.bf16_activations)
    m.weights += WeightCopies(config, make_param_layout(config)).bytes();
  return m;
}

std::string memory_advice(const ModelConfig& config, int64_t batch, int64_t seq,
                          const MemoryOptions& memory, bool bf16_products) {
  const auto gib = [](size_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
    return std::string(text);
  };
  const auto needs = [&](const MemoryOptions& o) {
    return gib(estimate_training_memory(config, batch, seq, DType::F32, o).total());
  };
  std::string advice;
  MemoryOptions more = memory;
  if (!memory.recompute && !memory.recompute_mlp) {
    more.recompute_mlp = true;
    advice += "--recompute-mlp needs " + needs(more) + "; ";
  }
  more.recompute = true;
  if (!memory.recompute) advice += "--recompute needs " + needs(more) + "; ";
  const std::string prefix = memory.recompute ? "" : "--recompute ";
  if (bf16_products && !memory.bf16_activations) {
    more.bf16_activations = true;
    advice += prefix + "--bf16-activations needs " + needs(more) + "; ";
  } else if (!bf16_products && !memory.bf16_ffn && !memory.bf16_activations) {
    more.bf16_ffn = true;
    advice += prefix + "--bf16-ffn needs " + needs(more) + "; ";
  }
  return advice + "or lower --batch (raise --accum to keep the tokens per step) or --seq";
}

void check_memory_options(const MemoryOptions& memory, const Backend& backend) {
  if (memory.bf16_activations && backend.matmul_precision() != MatmulPrecision::BF16)
    HG_FAIL("--bf16-activations needs --precision bf16: it keeps in BF16 the inputs that BF16 "
            "products round anyway (with FP32 products, --bf16-ffn saves memory without that)");
}

TrainingMemory estimate_lora_training_memory(const ModelConfig& config, const LoraConfig& lora,
                                             int64_t batch, int64_t seq, DType dtype,
                                             const MemoryOptions& memory) {
  TrainingMemory m;
  const size_t adapters = static_cast<size_t>(make_lora_layout(config, lora).params.total);
  m.weights = (static_cast<size_t>(config.parameter_count()) + adapters) * dtype_size(dtype);
  m.gradients = adapters * dtype_size(dtype);
  m.optimizer = 2 * adapters * dtype_size(dtype);
  ArenaOptions o;
  o.lora = {lora.rank, lora.target_mask()};
  o.memory = effective_memory_options(memory, dtype, &lora);
  m.activations = activation_bytes(config, batch, seq, dtype, o);
  return m;
}

}  // namespace hessgpt
