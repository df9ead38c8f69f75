// Device helpers shared by the kernels: warp and block reductions (fixed
// shuffle trees, so results do not depend on scheduling) and the launch check.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/launch_config.h"

namespace hessgpt::cuda {

constexpr unsigned kFullMask = 0xffffffffu;

// Asks L2 for bytes [p, p + bytes), a 128-byte line per thread of the block
// at a time: a hint, nothing waits for it and no register holds it, so a
// block can have all of its rows on the way while it works through the first.
__device__ __forceinline__ void prefetch_to_l2(const void* p, int64_t bytes) {
  const char* base = static_cast<const char*>(p);
  for (int64_t at = static_cast<int64_t>(threadIdx.x) * 128; at < bytes;
       at += static_cast<int64_t>(blockDim.x) * 128)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(base + at));
}

template <typename T>
__device__ __forceinline__ T warp_sum(T x) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(kFullMask, x, off);
  return x;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, off));
  return x;
}

// A reduction over the block (blockDim.x a multiple of 32, at most 1024):
// warp_reduce within each warp, then over the warps' results (`empty` for the
// lanes past the last warp); every thread gets the result. `scratch` holds 32
// values; the block must not be using it.
template <typename T, typename WarpReduce>
__device__ T block_reduce(T x, T* scratch, T empty, WarpReduce warp_reduce) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  x = warp_reduce(x);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  return warp_reduce(lane < warps ? scratch[lane] : empty);
}

template <typename T>
__device__ T block_sum(T x, T* scratch) {
  return block_reduce(x, scratch, T(0), [](T v) { return warp_sum(v); });
}

__device__ __forceinline__ float block_max(float x, float* scratch) {
  return block_reduce(x, scratch, -INFINITY, [](float v) { return warp_max(v); });
}

// Element-wise launches share this shape: a grid-stride loop over n.
template <typename Kernel, typename... Args>
void launch_elementwise(int64_t n, cudaStream_t stream, Kernel kernel, Args... args) {
  const Launch1D l = elementwise_launch(n);
  if (l.blocks == 0) return;
  kernel<<<static_cast<unsigned>(l.blocks), l.threads, 0, stream>>>(args...);
  HG_CUDA_CHECK_LAUNCH();
}

__device__ __forceinline__ int64_t global_thread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// BF16 storage: host code passes its bits as uint16_t, kernels see __nv_bfloat16
// and compute in float (rounding to nearest even on the way out).
template <typename T>
struct DeviceStorage {
  using type = T;
};
template <>
struct DeviceStorage<uint16_t> {
  using type = __nv_bfloat16;
};
template <typename T>
using device_t = typename DeviceStorage<T>::type;
template <typename T>
device_t<T>* device_ptr(T* p) {
  return reinterpret_cast<device_t<T>*>(p);
}
template <typename T>
const device_t<T>* device_ptr(const T* p) {
  return reinterpret_cast<const device_t<T>*>(p);
}

// N consecutive values moved in one access (4 F32 or 8 BF16 values: 16 bytes;
// 4 BF16: 8 bytes). The launcher checks that the pointers are that aligned.
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};
template <int N, typename T>
__device__ __forceinline__ Pack<T, N> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T, N>*>(p);
}
template <int N, typename T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, N>& x) {
  *reinterpret_cast<Pack<T, N>*>(p) = x;
}
inline bool aligned_to(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

__device__ __forceinline__ float as_float(float x) { return x; }
__device__ __forceinline__ float as_float(__nv_bfloat16 x) { return __bfloat162float(x); }
// 4 consecutive F32 or BF16 values (16 or 8 bytes, aligned so), as floats.
template <typename T>
__device__ __forceinline__ Pack<float, 4> load_floats4(const T* p) {
  const Pack<T, 4> v = load_pack<4>(p);
  Pack<float, 4> f;
#pragma unroll
  for (int e = 0; e < 4; ++e) f.v[e] = as_float(v.v[e]);
  return f;
}
__device__ __forceinline__ void store_float(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_float(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

}  // namespace hessgpt::cuda
