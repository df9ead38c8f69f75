// Cross-entropy with a block or a warp per row (HESSGPT_CE_KERNEL=rows or
// warp; included by cross_entropy.cu): the A/B forms of the segment kernels.
#pragma once

#include "backend/cuda/cross_entropy_steps.cuh"

namespace hessgpt::cuda {
namespace {

// Rows of at most kCrossEntropyHeld: thread t holds the capped logits t,
// t + blockDim, ... (-inf past the row's end, which add exp(-inf) = 0).
template <typename L, typename Grad>
__global__ void __launch_bounds__(kCrossEntropyHeldThreads)
    cross_entropy_held_kernel(const L* logits, Grad* grad, float* losses,
                              const int32_t* targets, int64_t rows, int64_t v, float cap,
                              float inv_cap, float dscale, uint32_t* bad) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const L* z = logits + r * v;
    Grad* gz = grad + r * v;
    const int32_t target = targets[r];
    if (ignored_row(r, target, v, gz, losses, dscale, bad, threadIdx.x, blockDim.x)) continue;
    // Slot k is element threadIdx.x + k * kCrossEntropyHeldThreads: constant
    // offsets from the thread's first element (immediates in the loads and
    // stores, not a register each).
    const L* zt = z + threadIdx.x;
    Grad* gt = gz + threadIdx.x;
    const int64_t left = v - threadIdx.x, target_at = target - static_cast<int64_t>(threadIdx.x);
    float x[kCrossEntropyPerThread];
    float m = -INFINITY;
#pragma unroll
    for (int k = 0; k < kCrossEntropyPerThread; ++k) {
      x[k] = k * kCrossEntropyHeldThreads < left
                 ? capped(as_float(zt[k * kCrossEntropyHeldThreads]), cap, inv_cap)
                 : -INFINITY;
      m = fmaxf(m, x[k]);
    }
    // Every read of the row is behind this barrier, so the gradient may
    // overwrite it below.
    m = block_max(m, scratch);
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < kCrossEntropyPerThread; ++k) s += expf(x[k] - m);
    const float lse = m + logf(block_sum(s, scratch));
#pragma unroll
    for (int k = 0; k < kCrossEntropyPerThread; ++k) {
      const bool is_target = k * kCrossEntropyHeldThreads == target_at;
      if (is_target) losses[r] = lse - x[k];
      if (dscale != 0.0f && k * kCrossEntropyHeldThreads < left) {
        const float t = x[k] * inv_cap;  // tanh(z / cap); 0 when uncapped
        float g = dscale * expf(x[k] - lse) * (1.0f - t * t);
        if (is_target) g -= dscale * (1.0f - t * t);  // the one-hot term
        store_float(gt + k * kCrossEntropyHeldThreads, g);
      }
    }
  }
}

// Wider rows. The gradient goes to grad (rows v apart): the logits
// themselves, or a BF16 tensor.
template <typename L, typename Grad>
__global__ void __launch_bounds__(kCrossEntropyThreads)
    cross_entropy_sweep_kernel(const L* logits, Grad* grad, float* losses, const int32_t* targets,
                         int64_t rows, int64_t v, float cap, float inv_cap, float dscale,
                         uint32_t* bad) {
  __shared__ float shared_m[32], shared_s[32];
  __shared__ float row_lse;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const L* z = logits + r * v;
    Grad* gz = grad + r * v;
    const int32_t target = targets[r];
    if (ignored_row(r, target, v, gz, losses, dscale, bad, threadIdx.x, blockDim.x)) continue;
    float m = -INFINITY, s = 0.0f;
    for (int64_t i = threadIdx.x; i < v; i += blockDim.x) {
      const float x = capped(as_float(z[i]), cap, inv_cap);
      if (x > m) {
        s = s * expf(m - x) + 1.0f;  // expf(-inf) = 0 on the first element
        m = x;
      } else {
        s += expf(x - m);
      }
    }
    merge_across_block(m, s, shared_m, shared_s);
    if (threadIdx.x == 0) {
      const float lse = m + logf(s);
      row_lse = lse;
      losses[r] = lse - capped(as_float(z[target]), cap, inv_cap);
    }
    __syncthreads();
    const float lse = row_lse;
    if (dscale != 0.0f) {
      for (int64_t i = threadIdx.x; i < v; i += blockDim.x) {
        const float x = capped(as_float(z[i]), cap, inv_cap);
        const float t = x * inv_cap;  // tanh(z / cap); 0 when uncapped
        float g = dscale * expf(x - lse) * (1.0f - t * t);
        if (i == target) g -= dscale * (1.0f - t * t);  // the one-hot term
        store_float(gz + i, g);
      }
    }
    __syncthreads();  // shared_m/s and row_lse are reused by the next row
  }
}

// One warp per row and two sweeps: an online max and sum of exponentials
// (per lane, merged across the warp), then the gradient from a second read of
// the row (from L2 while it is still there). No block barriers, and many rows
// in flight per SM, where the register-held kernel keeps one 1024-thread block
// (one row) per SM that idles through its reductions. VEC: values per access
// (4: 16-byte loads, the row width a multiple of 4 and the rows aligned).
template <int VEC, typename L, typename Grad>
__global__ void __launch_bounds__(kCrossEntropyWarpThreads)
    cross_entropy_warp_kernel(const L* logits, Grad* grad, float* losses, const int32_t* targets,
                              int64_t rows, int64_t v, float cap, float inv_cap, float dscale,
                              uint32_t* bad) {
  const int lane = threadIdx.x & 31;
  const int64_t warps_per_block = blockDim.x >> 5;
  const int64_t stride = gridDim.x * warps_per_block;
  for (int64_t r = blockIdx.x * warps_per_block + (threadIdx.x >> 5); r < rows; r += stride) {
    const L* z = logits + r * v;
    Grad* gz = grad + r * v;
    const int32_t target = targets[r];
    if (ignored_row(r, target, v, gz, losses, dscale, bad, lane, 32)) continue;
    float m = -INFINITY, s = 0.0f;
#pragma unroll 4
    for (int64_t i = lane * VEC; i < v; i += 32 * VEC) {
      float x[VEC];
      load_capped(z + i, x, cap, inv_cap);
      add_online(m, s, x);
    }
    merge_across_warp(m, s);
    const float lse = m + logf(s);
    if (lane == 0) losses[r] = lse - capped(as_float(z[target]), cap, inv_cap);
    if (dscale == 0.0f) continue;
    __syncwarp();  // z[target] is read before the gradient may overwrite it
#pragma unroll 4
    for (int64_t i = lane * VEC; i < v; i += 32 * VEC) {
      float x[VEC];
      load_capped(z + i, x, cap, inv_cap);
      store_gradient(gz + i, x, lse, target - i, inv_cap, dscale);
    }
  }
}

}  // namespace
}  // namespace hessgpt::cuda
