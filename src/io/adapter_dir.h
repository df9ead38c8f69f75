// LoRA adapter folders, PEFT-style: adapter_config.json (r, lora_alpha,
// lora_dropout, target_modules, base_model_name_or_path) + adapter_model.safetensors
// (model.layers.N.<module>.lora_A.weight / lora_B.weight, F32).
#pragma once

#include <string>

#include "model/model.h"

namespace hessgpt {

// Writes the model's adapters (it must have LoRA enabled). Files are written
// to temporary names, flushed and renamed.
void save_adapter_dir(const Model& model, const std::string& dir, const std::string& base_path);

// Reads adapter_config.json into a LoraConfig (errors name the field).
LoraConfig load_adapter_config(const std::string& dir);

// Enables LoRA on the model as the folder describes and loads its weights;
// every tensor must be present with the right shape.
void load_adapter_dir(Model& model, const std::string& dir);

// Loads adapter weights into a model whose LoRA is already enabled the same way.
void load_adapter_weights(Model& model, const std::string& safetensors_path);

}  // namespace hessgpt
