// Supervised fine-tuning on chat conversations (SPEC §3-4): LoRA adapters on a
// frozen base (or --full), optional YaRN context extension, loss on assistant
// tokens only, dynamic padding, and the pretraining loop's qualities: WSD
// schedule, validation, atomic checkpoints, exact resume, metrics and progress.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "dist/communicator.h"
#include "core/model_config.h"
#include "model/activations.h"

namespace hessgpt {

struct SftConfig {
  std::string base_dir;
  std::string data_path;
  std::string eval_path;       // empty: hold out eval_fraction of data_path
  double eval_fraction = 0.05;
  std::string run_dir;
  std::string tokenizer_path;  // empty: the default tokenizer
  bool full = false;           // full fine-tuning instead of LoRA
  int64_t lora_rank = 16;
  double lora_alpha = 0;       // 0: 2 x rank
  // 0 by default: p = 0 runs stay bit-identical to runs from before dropout existed.
  double lora_dropout = 0;
  std::vector<std::string> lora_targets = {"q", "k", "v", "o", "gate", "up"};
  double yarn = 0;             // > 1: enable YaRN with this factor
  int64_t seq = 0;             // longest sequence; 0: the (extended) context
  std::string overflow = "truncate";  // or "drop"
  int64_t steps = 0;           // 0: epochs over the training conversations
  int64_t epochs = 1;
  int64_t batch = 8;
  int64_t accum = 1;
  double lr = 1e-4;
  double warmup_fraction = 0.03, decay_fraction = 0.15, lr_floor_fraction = 0.10;
  double weight_decay = 0.0;
  double clip_norm = 1.0;
  int64_t eval_every = 100, eval_batches = 20, save_every = 100, log_every = 1;
  int keep_last = 3;
  uint64_t seed = 1234;
  MemoryOptions memory;        // recomputation, BF16 storage (model/activations.h)
  int64_t stop_after = 0;      // stop as if interrupted (tests)
  int ranks = 1;               // data-parallel ranks (set by run_sft from its communicator)

  // Conversations in one micro-batch over all ranks.
  int64_t global_batch() const { return batch * ranks; }

  void validate() const;
  nlohmann::json identity() const;
};

struct SftResult {
  int64_t steps_done = 0, resumed_from = 0;
  double last_loss = 0, last_val_loss = 0;
  int64_t trainable_parameters = 0;
  bool completed = false;
};

SftResult run_sft(const SftConfig& config, Backend& backend);
// Data parallel over comm's ranks, as run_pretrain (train/pretrain.h): --batch
// is per rank, rank r trains rows [r batch, (r+1) batch) of each global
// micro-batch (drawn and grouped by length as one process at batch x ranks
// would), and the loss is normalised by the step's trained tokens over all
// ranks. Only rank 0 writes the run directory.
SftResult run_sft(const SftConfig& config, Backend& backend, dist::Communicator& comm);

// The base config with YaRN switched on: factor s over the base's context.
ModelConfig with_yarn(const ModelConfig& base, double factor);

}  // namespace hessgpt
