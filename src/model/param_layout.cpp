#include "model/param_layout.h"

namespace hessgpt {

const ParamInfo* ParamLayout::find(const std::string& name) const {
  for (const ParamInfo& p : params)
    if (p.name == name) return &p;
  return nullptr;
}

ParamLayout make_param_layout(const ModelConfig& c) {
  ParamLayout layout;
  auto add = [&](std::string name, std::vector<int64_t> shape, ParamKind kind) {
    ParamInfo p;
    p.name = std::move(name);
    p.shape = std::move(shape);
    p.numel = 1;
    for (int64_t d : p.shape) p.numel *= d;
    p.offset = layout.total;
    p.kind = kind;
    layout.total += p.numel;
    layout.params.push_back(std::move(p));
    return static_cast<int>(layout.params.size()) - 1;
  };
  const int64_t d = c.hidden_size;
  layout.embed = add("model.embed_tokens.weight", {c.vocab_size, d}, ParamKind::Embedding);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerParamIndex li{};
    li.input_norm = add(p + "input_layernorm.weight", {d}, ParamKind::Norm);
    li.q_proj = add(p + "self_attn.q_proj.weight", {c.q_dim(), d}, ParamKind::Matrix);
    li.k_proj = add(p + "self_attn.k_proj.weight", {c.kv_dim(), d}, ParamKind::Matrix);
    li.v_proj = add(p + "self_attn.v_proj.weight", {c.kv_dim(), d}, ParamKind::Matrix);
    li.q_norm = c.qk_norm ? add(p + "self_attn.q_norm.weight", {c.head_dim}, ParamKind::Norm) : -1;
    li.k_norm = c.qk_norm ? add(p + "self_attn.k_norm.weight", {c.head_dim}, ParamKind::Norm) : -1;
    li.o_proj = add(p + "self_attn.o_proj.weight", {d, c.q_dim()}, ParamKind::Matrix);
    li.post_norm = add(p + "post_attention_layernorm.weight", {d}, ParamKind::Norm);
    li.gate_proj = add(p + "mlp.gate_proj.weight", {c.intermediate_size, d}, ParamKind::Matrix);
    li.up_proj = add(p + "mlp.up_proj.weight", {c.intermediate_size, d}, ParamKind::Matrix);
    li.down_proj = add(p + "mlp.down_proj.weight", {d, c.intermediate_size}, ParamKind::Matrix);
    layout.layers.push_back(li);
  }
  layout.final_norm = add("model.norm.weight", {d}, ParamKind::Norm);
  return layout;
}

}  // namespace hessgpt
