// The HessGPT decoder family's shape (SPEC §1) and its JSON form (SPEC §5,
// Hugging Face field names). Presets: model1, model2, small, tiny.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace hessgpt {

struct YarnConfig {
  double factor = 4.0;
  int64_t original_max_position_embeddings = 1024;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
};

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;          // d
  int64_t num_hidden_layers = 0;    // L
  int64_t num_attention_heads = 0;  // H
  int64_t num_key_value_heads = 0;  // KV (GQA: each KV head serves H/KV query heads)
  int64_t head_dim = 0;             // hd
  int64_t intermediate_size = 0;    // FFN width
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = true;
  int64_t max_position_embeddings = 1024;
  std::optional<YarnConfig> rope_scaling;  // YaRN when set
  double logit_softcap = 30.0;             // <= 0 disables soft-capping
  bool qk_norm = true;

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }

  // Throws Error naming the offending field.
  void validate() const;

  // Parameter counts, tied head counted once.
  int64_t parameter_count() const;
  int64_t non_embedding_parameter_count() const;
  int64_t layer_parameter_count() const;
};

// "model1", "model2", "small", "tiny"; throws for an unknown name.
ModelConfig preset_config(const std::string& name);
bool is_preset_name(const std::string& name);

// A preset name or a path to a config.json; the result is validated.
ModelConfig resolve_model_config(const std::string& preset_or_path);

nlohmann::json config_to_json(const ModelConfig& config);
// Throws Error naming a missing or mistyped field; the result is validated.
ModelConfig config_from_json(const nlohmann::json& json);

ModelConfig load_config_file(const std::string& path);
void save_config_file(const ModelConfig& config, const std::string& path);

}  // namespace hessgpt
