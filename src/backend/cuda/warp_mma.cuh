// Warp-level BF16 tensor-core building blocks for the attention kernels
// (attention_mma.cu): mma.sync.m16n8k16 with FP32 accumulation, fragments
// through ldmatrix (plain and .trans), and cp.async tile copies.
//
// Fragments (PTX ISA, mma.m16n8k16, g = lane / 4, c = lane % 4):
//   A 16x16 (row-major): regs {(g, 2c), (g+8, 2c), (g, 2c+8), (g+8, 2c+8)}, each
//     register the element pair (col, col + 1);
//   B 16x8 ("col"): regs {(k 2c, n g), (k 2c+8, n g)}, pairs (k, k + 1);
//   C 16x8 (FP32): {(g, 2c), (g, 2c+1), (g+8, 2c), (g+8, 2c+1)}.
// A B operand comes from a shared-memory tile stored either [n][k] (k
// contiguous) through a plain ldmatrix, or [k][n] (n contiguous) through
// ldmatrix.trans, which hands each lane the same pairs of the transposed
// 8 x 8 matrices. The C fragments of two adjacent n-tiles are exactly the A
// fragment of the next product, so a product's result can feed the next
// without leaving the registers.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/ldmatrix_rows.h"

namespace hessgpt::cuda::warp_mma {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// c += a b for one 16x8x16 tile.
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 2^x on the SFU, subnormal results flushed to zero: one instruction, where
// exp2f's subnormal-safe form takes several. Softmax weights below 2^-126 of
// the row's largest are zero either way at FP32/BF16 precision.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Fragments come out of shared memory through ldmatrix: one instruction hands
// each lane its pair of every 8 x 8 matrix (row lane / 4, columns 2 (lane % 4)
// and + 1: the mma fragment layout), where 32-bit loads took one per pair.
// Which row each lane addresses is ldmatrix_rows.h (host-tested); rows must
// be 16-byte aligned (strides and column offsets are multiples of 8 elements
// everywhere here).
__device__ __forceinline__ unsigned smem_address(const bf16* s, int stride, TileAt at) {
  return static_cast<unsigned>(__cvta_generic_to_shared(s + at.row * stride + at.col));
}

// ldmatrix of four or two 8 x 8 matrices, plain or .trans, from the row
// address this lane gives.
template <bool kTrans>
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], unsigned address) {
  if constexpr (kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
}
template <bool kTrans>
__device__ __forceinline__ void ldmatrix_x2(uint32_t& r0, uint32_t& r1, unsigned address) {
  if constexpr (kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r0), "=r"(r1)
                 : "r"(address));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r0), "=r"(r1)
                 : "r"(address));
}

// A fragment: rows r0.., columns k0.. of a row-major [rows][stride] array.
// Matrices: (rows r0, cols k0), (r0 + 8, k0), (r0, k0 + 8), (r0 + 8, k0 + 8).
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* s, int stride, int r0,
                                       int k0) {
  ldmatrix_x4<false>(a, smem_address(s, stride, ldmatrix_a_row(threadIdx.x & 31, r0, k0)));
}

// B fragments of the two n-tiles n0.. and n0 + 8.. in one ldmatrix.x4:
// b[0], b[1] for the first, b[2], b[3] for the second.
// load_b2: B[k][n] = s[n + ..][k + ..] (tile stored [n][k]); the matrices are
// (rows n0, cols k0), (n0, k0 + 8), (n0 + 8, k0), (n0 + 8, k0 + 8).
__device__ __forceinline__ void load_b2(uint32_t (&b)[4], const bf16* s, int stride, int n0,
                                        int k0) {
  ldmatrix_x4<false>(b, smem_address(s, stride, ldmatrix_b2_row(threadIdx.x & 31, n0, k0)));
}
// load_b2_trans: B[k][n] = s[k + ..][n + ..] (tile stored [k][n]); .trans
// hands each lane the pairs (k 2c, 2c + 1; n g) of the transposed matrices
// (rows k0, cols n0), (k0 + 8, n0), (k0, n0 + 8), (k0 + 8, n0 + 8).
__device__ __forceinline__ void load_b2_trans(uint32_t (&b)[4], const bf16* s, int stride, int k0,
                                              int n0) {
  ldmatrix_x4<true>(b, smem_address(s, stride, ldmatrix_b2_trans_row(threadIdx.x & 31, k0, n0)));
}

// One n-tile of load_b2 / load_b2_trans (the first two matrices; lanes 16..
// give addresses too, ignored by .x2): in the backward's score products and
// dK/dV, where the x4 forms' registers cost the dK/dV kernel a block per SM.
__device__ __forceinline__ void load_b(uint32_t& b0, uint32_t& b1, const bf16* s, int stride,
                                       int n0, int k0) {
  ldmatrix_x2<false>(b0, b1, smem_address(s, stride, ldmatrix_b_row(threadIdx.x & 31, n0, k0)));
}
__device__ __forceinline__ void load_b_trans(uint32_t& b0, uint32_t& b1, const bf16* s,
                                             int stride, int k0, int n0) {
  ldmatrix_x2<true>(b0, b1,
                    smem_address(s, stride, ldmatrix_b_trans_row(threadIdx.x & 31, k0, n0)));
}

// The A fragment of k-step kk from the C fragments of n-tiles 2kk and 2kk + 1.
template <int N>
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&c)[N][4], int kk) {
  a[0] = pack_bf16(c[2 * kk][0], c[2 * kk][1]);
  a[1] = pack_bf16(c[2 * kk][2], c[2 * kk][3]);
  a[2] = pack_bf16(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = pack_bf16(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

template <int N>
__device__ __forceinline__ void zero(float (&c)[N][4]) {
#pragma unroll
  for (int n = 0; n < N; ++n) c[n][0] = c[n][1] = c[n][2] = c[n][3] = 0.0f;
}


// Row r (0: g, 1: g + 8) of the warp's C fragments times `factor` into
// dst[0, d): the lane's two columns of each of the N n-tiles.
// dst is F32 or BF16 (storage).
template <int N, typename Out>
__device__ __forceinline__ void store_row(Out* dst, const float (&c)[N][4], int r, float factor,
                                          int64_t d) {
#pragma unroll
  for (int n = 0; n < N; ++n) {
    const int e = n * 8 + 2 * (threadIdx.x & 3);
    if (e < d) store_float(dst + e, factor * c[n][2 * r]);
    if (e + 1 < d) store_float(dst + e + 1, factor * c[n][2 * r + 1]);
  }
}

// Column (within its n-tile group) of element e of C fragment n_tile; the
// element is in row e / 2 of the lane's pair (g, g + 8).
__device__ __forceinline__ int frag_col(int n_tile, int e) {
  return n_tile * 8 + 2 * (threadIdx.x & 3) + (e & 1);
}

// Max / sum over the 4 lanes that share a row (lanes 4g .. 4g + 3).
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(kFullMask, x, 1));
  return fmaxf(x, __shfl_xor_sync(kFullMask, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(kFullMask, x, 1);
  return x + __shfl_xor_sync(kFullMask, x, 2);
}

// ---- asynchronous tile copies ----------------------------------------------------------

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// An [R][C] block of BF16 (global rows src_stride apart) into dst[R][dst_stride]
// in 16-byte pieces, spread over the block's threads.
template <int R, int C>
__device__ __forceinline__ void copy_block(bf16* dst, int dst_stride, const bf16* src,
                                           int64_t src_stride) {
  constexpr int kPieces = C / 8;
  for (int idx = threadIdx.x; idx < R * kPieces; idx += blockDim.x) {
    const int r = idx / kPieces, c = 8 * (idx % kPieces);
    cp_async16(dst + r * dst_stride + c, src + r * src_stride + c);
  }
}

}  // namespace hessgpt::cuda::warp_mma
