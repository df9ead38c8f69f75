// Training checkpoints: RUN/checkpoints/step_<N>/ holding the weights
// (model.safetensors + config.json, loadable as a model directory), the AdamW
// moments (optimizer.safetensors) and state.json (step, data position,
// schedule, history, run config, and a size + XXH64 checksum of every file).
//
// Atomicity: everything is written into checkpoints/.tmp-step_<N>, each file
// fsynced, then the folder is renamed and the parent fsynced. A folder named
// step_<N> is therefore complete; an interrupted write leaves only a .tmp-
// folder, which resume ignores and removes.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "train/optimizer.h"

namespace hessgpt {

// Saves a checkpoint at optimizer step `step`, then deletes all but the newest
// keep_last step_* folders (keep_last <= 0 keeps all). Returns its path.
std::string save_training_checkpoint(const std::string& run_dir, int64_t step, const Model& model,
                                     const AdamW& optimizer, const nlohmann::json& state,
                                     int keep_last);

// The newest complete checkpoint folder of a run, if any (removes stale .tmp- folders).
std::optional<std::string> find_latest_checkpoint(const std::string& run_dir);

// Verifies sizes and checksums, then restores weights and AdamW moments and
// step count. Returns state.json. Throws Error naming the file on corruption.
nlohmann::json load_training_checkpoint(const std::string& checkpoint_dir, Model& model,
                                        AdamW& optimizer);

// Reads only state.json (e.g. to compare run configurations before building a model).
nlohmann::json read_checkpoint_state(const std::string& checkpoint_dir);

}  // namespace hessgpt
