// What a training step needs in memory, from the config and the micro-batch,
// so users can size a run before starting it (hessgpt info, pretrain).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/model_config.h"
#include "core/tensor.h"
#include "model/activations.h"
#include "model/lora.h"

namespace hessgpt {

struct TrainingMemory {
  size_t weights = 0;
  size_t gradients = 0;
  size_t optimizer = 0;    // AdamW first and second moments
  size_t activations = 0;  // the arena of one micro-batch, backward scratch included
  size_t total() const { return weights + gradients + optimizer + activations; }
};

// recompute and bf16_ffn: Model::set_recompute and Model::set_bf16_ffn.
TrainingMemory estimate_training_memory(const ModelConfig& config, int64_t batch, int64_t seq,
                                        DType dtype = DType::F32, bool recompute = false,
                                        bool bf16_ffn = false);

// What would make a training step smaller, with the estimate of each: the
// memory options not in use yet (--recompute, --bf16-ffn), then the batch.
std::string memory_advice(const ModelConfig& config, int64_t batch, int64_t seq, bool recompute,
                          bool bf16_ffn);

// LoRA fine-tuning: the frozen base has no gradients or optimizer state; the
// adapters have both, and the arena keeps each adapter's x A^T.
TrainingMemory estimate_lora_training_memory(const ModelConfig& config, const LoraConfig& lora,
                                             int64_t batch, int64_t seq, DType dtype = DType::F32,
                                             bool recompute = false, bool bf16_ffn = false);

}  // namespace hessgpt
