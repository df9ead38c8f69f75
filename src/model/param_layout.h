// The named parameters of a HessGPT model (SPEC §5 safetensors names), laid
// out back to back in one flat buffer so the optimizer, clipping and I/O can
// treat all weights as one tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model_config.h"

namespace hessgpt {

enum class ParamKind { Embedding, Matrix, Norm };

struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // in elements, into the flat buffer
  int64_t numel = 0;
  ParamKind kind = ParamKind::Matrix;
  // Weight decay applies to matrices (embedding included), never to norms.
  bool decays() const { return kind != ParamKind::Norm; }
};

// Indices into the layout for one block, in layout order.
struct LayerParamIndex {
  int input_norm, q_proj, k_proj, v_proj, q_norm, k_norm, o_proj, post_norm, gate_proj,
      up_proj, down_proj;
};

struct ParamLayout {
  std::vector<ParamInfo> params;
  std::vector<LayerParamIndex> layers;
  int embed = 0;
  int final_norm = 0;
  int64_t total = 0;  // elements

  const ParamInfo* find(const std::string& name) const;
};

// q_norm/k_norm are absent when config.qk_norm is false (index -1).
ParamLayout make_param_layout(const ModelConfig& config);

}  // namespace hessgpt
