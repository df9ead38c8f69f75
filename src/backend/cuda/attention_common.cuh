// What both attention implementations share: the tensor shapes and their
// index math, and the opt-in to more than 48 KiB of shared memory.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>

#include "backend/cuda/cuda_check.h"

namespace hessgpt::cuda {

// q/out [B, Tq, H, D], k/v [B, Tk, KV, D], lse/delta [B, H, Tq].
struct AttnShape {
  int64_t b, tq, tk, h, kv, d;
  __device__ int64_t q_row(int64_t bi, int64_t i, int64_t head) const {
    return ((bi * tq + i) * h + head) * d;
  }
  __device__ int64_t k_row(int64_t bi, int64_t j, int64_t g) const {
    return ((bi * tk + j) * kv + g) * d;
  }
  __device__ int64_t lse_at(int64_t bi, int64_t head, int64_t i) const {
    return (bi * h + head) * tq + i;
  }
};

// Kernels above 48 KiB of dynamic shared memory must opt in, once per kernel.
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes, std::once_flag& once) {
  std::call_once(once, [&] {
    HG_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(bytes)));
  });
}

// delta[b, h, i] = dout_i . out_i (FP32), the row term of every attention
// backward; out is F32 or BF16 storage (uint16_t).
template <typename Out>
void attention_delta(float* delta, const float* dout, const Out* out, const AttnShape& s,
                     cudaStream_t stream);

}  // namespace hessgpt::cuda
