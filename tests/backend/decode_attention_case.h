// A decoding step's operands (Backend::decode_attention) for the tests that
// check it: random host values, and tensors holding them on a backend.
#pragma once

#include <cmath>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "common/test_util.h"

namespace hessgpt::testing {

struct DecodeCase {
  int64_t h = 0, kv = 0, d = 0, positions = 0;
  bool norms = true;
  double eps = 1e-6;
  std::string name() const {
    return "H " + std::to_string(h) + ", KV " + std::to_string(kv) + ", D " + std::to_string(d) +
           ", P " + std::to_string(positions) + (norms ? ", QK-Norm" : ", RoPE alone");
  }
};

struct DecodeInputs {
  std::vector<float> q_raw, k_raw, v_raw, q_norm, k_norm, k_cache, v_cache, cos, sin;
};

inline std::vector<float> floats(size_t n, uint64_t seed, double scale = 1.0, double offset = 0.0) {
  const std::vector<double> d = random_vector(n, seed, scale);
  std::vector<float> f(n);
  for (size_t i = 0; i < n; ++i) f[i] = static_cast<float>(d[i] + offset);
  return f;
}

inline DecodeInputs decode_inputs(const DecodeCase& c, uint64_t seed) {
  const auto n = [](int64_t x) { return static_cast<size_t>(x); };
  DecodeInputs in;
  in.q_raw = floats(n(c.h * c.d), seed, 2.0);
  in.k_raw = floats(n(c.kv * c.d), seed + 1, 2.0);
  in.v_raw = floats(n(c.kv * c.d), seed + 2);
  in.q_norm = floats(n(c.d), seed + 3, 0.3, 1.0);
  in.k_norm = floats(n(c.d), seed + 4, 0.3, 1.0);
  // Earlier rows as a session would have left them (any values serve).
  in.k_cache = floats(n(c.positions * c.kv * c.d), seed + 5, 2.0);
  in.v_cache = floats(n(c.positions * c.kv * c.d), seed + 6);
  // Rotation tables: angles varying with position and pair.
  const int64_t half = c.d / 2;
  for (int64_t p = 0; p < c.positions; ++p)
    for (int64_t j = 0; j < half; ++j) {
      const double angle = static_cast<double>(p) * std::pow(100.0, -static_cast<double>(j) / half);
      in.cos.push_back(static_cast<float>(std::cos(angle)));
      in.sin.push_back(static_cast<float>(std::sin(angle)));
    }
  return in;
}

// The operands on `be` (F32), the step assembled at position `pos`; out and
// q_out start as NaN, so that an element never written shows up.
class DecodeTensors {
 public:
  DecodeTensors(Backend& be, const DecodeCase& c, const DecodeInputs& in, int64_t pos)
      : be_(be), c_(c) {
    const std::vector<float> nan(static_cast<size_t>(c.h * c.d), NAN);
    step.out = put(nan, {1, c.h * c.d});
    step.q_out = put(nan, {1, c.h * c.d});
    step.q_raw = put(in.q_raw, {1, c.h * c.d});
    step.k_raw = put(in.k_raw, {1, c.kv * c.d});
    step.v_raw = put(in.v_raw, {1, c.kv * c.d});
    if (c.norms) {
      step.q_norm = put(in.q_norm, {c.d});
      step.k_norm = put(in.k_norm, {c.d});
    }
    step.k_cache = put(in.k_cache, {c.positions, c.kv, c.d});
    step.v_cache = put(in.v_cache, {c.positions, c.kv, c.d});
    step.cos = put(in.cos, {c.positions, c.d / 2});
    step.sin = put(in.sin, {c.positions, c.d / 2});
    buffers_.emplace_back(&be, sizeof(int32_t));
    step.pos = buffers_.back().tensor(DType::I32, {1});
    set_position(pos);
    step.eps = c.eps;
    step.scale = 1.0 / std::sqrt(static_cast<double>(c.d));
  }

  void set_position(int64_t pos) {
    const auto p = static_cast<int32_t>(pos);
    be_.copy_from_host(step.pos, &p);
  }
  std::vector<float> host(const Tensor& t) const {
    std::vector<float> v(static_cast<size_t>(t.numel()));
    be_.copy_to_host(v.data(), t);
    return v;
  }
  std::vector<float> cache_row(const Tensor& cache, int64_t pos) const {
    return host(cache.slice(pos, pos + 1));
  }
  // Every cache row but `pos` still holds its input.
  bool other_rows_unchanged(const DecodeInputs& in, int64_t pos) const {
    const std::vector<float> k = host(step.k_cache), v = host(step.v_cache);
    const int64_t row = c_.kv * c_.d;
    for (int64_t i = 0; i < static_cast<int64_t>(k.size()); ++i) {
      if (i / row == pos) continue;
      const auto at = static_cast<size_t>(i);
      if (k[at] != in.k_cache[at] || v[at] != in.v_cache[at]) return false;
    }
    return true;
  }

  Backend::DecodeAttention step;

 private:
  Tensor put(const std::vector<float>& values, std::initializer_list<int64_t> dims) {
    buffers_.emplace_back(&be_, values.size() * sizeof(float));
    Tensor t = buffers_.back().tensor(DType::F32, dims);
    be_.copy_from_host(t, values.data());
    return t;
  }

  Backend& be_;
  DecodeCase c_;
  std::deque<Buffer> buffers_;
};

}  // namespace hessgpt::testing
