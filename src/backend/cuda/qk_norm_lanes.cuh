// QK-Norm + RoPE with a group of L lanes per row (included by rmsnorm.cu;
// qk_norm_lanes_per_row in launch_config.h): lane l of a group holds the
// rotation pairs (j, j + d/2) for j = 4l .. 4l + 3, read and written as 16-byte
// (F32) or 8-byte (BF16) packs, and a warp works 32 / L rows side by side.
// At head dim 64 a warp per row (rmsnorm_held.cuh) ran at 1.4 TB/s forward on
// an H200: each 64-value row paid a whole warp's reduction, its position's
// 64-bit division and double-precision inverse root, so the fixed cost per
// row, not the memory, set the pace. Here 8 lanes share that cost four rows at
// a time, and the reduction is three shuffles instead of five.
// Per element the arithmetic is the other kernels'; only the order of the
// double partial sums (and of dw's sum over a partition's rows) differs.
#pragma once

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/rmsnorm_held.cuh"

namespace hessgpt::cuda {
namespace {

// The sum over the L lanes of a group (groups are aligned runs of L lanes).
template <int L>
__device__ __forceinline__ double group_sum(double x) {
#pragma unroll
  for (int off = L / 2; off > 0; off >>= 1) x += __shfl_xor_sync(kFullMask, x, off);
  return x;
}

template <typename Out, typename X, int L>
__global__ void qk_norm_rope_forward_lanes_kernel(Out* out, float* rstd, const X* x,
                                                  const float* w, int64_t rows, int64_t d,
                                                  double eps, RopeRows rope) {
  constexpr int kRowsPerWarp = 32 / L;
  const int lane = threadIdx.x & 31, sl = lane % L;
  const int64_t r = norm_row() * kRowsPerWarp + lane / L;
  const bool live = r < rows;  // dead lanes still join the shuffles
  const int64_t half = d / 2, j = 4 * sl;
  F4 lo{}, hi{};
  if (live) {
    lo = load_floats4(x + r * d + j);
    hi = load_floats4(x + r * d + half + j);
  }
  double ss = 0.0;
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    ss += static_cast<double>(lo.v[e]) * lo.v[e];
    ss += static_cast<double>(hi.v[e]) * hi.v[e];
  }
  ss = group_sum<L>(ss);
  if (!live) return;
  const float s = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(d) + eps));
  if (sl == 0) rstd[r] = s;
  const int64_t pos = rope.pos0 + (r / rope.heads) % rope.t;
  const F4 c = load_pack<4>(rope.cos + pos * half + j);
  const F4 sn = load_pack<4>(rope.sin + pos * half + j);
  const F4 wl = load_pack<4>(w + j), wh = load_pack<4>(w + half + j);
  Pack<Out, 4> ol, oh;
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const float a = lo.v[e] * s * wl.v[e], b = hi.v[e] * s * wh.v[e];
    store_float(&ol.v[e], a * c.v[e] - b * sn.v[e]);
    store_float(&oh.v[e], b * c.v[e] + a * sn.v[e]);
  }
  store_pack(out + r * d + j, ol);
  store_pack(out + r * d + half + j, oh);
}

// Pass 1 of the backward, partitions as the other kernels'. Each lane sums
// dw for its 8 columns over the rows its group takes; the warp's groups are
// then added (shuffles) and the block's warps in order (write_dw_partial).
// Each warp's loop waits on memory once per 4 rows, so resident warps set the
// pace: at 77-94 registers two 8-warp blocks fit an SM and model1's q ran at
// 1.4 TB/s (the sixth GPU session). The launch bounds ask for three (<= 85
// registers, no spills; four spilled a little), and with prefetch the block
// first asks L2 for its partition's x and dout (model1's q: 160 rows, 40 KB
// in BF16), so that only the first of its ~5 rounds waits on HBM.
template <typename DX, typename DO, typename X, int L>
__global__ void __launch_bounds__(kNormWarps * 32, 3)
    qk_norm_rope_backward_lanes_kernel(DX* dx, __nv_bfloat16* dx_copy, float* dw_partials,
                                       const DO* dout, const X* x, const float* w,
                                       const float* rstd, int64_t rows, int64_t d, int64_t parts,
                                       bool accumulate_dx, bool prefetch, RopeRows rope) {
  constexpr int kRowsPerWarp = 32 / L;
  extern __shared__ float dw_rows[];  // [warps, d]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int sl = lane % L;
  const int64_t half = d / 2, j = 4 * sl;
  const RowRange range = partition_rows(rows, parts, blockIdx.x);
  if (prefetch) {
    const int64_t values = (range.end - range.begin) * d;
    prefetch_to_l2(x + range.begin * d, values * static_cast<int64_t>(sizeof(X)));
    prefetch_to_l2(dout + range.begin * d, values * static_cast<int64_t>(sizeof(DO)));
  }
  const F4 wl = load_pack<4>(w + j), wh = load_pack<4>(w + half + j);
  F4 dwl{}, dwh{};
  for (int64_t first = range.begin + static_cast<int64_t>(warp) * kRowsPerWarp;
       first < range.end; first += static_cast<int64_t>(warps) * kRowsPerWarp) {
    const int64_t r = first + lane / L;
    const bool live = r < range.end;
    F4 xl{}, xh{}, gl{}, gh{};
    float s = 0.0f;
    if (live) {
      xl = load_floats4(x + r * d + j);
      xh = load_floats4(x + r * d + half + j);
      const Pack<DO, 4> g1 = load_pack<4>(dout + r * d + j);
      const Pack<DO, 4> g2 = load_pack<4>(dout + r * d + half + j);
      const int64_t pos = rope.pos0 + (r / rope.heads) % rope.t;
      const F4 c = load_pack<4>(rope.cos + pos * half + j);
      const F4 sn = load_pack<4>(rope.sin + pos * half + j);
      // The rotation's transpose: [c s; -s c].
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float a = as_float(g1.v[e]), b = as_float(g2.v[e]);
        gl.v[e] = a * c.v[e] + b * sn.v[e];
        gh.v[e] = b * c.v[e] - a * sn.v[e];
      }
      s = rstd[r];
    }
    double dot = 0.0;  // sum_i dout_i * w_i * xhat_i
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      dot = add_dot_term(dot, gl.v[e], wl.v[e], xl.v[e], s);
      dot = add_dot_term(dot, gh.v[e], wh.v[e], xh.v[e], s);
    }
    dot = group_sum<L>(dot);
    if (!live) continue;  // the loop bound is the warp's: the next shuffles stay converged
    const float mean_dot = static_cast<float>(dot / static_cast<double>(d));
    Pack<DX, 4> vl, vh;
    Pack<__nv_bfloat16, 4> cl, ch;
    DX* dxr = dx + dx_row_offset(rope, r, d);
    if (accumulate_dx) {
      vl = load_pack<4>(dxr + j);
      vh = load_pack<4>(dxr + half + j);
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      norm_grad_element(vl.v, cl.v, e, dwl.v[e], gl.v[e], xl.v[e], wl.v[e], s, mean_dot,
                        accumulate_dx);
      norm_grad_element(vh.v, ch.v, e, dwh.v[e], gh.v[e], xh.v[e], wh.v[e], s, mean_dot,
                        accumulate_dx);
    }
    store_pack(dxr + j, vl);
    store_pack(dxr + half + j, vh);
    if (dx_copy) {
      store_pack(dx_copy + r * d + j, cl);
      store_pack(dx_copy + r * d + half + j, ch);
    }
  }
#pragma unroll
  for (int off = L; off < 32; off <<= 1)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      dwl.v[e] += __shfl_xor_sync(kFullMask, dwl.v[e], off);
      dwh.v[e] += __shfl_xor_sync(kFullMask, dwh.v[e], off);
    }
  if (lane < L) {
    store_pack(dw_rows + static_cast<int64_t>(warp) * d + j, dwl);
    store_pack(dw_rows + static_cast<int64_t>(warp) * d + half + j, dwh);
  }
  write_dw_partial(dw_partials, dw_rows, d);
}

}  // namespace
}  // namespace hessgpt::cuda
