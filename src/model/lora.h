// LoRA adapters (Hu et al. 2021) on the block's linear maps: for a target
// y = x W^T the model computes y = x W^T + s (x A^T) B^T with A [r, in],
// B [out, r] and s = alpha / r. B starts at zero, so an enabled adapter
// leaves the model unchanged until it is trained. Names follow PEFT:
// model.layers.N.self_attn.q_proj.lora_A.weight.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/model_config.h"
#include "model/param_layout.h"

namespace hessgpt {

enum class LoraTarget : int { Q = 0, K, V, O, Gate, Up, Down };
constexpr int kLoraTargets = 7;

struct LoraConfig {
  int64_t rank = 16;
  double alpha = 0;  // 0: 2 x rank (the overview's default)
  std::vector<std::string> targets = {"q", "k", "v", "o", "gate", "up"};
  // Probability of zeroing an input element of the adapter branch while
  // training (PEFT's lora_dropout); 0 keeps the adapted pass exactly as without.
  double dropout = 0;

  double scale() const { return (alpha > 0 ? alpha : 2.0 * static_cast<double>(rank)) / static_cast<double>(rank); }
  // Throws Error naming a bad rank, dropout or an unknown target.
  void validate() const;
  std::array<bool, kLoraTargets> target_mask() const;
  // Adapters on gate or up add into those products' outputs, which then
  // cannot be stored in BF16 (MemoryOptions::bf16_ffn).
  bool adapts_gate_or_up() const {
    const auto mask = target_mask();
    return mask[static_cast<size_t>(LoraTarget::Gate)] || mask[static_cast<size_t>(LoraTarget::Up)];
  }
};

// Per layer and target: indices of A and B in the LoRA layout (-1 when not adapted).
struct LoraLayerIndex {
  std::array<int, kLoraTargets> a{}, b{};
};

struct LoraLayout {
  ParamLayout params;  // every A and B, back to back
  std::vector<LoraLayerIndex> layers;
};

LoraLayout make_lora_layout(const ModelConfig& config, const LoraConfig& lora);

// Input and output widths of a target's base matrix.
int64_t lora_in_features(const ModelConfig& c, LoraTarget t);
int64_t lora_out_features(const ModelConfig& c, LoraTarget t);
// The base weight's name ("model.layers.N.self_attn.q_proj.weight").
std::string lora_base_name(int64_t layer, LoraTarget t);

}  // namespace hessgpt
