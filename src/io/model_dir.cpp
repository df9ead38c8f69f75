#include "io/model_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "io/safetensors.h"

namespace hessgpt {

namespace fs = std::filesystem;

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) HG_FAIL("cannot open '", path, "' to sync it");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) HG_FAIL("fsync failed for '", path, "'");
}

void save_model_dir(const Model& model, const std::string& dir) {
  fs::create_directories(dir);
  const std::vector<float> values = model.params_host();
  std::vector<SafetensorsTensor> tensors;
  for (const ParamInfo& p : model.layout().params)
    tensors.push_back({p.name, DType::F32, p.shape, values.data() + p.offset});
  const std::string weights = (fs::path(dir) / "model.safetensors").string();
  const std::string config = (fs::path(dir) / "config.json").string();
  write_safetensors(weights + ".tmp", tensors, {{"format", "pt"}, {"producer", "hessgpt"}});
  fsync_path(weights + ".tmp");
  save_config_file(model.config(), config + ".tmp");
  fsync_path(config + ".tmp");
  fs::rename(weights + ".tmp", weights);
  fs::rename(config + ".tmp", config);
  fsync_path(dir);
}

std::vector<float> read_param_values(const std::string& path, const ParamLayout& layout) {
  SafetensorsReader reader(path);
  std::vector<float> values(static_cast<size_t>(layout.total));
  for (const ParamInfo& p : layout.params) {
    const SafetensorsEntry& e = reader.at(p.name);
    if (e.shape != p.shape) {
      std::string got, want;
      for (int64_t d : e.shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
      for (int64_t d : p.shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
      HG_FAIL(path, ": tensor '", p.name, "' has shape [", got, "] but the config needs [",
              want, "]");
    }
    const std::vector<float> v = reader.read_float(p.name);
    std::copy(v.begin(), v.end(), values.begin() + p.offset);
  }
  for (const auto& [name, entry] : reader.entries())
    if (!layout.find(name))
      HG_FAIL(path, ": unexpected tensor '", name, "' (not part of this model config)");
  return values;
}

void load_model_weights(Model& model, const std::string& path) {
  model.set_params_host(read_param_values(path, model.layout()));
}

std::unique_ptr<Model> load_model_dir(const std::string& dir, Backend& backend, DType dtype) {
  if (!fs::is_directory(dir)) HG_FAIL("checkpoint '", dir, "' is not a directory");
  const std::string config_path = (fs::path(dir) / "config.json").string();
  const std::string weights_path = (fs::path(dir) / "model.safetensors").string();
  if (!fs::exists(config_path)) HG_FAIL("checkpoint '", dir, "' has no config.json");
  if (!fs::exists(weights_path)) HG_FAIL("checkpoint '", dir, "' has no model.safetensors");
  auto model = std::make_unique<Model>(load_config_file(config_path), backend, dtype);
  load_model_weights(*model, weights_path);
  return model;
}

}  // namespace hessgpt
