// YaRN as in the paper and HF transformers' _compute_yarn_parameters: each
// frequency is blended between extrapolation (high frequencies, unchanged)
// and interpolation (low frequencies, divided by s) by a linear ramp between
// the dimensions whose wavelength completes beta_fast and beta_slow turns
// over the original context.
#include "model/rope_tables.h"

#include <algorithm>
#include <cmath>

#include "backend/buffer_carver.h"

namespace hessgpt {
namespace {

double correction_dim(double rotations, double dim, double base, double max_pos) {
  return dim * std::log(max_pos / (rotations * 2.0 * M_PI)) / (2.0 * std::log(base));
}

}  // namespace

std::vector<double> rope_inv_freq(const ModelConfig& c) {
  const int64_t half = c.head_dim / 2;
  const double dim = static_cast<double>(c.head_dim);
  std::vector<double> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv[i] = 1.0 / std::pow(c.rope_theta, static_cast<double>(2 * i) / dim);
  if (!c.rope_scaling) return inv;

  const YarnConfig& y = *c.rope_scaling;
  const double max_pos = static_cast<double>(y.original_max_position_embeddings);
  double low = std::floor(correction_dim(y.beta_fast, dim, c.rope_theta, max_pos));
  double high = std::ceil(correction_dim(y.beta_slow, dim, c.rope_theta, max_pos));
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1.0);
  if (low == high) high += 0.001;  // avoid a zero-width ramp
  for (int64_t i = 0; i < half; ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double extrapolation_weight = 1.0 - ramp;
    const double interpolated = inv[i] / y.factor;
    inv[i] = interpolated * (1.0 - extrapolation_weight) + inv[i] * extrapolation_weight;
  }
  return inv;
}

double rope_attention_factor(const ModelConfig& c) {
  if (!c.rope_scaling || c.rope_scaling->factor <= 1.0) return 1.0;
  return 0.1 * std::log(c.rope_scaling->factor) + 1.0;
}

RopeTables make_rope_tables(const ModelConfig& c, int64_t positions) {
  RopeTables t;
  t.positions = positions;
  t.half = c.head_dim / 2;
  const std::vector<double> inv = rope_inv_freq(c);
  const double m = rope_attention_factor(c);
  t.cos.resize(static_cast<size_t>(positions * t.half));
  t.sin.resize(t.cos.size());
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < t.half; ++i) {
      const double angle = static_cast<double>(p) * inv[i];
      t.cos[p * t.half + i] = std::cos(angle) * m;
      t.sin[p * t.half + i] = std::sin(angle) * m;
    }
  return t;
}

BackendRopeTables upload_rope_tables(Backend& backend, const ModelConfig& config,
                                     int64_t positions, DType dtype) {
  const RopeTables tables = make_rope_tables(config, positions);
  BackendRopeTables r;
  r.buffer = carve_buffer(backend, dtype, [&](BufferCarver& cv) {
    r.cos = cv.take({positions, tables.half});
    r.sin = cv.take({positions, tables.half});
  });
  if (dtype == DType::F64) {
    backend.copy_from_host(r.cos, tables.cos.data());
    backend.copy_from_host(r.sin, tables.sin.data());
  } else {
    const std::vector<float> c(tables.cos.begin(), tables.cos.end());
    const std::vector<float> s(tables.sin.begin(), tables.sin.end());
    backend.copy_from_host(r.cos, c.data());
    backend.copy_from_host(r.sin, s.data());
  }
  return r;
}

}  // namespace hessgpt
