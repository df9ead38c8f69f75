// The pretraining loop (SPEC §4): chunk epochs over a prepared dataset,
// WSD schedule, gradient accumulation, clipping, validation, atomic
// checkpoints, exact resume, a metrics log and terminal progress.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "dist/communicator.h"
#include "core/model_config.h"
#include "model/activations.h"

namespace hessgpt {

struct PretrainConfig {
  std::string model = "small";  // preset or config.json
  std::string data_dir;
  std::string run_dir;
  int64_t steps = 0;            // 0: one pass over every chunk's train split
  int64_t batch = 32;
  int64_t accum = 4;
  int64_t seq = 1024;
  double lr = 4e-4;
  double warmup_fraction = 0.03;
  double decay_fraction = 0.15;
  double lr_floor_fraction = 0.10;
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double clip_norm = 1.0;
  int64_t eval_every = 500;
  int64_t eval_batches = 50;
  int64_t save_every = 500;     // 0: only at the end
  int keep_last = 3;
  int64_t log_every = 1;
  uint64_t seed = 1234;
  bool recompute = false;         // MemoryOptions (model/activations.h)
  bool bf16_ffn = false;
  bool bf16_activations = false;
  bool recompute_mlp = false;
  int max_bad_steps = 5;        // consecutive non-finite steps before giving up
  int64_t stop_after = 0;       // stop (as if killed) after this step; for tests
  bool resume = false;          // informational: resuming is automatic
  int ranks = 1;                // data-parallel ranks (set by run_pretrain from its communicator)

  // Sequences in one micro-batch over all ranks.
  int64_t global_batch() const { return batch * ranks; }

  MemoryOptions memory() const { return {recompute, bf16_ffn, bf16_activations, recompute_mlp}; }
  void validate() const;
  // The fields that must match for a resume to continue the same run.
  nlohmann::json identity() const;
};

struct PretrainResult {
  int64_t steps_done = 0;
  int64_t resumed_from = 0;
  double last_loss = 0;
  double last_val_loss = 0;
  int64_t skipped_steps = 0;
  bool completed = false;
};

// Runs (or resumes) the run in config.run_dir. Throws Error for bad input,
// a run that cannot fit in memory, or repeated non-finite steps.
PretrainResult run_pretrain(const PretrainConfig& config, Backend& backend);
// Data parallel over comm's ranks (dist/communicator.h): --batch is each
// rank's micro-batch, so a step holds batch x accum x ranks sequences; rank r
// trains on rows [r batch, (r+1) batch) of each global micro-batch, which
// makes N ranks at --batch B the same run as one rank at --batch N*B. Only
// rank 0 writes the run directory (which every rank must see: resuming reads
// it on all of them).
PretrainResult run_pretrain(const PretrainConfig& config, Backend& backend,
                            dist::Communicator& comm);

}  // namespace hessgpt
