#include "model/lora.h"

#include "core/error.h"

namespace hessgpt {
namespace {
const char* const kTargetNames[kLoraTargets] = {"q", "k", "v", "o", "gate", "up", "down"};
const char* const kModulePaths[kLoraTargets] = {"self_attn.q_proj", "self_attn.k_proj",
                                                "self_attn.v_proj", "self_attn.o_proj",
                                                "mlp.gate_proj",    "mlp.up_proj",
                                                "mlp.down_proj"};
}  // namespace

void LoraConfig::validate() const {
  if (rank <= 0) HG_FAIL("LoRA rank must be positive (got ", rank, ")");
  if (alpha < 0) HG_FAIL("LoRA alpha must not be negative (got ", alpha, ")");
  // Written to reject NaN too; p = 1 would leave nothing to rescale.
  if (!(dropout >= 0 && dropout < 1))
    HG_FAIL("LoRA dropout (--lora-dropout) must lie in [0, 1) (got ", dropout, ")");
  if (targets.empty()) HG_FAIL("LoRA needs at least one target module");
  target_mask();
}

std::array<bool, kLoraTargets> LoraConfig::target_mask() const {
  std::array<bool, kLoraTargets> mask{};
  for (const std::string& t : targets) {
    bool found = false;
    for (int i = 0; i < kLoraTargets; ++i)
      if (t == kTargetNames[i] || t == std::string(kTargetNames[i]) + "_proj") {
        mask[static_cast<size_t>(i)] = true;
        found = true;
      }
    if (!found)
      HG_FAIL("unknown LoRA target '", t, "' (known: q, k, v, o, gate, up, down, or their *_proj names)");
  }
  return mask;
}

int64_t lora_in_features(const ModelConfig& c, LoraTarget t) {
  switch (t) {
    case LoraTarget::O: return c.q_dim();
    case LoraTarget::Down: return c.intermediate_size;
    default: return c.hidden_size;
  }
}

int64_t lora_out_features(const ModelConfig& c, LoraTarget t) {
  switch (t) {
    case LoraTarget::Q: return c.q_dim();
    case LoraTarget::K:
    case LoraTarget::V: return c.kv_dim();
    case LoraTarget::Gate:
    case LoraTarget::Up: return c.intermediate_size;
    default: return c.hidden_size;
  }
}

std::string lora_base_name(int64_t layer, LoraTarget t) {
  return "model.layers." + std::to_string(layer) + "." + kModulePaths[static_cast<int>(t)] + ".weight";
}

LoraLayout make_lora_layout(const ModelConfig& c, const LoraConfig& lora) {
  lora.validate();
  const auto mask = lora.target_mask();
  LoraLayout out;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    ParamInfo p;
    p.name = std::move(name);
    p.shape = std::move(shape);
    p.numel = p.shape[0] * p.shape[1];
    p.offset = out.params.total;
    p.kind = ParamKind::Matrix;
    out.params.total += p.numel;
    out.params.params.push_back(std::move(p));
    return static_cast<int>(out.params.params.size()) - 1;
  };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LoraLayerIndex li;
    li.a.fill(-1);
    li.b.fill(-1);
    for (int t = 0; t < kLoraTargets; ++t) {
      if (!mask[static_cast<size_t>(t)]) continue;
      const auto target = static_cast<LoraTarget>(t);
      std::string base = lora_base_name(l, target);
      base.resize(base.size() - std::string(".weight").size());
      li.a[static_cast<size_t>(t)] = add(base + ".lora_A.weight", {lora.rank, lora_in_features(c, target)});
      li.b[static_cast<size_t>(t)] = add(base + ".lora_B.weight", {lora_out_features(c, target), lora.rank});
    }
    out.layers.push_back(li);
  }
  return out;
}

}  // namespace hessgpt
