// RoPE cos/sin tables [positions, head_dim/2], with YaRN (NTK-by-parts) when
// the config enables it. Angles are computed in double and rounded once.
#pragma once

#include <vector>

#include "backend/backend.h"
#include "core/model_config.h"

namespace hessgpt {

struct RopeTables {
  int64_t positions = 0;
  int64_t half = 0;
  std::vector<double> cos;  // [positions * half]
  std::vector<double> sin;
};

// Inverse frequencies (half of them), YaRN-blended when config.rope_scaling is set.
std::vector<double> rope_inv_freq(const ModelConfig& config);
// YaRN's attention factor m = 0.1 ln(s) + 1 (1 without YaRN); it multiplies cos and sin.
double rope_attention_factor(const ModelConfig& config);
RopeTables make_rope_tables(const ModelConfig& config, int64_t positions);

// The tables in backend memory at the working precision: F32 rounds the double
// values once, F64 keeps them. cos and sin are [positions, head_dim/2] views
// into buffer.
struct BackendRopeTables {
  Buffer buffer;
  Tensor cos, sin;
};
BackendRopeTables upload_rope_tables(Backend& backend, const ModelConfig& config,
                                     int64_t positions, DType dtype);

}  // namespace hessgpt
