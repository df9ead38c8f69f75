// AdamW as torch.optim.AdamW (decoupled decay, bias-corrected moments), in
// the CPU kernel's order of operations with the same float constants.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace hessgpt::cuda {
namespace {

__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, int64_t n,
                             AdamWConstants c) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    const float g = grad[i] * c.grad_scale;
    const float mi = c.beta1 * m[i] + (1.0f - c.beta1) * g;
    const float vi = c.beta2 * v[i] + (1.0f - c.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) * c.inv_sqrt_bc2 + c.eps;
    param[i] = param[i] * c.decay - c.step_size * mi / denom;
  }
}

}  // namespace

void adamw(float* param, const float* grad, float* m, float* v, int64_t n,
           const AdamWConstants& c, cudaStream_t stream) {
  launch_elementwise(n, stream, adamw_kernel, param, grad, m, v, n, c);
}

}  // namespace hessgpt::cuda
