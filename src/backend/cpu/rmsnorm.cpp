// RMSNorm (block norms, final norm, and QK-Norm over head_dim).
#include <cmath>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/parallel.h"

namespace hessgpt::cpu {

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t rows, int64_t d,
                     double eps) {
  parallel_for(rows, [&](int64_t r) {
    const T* xr = x + r * d;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const T s = static_cast<T>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
    rstd[r] = s;
    T* o = out + r * d;
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) o[i] = xr[i] * s * w[i];
  });
}

template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd,
                      int64_t rows, int64_t d, bool accumulate_dx) {
  const int max_parts = omp_get_max_threads();
  std::vector<T> dw_part(static_cast<size_t>(max_parts * d), T(0));
  const int parts = parallel_ranges(rows, [&](int64_t r0, int64_t r1, int part) {
    T* dw_local = dw_part.data() + static_cast<int64_t>(part) * d;
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * d;
      const T* gr = dout + r * d;
      const T s = rstd[r];
      double dot = 0.0;  // sum_i dout_i * w_i * xhat_i
#pragma omp simd reduction(+ : dot)
      for (int64_t i = 0; i < d; ++i) dot += static_cast<double>(gr[i]) * w[i] * xr[i] * s;
      const T mean_dot = static_cast<T>(dot / static_cast<double>(d));
      T* dxr = dx + r * d;
#pragma omp simd
      for (int64_t i = 0; i < d; ++i) {
        const T xhat = xr[i] * s;
        const T g = s * (gr[i] * w[i] - xhat * mean_dot);
        dxr[i] = accumulate_dx ? dxr[i] + g : g;
        dw_local[i] += gr[i] * xhat;
      }
    }
  });
  for (int p = 0; p < parts; ++p) {
    const T* src = dw_part.data() + static_cast<int64_t>(p) * d;
    for (int64_t i = 0; i < d; ++i) dw[i] += src[i];
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t, double);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int64_t, int64_t, double);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*, int64_t, int64_t, bool);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*, const double*, int64_t, int64_t, bool);

}  // namespace hessgpt::cpu
