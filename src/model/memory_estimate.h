// What a training step needs in memory, from the config and the micro-batch,
// so users can size a run before starting it (hessgpt info, pretrain).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "core/model_config.h"
#include "core/tensor.h"
#include "model/activations.h"
#include "model/lora.h"

namespace hessgpt {

struct TrainingMemory {
  size_t weights = 0;      // and their BF16 copies for the products (weight_copies.h)
  size_t gradients = 0;
  size_t optimizer = 0;    // AdamW first and second moments
  size_t activations = 0;  // the arena of one micro-batch, backward scratch included
  size_t total() const { return weights + gradients + optimizer + activations; }
};

// memory: Model::set_memory_options (BF16 storage counts for F32 models only).
TrainingMemory estimate_training_memory(const ModelConfig& config, int64_t batch, int64_t seq,
                                        DType dtype = DType::F32, const MemoryOptions& memory = {});

// What would make a training step smaller, with the estimate of each: the
// memory options not in use yet (--recompute, then --bf16-activations, which
// needs BF16 products; --bf16-ffn where the products are FP32), then the batch.
std::string memory_advice(const ModelConfig& config, int64_t batch, int64_t seq,
                          const MemoryOptions& memory, bool bf16_products);

// Throws Error when the options cannot run on this backend as set up:
// --bf16-activations needs BF16 products (it stores what they round anyway).
void check_memory_options(const MemoryOptions& memory, const Backend& backend);

// LoRA fine-tuning: the frozen base has no gradients or optimizer state; the
// adapters have both, and the arena keeps each adapter's x A^T.
TrainingMemory estimate_lora_training_memory(const ModelConfig& config, const LoraConfig& lora,
                                             int64_t batch, int64_t seq, DType dtype = DType::F32,
                                             const MemoryOptions& memory = {});

}  // namespace hessgpt
