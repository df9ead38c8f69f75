#include "io/adapter_dir.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/model_dir.h"
#include "io/safetensors.h"

namespace hessgpt {

namespace fs = std::filesystem;

void save_adapter_dir(const Model& model, const std::string& dir, const std::string& base_path) {
  HG_CHECK(model.has_lora(), "the model has no adapters to save");
  fs::create_directories(dir);
  const LoraConfig& lc = model.lora_config();
  const std::vector<float> values = model.lora_params_host();
  std::vector<SafetensorsTensor> tensors;
  for (const ParamInfo& p : model.lora_layout().params)
    tensors.push_back({p.name, DType::F32, p.shape, values.data() + p.offset});
  const std::string weights = (fs::path(dir) / "adapter_model.safetensors").string();
  write_safetensors(weights + ".tmp", tensors, {{"format", "pt"}, {"producer", "hessgpt"}});
  fsync_path(weights + ".tmp");
  nlohmann::json modules = nlohmann::json::array();
  for (const std::string& t : lc.targets) modules.push_back(t.ends_with("_proj") ? t : t + "_proj");
  const nlohmann::json config = {{"peft_type", "LORA"},
                                 {"r", lc.rank},
                                 {"lora_alpha", lc.alpha > 0 ? lc.alpha : 2.0 * static_cast<double>(lc.rank)},
                                 {"lora_dropout", lc.dropout},
                                 {"target_modules", modules},
                                 {"base_model_name_or_path", base_path},
                                 {"bias", "none"}};
  const std::string config_path = (fs::path(dir) / "adapter_config.json").string();
  {
    std::ofstream out(config_path + ".tmp");
    out << config.dump(2) << "\n";
    if (!out) HG_FAIL("failed writing '", config_path, "'");
  }
  fsync_path(config_path + ".tmp");
  fs::rename(weights + ".tmp", weights);
  fs::rename(config_path + ".tmp", config_path);
}

LoraConfig load_adapter_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "adapter_config.json").string();
  std::ifstream in(path);
  if (!in) HG_FAIL("'", dir, "' has no adapter_config.json (not a LoRA adapter folder)");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    HG_FAIL(path, " is not valid JSON: ", e.what());
  }
  LoraConfig lc;
  try {
    lc.rank = j.at("r").get<int64_t>();
    lc.alpha = j.at("lora_alpha").get<double>();
    lc.targets = j.at("target_modules").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    HG_FAIL(path, ": missing or mistyped field (r, lora_alpha, target_modules): ", e.what());
  }
  // Optional: a training-time setting that merging and inference ignore.
  if (j.contains("lora_dropout")) {
    if (!j["lora_dropout"].is_number()) HG_FAIL(path, ": field lora_dropout must be a number");
    lc.dropout = j["lora_dropout"].get<double>();
  }
  lc.validate();
  return lc;
}

void load_adapter_dir(Model& model, const std::string& dir) {
  model.enable_lora(load_adapter_config(dir), 0);
  load_adapter_weights(model, (fs::path(dir) / "adapter_model.safetensors").string());
}

void load_adapter_weights(Model& model, const std::string& path) {
  HG_CHECK(model.has_lora(), "enable LoRA before loading adapter weights");
  SafetensorsReader reader(path);
  std::vector<float> values(static_cast<size_t>(model.lora_layout().total));
  for (const ParamInfo& p : model.lora_layout().params) {
    const SafetensorsEntry& e = reader.at(p.name);
    if (e.shape != p.shape)
      HG_FAIL(path, ": tensor '", p.name, "' does not match the base model's shape");
    const std::vector<float> v = reader.read_float(p.name);
    std::copy(v.begin(), v.end(), values.begin() + p.offset);
  }
  if (reader.entries().size() != model.lora_layout().params.size())
    HG_FAIL(path, " holds tensors that adapter_config.json does not describe");
  model.set_lora_params_host(values);
}

}  // namespace hessgpt
