// A model directory: config.json + model.safetensors (SPEC §5 names), as
// written by init/pretrain/sft and read by every command that takes a model.
#pragma once

#include <memory>
#include <string>

#include "model/model.h"

namespace hessgpt {

// Writes DIR/config.json and DIR/model.safetensors (FP32). Each file is written
// to a temporary name, flushed and renamed, so a crash never leaves a torn file.
void save_model_dir(const Model& model, const std::string& dir);

// A safetensors file's values in the layout's order, checking that every
// expected tensor is present with the right shape and nothing unexpected is
// there (no model needed: exports read checkpoints this way).
std::vector<float> read_param_values(const std::string& safetensors_path,
                                     const ParamLayout& layout);

// Weights from a safetensors file into the model, checking that every expected
// tensor is present with the right shape and nothing unexpected is there.
void load_model_weights(Model& model, const std::string& safetensors_path);

// Reads DIR/config.json, builds the model on the backend and loads its weights.
std::unique_ptr<Model> load_model_dir(const std::string& dir, Backend& backend,
                                      DType dtype = DType::F32);

// fsync a file or directory by path (durability before a rename).
void fsync_path(const std::string& path);

}  // namespace hessgpt
