// Soft-capped logits and the fused cross-entropy: one row of the vocabulary
// at a time, the loss and the gradient are produced in place, so the
// probability matrix is never stored beside the logits.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/vec_math.h"
#include "core/bf16.h"

namespace hessgpt::cpu {

namespace {
constexpr int32_t kIgnoreIndex = -100;

template <typename T>
inline void softcap_row(T* z, int64_t v, T cap) {
  if (cap <= T(0)) return;
  const T inv = T(1) / cap;
#pragma omp simd
  for (int64_t i = 0; i < v; ++i) z[i] = cap * vtanh(z[i] * inv);
}
}  // namespace

template <typename T>
void softcap(T* logits, int64_t rows, int64_t v, double cap) {
  parallel_for(rows, [&](int64_t r) { softcap_row(logits + r * v, v, static_cast<T>(cap)); });
}

namespace {
// Three vectorised sweeps over a row (cap, max, sum of exponentials) and one
// for the gradient, over the row in place; returns the row's loss.
template <typename T>
T softcap_cross_entropy_row(T* s, int64_t v, int32_t target, T cap, double dscale) {
  if (target == kIgnoreIndex) {
    if (dscale != 0.0) std::fill_n(s, v, T(0));
    return T(0);
  }
  softcap_row(s, v, cap);
  T mx = s[0];
#pragma omp simd reduction(max : mx)
  for (int64_t i = 0; i < v; ++i) mx = s[i] > mx ? s[i] : mx;
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < v; ++i) sum += vexp(s[i] - mx);
  const T lse = mx + std::log(sum);
  const T loss = lse - s[target];
  if (dscale == 0.0) return loss;
  const T scale = static_cast<T>(dscale);
  const T inv_cap = cap > T(0) ? T(1) / cap : T(0);
  const T target_cap = s[target] * inv_cap;
#pragma omp simd
  for (int64_t i = 0; i < v; ++i) {
    const T p = vexp(s[i] - lse);
    const T t = s[i] * inv_cap;  // tanh(z / cap); 0 when uncapped
    s[i] = scale * p * (T(1) - t * t);
  }
  // The one-hot term of (softmax - onehot), at the target only.
  s[target] -= scale * (T(1) - target_cap * target_cap);
  return loss;
}
}  // namespace

template <typename T>
void softcap_cross_entropy(T* logits, T* losses, const int32_t* targets, int64_t rows, int64_t v,
                           double cap, double dscale) {
  parallel_for(rows, [&](int64_t r) {
    losses[r] = softcap_cross_entropy_row(logits + r * v, v, targets[r], static_cast<T>(cap),
                                          dscale);
  });
}

// Each row widened into a float scratch row, scored as above, and its
// gradient rounded into grad (which may be the logits themselves).
void softcap_cross_entropy_bf16(const uint16_t* logits, uint16_t* grad, float* losses,
                                const int32_t* targets, int64_t rows, int64_t v, double cap,
                                double dscale) {
  parallel_for(rows, [&](int64_t r) {
    thread_local std::vector<float> row;
    row.resize(static_cast<size_t>(v));
    const uint16_t* z = logits + r * v;
    for (int64_t i = 0; i < v; ++i) row[static_cast<size_t>(i)] = bf16_to_float(z[i]);
    losses[r] = softcap_cross_entropy_row(row.data(), v, targets[r], static_cast<float>(cap),
                                          dscale);
    if (dscale == 0.0) return;
    uint16_t* g = grad + r * v;
    for (int64_t i = 0; i < v; ++i) g[i] = float_to_bf16(row[static_cast<size_t>(i)]);
  });
}

template void softcap<float>(float*, int64_t, int64_t, double);
template void softcap<double>(double*, int64_t, int64_t, double);
template void softcap_cross_entropy<float>(float*, float*, const int32_t*, int64_t, int64_t, double, double);
template void softcap_cross_entropy<double>(double*, double*, const int32_t*, int64_t, int64_t, double, double);

}  // namespace hessgpt::cpu
