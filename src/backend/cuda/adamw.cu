// AdamW as torch.optim.AdamW (decoupled decay, bias-corrected moments), in
// the CPU kernel's order of operations with the same float constants.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace hessgpt::cuda {
namespace {

// One element, the CPU kernel's arithmetic. The _rn intrinsics are never
// contracted into FMAs: left to itself nvcc contracted the 16-byte loop and the
// scalar loop differently, and the one-launch update drifted from adamw_step
// by an ulp.
__device__ __forceinline__ void adamw_update(float& param, float grad, float& m, float& v,
                                             float decay, const AdamWConstants& c) {
  const float g = __fmul_rn(grad, c.grad_scale);
  const float mi = __fadd_rn(__fmul_rn(c.beta1, m), __fmul_rn(1.0f - c.beta1, g));
  const float vi = __fadd_rn(__fmul_rn(c.beta2, v), __fmul_rn(__fmul_rn(1.0f - c.beta2, g), g));
  m = mi;
  v = vi;
  const float denom = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), c.inv_sqrt_bc2), c.eps);
  param = __fsub_rn(__fmul_rn(param, decay), __fdiv_rn(__fmul_rn(c.step_size, mi), denom));
}

__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, int64_t n,
                             AdamWConstants c) {
  for (int64_t i = global_thread(); i < n; i += grid_stride())
    adamw_update(param[i], grad[i], m[i], v[i], c.decay, c);
}

// Block b: chunk b. With kVec, the indices that are multiples of 4 move 16
// bytes at a time (the buffers are 16-byte aligned), the chunk's ragged ends
// one value at a time.
template <bool kVec>
__global__ void adamw_chunked_kernel(float* param, const float* grad, float* m, float* v,
                                     const AdamWChunk* chunks, AdamWConstants c) {
  const AdamWChunk ch = chunks[blockIdx.x];
  const float decay = ch.decays ? c.decay : 1.0f;
  const int64_t t = threadIdx.x, stride = blockDim.x;
  int64_t body = ch.end, tail = ch.end;
  if constexpr (kVec) {
    const int64_t aligned = round_up(ch.begin, 4), last = ch.end / 4 * 4;
    body = aligned < ch.end ? aligned : ch.end;
    tail = last > body ? last : body;
    for (int64_t i = body + 4 * t; i < tail; i += 4 * stride) {
      Pack<float, 4> p = load_pack<4>(param + i), mm = load_pack<4>(m + i);
      Pack<float, 4> vv = load_pack<4>(v + i);
      const Pack<float, 4> g = load_pack<4>(grad + i);
#pragma unroll
      for (int e = 0; e < 4; ++e) adamw_update(p.v[e], g.v[e], mm.v[e], vv.v[e], decay, c);
      store_pack(param + i, p);
      store_pack(m + i, mm);
      store_pack(v + i, vv);
    }
  }
  for (int64_t i = ch.begin + t; i < body; i += stride)
    adamw_update(param[i], grad[i], m[i], v[i], decay, c);
  for (int64_t i = tail + t; i < ch.end; i += stride)
    adamw_update(param[i], grad[i], m[i], v[i], decay, c);
}

}  // namespace

void adamw(float* param, const float* grad, float* m, float* v, int64_t n,
           const AdamWConstants& c, cudaStream_t stream) {
  launch_elementwise(n, stream, adamw_kernel, param, grad, m, v, n, c);
}

void adamw_chunked(float* param, const float* grad, float* m, float* v, const AdamWChunk* chunks,
                   int64_t count, const AdamWConstants& c, bool vec, cudaStream_t stream) {
  if (count <= 0) return;
  const auto blocks = static_cast<unsigned>(count);
  if (vec)
    adamw_chunked_kernel<true><<<blocks, kThreads, 0, stream>>>(param, grad, m, v, chunks, c);
  else
    adamw_chunked_kernel<false><<<blocks, kThreads, 0, stream>>>(param, grad, m, v, chunks, c);
  HG_CUDA_CHECK_LAUNCH();
}

}  // namespace hessgpt::cuda
