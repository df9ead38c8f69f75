// RMSNorm over the last dimension (block norms with d = C, QK-Norm with
// d = head dim): one warp per row. The weight gradient is summed without
// atomics in two fixed-order passes (rows within a partition, then partitions),
// so it is bit-identical run to run.
#include <cstdlib>
#include <initializer_list>
#include <string_view>
#include <type_traits>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/qk_norm_lanes.cuh"
#include "backend/cuda/rmsnorm_held.cuh"
#include "core/env_switch.h"
#include "core/error.h"

namespace hessgpt::cuda {
namespace {

// Element i of row r rotated by RoPE (sign +1) or its transpose (sign -1),
// rope() in rope.cu written per element: pairs (j, j + d/2) turn by [c -s; s c].
// value(e) is element e of the row before the rotation.
template <typename Value>
__device__ __forceinline__ float rotated(const RopeRows& rope, int64_t r, int64_t i, int64_t d,
                                         float sign, Value value) {
  const int64_t half = d / 2, pos = rope.pos0 + (r / rope.heads) % rope.t;
  const bool first = i < half;
  const int64_t j = first ? i : i - half;
  const float c = rope.cos[pos * half + j], s = rope.sin[pos * half + j];
  const float self = value(i), partner = value(first ? i + half : i - half);
  return first ? self * c - sign * partner * s : self * c + sign * partner * s;
}

template <typename Out, typename X>
__global__ void rmsnorm_forward_kernel(Out* out, float* rstd, const X* x, const float* w,
                                       int64_t rows, int64_t d, double eps, RopeRows rope) {
  const int lane = threadIdx.x & 31;
  const int64_t r = norm_row();
  if (r >= rows) return;
  const X* xr = x + r * d;
  double ss = 0.0;  // in double, as the CPU kernel
  for (int64_t i = lane; i < d; i += 32) {
    const float xi = as_float(xr[i]);
    ss += static_cast<double>(xi) * xi;
  }
  const float s = inv_rms(ss, d, eps);
  if (lane == 0) rstd[r] = s;
  Out* o = out + r * d;
  if (!rope.cos) {
    for (int64_t i = lane; i < d; i += 32) store_float(o + i, as_float(xr[i]) * s * w[i]);
    return;
  }
  const auto normed = [&](int64_t e) { return as_float(xr[e]) * s * w[e]; };
  for (int64_t i = lane; i < d; i += 32) store_float(o + i, rotated(rope, r, i, d, 1.0f, normed));
}

// Pass 1: block p = partition p; warp w takes rows begin + w, begin + w + warps, ...
// dout: F32, or BF16 (storage; read widened).
template <typename DX, typename DO, typename X>
__global__ void rmsnorm_backward_kernel(DX* dx, __nv_bfloat16* dx_copy, float* dw_partials,
                                        const DO* dout, const X* x, const float* w,
                                        const float* rstd, int64_t rows, int64_t d,
                                        int64_t parts, bool accumulate_dx, RopeRows rope) {
  extern __shared__ float dw_rows[];  // [warps, d]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  float* dw_local = dw_rows + static_cast<int64_t>(warp) * d;
  for (int64_t i = lane; i < d; i += 32) dw_local[i] = 0.0f;
  const RowRange range = partition_rows(rows, parts, blockIdx.x);
  for (int64_t r = range.begin + warp; r < range.end; r += warps) {
    const X* xr = x + r * d;
    const DO* gr = dout + r * d;
    // The gradient of the norm's output: dout, or dout rotated back.
    const auto grad = [&](int64_t i) {
      return rope.cos ? rotated(rope, r, i, d, -1.0f, [gr](int64_t e) { return as_float(gr[e]); })
                      : as_float(gr[i]);
    };
    const float s = rstd[r];
    double dot = 0.0;  // sum_i dout_i * w_i * xhat_i
    for (int64_t i = lane; i < d; i += 32)
      dot = add_dot_term(dot, grad(i), w[i], as_float(xr[i]), s);
    dot = warp_sum(dot);
    const float mean_dot = static_cast<float>(dot / static_cast<double>(d));
    DX* dxr = dx + dx_row_offset(rope, r, d);
    __nv_bfloat16* copy = dx_copy ? dx_copy + r * d : nullptr;
    for (int64_t i = lane; i < d; i += 32)
      norm_grad_element(dxr, copy, i, dw_local[i], grad(i), as_float(xr[i]), w[i], s, mean_dot,
                        accumulate_dx);
  }
  write_dw_partial(dw_partials, dw_rows, d);
}

// Pass 2 (launch_config.h): slice `threadIdx.x / kDwColumns` of the
// partitions for column `blockIdx.x * kDwColumns + threadIdx.x % kDwColumns`.
__global__ void rmsnorm_dw_kernel(float* dw, const float* dw_partials, int64_t parts, int64_t d) {
  __shared__ float slice_sums[kDwSlices][kDwColumns + 1];
  const int column = threadIdx.x % kDwColumns, slice = threadIdx.x / kDwColumns;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kDwColumns + column;
  const RowRange range = partition_rows(parts, kDwSlices, slice);
  float sum = 0.0f;
  if (i < d)
#pragma unroll 8
    for (int64_t p = range.begin; p < range.end; ++p) sum += dw_partials[p * d + i];
  slice_sums[slice][column] = sum;
  __syncthreads();
  if (slice != 0 || i >= d) return;
  float total = 0.0f;
  for (int k = 0; k < kDwSlices; ++k) total += slice_sums[k][column];
  dw[i] += total;
}

// ---- which kernel: rows held in registers where they fit (rmsnorm_held.cuh) ----

template <int N>
using Width = std::integral_constant<int, N>;

// f(Width<N>{}) for N = rmsnorm_held_width(units, pairs) (launch_config.h);
// false where that is 0.
template <typename F>
bool with_held_width(int64_t units, bool pairs, F&& f) {
  switch (rmsnorm_held_width(units, pairs)) {
    case 1: f(Width<1>{}); return true;
    case 2: f(Width<2>{}); return true;
    case 4: f(Width<4>{}); return true;
    case 8: f(Width<8>{}); return true;
    case 10: f(Width<10>{}); return true;
    case 16: f(Width<16>{}); return true;
    default: return false;
  }
}

// HESSGPT_NORM_KERNELS=generic keeps the generic kernels (A/B timings; the
// test comparing the two). Read at every call, as HESSGPT_ATTN_ROWS.
bool held_kernels_wanted() {
  const char* e = std::getenv("HESSGPT_NORM_KERNELS");
  if (!e || std::string_view(e) == "held") return true;
  if (std::string_view(e) == "generic") return false;
  HG_FAIL("HESSGPT_NORM_KERNELS must be held or generic (got '", e, "')");
}

// Held rows read and write whole 4-float groups (plain norms: every pointer
// 16-byte aligned and d % 4 == 0) or single floats (pairs: d even, checked by
// the backend). Returns the width in groups or pairs, or 0 for the generic kernels.
int64_t held_units(int64_t d, bool rope, std::initializer_list<const void*> pointers) {
  if (!held_kernels_wanted()) return 0;
  if (rope) return d % 2 == 0 ? d / 2 : 0;
  if (d % 4 != 0) return 0;
  for (const void* p : pointers)
    if (p && !aligned_to(p, 16)) return 0;
  return d / 4;
}

// QK-Norm + RoPE in lane groups (qk_norm_lanes.cuh) where the head dim allows
// (qk_norm_lanes_per_row) and every pointer is 16-byte aligned; else a warp
// per row. HESSGPT_QK_NORM_ROWS=1 keeps a warp per row (A/B timings, and the
// test comparing the two); read at every call.
int qk_norm_lanes(int64_t d, std::initializer_list<const void*> pointers) {
  const char* e = std::getenv("HESSGPT_QK_NORM_ROWS");
  if (e && *e && std::string_view(e) != "lanes") {
    if (std::string_view(e) == "1") return 0;
    HG_FAIL("HESSGPT_QK_NORM_ROWS must be lanes or 1 (got '", e, "')");
  }
  if (!held_kernels_wanted()) return 0;
  for (const void* p : pointers)
    if (p && !aligned_to(p, 16)) return 0;
  return qk_norm_lanes_per_row(d);
}

// f(Width<L>{}) for L lanes per row (1 to 32, a power of two); false for 0.
template <typename F>
bool with_lanes(int lanes, F&& f) {
  switch (lanes) {
    case 1: f(Width<1>{}); return true;
    case 2: f(Width<2>{}); return true;
    case 4: f(Width<4>{}); return true;
    case 8: f(Width<8>{}); return true;
    case 16: f(Width<16>{}); return true;
    case 32: f(Width<32>{}); return true;
    default: return false;
  }
}

template <typename Out, typename X>
bool rmsnorm_forward_held(Out* out, float* rstd, const X* x, const float* w, int64_t rows,
                          int64_t d, double eps, cudaStream_t stream, const RopeRows& rope) {
  const bool pairs = rope.cos != nullptr;
  const unsigned blocks = static_cast<unsigned>(rmsnorm_blocks(rows));
  if (pairs && with_lanes(qk_norm_lanes(d, {out, x, w, rope.cos, rope.sin}), [&](auto lanes) {
        constexpr int L = decltype(lanes)::value;
        const auto grid = static_cast<unsigned>(rmsnorm_blocks(ceil_div(rows, 32 / L)));
        qk_norm_rope_forward_lanes_kernel<device_t<Out>, device_t<X>, L>
            <<<grid, kNormWarps * 32, 0, stream>>>(device_ptr(out), rstd, device_ptr(x), w, rows,
                                                   d, eps, rope);
        HG_CUDA_CHECK_LAUNCH();
      }))
    return true;
  return with_held_width(held_units(d, pairs, {out, x, w}), pairs, [&](auto width) {
    constexpr int N = decltype(width)::value;
    if constexpr (N <= kMaxHeldPairs)
      if (pairs) {
        qk_norm_rope_forward_held_kernel<device_t<Out>, device_t<X>, N>
            <<<blocks, kNormWarps * 32, 0, stream>>>(device_ptr(out), rstd, device_ptr(x), w, rows,
                                                     d, eps, rope);
        HG_CUDA_CHECK_LAUNCH();
        return;
      }
    rmsnorm_forward_held_kernel<device_t<Out>, device_t<X>, N>
        <<<blocks, kNormWarps * 32, 0, stream>>>(device_ptr(out), rstd, device_ptr(x), w, rows, d,
                                                 eps);
    HG_CUDA_CHECK_LAUNCH();
  });
}

// Rows held in registers where they fit (rmsnorm_held_width), else the
// generic kernel.
template <typename DX, typename DO, typename X>
bool rmsnorm_backward_held(DX* dx, uint16_t* dx_copy, float* dw_partials, const DO* dout,
                           const X* x, const float* w, const float* rstd, int64_t rows,
                           int64_t d, int64_t parts, int warps, size_t smem, bool accumulate_dx,
                           cudaStream_t stream, const RopeRows& rope) {
  const bool pairs = rope.cos != nullptr;
  const int64_t units = held_units(d, pairs, {dx, dx_copy, dout, x, w});
  const unsigned grid = static_cast<unsigned>(parts);
  if (pairs &&
      with_lanes(qk_norm_lanes(d, {dx, dx_copy, dout, x, w, rope.cos, rope.sin}), [&](auto lanes) {
        constexpr int L = decltype(lanes)::value;
        qk_norm_rope_backward_lanes_kernel<device_t<DX>, device_t<DO>, device_t<X>, L>
            <<<grid, warps * 32, smem, stream>>>(device_ptr(dx), device_ptr(dx_copy), dw_partials,
                                                 device_ptr(dout), device_ptr(x), w, rstd, rows, d,
                                                 parts, accumulate_dx,
                                                 env_switch_on("HESSGPT_QK_NORM_PREFETCH"), rope);
        HG_CUDA_CHECK_LAUNCH();
      }))
    return true;
  return with_held_width(units, pairs, [&](auto width) {
    constexpr int N = decltype(width)::value;
    if constexpr (N <= kMaxHeldPairs)
      if (pairs) {
        qk_norm_rope_backward_held_kernel<device_t<DX>, device_t<DO>, device_t<X>, N>
            <<<grid, warps * 32, smem, stream>>>(device_ptr(dx), device_ptr(dx_copy), dw_partials,
                                                 device_ptr(dout), device_ptr(x), w, rstd, rows, d,
                                                 parts, accumulate_dx, rope);
        HG_CUDA_CHECK_LAUNCH();
        return;
      }
    rmsnorm_backward_held_kernel<device_t<DX>, device_t<DO>, device_t<X>, N>
        <<<grid, warps * 32, smem, stream>>>(device_ptr(dx), device_ptr(dx_copy), dw_partials,
                                             device_ptr(dout), device_ptr(x), w, rstd, rows, d,
                                             parts, accumulate_dx);
    HG_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

template <typename Out, typename X>
void rmsnorm_forward(Out* out, float* rstd, const X* x, const float* w, int64_t rows,
                     int64_t d, double eps, cudaStream_t stream, const RopeRows& rope) {
  const int64_t blocks = rmsnorm_blocks(rows);
  if (blocks == 0 || d <= 0) return;
  if (rmsnorm_forward_held(out, rstd, x, w, rows, d, eps, stream, rope)) return;
  rmsnorm_forward_kernel<<<static_cast<unsigned>(blocks), kNormWarps * 32, 0, stream>>>(
      device_ptr(out), rstd, device_ptr(x), w, rows, d, eps, rope);
  HG_CUDA_CHECK_LAUNCH();
}
#define HG_RMSNORM_FORWARD(OUT, X)                                                             \
  template void rmsnorm_forward(OUT*, float*, const X*, const float*, int64_t, int64_t, double, \
                                cudaStream_t, const RopeRows&);
HG_RMSNORM_FORWARD(float, float)
HG_RMSNORM_FORWARD(uint16_t, float)
HG_RMSNORM_FORWARD(float, uint16_t)
HG_RMSNORM_FORWARD(uint16_t, uint16_t)
#undef HG_RMSNORM_FORWARD

template <typename DX, typename DO, typename X>
void rmsnorm_backward(DX* dx, uint16_t* dx_copy, float* dw, float* dw_partials, const DO* dout,
                      const X* x, const float* w, const float* rstd, int64_t rows, int64_t d,
                      bool accumulate_dx, cudaStream_t stream, const RopeRows& rope) {
  if (rows <= 0 || d <= 0) return;
  const int warps = rmsnorm_backward_warps(d);
  if (warps == 0) HG_FAIL("rmsnorm: rows of ", d, " values are too wide for the CUDA kernel");
  const int64_t parts = rmsnorm_dw_partitions(rows);
  const size_t smem = sizeof(float) * static_cast<size_t>(warps) * static_cast<size_t>(d);
  if (!rmsnorm_backward_held(dx, dx_copy, dw_partials, dout, x, w, rstd, rows, d, parts, warps,
                             smem, accumulate_dx, stream, rope)) {
    rmsnorm_backward_kernel<<<static_cast<unsigned>(parts), warps * 32, smem, stream>>>(
        device_ptr(dx), device_ptr(dx_copy), dw_partials, device_ptr(dout), device_ptr(x), w, rstd,
        rows, d,
        parts, accumulate_dx, rope);
    HG_CUDA_CHECK_LAUNCH();
  }
  rmsnorm_dw_kernel<<<static_cast<unsigned>(rmsnorm_dw_blocks(d)), kDwColumns * kDwSlices, 0,
                      stream>>>(dw, dw_partials, parts, d);
  HG_CUDA_CHECK_LAUNCH();
}

#define HG_RMSNORM_BACKWARD(DX, DO, X)                                                          \
  template void rmsnorm_backward(DX*, uint16_t*, float*, float*, const DO*, const X*,           \
                                 const float*, const float*, int64_t, int64_t, bool,            \
                                 cudaStream_t, const RopeRows&);
#define HG_RMSNORM_BACKWARD_X(DX, DO) \
  HG_RMSNORM_BACKWARD(DX, DO, float)  \
  HG_RMSNORM_BACKWARD(DX, DO, uint16_t)
HG_RMSNORM_BACKWARD_X(float, float)
HG_RMSNORM_BACKWARD_X(uint16_t, float)
HG_RMSNORM_BACKWARD_X(float, uint16_t)
HG_RMSNORM_BACKWARD_X(uint16_t, uint16_t)
#undef HG_RMSNORM_BACKWARD_X
#undef HG_RMSNORM_BACKWARD

}  // namespace hessgpt::cuda
