// The steps the cross-entropy kernels share (included by cross_entropy.cu
// through the kernels' headers): soft-capping, merging (max, sum of
// exponentials) summaries across a warp or a block, ignored rows, and the
// loads and gradient stores of the kernels that sweep a row VEC values at a
// time.
#pragma once

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/launch_config.h"

namespace hessgpt::cuda {
namespace {

constexpr int32_t kIgnoreIndex = -100;

__device__ __forceinline__ float capped(float z, float cap, float inv_cap) {
  return cap > 0.0f ? cap * tanhf(z * inv_cap) : z;
}

// Merge two (max, sum of exp(x - max)) summaries; an empty one has max -inf.
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  if (m2 == -INFINITY) return;
  if (m == -INFINITY) {
    m = m2;
    s = s2;
    return;
  }
  const float mx = fmaxf(m, m2);
  s = s * expf(m - mx) + s2 * expf(m2 - mx);
  m = mx;
}

// A row whose target is ignored or out of range (reported through bad, the
// smallest such row): loss 0 and, when a gradient is wanted, zeros. True when
// the row needs nothing else. The row's threads are thread 0 .. threads - 1
// (a block's, or a warp's lanes); they take values [begin, end) of it (end
// -1: the whole row), and the ones that start at 0 report and write the loss.
template <typename Grad>
__device__ bool ignored_row(int64_t r, int32_t target, int64_t v, Grad* gz, float* losses,
                            float dscale, uint32_t* bad, int thread, int threads,
                            int64_t begin = 0, int64_t end = -1) {
  if (target != kIgnoreIndex && target >= 0 && target < v) return false;
  if (begin == 0 && thread == 0) {
    if (target != kIgnoreIndex) atomicMin(bad, static_cast<uint32_t>(r));
    losses[r] = 0.0f;
  }
  if (dscale != 0.0f)
    for (int64_t i = begin + thread; i < (end < 0 ? v : end); i += threads)
      store_float(gz + i, 0.0f);
  return true;
}

// Every lane's (max, sum) summary merged into one, held by every lane.
__device__ __forceinline__ void merge_across_warp(float& m, float& s) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float m2 = __shfl_xor_sync(kFullMask, m, off);
    const float s2 = __shfl_xor_sync(kFullMask, s, off);
    merge(m, s, m2, s2);
  }
}

// Every thread's (max, sum) summary merged into warp 0's lanes (thread 0
// holds the row's); shared_m/s: a slot per warp, free again after the
// caller's next __syncthreads().
__device__ __forceinline__ void merge_across_block(float& m, float& s, float* shared_m,
                                                   float* shared_s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  merge_across_warp(m, s);
  if (lane == 0) {
    shared_m[warp] = m;
    shared_s[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    m = lane < warps ? shared_m[lane] : -INFINITY;
    s = lane < warps ? shared_s[lane] : 0.0f;
    merge_across_warp(m, s);
  }
}

// The kernels that sweep a row VEC values at a time (4: 16-byte accesses,
// the caller checks the alignment) share these steps.
template <int VEC, typename L>
__device__ __forceinline__ void load_capped(const L* z, float (&x)[VEC], float cap,
                                            float inv_cap) {
  if constexpr (VEC == 4) {
    const Pack<L, 4> p = load_pack<4>(z);
#pragma unroll
    for (int k = 0; k < 4; ++k) x[k] = capped(as_float(p.v[k]), cap, inv_cap);
  } else {
    x[0] = capped(as_float(*z), cap, inv_cap);
  }
}

// The running (max m, sum s of exp(x - m)) with VEC more values.
template <int VEC>
__device__ __forceinline__ void add_online(float& m, float& s, const float (&x)[VEC]) {
  float mx = x[0];
#pragma unroll
  for (int k = 1; k < VEC; ++k) mx = fmaxf(mx, x[k]);
  if (mx > m) {
    s *= expf(m - mx);  // 0 * expf(-inf) on a thread's first values
    m = mx;
  }
#pragma unroll
  for (int k = 0; k < VEC; ++k) s += expf(x[k] - m);
}

// The gradient of values first .. first + VEC - 1 (capped x) into gz + first;
// target_at: the target's offset from first (outside [0, VEC): none here).
template <int VEC, typename Grad>
__device__ __forceinline__ void store_gradient(Grad* gz, const float (&x)[VEC], float lse,
                                               int64_t target_at, float inv_cap, float dscale) {
  float g[VEC];
#pragma unroll
  for (int k = 0; k < VEC; ++k) {
    const float t = x[k] * inv_cap;  // tanh(z / cap); 0 when uncapped
    g[k] = dscale * expf(x[k] - lse) * (1.0f - t * t);
    if (k == target_at) g[k] -= dscale * (1.0f - t * t);  // the one-hot term
  }
  if constexpr (VEC == 4) {
    Pack<Grad, 4> out;
#pragma unroll
    for (int k = 0; k < 4; ++k) store_float(&out.v[k], g[k]);
    store_pack<4>(gz, out);
  } else {
    store_float(gz, g[0]);
  }
}

// The split kernels' item i: row i / segments, values [begin, end) of it.
struct SplitItem {
  int64_t row, begin, end;
};
__device__ __forceinline__ SplitItem split_item(int64_t item, int64_t segments, int64_t v) {
  const int64_t begin = item % segments * kCrossEntropySpan, end = begin + kCrossEntropySpan;
  return {item / segments, begin, end < v ? end : v};
}

// A segment is kSweeps strides of the block; each thread loads all of its
// values (capped) before it uses any, so that kSweeps loads are in flight
// per thread rather than one (the sixth GPU session: 1.9 TB/s for the
// two-pass sweep of model1's chunks). Used in the loops' order: the same sums.
template <int VEC>
constexpr int kSweeps = static_cast<int>(kCrossEntropySpan / (kCrossEntropySplitThreads * VEC));
static_assert(kSweeps<4> * kCrossEntropySplitThreads * 4 == kCrossEntropySpan);
static_assert(kSweeps<1> * kCrossEntropySplitThreads == kCrossEntropySpan);

// x[b] = the capped values at first + b * stride (VEC each) where they lie
// before end; returns how many do.
template <int VEC, typename L>
__device__ __forceinline__ int load_segment(const L* z, int64_t first, int64_t end,
                                            float (&x)[kSweeps<VEC>][VEC], float cap,
                                            float inv_cap) {
  constexpr int64_t kStride = int64_t{kCrossEntropySplitThreads} * VEC;
  int loaded = 0;
#pragma unroll
  for (int b = 0; b < kSweeps<VEC>; ++b)
    if (first + b * kStride < end) {
      load_capped(z + first + b * kStride, x[b], cap, inv_cap);
      loaded = b + 1;
    }
  return loaded;
}

// After load_segment (x from first on, loaded loads) and the row's log-sum-
// exp: the loss where the target is among this thread's values, and the
// gradient of its values unless dscale is 0.
template <int VEC, typename Grad>
__device__ __forceinline__ void finish_segment(const float (&x)[kSweeps<VEC>][VEC], int loaded,
                                               int64_t first, int32_t target, float lse,
                                               float* loss, Grad* gz, float inv_cap,
                                               float dscale) {
  constexpr int64_t kStride = int64_t{kCrossEntropySplitThreads} * VEC;
#pragma unroll
  for (int b = 0; b < kSweeps<VEC>; ++b) {
    if (b >= loaded) break;
    const int64_t i = first + b * kStride, target_at = target - i;
#pragma unroll
    for (int k = 0; k < VEC; ++k)
      if (k == target_at) *loss = lse - x[b][k];
    if (dscale != 0.0f) store_gradient(gz + i, x[b], lse, target_at, inv_cap, dscale);
  }
}

}  // namespace
}  // namespace hessgpt::cuda
