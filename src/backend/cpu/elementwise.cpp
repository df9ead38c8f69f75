// Residual adds, scaling, norms of gradients, and SwiGLU.
#include <cmath>

#include "backend/cpu/kernels.h"
#include "core/bf16.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/vec_math.h"

namespace hessgpt::cpu {

template <typename T>
void add_inplace(T* y, const T* x, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

template <typename T>
void scale_inplace(T* x, T s, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

template <typename T>
double sum_squares(const T* x, int64_t n) {
  return parallel_sum(n, [x](int64_t begin, int64_t end) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = begin; i < end; ++i) s += static_cast<double>(x[i]) * x[i];
    return s;
  });
}

template <typename T>
void fill(T* x, T value, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] = value;
}

// gate/up as stored: T itself, or BF16 bits (read as float).
template <typename T>
inline T widen(T x) { return x; }
inline float widen(uint16_t bf16) { return bf16_to_float(bf16); }

// silu(g) = g * sigmoid(g); d silu/dg = sigmoid(g) * (1 + g * (1 - sigmoid(g)))
template <typename T, typename In>
void swiglu_forward(T* out, const In* gate, const In* up, int64_t rows, int64_t w, int64_t ld) {
#pragma omp parallel for simd collapse(2) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < w; ++j) {
      const T g = widen(gate[r * ld + j]);
      out[r * w + j] = g / (T(1) + vexp(-g)) * widen(up[r * ld + j]);
    }
  }
}

template <typename T, typename In, typename DOut>
void swiglu_backward(T* dgate, T* dup, const DOut* dout, const In* gate, const In* up,
                     int64_t rows, int64_t w, int64_t ld) {
#pragma omp parallel for simd collapse(2) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < w; ++j) {
      const int64_t i = r * ld + j;
      const T g = widen(gate[i]);
      const T sig = T(1) / (T(1) + vexp(-g));
      const T silu = g * sig;
      const T d = widen(dout[r * w + j]);
      dup[i] = d * silu;
      dgate[i] = d * widen(up[i]) * sig * (T(1) + g * (T(1) - sig));
    }
  }
}

#define HG_INSTANTIATE(T)                                                              \
  template void add_inplace<T>(T*, const T*, int64_t);                                 \
  template void scale_inplace<T>(T*, T, int64_t);                                      \
  template double sum_squares<T>(const T*, int64_t);                                   \
  template void fill<T>(T*, T, int64_t);                                               \
  template void swiglu_forward<T, T>(T*, const T*, const T*, int64_t, int64_t, int64_t); \
  template void swiglu_backward<T, T, T>(T*, T*, const T*, const T*, const T*, int64_t,   \
                                         int64_t, int64_t);
HG_INSTANTIATE(float)
HG_INSTANTIATE(double)
#undef HG_INSTANTIATE
template void swiglu_forward<float, uint16_t>(float*, const uint16_t*, const uint16_t*, int64_t,
                                              int64_t, int64_t);
template void swiglu_backward<float, uint16_t, float>(float*, float*, const float*,
                                                      const uint16_t*, const uint16_t*, int64_t,
                                                      int64_t, int64_t);
template void swiglu_backward<float, uint16_t, uint16_t>(float*, float*, const uint16_t*,
                                                         const uint16_t*, const uint16_t*, int64_t,
                                                         int64_t, int64_t);

}  // namespace hessgpt::cpu
