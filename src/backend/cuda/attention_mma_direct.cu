// The first tensor-core attention (verified on an H200, 2026-11-26), kept
// while the packed, double-buffered kernels of attention_mma.cu are new:
// HESSGPT_ATTN_IMPL=direct selects it. It reads the FP32 tensors directly and
// rounds each tile to BF16 on its way into shared memory (no pack pass, no
// cp.async), 64 rows per block. Fragment layouts and the softmax are those of
// attention_mma.cu.
#include <cuda_bf16.h>

#include "backend/cuda/attention_common.cuh"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace hessgpt::cuda {
namespace {

using bf16 = __nv_bfloat16;
constexpr int kDirectWarps = 4;
constexpr int kMmaRows = 16 * kDirectWarps;
constexpr int kThreadsMma = 32 * kDirectWarps;
HG_HD constexpr int64_t direct_tiles(int64_t t) { return ceil_div(t, kMmaRows); }
constexpr size_t direct_forward_smem(int w) {
  return 2 * static_cast<size_t>(2 * kMmaRows * (w + kMmaPad) + w * (kMmaRows + kMmaPad));
}
constexpr size_t direct_dkdv_smem(int w) {
  const int bq = attention_mma_inner(w);
  return 2 * static_cast<size_t>(2 * kMmaRows * (w + kMmaPad) + 2 * bq * (w + kMmaPad) +
                                 2 * w * (bq + kMmaPad)) +
         sizeof(float) * 2 * static_cast<size_t>(bq);
}
constexpr size_t direct_dq_smem(int w) {
  const int bk = attention_mma_inner(w);
  return 2 * static_cast<size_t>(2 * kMmaRows * (w + kMmaPad) + 2 * bk * (w + kMmaPad) +
                                 w * (bk + kMmaPad));
}
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ uint32_t pair_at(const bf16* p) {
  return *reinterpret_cast<const uint32_t*>(p);
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

// A fragment: rows r0.., columns k0.. of a row-major [rows][stride] array.
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* s, int stride, int r0,
                                       int k0) {
  const int lane = threadIdx.x & 31;
  const bf16* p = s + (r0 + (lane >> 2)) * stride + k0 + 2 * (lane & 3);
  a[0] = pair_at(p);
  a[1] = pair_at(p + 8 * stride);
  a[2] = pair_at(p + 8);
  a[3] = pair_at(p + 8 * stride + 8);
}

// B fragment with B[k][n] = s[n0 + n][k0 + k].
__device__ __forceinline__ void load_b(uint32_t& b0, uint32_t& b1, const bf16* s, int stride,
                                       int n0, int k0) {
  const int lane = threadIdx.x & 31;
  const bf16* p = s + (n0 + (lane >> 2)) * stride + k0 + 2 * (lane & 3);
  b0 = pair_at(p);
  b1 = pair_at(p + 8);
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

// Rows [row0, row0 + ROWS) of a [B, T, heads, d] FP32 tensor (batch and head
// fixed) as BF16, into dst[r][stride] and/or its transpose dst_t[e][stride_t]
// (either may be null); zero beyond `rows` and in columns [d, W).
template <int ROWS, int W>
__device__ void load_tile(bf16* dst, int stride, bf16* dst_t, int stride_t, const float* src,
                          int64_t row0, int64_t rows, int64_t heads, int64_t head, int64_t d,
                          int64_t batch_row0) {
  constexpr int kPairs = W / 2;
  for (int idx = threadIdx.x; idx < ROWS * kPairs; idx += blockDim.x) {
    const int r = idx / kPairs, e = 2 * (idx % kPairs);
    const int64_t row = row0 + r;
    float x0 = 0.0f, x1 = 0.0f;
    if (row < rows) {
      const float* p = src + ((batch_row0 + row) * heads + head) * d + e;
      if (e < d) x0 = p[0];
      if (e + 1 < d) x1 = p[1];
    }
    const __nv_bfloat162 v = __floats2bfloat162_rn(x0, x1);
    if (dst) *reinterpret_cast<__nv_bfloat162*>(dst + r * stride + e) = v;
    if (dst_t) {
      dst_t[e * stride_t + r] = v.x;
      dst_t[(e + 1) * stride_t + r] = v.y;
    }
  }
}

// Rows g and g + 8 of a warp's C fragments; element e of a C fragment is in
// row e / 2 of that pair and column 2c + e % 2 of its n-tile.
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

// ---- forward: one block per (batch, head, 64 queries), 16 per warp ------------------
template <int W>
__global__ void __launch_bounds__(kThreadsMma)
    direct_forward_kernel(float* out, float* lse, const float* q, const float* k, const float* v,
                       AttnShape s, float scale, int64_t q_pos0) {
  constexpr int BK = 64, QS = W + kMmaPad, VS = BK + kMmaPad;
  constexpr int kSteps = W / 16, kKeyTiles = BK / 8, kDimTiles = W / 8;
  extern __shared__ float4 mma_smem[];
  bf16* q_s = reinterpret_cast<bf16*>(mma_smem);  // [64][QS]
  bf16* k_s = q_s + kMmaRows * QS;                // [BK][QS]
  bf16* vt_s = k_s + BK * QS;                     // [W][VS]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const AttnTask task = attention_task(blockIdx.x, s.h, direct_tiles(s.tq));
  const int64_t bi = task.batch, head = task.head, grp = head / (s.h / s.kv);
  const int64_t i0 = task.tile * kMmaRows;
  const float scale2 = scale * kLog2e;  // scores in log2 units: exp2f is one instruction

  load_tile<kMmaRows, W>(q_s, QS, nullptr, 0, q, i0, s.tq, s.h, head, s.d, bi * s.tq);
  __syncthreads();
  uint32_t qf[kSteps][4];
#pragma unroll
  for (int ks = 0; ks < kSteps; ++ks) load_a(qf[ks], q_s, QS, warp * 16, ks * 16);

  int64_t row[2];
  row[0] = i0 + warp * 16 + (lane >> 2);
  row[1] = row[0] + 8;
  float o[kDimTiles][4];
  zero(o);
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  const int64_t last_query = min(s.tq - 1, i0 + kMmaRows - 1);
  const int64_t last_key = min(s.tk - 1, q_pos0 + last_query);
  for (int64_t j0 = 0; j0 <= last_key; j0 += BK) {
    __syncthreads();  // the previous tile is no longer read
    load_tile<BK, W>(k_s, QS, nullptr, 0, k, j0, s.tk, s.kv, grp, s.d, bi * s.tk);
    load_tile<BK, W>(nullptr, 0, vt_s, VS, v, j0, s.tk, s.kv, grp, s.d, bi * s.tk);
    __syncthreads();
    float sc[kKeyTiles][4];
    zero(sc);
#pragma unroll
    for (int ks = 0; ks < kSteps; ++ks)
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt) {
        uint32_t b0, b1;
        load_b(b0, b1, k_s, QS, nt * 8, ks * 16);
        mma(sc[nt], qf[ks], b0, b1);
      }
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t i = row[e >> 1], j = j0 + frag_col(nt, e);
        const bool valid = i < s.tq && j <= q_pos0 + i;
        sc[nt][e] = valid ? sc[nt][e] * scale2 : -INFINITY;
        mx[e >> 1] = fmaxf(mx[e >> 1], sc[nt][e]);
      }
    float corr[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float m_new = fmaxf(m_run[r], quad_max(mx[r]));
      // A row that has seen no key yet has nothing to rescale.
      corr[r] = m_run[r] == -INFINITY ? 0.0f : exp2f(m_run[r] - m_new);
      m_run[r] = m_new;
    }
    float psum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float x = sc[nt][e];
        sc[nt][e] = x == -INFINITY ? 0.0f : exp2f(x - m_run[e >> 1]);
        psum[e >> 1] += sc[nt][e];
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) l_run[r] = l_run[r] * corr[r] + psum[r];
#pragma unroll
    for (int dt = 0; dt < kDimTiles; ++dt) {
      o[dt][0] *= corr[0];
      o[dt][1] *= corr[0];
      o[dt][2] *= corr[1];
      o[dt][3] *= corr[1];
    }
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      uint32_t pa[4];
      c_to_a(pa, sc, kk);
#pragma unroll
      for (int dt = 0; dt < kDimTiles; ++dt) {
        uint32_t b0, b1;
        load_b(b0, b1, vt_s, VS, dt * 8, kk * 16);
        mma(o[dt], pa, b0, b1);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float l = quad_sum(l_run[r]);
    const int64_t i = row[r];
    if (i >= s.tq) continue;
    const float inv = 1.0f / l;
    float* dst = out + s.q_row(bi, i, head);
#pragma unroll
    for (int dt = 0; dt < kDimTiles; ++dt) {
      const int e = frag_col(dt, 0);
      if (e < s.d) dst[e] = o[dt][2 * r] * inv;
      if (e + 1 < s.d) dst[e + 1] = o[dt][2 * r + 1] * inv;
    }
    if ((lane & 3) == 0) lse[s.lse_at(bi, head, i)] = (m_run[r] + log2f(l)) * kLn2;
  }
}

// ---- dK, dV: one block per (batch, KV head, 64 keys), 16 keys per warp -------------
// It owns those rows for every query head of its group (no atomics), and walks
// the query tiles from its own diagonal on, computing the transposed scores
// S^T = K Q^T so that each warp's rows are keys.
template <int W>
__global__ void __launch_bounds__(kThreadsMma)
    direct_dkdv_kernel(float* dk, float* dv, const float* dout, const float* q, const float* k,
                    const float* v, const float* lse, const float* delta, AttnShape s,
                    float scale) {
  constexpr int BQ = attention_mma_inner(W), QS = W + kMmaPad, TS = BQ + kMmaPad;
  constexpr int kSteps = W / 16, kQueryTiles = BQ / 8, kDimTiles = W / 8;
  extern __shared__ float4 mma_smem[];
  bf16* k_s = reinterpret_cast<bf16*>(mma_smem);  // [64][QS]
  bf16* v_s = k_s + kMmaRows * QS;                // [64][QS]
  bf16* q_s = v_s + kMmaRows * QS;                // [BQ][QS]
  bf16* do_s = q_s + BQ * QS;                     // [BQ][QS]
  bf16* qt_s = do_s + BQ * QS;                    // [W][TS]
  bf16* dot_s = qt_s + W * TS;                    // [W][TS]
  float* lse_s = reinterpret_cast<float*>(dot_s + W * TS);  // [BQ], log2 units
  float* delta_s = lse_s + BQ;                              // [BQ]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t tiles = direct_tiles(s.tk);
  const AttnTask task = attention_task(blockIdx.x, s.kv, tiles);
  // Early key tiles meet the most queries: hand them out first.
  const int64_t bi = task.batch, grp = task.head, j0 = (tiles - 1 - task.tile) * kMmaRows;
  const int64_t group = s.h / s.kv;
  const float scale2 = scale * kLog2e;

  load_tile<kMmaRows, W>(k_s, QS, nullptr, 0, k, j0, s.tk, s.kv, grp, s.d, bi * s.tk);
  load_tile<kMmaRows, W>(v_s, QS, nullptr, 0, v, j0, s.tk, s.kv, grp, s.d, bi * s.tk);
  int64_t key[2];
  key[0] = j0 + warp * 16 + (lane >> 2);
  key[1] = key[0] + 8;
  float dk_acc[kDimTiles][4], dv_acc[kDimTiles][4];
  zero(dk_acc);
  zero(dv_acc);

  for (int64_t head = grp * group; head < (grp + 1) * group; ++head) {
    for (int64_t i0 = j0; i0 < s.tq; i0 += BQ) {
      __syncthreads();  // the previous query tile is no longer read
      load_tile<BQ, W>(q_s, QS, qt_s, TS, q, i0, s.tq, s.h, head, s.d, bi * s.tq);
      load_tile<BQ, W>(do_s, QS, dot_s, TS, dout, i0, s.tq, s.h, head, s.d, bi * s.tq);
      for (int r = threadIdx.x; r < BQ; r += blockDim.x) {
        const int64_t i = i0 + r;
        lse_s[r] = i < s.tq ? lse[s.lse_at(bi, head, i)] * kLog2e : 0.0f;
        delta_s[r] = i < s.tq ? delta[s.lse_at(bi, head, i)] : 0.0f;
      }
      __syncthreads();
      float st[kQueryTiles][4], dpt[kQueryTiles][4];
      zero(st);
      zero(dpt);
#pragma unroll
      for (int ks = 0; ks < kSteps; ++ks) {
        uint32_t ka[4], va[4];
        load_a(ka, k_s, QS, warp * 16, ks * 16);
        load_a(va, v_s, QS, warp * 16, ks * 16);
#pragma unroll
        for (int nq = 0; nq < kQueryTiles; ++nq) {
          uint32_t b0, b1;
          load_b(b0, b1, q_s, QS, nq * 8, ks * 16);
          mma(st[nq], ka, b0, b1);
          load_b(b0, b1, do_s, QS, nq * 8, ks * 16);
          mma(dpt[nq], va, b0, b1);
        }
      }
      // P^T and dS^T = P^T (dP^T - delta); masked entries are 0.
#pragma unroll
      for (int nq = 0; nq < kQueryTiles; ++nq)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = frag_col(nq, e);
          const int64_t i = i0 + c;
          const bool valid = i < s.tq && key[e >> 1] <= i;
          const float p = valid ? exp2f(st[nq][e] * scale2 - lse_s[c]) : 0.0f;
          st[nq][e] = p;
          dpt[nq][e] = p * (dpt[nq][e] - delta_s[c]);
        }
#pragma unroll
      for (int kq = 0; kq < BQ / 16; ++kq) {
        uint32_t pa[4], dsa[4];
        c_to_a(pa, st, kq);
        c_to_a(dsa, dpt, kq);
#pragma unroll
        for (int dt = 0; dt < kDimTiles; ++dt) {
          uint32_t b0, b1;
          load_b(b0, b1, dot_s, TS, dt * 8, kq * 16);
          mma(dv_acc[dt], pa, b0, b1);
          load_b(b0, b1, qt_s, TS, dt * 8, kq * 16);
          mma(dk_acc[dt], dsa, b0, b1);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t j = key[r];
    if (j >= s.tk) continue;
    const int64_t base = s.k_row(bi, j, grp);
#pragma unroll
    for (int dt = 0; dt < kDimTiles; ++dt) {
      const int e = frag_col(dt, 0);
      if (e < s.d) {
        dk[base + e] = scale * dk_acc[dt][2 * r];
        dv[base + e] = dv_acc[dt][2 * r];
      }
      if (e + 1 < s.d) {
        dk[base + e + 1] = scale * dk_acc[dt][2 * r + 1];
        dv[base + e + 1] = dv_acc[dt][2 * r + 1];
      }
    }
  }
}

// ---- dQ: one block per (batch, head, 64 queries), 16 per warp ----------------------
template <int W>
__global__ void __launch_bounds__(kThreadsMma)
    direct_dq_kernel(float* dq, const float* dout, const float* q, const float* k, const float* v,
                  const float* lse, const float* delta, AttnShape s, float scale) {
  constexpr int BK = attention_mma_inner(W), QS = W + kMmaPad, TS = BK + kMmaPad;
  constexpr int kSteps = W / 16, kKeyTiles = BK / 8, kDimTiles = W / 8;
  extern __shared__ float4 mma_smem[];
  bf16* q_s = reinterpret_cast<bf16*>(mma_smem);  // [64][QS]
  bf16* do_s = q_s + kMmaRows * QS;               // [64][QS]
  bf16* k_s = do_s + kMmaRows * QS;               // [BK][QS]
  bf16* v_s = k_s + BK * QS;                      // [BK][QS]
  bf16* kt_s = v_s + BK * QS;                     // [W][TS]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const AttnTask task = attention_task(blockIdx.x, s.h, direct_tiles(s.tq));
  const int64_t bi = task.batch, head = task.head, grp = head / (s.h / s.kv);
  const int64_t i0 = task.tile * kMmaRows;
  const float scale2 = scale * kLog2e;

  load_tile<kMmaRows, W>(q_s, QS, nullptr, 0, q, i0, s.tq, s.h, head, s.d, bi * s.tq);
  load_tile<kMmaRows, W>(do_s, QS, nullptr, 0, dout, i0, s.tq, s.h, head, s.d, bi * s.tq);
  int64_t row[2];
  row[0] = i0 + warp * 16 + (lane >> 2);
  row[1] = row[0] + 8;
  float lse2[2], dlt[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    lse2[r] = row[r] < s.tq ? lse[s.lse_at(bi, head, row[r])] * kLog2e : 0.0f;
    dlt[r] = row[r] < s.tq ? delta[s.lse_at(bi, head, row[r])] : 0.0f;
  }
  float dq_acc[kDimTiles][4];
  zero(dq_acc);

  const int64_t last_key = min(s.tq - 1, i0 + kMmaRows - 1);
  for (int64_t j0 = 0; j0 <= last_key; j0 += BK) {
    __syncthreads();
    load_tile<BK, W>(k_s, QS, kt_s, TS, k, j0, s.tk, s.kv, grp, s.d, bi * s.tk);
    load_tile<BK, W>(v_s, QS, nullptr, 0, v, j0, s.tk, s.kv, grp, s.d, bi * s.tk);
    __syncthreads();
    float sc[kKeyTiles][4], dp[kKeyTiles][4];
    zero(sc);
    zero(dp);
#pragma unroll
    for (int ks = 0; ks < kSteps; ++ks) {
      uint32_t qa[4], da[4];
      load_a(qa, q_s, QS, warp * 16, ks * 16);
      load_a(da, do_s, QS, warp * 16, ks * 16);
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt) {
        uint32_t b0, b1;
        load_b(b0, b1, k_s, QS, nt * 8, ks * 16);
        mma(sc[nt], qa, b0, b1);
        load_b(b0, b1, v_s, QS, nt * 8, ks * 16);
        mma(dp[nt], da, b0, b1);
      }
    }
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1;
        const int64_t j = j0 + frag_col(nt, e);
        const bool valid = row[r] < s.tq && j <= row[r];
        const float p = valid ? exp2f(sc[nt][e] * scale2 - lse2[r]) : 0.0f;
        dp[nt][e] = p * (dp[nt][e] - dlt[r]);
      }
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      uint32_t dsa[4];
      c_to_a(dsa, dp, kk);
#pragma unroll
      for (int dt = 0; dt < kDimTiles; ++dt) {
        uint32_t b0, b1;
        load_b(b0, b1, kt_s, TS, dt * 8, kk * 16);
        mma(dq_acc[dt], dsa, b0, b1);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = row[r];
    if (i >= s.tq) continue;
    float* dst = dq + s.q_row(bi, i, head);
#pragma unroll
    for (int dt = 0; dt < kDimTiles; ++dt) {
      const int e = frag_col(dt, 0);
      if (e < s.d) dst[e] = scale * dq_acc[dt][2 * r];
      if (e + 1 < s.d) dst[e + 1] = scale * dq_acc[dt][2 * r + 1];
    }
  }
}

template <int W>
void forward_at_width(float* out, float* lse, const float* q, const float* k, const float* v,
                      const AttnShape& s, float scale, int64_t q_pos0, cudaStream_t stream) {
  static std::once_flag once;
  const size_t smem = direct_forward_smem(W);
  allow_smem(direct_forward_kernel<W>, smem, once);
  const int64_t blocks = s.b * s.h * direct_tiles(s.tq);
  direct_forward_kernel<W><<<static_cast<unsigned>(blocks), kThreadsMma, smem, stream>>>(
      out, lse, q, k, v, s, scale, q_pos0);
  HG_CUDA_CHECK_LAUNCH();
}

template <int W>
void backward_at_width(float* dq, float* dk, float* dv, const float* delta, const float* dout,
                       const float* q, const float* k, const float* v, const float* lse,
                       const AttnShape& s, float scale, cudaStream_t stream) {
  static std::once_flag once_dkdv, once_dq;
  const size_t smem_dkdv = direct_dkdv_smem(W), smem_dq = direct_dq_smem(W);
  allow_smem(direct_dkdv_kernel<W>, smem_dkdv, once_dkdv);
  allow_smem(direct_dq_kernel<W>, smem_dq, once_dq);
  const int64_t kv_blocks = s.b * s.kv * direct_tiles(s.tk);
  direct_dkdv_kernel<W><<<static_cast<unsigned>(kv_blocks), kThreadsMma, smem_dkdv, stream>>>(
      dk, dv, dout, q, k, v, lse, delta, s, scale);
  HG_CUDA_CHECK_LAUNCH();
  const int64_t q_blocks = s.b * s.h * direct_tiles(s.tq);
  direct_dq_kernel<W><<<static_cast<unsigned>(q_blocks), kThreadsMma, smem_dq, stream>>>(
      dq, dout, q, k, v, lse, delta, s, scale);
  HG_CUDA_CHECK_LAUNCH();
}

[[noreturn]] void unsupported(int64_t d) {
  HG_FAIL("attention: head dim ", d, " is not supported by the CUDA kernels (at most ",
          kAttnMaxHeadDim, ")");
}

}  // namespace

void attention_mma_direct_forward(float* out, float* lse, const float* q, const float* k,
                           const float* v, int64_t b, int64_t tq, int64_t tk, int64_t h,
                           int64_t kv, int64_t d, float scale, int64_t q_pos0,
                           cudaStream_t stream) {
  if (b <= 0 || tq <= 0) return;
  const AttnShape s{b, tq, tk, h, kv, d};
  switch (attention_width(d)) {
    case 32: return forward_at_width<32>(out, lse, q, k, v, s, scale, q_pos0, stream);
    case 64: return forward_at_width<64>(out, lse, q, k, v, s, scale, q_pos0, stream);
    case 128: return forward_at_width<128>(out, lse, q, k, v, s, scale, q_pos0, stream);
    default: unsupported(d);
  }
}

void attention_mma_direct_backward(float* dq, float* dk, float* dv, float* delta, const float* dout,
                            const float* q, const float* k, const float* v, const float* out,
                            const float* lse, int64_t b, int64_t t, int64_t h, int64_t kv,
                            int64_t d, float scale, cudaStream_t stream) {
  if (b <= 0 || t <= 0) return;
  const AttnShape s{b, t, t, h, kv, d};
  attention_delta(delta, dout, out, s, stream);
  switch (attention_width(d)) {
    case 32: return backward_at_width<32>(dq, dk, dv, delta, dout, q, k, v, lse, s, scale, stream);
    case 64: return backward_at_width<64>(dq, dk, dv, delta, dout, q, k, v, lse, s, scale, stream);
    case 128: return backward_at_width<128>(dq, dk, dv, delta, dout, q, k, v, lse, s, scale, stream);
    default: unsupported(d);
  }
}

}  // namespace hessgpt::cuda
