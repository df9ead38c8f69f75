// RMSNorm kernels that hold their rows in registers (included by rmsnorm.cu).
// The generic kernels there read each value two or three times, one float per
// lane per load, and (QK-Norm + RoPE) work out the row's position and fetch the
// rotation partner once per element: at model1's shapes they moved 0.7-1.6 TB/s
// on an H200. Here each value is read once and kept:
//   plain norms: d % 4 == 0 and d <= 128 * kVec; lane l holds the 4-float groups
//     l, l + 32, ... (16-byte loads and stores);
//   QK-Norm + RoPE: d / 2 <= 32 * kPairs; lane l holds the rotation pairs
//     (j, j + d/2) for j = l, l + 32, ..., so the rotation stays in the lane and
//     the position is worked out once per row.
// Per element the arithmetic is the generic kernels' (the helpers below serve
// both); only the order in which the lanes add their double partial sums
// changes.
#pragma once

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace hessgpt::cuda {
namespace {

using F4 = Pack<float, 4>;

__device__ __forceinline__ int64_t norm_row() {
  return static_cast<int64_t>(blockIdx.x) * kNormWarps + (threadIdx.x >> 5);
}
__device__ __forceinline__ float inv_rms(double ss, int64_t d, double eps) {
  return static_cast<float>(1.0 / sqrt(warp_sum(ss) / static_cast<double>(d) + eps));
}

template <typename Out, typename X, int kVec>
__global__ void rmsnorm_forward_held_kernel(Out* out, float* rstd, const X* x, const float* w,
                                            int64_t rows, int64_t d, double eps) {
  const int lane = threadIdx.x & 31;
  const int64_t r = norm_row();
  if (r >= rows) return;
  const int64_t groups = d / 4;
  const X* xr = x + r * d;
  F4 xv[kVec];
  double ss = 0.0;
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    const int64_t c = lane + 32 * k;
    if (c >= groups) continue;
    xv[k] = load_floats4(xr + 4 * c);
#pragma unroll
    for (int e = 0; e < 4; ++e) ss += static_cast<double>(xv[k].v[e]) * xv[k].v[e];
  }
  const float s = inv_rms(ss, d, eps);
  if (lane == 0) rstd[r] = s;
  Out* o = out + r * d;
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    const int64_t c = lane + 32 * k;
    if (c >= groups) continue;
    const F4 wv = load_pack<4>(w + 4 * c);
    Pack<Out, 4> ov;
#pragma unroll
    for (int e = 0; e < 4; ++e) store_float(&ov.v[e], xv[k].v[e] * s * wv.v[e]);
    store_pack(o + 4 * c, ov);
  }
}

template <typename Out, typename X, int kPairs>
__global__ void qk_norm_rope_forward_held_kernel(Out* out, float* rstd, const X* x,
                                                 const float* w, int64_t rows, int64_t d,
                                                 double eps, RopeRows rope) {
  constexpr float sign = 1.0f;  // the rotation itself (the backward: its transpose)
  const int lane = threadIdx.x & 31;
  const int64_t r = norm_row();
  if (r >= rows) return;
  const int64_t half = d / 2;
  const X* xr = x + r * d;
  float lo[kPairs], hi[kPairs];
  double ss = 0.0;
#pragma unroll
  for (int k = 0; k < kPairs; ++k) {
    const int64_t j = lane + 32 * k;
    if (j >= half) continue;
    lo[k] = as_float(xr[j]);
    hi[k] = as_float(xr[j + half]);
    ss += static_cast<double>(lo[k]) * lo[k];
    ss += static_cast<double>(hi[k]) * hi[k];
  }
  const float s = inv_rms(ss, d, eps);
  if (lane == 0) rstd[r] = s;
  const int64_t pos = rope.pos0 + (r / rope.heads) % rope.t;
  const float* cr = rope.cos + pos * half;
  const float* sr = rope.sin + pos * half;
  Out* o = out + r * d;
#pragma unroll
  for (int k = 0; k < kPairs; ++k) {
    const int64_t j = lane + 32 * k;
    if (j >= half) continue;
    const float a = lo[k] * s * w[j], b = hi[k] * s * w[j + half];
    const float c = cr[j], sn = sr[j];
    store_float(o + j, a * c - sign * b * sn);
    store_float(o + j + half, b * c + sign * a * sn);
  }
}

// The backward's arithmetic in explicit roundings: `__f*_rn` and `__fma*_rn`
// are never fused or split by the compiler, where `a * b + c` may become an
// fma in one instantiation and a multiply and an add in another (nvcc 13 did
// exactly that to dw between the F32- and BF16-dout forms of the held kernel,
// so a BF16 dout no longer gave the bits of its widened F32 values). Every
// kernel of the backward goes through these two helpers.

// dot + dout_i * w_i * xhat_i (xhat_i = x_i * s), in double.
__device__ __forceinline__ double add_dot_term(double dot, float gi, float wi, float xi,
                                               float s) {
  return __fma_rn(__dmul_rn(__dmul_rn(gi, wi), xi), s, dot);
}

// One element of the backward: dx (= or +=, and its BF16 copy) from the
// gradient gi of the norm's output; gi * xhat added to dw.
template <typename DX>
__device__ __forceinline__ void norm_grad_element(DX* dx, __nv_bfloat16* dx_copy, int64_t i,
                                                  float& dw, float gi, float xi, float wi,
                                                  float s, float mean_dot, bool accumulate_dx) {
  const float xhat = __fmul_rn(xi, s);
  const float t = __fsub_rn(__fmul_rn(gi, wi), __fmul_rn(xhat, mean_dot));
  const float value = accumulate_dx ? __fmaf_rn(s, t, as_float(dx[i])) : __fmul_rn(s, t);
  store_float(dx + i, value);
  if (dx_copy) store_float(dx_copy + i, value);
  dw = __fmaf_rn(gi, xhat, dw);
}

// The partition's dw rows of the block's warps, added in warp order (as the
// generic kernel does).
__device__ __forceinline__ void write_dw_partial(float* dw_partials, const float* dw_rows,
                                                 int64_t d) {
  __syncthreads();
  const int warps = blockDim.x >> 5;
  float* part = dw_partials + static_cast<int64_t>(blockIdx.x) * d;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    float sum = 0.0f;
    for (int k = 0; k < warps; ++k) sum += dw_rows[static_cast<int64_t>(k) * d + i];
    part[i] = sum;
  }
}

// Pass 1 of the backward, partitions as the generic kernel's. dout F32, or
// BF16 (storage: the block's dln out of a product under --bf16-activations).
//
// Occupancy rules this kernel: at model1's width (kVec 10) two 8-warp blocks
// fit an SM only at <= 128 registers, and with dout widened into floats the
// BF16-dout forms took 133-135 and ran with one block, at 2.2 TB/s against 3.3
// (the fifth and sixth GPU sessions' profiles). So dout stays in its storage
// type until used (2 registers a BF16 group, not 4), and the launch bounds ask
// for two blocks where the rows are that narrow.
template <typename DX, typename DO, typename X, int kVec>
__global__ void __launch_bounds__(kNormWarps * 32, kVec <= 10 ? 2 : 1)
    rmsnorm_backward_held_kernel(DX* dx, __nv_bfloat16* dx_copy, float* dw_partials,
                                             const DO* dout, const X* x, const float* w,
                                             const float* rstd, int64_t rows, int64_t d,
                                             int64_t parts, bool accumulate_dx) {
  extern __shared__ float dw_rows[];  // [warps, d]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int64_t groups = d / 4;
  float* dw_local = dw_rows + static_cast<int64_t>(warp) * d;
#pragma unroll
  for (int k = 0; k < kVec; ++k)
    if (lane + 32 * k < groups) store_pack(dw_local + 4 * (lane + 32 * k), F4{});
  const RowRange range = partition_rows(rows, parts, blockIdx.x);
  for (int64_t r = range.begin + warp; r < range.end; r += warps) {
    F4 xv[kVec];
    Pack<DO, 4> gv[kVec];
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const int64_t c = lane + 32 * k;
      if (c >= groups) continue;
      xv[k] = load_floats4(x + r * d + 4 * c);
      gv[k] = load_pack<4>(dout + r * d + 4 * c);
    }
    const float s = rstd[r];
    double dot = 0.0;  // sum_i dout_i * w_i * xhat_i
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const int64_t c = lane + 32 * k;
      if (c >= groups) continue;
      const F4 wv = load_pack<4>(w + 4 * c);
#pragma unroll
      for (int e = 0; e < 4; ++e)
        dot = add_dot_term(dot, as_float(gv[k].v[e]), wv.v[e], xv[k].v[e], s);
    }
    const float mean_dot = static_cast<float>(warp_sum(dot) / static_cast<double>(d));
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const int64_t c = lane + 32 * k;
      if (c >= groups) continue;
      const F4 wv = load_pack<4>(w + 4 * c);
      F4 dl = load_pack<4>(dw_local + 4 * c);
      Pack<DX, 4> dv;
      Pack<__nv_bfloat16, 4> copy;
      if (accumulate_dx) dv = load_pack<4>(dx + r * d + 4 * c);
#pragma unroll
      for (int e = 0; e < 4; ++e)
        norm_grad_element(dv.v, copy.v, e, dl.v[e], as_float(gv[k].v[e]), xv[k].v[e], wv.v[e], s,
                          mean_dot, accumulate_dx);
      store_pack(dx + r * d + 4 * c, dv);
      if (dx_copy) store_pack(dx_copy + r * d + 4 * c, copy);
      store_pack(dw_local + 4 * c, dl);
    }
  }
  write_dw_partial(dw_partials, dw_rows, d);
}

// QK-Norm + RoPE, pass 1: dout is rotated back (the transpose) pair by pair.
template <typename DX, typename DO, typename X, int kPairs>
__global__ void qk_norm_rope_backward_held_kernel(DX* dx, __nv_bfloat16* dx_copy,
                                                  float* dw_partials, const DO* dout,
                                                  const X* x, const float* w,
                                                  const float* rstd, int64_t rows, int64_t d,
                                                  int64_t parts, bool accumulate_dx,
                                                  RopeRows rope) {
  constexpr float sign = -1.0f;
  extern __shared__ float dw_rows[];  // [warps, d]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int64_t half = d / 2;
  float* dw_local = dw_rows + static_cast<int64_t>(warp) * d;
#pragma unroll
  for (int k = 0; k < kPairs; ++k) {
    const int64_t j = lane + 32 * k;
    if (j < half) dw_local[j] = dw_local[j + half] = 0.0f;
  }
  const RowRange range = partition_rows(rows, parts, blockIdx.x);
  for (int64_t r = range.begin + warp; r < range.end; r += warps) {
    const int64_t pos = rope.pos0 + (r / rope.heads) % rope.t;
    const X* xr = x + r * d;
    const DO* gr = dout + r * d;
    const float s = rstd[r];
    float xl[kPairs], xh[kPairs], gl[kPairs], gh[kPairs];
    double dot = 0.0;
#pragma unroll
    for (int k = 0; k < kPairs; ++k) {
      const int64_t j = lane + 32 * k;
      if (j >= half) continue;
      xl[k] = as_float(xr[j]);
      xh[k] = as_float(xr[j + half]);
      const float g1 = as_float(gr[j]), g2 = as_float(gr[j + half]);
      const float c = rope.cos[pos * half + j], sn = rope.sin[pos * half + j];
      gl[k] = g1 * c - sign * g2 * sn;
      gh[k] = g2 * c + sign * g1 * sn;
      dot = add_dot_term(dot, gl[k], w[j], xl[k], s);
      dot = add_dot_term(dot, gh[k], w[j + half], xh[k], s);
    }
    const float mean_dot = static_cast<float>(warp_sum(dot) / static_cast<double>(d));
    DX* dxr = dx + dx_row_offset(rope, r, d);
    __nv_bfloat16* copy = dx_copy ? dx_copy + r * d : nullptr;
#pragma unroll
    for (int k = 0; k < kPairs; ++k) {
      const int64_t j = lane + 32 * k;
      if (j >= half) continue;
      norm_grad_element(dxr, copy, j, dw_local[j], gl[k], xl[k], w[j], s, mean_dot,
                        accumulate_dx);
      norm_grad_element(dxr, copy, j + half, dw_local[j + half], gh[k], xh[k], w[j + half], s,
                        mean_dot, accumulate_dx);
    }
  }
  write_dw_partial(dw_partials, dw_rows, d);
}

}  // namespace
}  // namespace hessgpt::cuda
