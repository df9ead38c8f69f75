// Residual adds, scaling, fills, the sum of squares for clipping (two passes,
// fixed order: the same bits on every run), SwiGLU and the BF16 rounding of
// matrix-product operands.
#include <cuda_bf16.h>

#include <algorithm>
#include <type_traits>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace hessgpt::cuda {
namespace {

__global__ void add_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) y[i] += x[i];
}

__global__ void scale_kernel(float* x, float s, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) x[i] *= s;
}

__global__ void fill_kernel(float* x, float value, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) x[i] = value;
}

__global__ void sum_squares_partial(double* partials, const float* x, int64_t n) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    const double v = x[i];
    s += v * v;
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

__global__ void sum_partials(double* result, const double* partials, int64_t parts) {
  __shared__ double scratch[32];
  double s = threadIdx.x < parts ? partials[threadIdx.x] : 0.0;
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) *result = s;
}

// silu(g) = g * sigmoid(g); d silu/dg = sigmoid(g) * (1 + g * (1 - sigmoid(g))).
// gate/up and out are F32 or BF16 (storage); the arithmetic is F32. kN
// consecutive elements per step: 8 (16-byte accesses of BF16) where n and the
// pointers allow it (swiglu_pack), else 1; at model1's [32768, 3416] one BF16
// element per thread moved 1.6-2.2 TB/s on an H200.
// kJoined: gate and up side by side in rows of 2 w (up = gate + w), their
// gradients likewise: element e of out / dout (row e / w) is at e + (e / w) w
// in them.
template <int kN, bool kJoined, typename Out, typename In>
__global__ void swiglu_forward_kernel(Out* out, const In* gate, const In* up, int64_t steps,
                                      int64_t w) {
  for (int64_t p = global_thread(); p < steps; p += grid_stride()) {
    const int64_t e = p * kN, i = kJoined ? e + e / w * w : e;
    const Pack<In, kN> g = load_pack<kN>(gate + i), u = load_pack<kN>(up + i);
    Pack<Out, kN> o;
#pragma unroll
    for (int k = 0; k < kN; ++k) {
      const float gf = as_float(g.v[k]);
      store_float(&o.v[k], gf / (1.0f + expf(-gf)) * as_float(u.v[k]));
    }
    store_pack(out + e, o);
  }
}

template <int kN, bool kJoined, typename Grad, typename In, typename DOut>
__global__ void swiglu_backward_kernel(Grad* dgate, Grad* dup, const DOut* dout,
                                       const In* gate, const In* up, int64_t steps, int64_t w) {
  for (int64_t p = global_thread(); p < steps; p += grid_stride()) {
    const int64_t e = p * kN, i = kJoined ? e + e / w * w : e;
    // All read before any is written: dup may alias up's storage.
    const Pack<In, kN> g = load_pack<kN>(gate + i), u = load_pack<kN>(up + i);
    const Pack<DOut, kN> dv = load_pack<kN>(dout + e);
    Pack<Grad, kN> dg, du;
#pragma unroll
    for (int k = 0; k < kN; ++k) {
      const float gf = as_float(g.v[k]);
      const float sig = 1.0f / (1.0f + expf(-gf));
      const float d = as_float(dv.v[k]);
      store_float(&du.v[k], d * gf * sig);
      store_float(&dg.v[k], d * as_float(u.v[k]) * sig * (1.0f + gf * (1.0f - sig)));
    }
    store_pack(dup + i, du);
    store_pack(dgate + i, dg);
  }
}

// 8 elements per step where n is a multiple of 8 and every pointer is aligned
// to 8 of its elements.
template <typename... T>
bool swiglu_pack(int64_t n, const T*... p) {
  return n % 8 == 0 && (aligned_to(p, 8 * sizeof(T)) && ...);
}

// Through 32 x 32 tiles in shared memory, so that src and dst are both read
// and written a row at a time. Block (32, 8); tile (blockIdx.x, blockIdx.y)
// covers dst columns 32 blockIdx.x + [0, 32) and rows 32 blockIdx.y + [0, 32).
constexpr int kTile = 32, kTileRows = 8;
__global__ void merge_transposed_kernel(float* dst, int64_t dst_ld, const float* src,
                                        int64_t src_ld, int64_t rows, int64_t cols, float beta) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t c0 = static_cast<int64_t>(blockIdx.x) * kTile;
  for (int y = threadIdx.y; y < kTile; y += kTileRows) {  // src row c0 + y = dst column
    const int64_t c = c0 + y, r = r0 + threadIdx.x;
    if (c < cols && r < rows) tile[y][threadIdx.x] = src[c * src_ld + r];
  }
  __syncthreads();
  for (int y = threadIdx.y; y < kTile; y += kTileRows) {
    const int64_t r = r0 + y, c = c0 + threadIdx.x;
    if (r >= rows || c >= cols) continue;
    const float x = tile[threadIdx.x][y];
    float* d = dst + r * dst_ld + c;
    *d = beta == 0.0f ? x : x + beta * *d;
  }
}

template <typename In>
__global__ void to_bf16_kernel(__nv_bfloat16* dst, int64_t dst_ld, int64_t dst_rows,
                               const In* src, int64_t src_ld, int64_t rows, int64_t cols) {
  const int64_t total = dst_rows * dst_ld;
  for (int64_t i = global_thread(); i < total; i += grid_stride()) {
    const int64_t r = i / dst_ld, c = i % dst_ld;
    store_float(dst + i, r < rows && c < cols ? as_float(src[r * src_ld + c]) : 0.0f);
  }
}

// The same without padding (a plain convert): VEC values a thread, no index
// division. The general kernel's 64-bit division per value held the weight
// copies' conversions to ~1.3 TB/s on an H200 (the sixth GPU session).
template <typename In, int VEC>
__global__ void to_bf16_flat_kernel(__nv_bfloat16* dst, const In* src, int64_t n) {
  for (int64_t i = global_thread() * VEC; i < n; i += grid_stride() * VEC) {
    if constexpr (VEC == 4) {
      const Pack<In, 4> v = load_pack<4>(src + i);
      Pack<__nv_bfloat16, 4> out;
#pragma unroll
      for (int e = 0; e < 4; ++e) store_float(&out.v[e], as_float(v.v[e]));
      store_pack<4>(dst + i, out);
    } else {
      store_float(dst + i, as_float(src[i]));
    }
  }
}

// The margin of c beyond its top-left m x n block: first the right part of
// rows [0, m), then whole rows [m, rows).
template <typename T>
__global__ void scale_margins_kernel(T* c, int64_t rows, int64_t cols, int64_t m, int64_t n,
                                     float beta) {
  const int64_t right = m * (cols - n), total = right + (rows - m) * cols;
  for (int64_t i = global_thread(); i < total; i += grid_stride()) {
    const int64_t at = i < right ? (i / (cols - n)) * cols + n + i % (cols - n)
                                 : m * cols + (i - right);
    store_float(c + at, beta == 0.0f ? 0.0f : beta * as_float(c[at]));
  }
}

__global__ void widen_kernel(float* dst, const __nv_bfloat16* src, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) dst[i] = __bfloat162float(src[i]);
}

// Index: uint32_t where every index fits (as copy_columns_kernel).
template <typename Index>
__global__ void merge_columns_kernel(float* dst, Index dst_ld, const float* src, Index src_ld,
                                     Index rows, Index cols, float beta) {
  const Index total = rows * cols;
  for (Index i = static_cast<Index>(global_thread()); i < total;
       i += static_cast<Index>(grid_stride())) {
    const Index r = i / cols, c = i - r * cols;
    float* d = dst + static_cast<int64_t>(r) * dst_ld + c;
    const float x = src[static_cast<int64_t>(r) * src_ld + c];
    *d = beta == 0.0f ? x : x + beta * *d;
  }
}

}  // namespace

void add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream) {
  launch_elementwise(n, stream, add_kernel, y, x, n);
}

void scale_inplace(float* x, float s, int64_t n, cudaStream_t stream) {
  launch_elementwise(n, stream, scale_kernel, x, s, n);
}

void fill(float* x, float value, int64_t n, cudaStream_t stream) {
  launch_elementwise(n, stream, fill_kernel, x, value, n);
}

void sum_squares(double* result, double* partials, const float* x, int64_t n,
                 cudaStream_t stream) {
  const int64_t parts = reduction_blocks(n);
  sum_squares_partial<<<static_cast<unsigned>(parts), kThreads, 0, stream>>>(partials, x, n);
  HG_CUDA_CHECK_LAUNCH();
  sum_partials<<<1, static_cast<unsigned>(kMaxReduceBlocks), 0, stream>>>(result, partials, parts);
  HG_CUDA_CHECK_LAUNCH();
}

template <typename Out, typename In>
void swiglu_forward(Out* out, const In* gate, const In* up, int64_t n, int64_t joined_w,
                    cudaStream_t stream) {
  using O = device_t<Out>;
  using I = device_t<In>;
  const bool pack = swiglu_pack(n, out, gate, up) && joined_w % 8 == 0;
  const int64_t steps = pack ? n / 8 : n;
  const auto launch = [&](auto kernel) {
    launch_elementwise(steps, stream, kernel, device_ptr(out), device_ptr(gate), device_ptr(up),
                       steps, joined_w);
  };
  if (joined_w > 0)
    pack ? launch(swiglu_forward_kernel<8, true, O, I>)
         : launch(swiglu_forward_kernel<1, true, O, I>);
  else
    pack ? launch(swiglu_forward_kernel<8, false, O, I>)
         : launch(swiglu_forward_kernel<1, false, O, I>);
}
template void swiglu_forward(float*, const float*, const float*, int64_t, int64_t,
                             cudaStream_t);
template void swiglu_forward(float*, const uint16_t*, const uint16_t*, int64_t, int64_t,
                             cudaStream_t);
template void swiglu_forward(uint16_t*, const float*, const float*, int64_t, int64_t,
                             cudaStream_t);
template void swiglu_forward(uint16_t*, const uint16_t*, const uint16_t*, int64_t, int64_t,
                             cudaStream_t);

template <typename Grad, typename In, typename DOut>
void swiglu_backward(Grad* dgate, Grad* dup, const DOut* dout, const In* gate, const In* up,
                     int64_t n, int64_t joined_w, cudaStream_t stream) {
  using G = device_t<Grad>;
  using I = device_t<In>;
  using D = device_t<DOut>;
  const bool pack = swiglu_pack(n, dgate, dup, dout, gate, up) && joined_w % 8 == 0;
  const int64_t steps = pack ? n / 8 : n;
  const auto launch = [&](auto kernel) {
    launch_elementwise(steps, stream, kernel, device_ptr(dgate), device_ptr(dup), device_ptr(dout),
                       device_ptr(gate), device_ptr(up), steps, joined_w);
  };
  if (joined_w > 0)
    pack ? launch(swiglu_backward_kernel<8, true, G, I, D>)
         : launch(swiglu_backward_kernel<1, true, G, I, D>);
  else
    pack ? launch(swiglu_backward_kernel<8, false, G, I, D>)
         : launch(swiglu_backward_kernel<1, false, G, I, D>);
}
template void swiglu_backward(float*, float*, const float*, const float*, const float*, int64_t,
                              int64_t, cudaStream_t);
template void swiglu_backward(float*, float*, const float*, const uint16_t*, const uint16_t*,
                              int64_t, int64_t, cudaStream_t);
template void swiglu_backward(uint16_t*, uint16_t*, const float*, const float*, const float*,
                              int64_t, int64_t, cudaStream_t);
template void swiglu_backward(uint16_t*, uint16_t*, const float*, const uint16_t*,
                              const uint16_t*, int64_t, int64_t, cudaStream_t);
template void swiglu_backward(float*, float*, const uint16_t*, const uint16_t*, const uint16_t*,
                              int64_t, int64_t, cudaStream_t);
template void swiglu_backward(uint16_t*, uint16_t*, const uint16_t*, const uint16_t*,
                              const uint16_t*, int64_t, int64_t, cudaStream_t);

void merge_columns(float* dst, int64_t dst_ld, const float* src, int64_t src_ld, int64_t rows,
                   int64_t cols, float beta, cudaStream_t stream) {
  if (rows * std::max(dst_ld, src_ld) < (int64_t{1} << 31)) {
    const auto u32 = [](int64_t x) { return static_cast<uint32_t>(x); };
    launch_elementwise(rows * cols, stream, merge_columns_kernel<uint32_t>, dst, u32(dst_ld), src,
                       u32(src_ld), u32(rows), u32(cols), beta);
    return;
  }
  launch_elementwise(rows * cols, stream, merge_columns_kernel<int64_t>, dst, dst_ld, src, src_ld,
                     rows, cols, beta);
}

void merge_transposed(float* dst, int64_t dst_ld, const float* src, int64_t src_ld, int64_t rows,
                      int64_t cols, float beta, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  const dim3 grid(static_cast<unsigned>(ceil_div(cols, kTile)), static_cast<unsigned>(ceil_div(rows, kTile)));
  if (grid.y > 65535) HG_FAIL("merge_transposed: ", rows, " rows are too many for the grid");
  merge_transposed_kernel<<<grid, dim3(kTile, kTileRows), 0, stream>>>(dst, dst_ld, src, src_ld,
                                                                         rows, cols, beta);
  HG_CUDA_CHECK_LAUNCH();
}

template <typename In>
void to_bf16(uint16_t* dst, int64_t dst_ld, int64_t dst_rows, const In* src, int64_t src_ld,
             int64_t rows, int64_t cols, cudaStream_t stream) {
  if (dst_ld == cols && src_ld == cols && dst_rows == rows) {
    const int64_t n = rows * cols;
    if (n % 4 == 0 && aligned_to(src, 4 * sizeof(In)) && aligned_to(dst, 4 * sizeof(uint16_t)))
      launch_elementwise(n / 4, stream, to_bf16_flat_kernel<device_t<In>, 4>, device_ptr(dst),
                         device_ptr(src), n);
    else
      launch_elementwise(n, stream, to_bf16_flat_kernel<device_t<In>, 1>, device_ptr(dst),
                         device_ptr(src), n);
    return;
  }
  launch_elementwise(dst_rows * dst_ld, stream, to_bf16_kernel<device_t<In>>, device_ptr(dst),
                     dst_ld, dst_rows, device_ptr(src), src_ld, rows, cols);
}
template void to_bf16(uint16_t*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t,
                      cudaStream_t);
template void to_bf16(uint16_t*, int64_t, int64_t, const uint16_t*, int64_t, int64_t, int64_t,
                      cudaStream_t);

template <typename T>
void scale_margins(T* c, int64_t rows, int64_t cols, int64_t m, int64_t n, float beta,
                   cudaStream_t stream) {
  launch_elementwise(m * (cols - n) + (rows - m) * cols, stream, scale_margins_kernel<device_t<T>>,
                     device_ptr(c), rows, cols, m, n, beta);
}
template void scale_margins(float*, int64_t, int64_t, int64_t, int64_t, float, cudaStream_t);
template void scale_margins(uint16_t*, int64_t, int64_t, int64_t, int64_t, float, cudaStream_t);

void widen_bf16(float* dst, const uint16_t* src, int64_t n, cudaStream_t stream) {
  launch_elementwise(n, stream, widen_kernel, dst, device_ptr(src), n);
}

namespace {
// A thread per value of src, converted into its place in dst's row. Index
// is uint32_t where every index fits (a 32-bit division is a few times
// cheaper than a 64-bit one: the weight copies' padded down projection).
template <typename Index, typename Out, typename In>
__global__ void copy_columns_kernel(Out* dst, const In* src, Index n, Index width, Index col0,
                                    Index cols) {
  for (Index i = static_cast<Index>(global_thread()); i < n;
       i += static_cast<Index>(grid_stride())) {
    const Index r = i / cols;
    store_float(dst + static_cast<int64_t>(r) * width + col0 + (i - r * cols), as_float(src[i]));
  }
}

// One storage type, whole 16-byte chunks: a thread per chunk, with 32-bit
// index math. A thread per value with 64-bit division held the fused q/k/v
// operand's concatenation to 1.3 TB/s on an H200, where copies reach 3.5.
__global__ void copy_column_chunks_kernel(uint4* dst, const uint4* src, uint32_t n, uint32_t kw,
                                          uint32_t k0, uint32_t kc) {
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const uint32_t r = i / kc;
    dst[r * kw + k0 + (i - r * kc)] = src[i];
  }
}
}  // namespace

template <typename Out, typename In>
void copy_columns(Out* dst, const In* src, int64_t rows, int64_t width, int64_t col0,
                  int64_t cols, cudaStream_t stream) {
  constexpr int64_t kChunk = sizeof(uint4), kSize = sizeof(In);
  const int64_t chunks = rows * cols * kSize / kChunk;
  if constexpr (std::is_same_v<Out, In>) {
    if ((cols * kSize) % kChunk == 0 && (width * kSize) % kChunk == 0 &&
        (col0 * kSize) % kChunk == 0 && rows * width * kSize / kChunk < (int64_t{1} << 31) &&
        aligned_to(dst, kChunk) && aligned_to(src, kChunk)) {
      launch_elementwise(chunks, stream, copy_column_chunks_kernel, reinterpret_cast<uint4*>(dst),
                         reinterpret_cast<const uint4*>(src), static_cast<uint32_t>(chunks),
                         static_cast<uint32_t>(width * kSize / kChunk),
                         static_cast<uint32_t>(col0 * kSize / kChunk),
                         static_cast<uint32_t>(cols * kSize / kChunk));
      return;
    }
  }
  using O = device_t<Out>;
  using I = device_t<In>;
  if (rows * width < (int64_t{1} << 31)) {
    const auto u32 = [](int64_t x) { return static_cast<uint32_t>(x); };
    launch_elementwise(rows * cols, stream, copy_columns_kernel<uint32_t, O, I>, device_ptr(dst),
                       device_ptr(src), u32(rows * cols), u32(width), u32(col0), u32(cols));
    return;
  }
  launch_elementwise(rows * cols, stream, copy_columns_kernel<int64_t, O, I>, device_ptr(dst),
                     device_ptr(src), rows * cols, width, col0, cols);
}
template void copy_columns(float*, const float*, int64_t, int64_t, int64_t, int64_t, cudaStream_t);
template void copy_columns(float*, const uint16_t*, int64_t, int64_t, int64_t, int64_t,
                           cudaStream_t);
template void copy_columns(uint16_t*, const float*, int64_t, int64_t, int64_t, int64_t,
                           cudaStream_t);
template void copy_columns(uint16_t*, const uint16_t*, int64_t, int64_t, int64_t, int64_t,
                           cudaStream_t);


}  // namespace hessgpt::cuda
