// exp and tanh written so that GCC vectorises them inside `omp simd` loops
// (glibc only offers vector math under -ffast-math, which we do not want).
// Float: range reduction to r in [-ln2/2, ln2/2] and a degree-6 Taylor
// polynomial, ~1 ulp. Double keeps the libm functions: the double kernels
// exist for exact reference checks, not speed.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace hessgpt::cpu {

#pragma omp declare simd
inline float exp_f32(float x) {
  // Plain comparisons, not fmin/fmax: those stay library calls without -ffinite-math-only.
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  // Cody-Waite: subtract the exact high part of n*ln2 first, then the low part.
  const float r = std::fma(n, -1.4286068203094172e-06f, std::fma(n, -0.693145751953125f, x));
  float p = 1.0f / 720.0f;
  p = std::fma(p, r, 1.0f / 120.0f);
  p = std::fma(p, r, 1.0f / 24.0f);
  p = std::fma(p, r, 1.0f / 6.0f);
  p = std::fma(p, r, 0.5f);
  p = std::fma(p, r, 1.0f);
  p = std::fma(p, r, 1.0f);
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

// tanh: an odd Taylor polynomial near 0 (where 1 - 2/(e^2y + 1) would cancel),
// the exponential form elsewhere.
#pragma omp declare simd
inline float tanh_f32(float y) {
  const float a = std::fabs(y);
  const float y2 = y * y;
  float p = 62.0f / 2835.0f;
  p = std::fma(p, y2, -17.0f / 315.0f);
  p = std::fma(p, y2, 2.0f / 15.0f);
  p = std::fma(p, y2, -1.0f / 3.0f);
  const float small = std::fma(p * y2, y, y);
  const float e = exp_f32(2.0f * a);
  const float big = std::copysign(1.0f - 2.0f / (e + 1.0f), y);
  return a < 0.125f ? small : big;
}

template <typename T> inline T vexp(T x) { return std::exp(x); }
template <> inline float vexp<float>(float x) { return exp_f32(x); }
template <typename T> inline T vtanh(T x) { return std::tanh(x); }
template <> inline float vtanh<float>(float x) { return tanh_f32(x); }

}  // namespace hessgpt::cpu
