// One warp's share of a product of a few rows (gemv.cu): the dot products of
// one row of b (the weights) with each of a's M rows. Shared by the plain
// GEMV and the ones that stage a through a prologue (gemv_prologue.cu).
#pragma once

#include "backend/cuda/chained_launch.cuh"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/launch_config.h"

namespace hessgpt::cuda {

// Rows [first, first + kGemvWarps) of b (those below n): the columns of c a
// block of warps takes first, to L2 (chained_launch.cuh). The last row up to
// its k values: b's rows may be padded, and the padding of the last one need
// not exist.
template <typename W>
__device__ __forceinline__ void prefetch_block_rows(const W* b, int64_t n, int64_t k,
                                                    int64_t ldb, int64_t first) {
  const int64_t last = min(n, first + kGemvWarps) - 1;
  if (last < first) return;
  prefetch_to_l2(b + first * ldb, ((last - first) * ldb + k) * static_cast<int64_t>(sizeof(W)));
}

// An operand value as the product reads it: itself, or rounded to BF16 (the
// BF16 products' operands).
template <bool kBf16>
__device__ __forceinline__ float operand(float x) {
  if constexpr (kBf16) return __bfloat162float(__float2bfloat16_rn(x));
  return x;
}

// acc[m] = sum over k of a[m, i] row[i], over the warp's lanes (every lane
// gets the sums). Lane l takes 16 bytes of the row at a time (4 F32 or 8 BF16
// weights) from the row's first 16-byte boundary on; the values before it
// (rows of an odd width start anywhere: model1's FP32 down projection, k =
// 3413, 23 % of its weight bytes a token) and the row's tail are taken one per
// lane. a's rows are read 4 floats at a time where that part of them is
// 16-byte aligned too (a_vec: a and k allow it).
template <int M, bool kBf16, typename W>
__device__ __forceinline__ void warp_dot(float (&acc)[M], const W* row, const float* a, int64_t k,
                                         bool a_vec, int lane) {
  constexpr int kPer = 16 / static_cast<int>(sizeof(W));
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  const GemvRowSplit split = gemv_row_split(
      static_cast<int64_t>(reinterpret_cast<uintptr_t>(row) % 16), k, int64_t{sizeof(W)});
  const int64_t head = split.head, body_len = split.body;
  if (lane < head) {
    const float w = operand<kBf16>(as_float(row[lane]));
#pragma unroll
    for (int m = 0; m < M; ++m) acc[m] += operand<kBf16>(a[m * k + lane]) * w;
  }
  const W* body = row + head;
  const bool body_a_vec = a_vec && head % 4 == 0;
  // Unrolled so that several of the row's 16-byte loads are in flight at
  // once: a warp per column is few warps for the narrow products (1280
  // columns: 15 % of an H200's warp slots), and one load at a time left the
  // weights streaming at ~1 TB/s (the sixth GPU session: cuBLASLt's one-row
  // products beat this kernel by 8 % on model1's FP32 decode).
#pragma unroll(M == 1 ? 8 : M <= 4 ? 4 : 2)
  for (int64_t i = kPer * lane; i < body_len; i += kPer * 32) {
    const Pack<W, kPer> w = load_pack<kPer>(body + i);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float* am = a + m * k + head + i;
      float x[kPer];
      if (body_a_vec) {
#pragma unroll
        for (int q = 0; q < kPer / 4; ++q) {
          const Pack<float, 4> v = load_pack<4>(am + 4 * q);
#pragma unroll
          for (int e = 0; e < 4; ++e) x[4 * q + e] = v.v[e];
        }
      } else {
#pragma unroll
        for (int e = 0; e < kPer; ++e) x[e] = am[e];
      }
#pragma unroll
      for (int e = 0; e < kPer; ++e)
        acc[m] += operand<kBf16>(x[e]) * operand<kBf16>(as_float(w.v[e]));
    }
  }
  // The tail: fewer than kPer values.
  const int64_t i = head + body_len + lane;
  if (i < k) {
    const float w = operand<kBf16>(as_float(row[i]));
#pragma unroll
    for (int m = 0; m < M; ++m) acc[m] += operand<kBf16>(a[m * k + i]) * w;
  }
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = warp_sum(acc[m]);
}

}  // namespace hessgpt::cuda
