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

// silu(g) = g * sigmoid(g); d silu/dg = sigmoid(g) * (1 + g * (1 - sigmoid(g)))
template <typename T>
void swiglu_forward(T* out, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i];
    out[i] = g / (T(1) + vexp(-g)) * up[i];
  }
}

template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i];
    const T sig = T(1) / (T(1) + vexp(-g));
    const T silu = g * sig;
    dup[i] = dout[i] * silu;
    dgate[i] = dout[i] * up[i] * sig * (T(1) + g * (T(1) - sig));
  }
}

void swiglu_forward_bf16(float* out, const uint16_t* gate, const uint16_t* up, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = bf16_to_float(gate[i]);
    out[i] = g / (1.0f + vexp(-g)) * bf16_to_float(up[i]);
  }
}

void swiglu_backward_bf16(float* dgate, float* dup, const float* dout, const uint16_t* gate,
                          const uint16_t* up, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = bf16_to_float(gate[i]), u = bf16_to_float(up[i]);
    const float sig = 1.0f / (1.0f + vexp(-g));
    dup[i] = dout[i] * g * sig;
    dgate[i] = dout[i] * u * sig * (1.0f + g * (1.0f - sig));
  }
}

#define HG_INSTANTIATE(T)                                                              \
  template void add_inplace<T>(T*, const T*, int64_t);                                 \
  template void scale_inplace<T>(T*, T, int64_t);                                      \
  template double sum_squares<T>(const T*, int64_t);                                   \
  template void fill<T>(T*, T, int64_t);                                               \
  template void swiglu_forward<T>(T*, const T*, const T*, int64_t);                    \
  template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, int64_t);
HG_INSTANTIATE(float)
HG_INSTANTIATE(double)
#undef HG_INSTANTIATE

}  // namespace hessgpt::cpu
