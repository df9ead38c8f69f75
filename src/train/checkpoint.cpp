#include "train/checkpoint.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "io/adapter_dir.h"
#include "io/model_dir.h"
#include "io/safetensors.h"

namespace hessgpt {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStepPrefix = "step_";
constexpr const char* kTmpPrefix = ".tmp-step_";

std::string file_checksum(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) HG_FAIL("cannot read '", path, "'");
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, 0);
  std::vector<char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) XXH64_update(state, buf.data(), n);
  std::fclose(f);
  const XXH64_hash_t h = XXH64_digest(state);
  XXH64_freeState(state);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

int64_t step_of(const fs::path& p) {
  const std::string name = p.filename().string();
  if (name.rfind(kStepPrefix, 0) != 0) return -1;
  try {
    return std::stoll(name.substr(std::string(kStepPrefix).size()));
  } catch (const std::exception&) {
    return -1;
  }
}

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const int64_t s = step_of(e.path());
    if (e.is_directory() && s >= 0) out.emplace_back(s, e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string save_training_checkpoint(const std::string& run_dir, int64_t step, const Model& model,
                                     const AdamW& optimizer, const nlohmann::json& state,
                                     int keep_last) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  fs::create_directories(root);
  const fs::path tmp = root / (kTmpPrefix + std::to_string(step));
  const fs::path final_dir = root / (kStepPrefix + std::to_string(step));
  fs::remove_all(tmp);
  // A LoRA run saves only its adapters: the frozen base is the run's input.
  const bool lora = model.has_lora();
  if (lora)
    save_adapter_dir(model, tmp.string(), "");
  else
    save_model_dir(model, tmp.string());

  const std::vector<float> m = download_floats(model.backend(), optimizer.first_moment());
  const std::vector<float> v = download_floats(model.backend(), optimizer.second_moment());
  const int64_t n = static_cast<int64_t>(m.size());
  const std::string opt_path = (tmp / "optimizer.safetensors").string();
  write_safetensors(opt_path, {{"adamw.exp_avg", DType::F32, {n}, m.data()},
                               {"adamw.exp_avg_sq", DType::F32, {n}, v.data()}},
                    {{"steps_taken", std::to_string(optimizer.steps_taken())}});
  fsync_path(opt_path);

  nlohmann::json full = state;
  full["step"] = step;
  full["optimizer_steps_taken"] = optimizer.steps_taken();
  full["lora"] = lora;
  const std::vector<const char*> names =
      lora ? std::vector<const char*>{"adapter_model.safetensors", "adapter_config.json", "optimizer.safetensors"}
           : std::vector<const char*>{"model.safetensors", "config.json", "optimizer.safetensors"};
  for (const char* name : names) {
    const std::string p = (tmp / name).string();
    full["files"][name] = {{"bytes", fs::file_size(p)}, {"xxh64", file_checksum(p)}};
  }
  const std::string state_path = (tmp / "state.json").string();
  {
    std::ofstream out(state_path);
    out << full.dump(2) << "\n";
    if (!out) HG_FAIL("failed writing '", state_path, "'");
  }
  fsync_path(state_path);
  fsync_path(tmp.string());
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  fsync_path(root.string());

  if (keep_last > 0) {
    auto all = list_checkpoints(root);
    for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i)
      fs::remove_all(all[i].second);
  }
  return final_dir.string();
}

std::optional<std::string> find_latest_checkpoint(const std::string& run_dir) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(root)) return std::nullopt;
  for (const auto& e : fs::directory_iterator(root))
    if (e.path().filename().string().rfind(kTmpPrefix, 0) == 0) fs::remove_all(e.path());
  auto all = list_checkpoints(root);
  if (all.empty()) return std::nullopt;
  return all.back().second.string();
}

nlohmann::json read_checkpoint_state(const std::string& dir) {
  const std::string path = (fs::path(dir) / "state.json").string();
  std::ifstream in(path);
  if (!in) HG_FAIL("checkpoint '", dir, "' has no state.json (incomplete or not a checkpoint)");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    HG_FAIL("checkpoint state '", path, "' is corrupt: ", e.what());
  }
}

nlohmann::json load_training_checkpoint(const std::string& dir, Model& model, AdamW& optimizer) {
  const nlohmann::json state = read_checkpoint_state(dir);
  if (!state.contains("files") || !state.contains("step"))
    HG_FAIL("checkpoint state '", dir, "/state.json' lacks its step or file list");
  for (const auto& [name, info] : state["files"].items()) {
    const std::string p = (fs::path(dir) / name).string();
    if (!fs::exists(p)) HG_FAIL("checkpoint '", dir, "' is missing ", name);
    const auto bytes = fs::file_size(p);
    if (bytes != info["bytes"].get<uintmax_t>())
      HG_FAIL("checkpoint file '", p, "' is truncated or altered (", bytes, " bytes, expected ",
              info["bytes"].get<uintmax_t>(), ")");
    if (file_checksum(p) != info["xxh64"].get<std::string>())
      HG_FAIL("checkpoint file '", p, "' is corrupt (checksum mismatch)");
  }
  if (state.value("lora", false) != model.has_lora())
    HG_FAIL("checkpoint '", dir, "' was saved ", state.value("lora", false) ? "with" : "without",
            " LoRA adapters, but this run is ", model.has_lora() ? "a LoRA run" : "a full-weight run");
  if (model.has_lora())
    load_adapter_weights(model, (fs::path(dir) / "adapter_model.safetensors").string());
  else
    load_model_weights(model, (fs::path(dir) / "model.safetensors").string());
  SafetensorsReader opt((fs::path(dir) / "optimizer.safetensors").string());
  const std::vector<float> m = opt.read_float("adamw.exp_avg");
  const std::vector<float> v = opt.read_float("adamw.exp_avg_sq");
  const int64_t trainable = model.has_lora() ? model.lora_layout().total : model.layout().total;
  if (static_cast<int64_t>(m.size()) != trainable || m.size() != v.size())
    HG_FAIL("checkpoint '", dir, "': optimizer state does not match the model size");
  upload_floats(model.backend(), optimizer.first_moment(), m);
  upload_floats(model.backend(), optimizer.second_moment(), v);
  optimizer.set_steps_taken(state.value("optimizer_steps_taken", state["step"].get<int64_t>()));
  return state;
}

}  // namespace hessgpt
