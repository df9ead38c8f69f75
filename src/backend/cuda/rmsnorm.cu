// RMSNorm over the last dimension (block norms with d = C, QK-Norm with
// d = head dim): one warp per row. The weight gradient is summed without
// atomics in two fixed-order passes (rows within a partition, then partitions),
// so it is bit-identical run to run.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
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

template <typename Out>
__global__ void rmsnorm_forward_kernel(Out* out, float* rstd, const float* x, const float* w,
                                       int64_t rows, int64_t d, double eps, RopeRows rope) {
  const int lane = threadIdx.x & 31;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kNormWarps + (threadIdx.x >> 5);
  if (r >= rows) return;
  const float* xr = x + r * d;
  double ss = 0.0;  // in double, as the CPU kernel
  for (int64_t i = lane; i < d; i += 32) ss += static_cast<double>(xr[i]) * xr[i];
  ss = warp_sum(ss);
  const float s = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(d) + eps));
  if (lane == 0) rstd[r] = s;
  Out* o = out + r * d;
  if (!rope.cos) {
    for (int64_t i = lane; i < d; i += 32) store_float(o + i, xr[i] * s * w[i]);
    return;
  }
  const auto normed = [&](int64_t e) { return xr[e] * s * w[e]; };
  for (int64_t i = lane; i < d; i += 32) store_float(o + i, rotated(rope, r, i, d, 1.0f, normed));
}

// Pass 1: block p = partition p; warp w takes rows begin + w, begin + w + warps, ...
template <typename DX>
__global__ void rmsnorm_backward_kernel(DX* dx, __nv_bfloat16* dx_copy, float* dw_partials,
                                        const float* dout, const float* x, const float* w,
                                        const float* rstd, int64_t rows, int64_t d,
                                        int64_t parts, bool accumulate_dx, RopeRows rope) {
  extern __shared__ float dw_rows[];  // [warps, d]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  float* dw_local = dw_rows + static_cast<int64_t>(warp) * d;
  for (int64_t i = lane; i < d; i += 32) dw_local[i] = 0.0f;
  const RowRange range = partition_rows(rows, parts, blockIdx.x);
  for (int64_t r = range.begin + warp; r < range.end; r += warps) {
    const float* xr = x + r * d;
    const float* gr = dout + r * d;
    // The gradient of the norm's output: dout, or dout rotated back.
    const auto grad = [&](int64_t i) {
      return rope.cos ? rotated(rope, r, i, d, -1.0f, [gr](int64_t e) { return gr[e]; }) : gr[i];
    };
    const float s = rstd[r];
    double dot = 0.0;  // sum_i dout_i * w_i * xhat_i
    for (int64_t i = lane; i < d; i += 32)
      dot += static_cast<double>(grad(i)) * w[i] * xr[i] * s;
    dot = warp_sum(dot);
    const float mean_dot = static_cast<float>(dot / static_cast<double>(d));
    DX* dxr = dx + r * d;
    for (int64_t i = lane; i < d; i += 32) {
      const float xhat = xr[i] * s;
      const float gi = grad(i);
      const float g = s * (gi * w[i] - xhat * mean_dot);
      const float value = accumulate_dx ? as_float(dxr[i]) + g : g;
      store_float(dxr + i, value);
      if (dx_copy) store_float(dx_copy + r * d + i, value);
      dw_local[i] += gi * xhat;
    }
  }
  __syncthreads();
  float* part = dw_partials + static_cast<int64_t>(blockIdx.x) * d;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    float sum = 0.0f;
    for (int k = 0; k < warps; ++k) sum += dw_rows[static_cast<int64_t>(k) * d + i];
    part[i] = sum;
  }
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
    for (int64_t p = range.begin; p < range.end; ++p) sum += dw_partials[p * d + i];
  slice_sums[slice][column] = sum;
  __syncthreads();
  if (slice != 0 || i >= d) return;
  float total = 0.0f;
  for (int k = 0; k < kDwSlices; ++k) total += slice_sums[k][column];
  dw[i] += total;
}

}  // namespace

template <typename Out>
void rmsnorm_forward(Out* out, float* rstd, const float* x, const float* w, int64_t rows,
                     int64_t d, double eps, cudaStream_t stream, const RopeRows& rope) {
  const int64_t blocks = rmsnorm_blocks(rows);
  if (blocks == 0 || d <= 0) return;
  rmsnorm_forward_kernel<<<static_cast<unsigned>(blocks), kNormWarps * 32, 0, stream>>>(
      device_ptr(out), rstd, x, w, rows, d, eps, rope);
  HG_CUDA_CHECK_LAUNCH();
}
template void rmsnorm_forward(float*, float*, const float*, const float*, int64_t, int64_t, double,
                              cudaStream_t, const RopeRows&);
template void rmsnorm_forward(uint16_t*, float*, const float*, const float*, int64_t, int64_t,
                              double, cudaStream_t, const RopeRows&);

template <typename DX>
void rmsnorm_backward(DX* dx, uint16_t* dx_copy, float* dw, float* dw_partials, const float* dout,
                      const float* x, const float* w, const float* rstd, int64_t rows, int64_t d,
                      bool accumulate_dx, cudaStream_t stream, const RopeRows& rope) {
  if (rows <= 0 || d <= 0) return;
  const int warps = rmsnorm_backward_warps(d);
  if (warps == 0) HG_FAIL("rmsnorm: rows of ", d, " values are too wide for the CUDA kernel");
  const int64_t parts = rmsnorm_dw_partitions(rows);
  const size_t smem = sizeof(float) * static_cast<size_t>(warps) * static_cast<size_t>(d);
  rmsnorm_backward_kernel<<<static_cast<unsigned>(parts), warps * 32, smem, stream>>>(
      device_ptr(dx), device_ptr(dx_copy), dw_partials, dout, x, w, rstd, rows, d, parts,
      accumulate_dx, rope);
  HG_CUDA_CHECK_LAUNCH();
  rmsnorm_dw_kernel<<<static_cast<unsigned>(rmsnorm_dw_blocks(d)), kDwColumns * kDwSlices, 0,
                      stream>>>(dw, dw_partials, parts, d);
  HG_CUDA_CHECK_LAUNCH();
}

template void rmsnorm_backward(float*, uint16_t*, float*, float*, const float*, const float*,
                               const float*, const float*, int64_t, int64_t, bool, cudaStream_t,
                               const RopeRows&);
template void rmsnorm_backward(uint16_t*, uint16_t*, float*, float*, const float*, const float*,
                               const float*, const float*, int64_t, int64_t, bool, cudaStream_t,
                               const RopeRows&);

}  // namespace hessgpt::cuda
