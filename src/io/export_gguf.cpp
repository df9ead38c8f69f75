#include "io/export_model.h"

#include <regex>

#include "core/error.h"

namespace hessgpt {

std::string softcap_note(const ModelConfig& config) {
  if (config.logit_softcap <= 0) return "Exported from HessGPT (no logit soft-cap).";
  return str_cat("Exported from HessGPT. The model was trained with a logit soft-cap (",
                 config.logit_softcap, " * tanh(z / ", config.logit_softcap,
                 ")) that this format cannot express: it is monotonic, so greedy decoding is "
                 "unchanged, but sampled probabilities differ slightly from HessGPT's.");
}

void check_exportable(const ModelConfig& config, const ExportVocab& vocab) {
  if (!config.qk_norm)
    HG_FAIL("cannot export a model without QK-Norm (qk_norm false): Qwen3, the architecture "
            "both formats use, always normalises q and k");
  const auto ids = static_cast<int64_t>(vocab.pieces.size());
  if (config.vocab_size < ids)
    HG_FAIL("the model's vocab_size (", config.vocab_size, ") is smaller than the tokenizer's ",
            ids, " ids: an exported model must be able to read every token");
}

std::string gguf_tensor_name(const std::string& spec_name) {
  if (spec_name == "model.embed_tokens.weight") return "token_embd.weight";
  if (spec_name == "model.norm.weight") return "output_norm.weight";
  static const std::regex layer(R"(model\.layers\.(\d+)\.(.+)\.weight)");
  static const std::pair<const char*, const char*> kParts[] = {
      {"input_layernorm", "attn_norm"},     {"self_attn.q_proj", "attn_q"},
      {"self_attn.k_proj", "attn_k"},       {"self_attn.v_proj", "attn_v"},
      {"self_attn.o_proj", "attn_output"},  {"self_attn.q_norm", "attn_q_norm"},
      {"self_attn.k_norm", "attn_k_norm"},  {"post_attention_layernorm", "ffn_norm"},
      {"mlp.gate_proj", "ffn_gate"},        {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  std::smatch m;
  if (std::regex_match(spec_name, m, layer))
    for (const auto& [spec, gguf] : kParts)
      if (m[2] == spec) return str_cat("blk.", m[1].str(), ".", gguf, ".weight");
  HG_FAIL("no GGUF name for tensor '", spec_name, "'");
}

namespace {

uint32_t file_type(gguf::TensorType type) {
  switch (type) {
    case gguf::TensorType::kF32: return 0;   // LLAMA_FTYPE_ALL_F32
    case gguf::TensorType::kF16: return 1;   // LLAMA_FTYPE_MOSTLY_F16
    case gguf::TensorType::kQ8_0: return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
    case gguf::TensorType::kBF16: return 32; // LLAMA_FTYPE_MOSTLY_BF16
  }
  HG_FAIL("unknown GGUF tensor type");
}

void set_architecture(gguf::Writer& w, const ModelConfig& c) {
  const auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  w.set("qwen3.context_length", u32(c.max_position_embeddings));
  w.set("qwen3.embedding_length", u32(c.hidden_size));
  w.set("qwen3.block_count", u32(c.num_hidden_layers));
  w.set("qwen3.feed_forward_length", u32(c.intermediate_size));
  w.set("qwen3.attention.head_count", u32(c.num_attention_heads));
  w.set("qwen3.attention.head_count_kv", u32(c.num_key_value_heads));
  w.set("qwen3.attention.key_length", u32(c.head_dim));
  w.set("qwen3.attention.value_length", u32(c.head_dim));
  w.set("qwen3.rope.freq_base", static_cast<float>(c.rope_theta));
  w.set("qwen3.attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  if (c.rope_scaling) {
    // llama.cpp's YaRN applies the attention factor 0.1 ln(s) + 1 itself.
    const YarnConfig& y = *c.rope_scaling;
    w.set("qwen3.rope.scaling.type", std::string("yarn"));
    w.set("qwen3.rope.scaling.factor", static_cast<float>(y.factor));
    w.set("qwen3.rope.scaling.original_context_length", u32(y.original_max_position_embeddings));
    w.set("qwen3.rope.scaling.yarn_beta_fast", static_cast<float>(y.beta_fast));
    w.set("qwen3.rope.scaling.yarn_beta_slow", static_cast<float>(y.beta_slow));
  }
}

void set_tokenizer(gguf::Writer& w, const ExportVocab& v, int64_t vocab_size) {
  std::vector<std::string> tokens = v.pieces;
  std::vector<float> scores = v.scores;
  std::vector<int32_t> types;
  for (GgufTokenType t : v.types) types.push_back(static_cast<int32_t>(t));
  for (auto id = static_cast<int64_t>(tokens.size()); id < vocab_size; ++id) {
    tokens.push_back(unused_piece(id));
    scores.push_back(0.0f);
    types.push_back(static_cast<int32_t>(GgufTokenType::kUnused));
  }
  w.set("tokenizer.ggml.model", std::string("llama"));  // SentencePiece
  w.set("tokenizer.ggml.tokens", std::move(tokens));
  w.set("tokenizer.ggml.scores", std::move(scores));
  w.set("tokenizer.ggml.token_type", std::move(types));
  w.set("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(v.unk));
  w.set("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.bos));
  w.set("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos));
  w.set("tokenizer.ggml.eot_token_id", static_cast<uint32_t>(v.end_of_turn));
  w.set("tokenizer.ggml.add_bos_token", true);
  w.set("tokenizer.ggml.add_eos_token", false);
  w.set("tokenizer.chat_template", v.chat_template);
}

}  // namespace

void export_gguf(const ExportWeights& weights, const ExportVocab& vocab, gguf::TensorType type,
                 const std::string& model_name, const std::string& path) {
  const ModelConfig& c = weights.config;
  check_exportable(c, vocab);
  if (type == gguf::TensorType::kQ8_0)
    for (const ParamInfo& p : weights.layout.params)
      if (p.kind != ParamKind::Norm && p.shape.back() % gguf::kQ8BlockValues != 0)
        HG_FAIL("Q8_0 needs every matrix's row length to be a multiple of ",
                gguf::kQ8BlockValues, ", but '", p.name, "' has rows of ", p.shape.back(),
                ": export this shape as f32, f16 or bf16");
  gguf::Writer w;
  w.set("general.architecture", std::string("qwen3"));
  w.set("general.name", model_name);
  w.set("general.description", softcap_note(c));
  w.set("general.file_type", file_type(type));
  if (type == gguf::TensorType::kQ8_0) w.set("general.quantization_version", uint32_t{2});
  w.set("general.alignment", gguf::kAlignment);
  set_architecture(w, c);
  set_tokenizer(w, vocab, c.vocab_size);
  for (const ParamInfo& p : weights.layout.params) {
    const auto values = weights.values.subspan(static_cast<size_t>(p.offset),
                                               static_cast<size_t>(p.numel));
    const bool matrix = p.kind != ParamKind::Norm;
    w.add_tensor(gguf_tensor_name(p.name), p.shape, matrix ? type : gguf::TensorType::kF32,
                 values);
  }
  w.write(path);
}

}  // namespace hessgpt
