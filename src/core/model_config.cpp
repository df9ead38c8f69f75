#include "core/model_config.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace hessgpt {

void ModelConfig::validate() const {
  auto positive = [](int64_t v, const char* field) {
    if (v <= 0) HG_FAIL("invalid model config: ", field, " must be positive (got ", v, ")");
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_attention_heads, "num_attention_heads");
  positive(num_key_value_heads, "num_key_value_heads");
  positive(head_dim, "head_dim");
  positive(intermediate_size, "intermediate_size");
  positive(max_position_embeddings, "max_position_embeddings");
  if (vocab_size > 65536)
    HG_FAIL("invalid model config: vocab_size ", vocab_size,
            " exceeds 65536, the limit of the uint16 token files");
  if (hidden_size % num_attention_heads != 0)
    HG_FAIL("invalid model config: hidden_size (", hidden_size,
            ") is not divisible by num_attention_heads (", num_attention_heads, ")");
  if (num_attention_heads % num_key_value_heads != 0)
    HG_FAIL("invalid model config: num_attention_heads (", num_attention_heads,
            ") is not divisible by num_key_value_heads (", num_key_value_heads, ")");
  if (head_dim % 2 != 0)
    HG_FAIL("invalid model config: head_dim (", head_dim, ") must be even for RoPE");
  if (!(rope_theta > 0)) HG_FAIL("invalid model config: rope_theta must be positive");
  if (!(rms_norm_eps > 0)) HG_FAIL("invalid model config: rms_norm_eps must be positive");
  if (!tie_word_embeddings)
    HG_FAIL("invalid model config: tie_word_embeddings must be true (HessGPT ties the head)");
  if (rope_scaling) {
    const YarnConfig& y = *rope_scaling;
    if (!(y.factor >= 1.0))
      HG_FAIL("invalid model config: rope_scaling.factor must be >= 1 (got ", y.factor, ")");
    if (y.original_max_position_embeddings <= 0)
      HG_FAIL("invalid model config: rope_scaling.original_max_position_embeddings must be positive");
    if (!(y.beta_fast > y.beta_slow))
      HG_FAIL("invalid model config: rope_scaling.beta_fast must exceed beta_slow");
  }
}

int64_t ModelConfig::layer_parameter_count() const {
  const int64_t d = hidden_size;
  const int64_t attn = d * q_dim() * 2 + d * kv_dim() * 2;
  const int64_t norms = 2 * d + (qk_norm ? 2 * head_dim : 0);
  const int64_t mlp = 3 * d * intermediate_size;
  return attn + norms + mlp;
}

int64_t ModelConfig::non_embedding_parameter_count() const {
  return num_hidden_layers * layer_parameter_count() + hidden_size;
}

int64_t ModelConfig::parameter_count() const {
  return vocab_size * hidden_size + non_embedding_parameter_count();
}

namespace {
ModelConfig make_preset(int64_t v, int64_t d, int64_t l, int64_t h, int64_t kv, int64_t hd,
                        int64_t ffn) {
  ModelConfig c;
  c.vocab_size = v;
  c.hidden_size = d;
  c.num_hidden_layers = l;
  c.num_attention_heads = h;
  c.num_key_value_heads = kv;
  c.head_dim = hd;
  c.intermediate_size = ffn;
  return c;
}
}  // namespace

bool is_preset_name(const std::string& name) {
  return name == "model1" || name == "model2" || name == "small" || name == "tiny";
}

ModelConfig preset_config(const std::string& name) {
  if (name == "model1") return make_preset(32008, 1280, 22, 20, 5, 64, 3413);
  if (name == "model2") return make_preset(32008, 1024, 24, 16, 4, 64, 2816);
  if (name == "small") return make_preset(32008, 256, 4, 4, 2, 64, 683);
  if (name == "tiny") return make_preset(512, 64, 2, 4, 2, 16, 176);
  HG_FAIL("unknown model preset '", name, "' (known: model1, model2, small, tiny)");
}

ModelConfig resolve_model_config(const std::string& preset_or_path) {
  if (is_preset_name(preset_or_path)) return preset_config(preset_or_path);
  std::filesystem::path p(preset_or_path);
  if (std::filesystem::is_directory(p)) p /= "config.json";
  if (!std::filesystem::exists(p))
    HG_FAIL("'", preset_or_path,
            "' is neither a model preset (model1, model2, small, tiny) nor a config file");
  return load_config_file(p.string());
}

nlohmann::json config_to_json(const ModelConfig& c) {
  nlohmann::json j;
  j["architectures"] = {"Qwen3ForCausalLM"};
  j["model_type"] = "qwen3";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["intermediate_size"] = c.intermediate_size;
  j["rope_theta"] = c.rope_theta;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  if (c.rope_scaling) {
    const YarnConfig& y = *c.rope_scaling;
    j["rope_scaling"] = {{"rope_type", "yarn"},
                         {"factor", y.factor},
                         {"original_max_position_embeddings", y.original_max_position_embeddings},
                         {"beta_fast", y.beta_fast},
                         {"beta_slow", y.beta_slow}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["logit_softcap"] = c.logit_softcap;
  j["qk_norm"] = c.qk_norm;
  return j;
}

namespace {
template <typename T>
T read_field(const nlohmann::json& j, const char* field, const char* where = "") {
  if (!j.contains(field)) HG_FAIL("model config: missing field '", where, field, "'");
  const nlohmann::json& v = j.at(field);
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) HG_FAIL("model config: field '", where, field, "' must be a boolean");
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer())
      HG_FAIL("model config: field '", where, field, "' must be an integer");
  } else {
    if (!v.is_number()) HG_FAIL("model config: field '", where, field, "' must be a number");
  }
  return v.get<T>();
}

template <typename T>
T read_optional(const nlohmann::json& j, const char* field, T fallback) {
  return j.contains(field) && !j.at(field).is_null() ? read_field<T>(j, field) : fallback;
}
}  // namespace

ModelConfig config_from_json(const nlohmann::json& j) {
  if (!j.is_object()) HG_FAIL("model config: expected a JSON object");
  ModelConfig c;
  c.vocab_size = read_field<int64_t>(j, "vocab_size");
  c.hidden_size = read_field<int64_t>(j, "hidden_size");
  c.num_hidden_layers = read_field<int64_t>(j, "num_hidden_layers");
  c.num_attention_heads = read_field<int64_t>(j, "num_attention_heads");
  c.num_key_value_heads = read_optional<int64_t>(j, "num_key_value_heads", c.num_attention_heads);
  c.head_dim = read_optional<int64_t>(
      j, "head_dim", c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
  c.intermediate_size = read_field<int64_t>(j, "intermediate_size");
  c.rope_theta = read_optional<double>(j, "rope_theta", 10000.0);
  c.rms_norm_eps = read_optional<double>(j, "rms_norm_eps", 1e-6);
  c.tie_word_embeddings = read_optional<bool>(j, "tie_word_embeddings", true);
  c.max_position_embeddings = read_optional<int64_t>(j, "max_position_embeddings", 1024);
  c.logit_softcap = read_optional<double>(j, "logit_softcap", 30.0);
  c.qk_norm = read_optional<bool>(j, "qk_norm", true);
  if (j.contains("rope_scaling") && !j.at("rope_scaling").is_null()) {
    const nlohmann::json& r = j.at("rope_scaling");
    if (!r.is_object()) HG_FAIL("model config: field 'rope_scaling' must be null or an object");
    const std::string type = r.value("rope_type", r.value("type", std::string()));
    if (type != "yarn")
      HG_FAIL("model config: rope_scaling.rope_type '", type, "' is not supported (only 'yarn')");
    YarnConfig y;
    y.factor = read_field<double>(r, "factor", "rope_scaling.");
    y.original_max_position_embeddings =
        r.contains("original_max_position_embeddings")
            ? read_field<int64_t>(r, "original_max_position_embeddings", "rope_scaling.")
            : 1024;
    y.beta_fast = r.contains("beta_fast") ? read_field<double>(r, "beta_fast", "rope_scaling.") : 32.0;
    y.beta_slow = r.contains("beta_slow") ? read_field<double>(r, "beta_slow", "rope_scaling.") : 1.0;
    c.rope_scaling = y;
  }
  c.validate();
  return c;
}

ModelConfig load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) HG_FAIL("cannot open model config '", path, "'");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    HG_FAIL("model config '", path, "' is not valid JSON: ", e.what());
  }
  try {
    return config_from_json(j);
  } catch (const Error& e) {
    HG_FAIL(path, ": ", e.what());
  }
}

void save_config_file(const ModelConfig& config, const std::string& path) {
  std::ofstream out(path);
  if (!out) HG_FAIL("cannot write model config '", path, "'");
  out << config_to_json(config).dump(2) << "\n";
  if (!out) HG_FAIL("failed writing model config '", path, "'");
}

}  // namespace hessgpt
