// AdamW exactly as torch.optim.AdamW: decoupled decay first, then the
// bias-corrected Adam update; grad_scale folds in clipping and averaging.
#include <cmath>

#include "backend/cpu/kernels.h"

namespace hessgpt::cpu {

template <typename T>
void adamw(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1, double beta2,
           double eps, double weight_decay, int64_t step, double grad_scale) {
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const T step_size = static_cast<T>(lr / bc1);
  const T inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bc2));
  const T decay = static_cast<T>(1.0 - lr * weight_decay);
  const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2);
  const T gs = static_cast<T>(grad_scale), teps = static_cast<T>(eps);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = grad[i] * gs;
    m[i] = b1 * m[i] + (T(1) - b1) * g;
    v[i] = b2 * v[i] + (T(1) - b2) * g * g;
    const T denom = std::sqrt(v[i]) * inv_sqrt_bc2 + teps;
    param[i] = param[i] * decay - step_size * m[i] / denom;
  }
}

template void adamw<float>(float*, const float*, float*, float*, int64_t, double, double, double, double, double, int64_t, double);
template void adamw<double>(double*, const double*, double*, double*, int64_t, double, double, double, double, double, int64_t, double);

}  // namespace hessgpt::cpu
