// Causal GQA attention on the tensor cores: BF16 mma.sync.m16n8k16 with FP32
// accumulation, FlashAttention-2 tiling. The interface and the semantics are
// those of attention.cu (FP32 tensors in and out, the same lse), which serves
// FP32 precision and is the reference these kernels are tested against; the
// backend picks these under BF16 matrix-product precision.
//
// A pack pass first rounds q, k, v (and dout) to BF16 copies laid out per
// (batch, head) as [Tp, W] row blocks (AttnPackLayout in launch_config.h), so
// that every tile the kernels read is a run of 16-byte rows: cp.async copies
// the next tile into the second half of a double buffer while the warps
// multiply the current one. Scores, the online softmax, lse and every
// accumulator stay FP32; P and dS are rounded to BF16 only as operands of the
// next product (as in FlashAttention-2), straight from the score registers
// (warp_mma.cuh). The score products read K (and Q, dout) as stored, [n][k];
// the products that run over the rows (P V, dS^T Q, P^T dout, dS K) read
// them through ldmatrix.trans, so every operand is packed once, as rows.
#include <cuda_bf16.h>

#include <cstdlib>
#include <string_view>

#include "backend/cuda/attention_common.cuh"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/warp_mma.cuh"
#include "core/error.h"

namespace hessgpt::cuda {
namespace {

using namespace warp_mma;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// c1 = A1 B1^T and c2 = A2 B2^T for the warp's 16 rows r0.. of the A tiles
// against N n-tiles of 8 rows of the B tiles, over 16 x STEPS columns; all four
// tiles are row-major [rows][stride]. Both of backward's score products:
// (S, dP) for dQ, their transposes for dK/dV. The A fragments are reloaded at
// every step rather than held in registers: holding them costs the dK/dV and
// dQ kernels a block per SM (ptxas: 165 -> 238 and 126 -> 166 registers at
// width 64).
template <int STEPS, int N>
__device__ __forceinline__ void two_products(float (&c1)[N][4], float (&c2)[N][4], const bf16* a1,
                                             const bf16* a2, const bf16* b1, const bf16* b2,
                                             int stride, int r0) {
  zero(c1);
  zero(c2);
#pragma unroll
  for (int ks = 0; ks < STEPS; ++ks) {
    uint32_t x1[4], x2[4];
    load_a(x1, a1, stride, r0, ks * 16);
    load_a(x2, a2, stride, r0, ks * 16);
#pragma unroll
    for (int n = 0; n < N; ++n) {
      uint32_t lo, hi;
      load_b(lo, hi, b1, stride, n * 8, ks * 16);
      mma(c1[n], x1, lo, hi);
      load_b(lo, hi, b2, stride, n * 8, ks * 16);
      mma(c2[n], x2, lo, hi);
    }
  }
}

// ---- pack: [B, T, heads, d] -> BF16 [B, heads, Tp, W], zeros beyond T and d ---------
// A thread per 8 outputs (one 16-byte store); consecutive threads read
// consecutive inputs of a row. In: float, or BF16 storage (copied as is).
// With delta (the backward's dout pack), each row's delta = x . out (FP32,
// from x before its rounding) too, on the same read of x: the W / 8 threads
// of a row are consecutive lanes of one warp (W / 8 divides 32, and whole
// warps run each grid-stride step: chunks is a multiple of 32), so a shuffle
// within the group sums the row. Out: float or BF16 storage.
template <typename In, typename Out>
__global__ void pack_kernel(bf16* packed, const In* x, float* delta, const Out* out,
                            int64_t t_len, int64_t tp, int64_t heads, int64_t d, int w,
                            int64_t chunks) {
  const int per_row = w / 8;
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < chunks;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = c / per_row;  // bh * tp + t
    const int part = static_cast<int>(c % per_row), e0 = 8 * part;
    const int64_t t = row % tp, bh = row / tp;
    const int64_t at = ((bh / heads * t_len + t) * heads + bh % heads) * d;
    const bool real = t < t_len;
    float dot = 0.0f;
    uint32_t v[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int e = e0 + 2 * i;
      const bool lo = real && e < d, hi = real && e + 1 < d;
      const float x0 = lo ? as_float(x[at + e]) : 0.0f, x1 = hi ? as_float(x[at + e + 1]) : 0.0f;
      if (delta)
        dot += x0 * (lo ? as_float(out[at + e]) : 0.0f) + x1 * (hi ? as_float(out[at + e + 1]) : 0.0f);
      v[i] = pack_bf16(x0, x1);
    }
    *reinterpret_cast<uint4*>(packed + row * w + e0) = make_uint4(v[0], v[1], v[2], v[3]);
    if (!delta) continue;
    for (int off = per_row / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(kFullMask, dot, off);
    if (part == 0 && real) delta[bh * t_len + t] = dot;
  }
}

// delta and out: both null (a plain pack), or the backward's dout pack.
template <typename In, typename Out = float>
void pack(bf16* packed, const In* x, int64_t b, int64_t t_len, int64_t tp, int64_t heads,
          int64_t d, int w, cudaStream_t stream, float* delta = nullptr,
          const Out* out = nullptr) {
  const int64_t chunks = b * heads * tp * (w / 8);
  const Launch1D l = elementwise_launch(chunks);
  if (l.blocks == 0) return;
  pack_kernel<<<static_cast<unsigned>(l.blocks), l.threads, 0, stream>>>(
      packed, device_ptr(x), delta, device_ptr(out), t_len, tp, heads, d, w, chunks);
  HG_CUDA_CHECK_LAUNCH();
}

// The packed copies of one pass, as typed pointers into the scratch block.
struct Packed {
  const bf16 *q = nullptr, *k = nullptr, *v = nullptr, *dout = nullptr;
  int64_t tqp = 0, tkp = 0;
};

bf16* at(void* scratch, size_t offset) {
  return offset == kAbsent ? nullptr
                           : reinterpret_cast<bf16*>(static_cast<char*>(scratch) + offset);
}

// ---- forward: one block per (batch, head, 16 x MT x WARPS queries) -------------------

// One key tile of the online softmax for one m16 tile of a warp's queries:
// sc holds its scores (raw products) on entry and P on exit; the running max,
// sum and output rows are rescaled. rows: the tile's two query rows (g, g + 8).
// full: every key of the tile is visible to every row (no mask needed).
template <int KT, int DT>
__device__ __forceinline__ void softmax_tile(float (&sc)[KT][4], float (&o)[DT][4],
                                             float (&m_run)[2], float (&l_run)[2],
                                             const int64_t (&rows)[2], bool full, int64_t j0,
                                             int64_t q_pos0, int64_t tq, float scale2) {
  float mx[2] = {-INFINITY, -INFINITY};
  if (full) {
#pragma unroll
    for (int nt = 0; nt < KT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        sc[nt][e] *= scale2;
        mx[e >> 1] = fmaxf(mx[e >> 1], sc[nt][e]);
      }
  } else {
#pragma unroll
    for (int nt = 0; nt < KT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t i = rows[e >> 1], j = j0 + frag_col(nt, e);
        const bool valid = i < tq && j <= q_pos0 + i;
        sc[nt][e] = valid ? sc[nt][e] * scale2 : -INFINITY;
        mx[e >> 1] = fmaxf(mx[e >> 1], sc[nt][e]);
      }
  }
  float corr[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float m_new = fmaxf(m_run[r], quad_max(mx[r]));
    // A row that has seen no key yet has nothing to rescale.
    corr[r] = m_run[r] == -INFINITY ? 0.0f : exp2_ftz(m_run[r] - m_new);
    m_run[r] = m_new;
  }
  float psum[2] = {0.0f, 0.0f};
#pragma unroll
  for (int nt = 0; nt < KT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float x = sc[nt][e];
      // A full tile has no -inf scores, and each row's max is finite.
      sc[nt][e] = full || x != -INFINITY ? exp2_ftz(x - m_run[e >> 1]) : 0.0f;
      psum[e >> 1] += sc[nt][e];
    }
#pragma unroll
  for (int r = 0; r < 2; ++r) l_run[r] = l_run[r] * corr[r] + psum[r];
#pragma unroll
  for (int dt = 0; dt < DT; ++dt) {
    o[dt][0] *= corr[0];
    o[dt][1] *= corr[0];
    o[dt][2] *= corr[1];
    o[dt][3] *= corr[1];
  }
}

// Each warp owns MT m16 tiles (16 x MT consecutive queries): every K and V
// fragment it loads feeds MT products.
template <int W, int WARPS, int MT, typename Out>
__global__ void __launch_bounds__(32 * WARPS)
    mma_forward_kernel(Out* out, float* lse, Packed pk, AttnShape s, float scale,
                       int64_t q_pos0) {
  constexpr int ROWS = 16 * MT * WARPS, BK = kMmaForwardKeys, QS = W + kMmaPad;
  constexpr int kSteps = W / 16, kKeyTiles = BK / 8, kDimTiles = W / 8;
  extern __shared__ float4 mma_smem[];
  bf16* q_s = reinterpret_cast<bf16*>(mma_smem);  // [ROWS][QS]
  bf16* k_s = q_s + ROWS * QS;                    // 2 x [BK][QS]
  bf16* v_s = k_s + 2 * BK * QS;                  // 2 x [BK][QS]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const AttnTask task = attention_task(blockIdx.x, s.h, attention_mma_tiles(s.tq, ROWS));
  const int64_t bi = task.batch, head = task.head, grp = head / (s.h / s.kv);
  const int64_t i0 = task.tile * ROWS;
  const float scale2 = scale * kLog2e;  // scores in log2 units: 2^x is one instruction
  const bf16* k_rows = pk.k + (bi * s.kv + grp) * pk.tkp * W;
  const bf16* v_rows = pk.v + (bi * s.kv + grp) * pk.tkp * W;
  const auto issue = [&](int64_t j0, int buf) {
    copy_block<BK, W>(k_s + buf * BK * QS, QS, k_rows + j0 * W, W);
    copy_block<BK, W>(v_s + buf * BK * QS, QS, v_rows + j0 * W, W);
  };

  const int64_t last_query = min(s.tq - 1, i0 + ROWS - 1);
  const int64_t tiles = min(s.tk - 1, q_pos0 + last_query) / BK + 1;
  copy_block<ROWS, W>(q_s, QS, pk.q + ((bi * s.h + head) * pk.tqp + i0) * W, W);
  issue(0, 0);
  cp_async_commit();

  int64_t row[MT][2];
  uint32_t qf[MT][kSteps][4];
  float o[MT][kDimTiles][4];
  float m_run[MT][2], l_run[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    row[mt][0] = i0 + (warp * MT + mt) * 16 + (lane >> 2);
    row[mt][1] = row[mt][0] + 8;
    zero(o[mt]);
    m_run[mt][0] = m_run[mt][1] = -INFINITY;
    l_run[mt][0] = l_run[mt][1] = 0.0f;
  }
  for (int64_t t = 0; t < tiles; ++t) {
    if (t + 1 < tiles) issue((t + 1) * BK, static_cast<int>((t + 1) & 1));
    cp_async_commit();
    cp_async_wait<1>();  // everything but the tile just issued has landed
    __syncthreads();
    if (t == 0) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int ks = 0; ks < kSteps; ++ks)
          load_a(qf[mt][ks], q_s, QS, (warp * MT + mt) * 16, ks * 16);
    }
    const bf16* kb = k_s + (t & 1) * BK * QS;
    const bf16* vb = v_s + (t & 1) * BK * QS;
    const int64_t j0 = t * BK;
    float sc[MT][kKeyTiles][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) zero(sc[mt]);
#pragma unroll
    for (int ks = 0; ks < kSteps; ++ks)
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; nt += 2) {
        uint32_t b[4];
        load_b2(b, kb, QS, nt * 8, ks * 16);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma(sc[mt][nt], qf[mt][ks], b[0], b[1]);
          mma(sc[mt][nt + 1], qf[mt][ks], b[2], b[3]);
        }
      }
    // Tiles wholly below the diagonal (every key visible to every query row
    // of the block, all rows real) need no mask: most of them, and the mask's
    // index arithmetic was most of the non-tensor-core work.
    const bool full = j0 + BK - 1 <= q_pos0 + i0 && i0 + ROWS <= s.tq;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
      softmax_tile(sc[mt], o[mt], m_run[mt], l_run[mt], row[mt], full, j0, q_pos0, s.tq, scale2);
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      uint32_t pa[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) c_to_a(pa[mt], sc[mt], kk);
#pragma unroll
      for (int dt = 0; dt < kDimTiles; dt += 2) {
        uint32_t b[4];
        load_b2_trans(b, vb, QS, kk * 16, dt * 8);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma(o[mt][dt], pa[mt], b[0], b[1]);
          mma(o[mt][dt + 1], pa[mt], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // this buffer is refilled by the next iteration's issue
  }
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float l = quad_sum(l_run[mt][r]);
      const int64_t i = row[mt][r];
      if (i >= s.tq) continue;
      store_row(out + s.q_row(bi, i, head), o[mt], r, 1.0f / l, s.d);
      if ((lane & 3) == 0) lse[s.lse_at(bi, head, i)] = (m_run[mt][r] + log2f(l)) * kLn2;
    }
}

// ---- dK, dV: one block per (batch, KV head, 16 x WARPS keys), 16 keys per warp -----
// It owns those rows for every query head of its group (no atomics), and walks
// the query tiles from its own diagonal on, computing the transposed scores
// S^T = K Q^T so that each warp's rows are keys.
template <int W, int WARPS>
__global__ void __launch_bounds__(32 * WARPS)
    mma_dkdv_kernel(float* dk, float* dv, const float* lse, const float* delta, Packed pk,
                    AttnShape s, float scale) {
  constexpr int ROWS = 16 * WARPS, BQ = attention_mma_inner(W), QS = W + kMmaPad;
  constexpr int kSteps = W / 16, kQueryTiles = BQ / 8, kDimTiles = W / 8;
  constexpr int kStage = 2 * BQ * QS;  // bf16 elements of one query stage
  extern __shared__ float4 mma_smem[];
  bf16* k_s = reinterpret_cast<bf16*>(mma_smem);  // [ROWS][QS]
  bf16* v_s = k_s + ROWS * QS;                    // [ROWS][QS]
  bf16* stages = v_s + ROWS * QS;                 // 2 x {q, dout [BQ][QS]}
  float* stats = reinterpret_cast<float*>(stages + 2 * kStage);  // 2 x {lse (log2), delta} [BQ]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t tiles = attention_mma_tiles(s.tk, ROWS);
  const AttnTask task = attention_task(blockIdx.x, s.kv, tiles);
  // Early key tiles meet the most queries: hand them out first.
  const int64_t bi = task.batch, grp = task.head, j0 = (tiles - 1 - task.tile) * ROWS;
  const int64_t group = s.h / s.kv;
  const float scale2 = scale * kLog2e;
  // Steps: (head of the group, query tile from the diagonal on), heads outer.
  const int64_t per_head = ceil_div(s.tq - j0, BQ), steps = group * per_head;
  const auto issue = [&](int64_t step, int buf) {
    const int64_t head = grp * group + step / per_head, i0 = j0 + (step % per_head) * BQ;
    bf16* st = stages + buf * kStage;
    const int64_t bh = bi * s.h + head;
    copy_block<BQ, W>(st, QS, pk.q + (bh * pk.tqp + i0) * W, W);
    copy_block<BQ, W>(st + BQ * QS, QS, pk.dout + (bh * pk.tqp + i0) * W, W);
    float* stat = stats + buf * 2 * BQ;
    for (int r = threadIdx.x; r < BQ; r += blockDim.x) {
      const int64_t i = i0 + r;
      stat[r] = i < s.tq ? lse[s.lse_at(bi, head, i)] * kLog2e : 0.0f;
      stat[BQ + r] = i < s.tq ? delta[s.lse_at(bi, head, i)] : 0.0f;
    }
  };

  const int64_t kv_row = (bi * s.kv + grp) * pk.tkp + j0;
  copy_block<ROWS, W>(k_s, QS, pk.k + kv_row * W, W);
  copy_block<ROWS, W>(v_s, QS, pk.v + kv_row * W, W);
  if (steps > 0) issue(0, 0);
  cp_async_commit();
  int64_t key[2];
  key[0] = j0 + warp * 16 + (lane >> 2);
  key[1] = key[0] + 8;
  float dk_acc[kDimTiles][4], dv_acc[kDimTiles][4];
  zero(dk_acc);
  zero(dv_acc);

  for (int64_t step = 0; step < steps; ++step) {
    if (step + 1 < steps) issue(step + 1, static_cast<int>((step + 1) & 1));
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const int buf = static_cast<int>(step & 1);
    const bf16* q_s = stages + buf * kStage;
    const bf16* do_s = q_s + BQ * QS;
    const float* lse_s = stats + buf * 2 * BQ;
    const float* delta_s = lse_s + BQ;
    const int64_t i0 = j0 + (step % per_head) * BQ;
    float st[kQueryTiles][4], dpt[kQueryTiles][4];
    two_products<kSteps>(st, dpt, k_s, v_s, q_s, do_s, QS, warp * 16);
    // P^T and dS^T = P^T (dP^T - delta); masked entries are 0. A query tile
    // wholly past the block's last key (and before T) needs no mask.
    const bool full = i0 >= j0 + ROWS - 1 && i0 + BQ <= s.tq;
#pragma unroll
    for (int nq = 0; nq < kQueryTiles; ++nq)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int c = frag_col(nq, e);
        const int64_t i = i0 + c;
        const bool valid = full || (i < s.tq && key[e >> 1] <= i);
        const float p = valid ? exp2_ftz(st[nq][e] * scale2 - lse_s[c]) : 0.0f;
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
        load_b_trans(b0, b1, do_s, QS, kq * 16, dt * 8);
        mma(dv_acc[dt], pa, b0, b1);
        load_b_trans(b0, b1, q_s, QS, kq * 16, dt * 8);
        mma(dk_acc[dt], dsa, b0, b1);
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's issue
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t j = key[r];
    if (j >= s.tk) continue;
    const int64_t base = s.k_row(bi, j, grp);
    store_row(dk + base, dk_acc, r, scale, s.d);
    store_row(dv + base, dv_acc, r, 1.0f, s.d);
  }
}

// ---- dQ: one block per (batch, head, 16 x WARPS queries), 16 per warp --------------
template <int W, int WARPS>
__global__ void __launch_bounds__(32 * WARPS)
    mma_dq_kernel(float* dq, const float* lse, const float* delta, Packed pk, AttnShape s,
                  float scale) {
  constexpr int ROWS = 16 * WARPS, BK = attention_mma_inner(W), QS = W + kMmaPad;
  constexpr int kSteps = W / 16, kKeyTiles = BK / 8, kDimTiles = W / 8;
  constexpr int kStage = 2 * BK * QS;  // bf16 elements of one key stage
  extern __shared__ float4 mma_smem[];
  bf16* q_s = reinterpret_cast<bf16*>(mma_smem);  // [ROWS][QS]
  bf16* do_s = q_s + ROWS * QS;                   // [ROWS][QS]
  bf16* stages = do_s + ROWS * QS;                // 2 x {k, v [BK][QS]}
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const AttnTask task = attention_task(blockIdx.x, s.h, attention_mma_tiles(s.tq, ROWS));
  const int64_t bi = task.batch, head = task.head, grp = head / (s.h / s.kv);
  const int64_t i0 = task.tile * ROWS;
  const float scale2 = scale * kLog2e;
  const int64_t kv_bh = bi * s.kv + grp;
  const auto issue = [&](int64_t j0, int buf) {
    bf16* st = stages + buf * kStage;
    copy_block<BK, W>(st, QS, pk.k + (kv_bh * pk.tkp + j0) * W, W);
    copy_block<BK, W>(st + BK * QS, QS, pk.v + (kv_bh * pk.tkp + j0) * W, W);
  };

  const int64_t q_row0 = (bi * s.h + head) * pk.tqp + i0;
  copy_block<ROWS, W>(q_s, QS, pk.q + q_row0 * W, W);
  copy_block<ROWS, W>(do_s, QS, pk.dout + q_row0 * W, W);
  const int64_t tiles = min(s.tq - 1, i0 + ROWS - 1) / BK + 1;
  issue(0, 0);
  cp_async_commit();
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

  for (int64_t t = 0; t < tiles; ++t) {
    if (t + 1 < tiles) issue((t + 1) * BK, static_cast<int>((t + 1) & 1));
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const bf16* k_s = stages + (t & 1) * kStage;
    const bf16* v_s = k_s + BK * QS;
    const int64_t j0 = t * BK;
    float sc[kKeyTiles][4], dp[kKeyTiles][4];
    two_products<kSteps>(sc, dp, q_s, do_s, k_s, v_s, QS, warp * 16);
    // A key tile wholly before the block's first query (all rows real) needs no mask.
    const bool full = j0 + BK - 1 <= i0 && i0 + ROWS <= s.tq;
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1;
        const int64_t j = j0 + frag_col(nt, e);
        const bool valid = full || (row[r] < s.tq && j <= row[r]);
        const float p = valid ? exp2_ftz(sc[nt][e] * scale2 - lse2[r]) : 0.0f;
        dp[nt][e] = p * (dp[nt][e] - dlt[r]);
      }
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      uint32_t dsa[4];
      c_to_a(dsa, dp, kk);
#pragma unroll
      for (int dt = 0; dt < kDimTiles; dt += 2) {
        uint32_t b[4];
        load_b2_trans(b, k_s, QS, kk * 16, dt * 8);
        mma(dq_acc[dt], dsa, b[0], b[1]);
        mma(dq_acc[dt + 1], dsa, b[2], b[3]);
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's issue
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = row[r];
    if (i >= s.tq) continue;
    store_row(dq + s.q_row(bi, i, head), dq_acc, r, scale, s.d);
  }
}

// ---- launchers -------------------------------------------------------------------------

template <int W, int WARPS, int MT, typename Out>
void forward_at(Out* out, float* lse, const Packed& pk, const AttnShape& s, float scale,
                int64_t q_pos0, cudaStream_t stream) {
  static std::once_flag once;
  constexpr int kRows = 16 * MT * WARPS;
  static_assert(kRows <= kMmaPackRows, "the packed copies are padded to kMmaPackRows rows");
  const size_t smem = attention_mma_forward_smem(W, kRows);
  allow_smem(mma_forward_kernel<W, WARPS, MT, Out>, smem, once);
  const int64_t blocks = s.b * s.h * attention_mma_tiles(s.tq, kRows);
  mma_forward_kernel<W, WARPS, MT, Out>
      <<<static_cast<unsigned>(blocks), 32 * WARPS, smem, stream>>>(out, lse, pk, s, scale,
                                                                    q_pos0);
  HG_CUDA_CHECK_LAUNCH();
}

template <int W, int WARPS>
void backward_at(float* dq, float* dk, float* dv, const float* delta, const float* lse,
                 const Packed& pk, const AttnShape& s, float scale, cudaStream_t stream) {
  static std::once_flag once_dkdv, once_dq;
  constexpr int kRows = 16 * WARPS;
  const size_t smem_dkdv = attention_mma_dkdv_smem(W, kRows), smem_dq = attention_mma_dq_smem(W, kRows);
  allow_smem(mma_dkdv_kernel<W, WARPS>, smem_dkdv, once_dkdv);
  allow_smem(mma_dq_kernel<W, WARPS>, smem_dq, once_dq);
  const int64_t kv_blocks = s.b * s.kv * attention_mma_tiles(s.tk, kRows);
  mma_dkdv_kernel<W, WARPS><<<static_cast<unsigned>(kv_blocks), 32 * WARPS, smem_dkdv, stream>>>(
      dk, dv, lse, delta, pk, s, scale);
  HG_CUDA_CHECK_LAUNCH();
  const int64_t q_blocks = s.b * s.h * attention_mma_tiles(s.tq, kRows);
  mma_dq_kernel<W, WARPS><<<static_cast<unsigned>(q_blocks), 32 * WARPS, smem_dq, stream>>>(
      dq, lse, delta, pk, s, scale);
  HG_CUDA_CHECK_LAUNCH();
}

// One of two values from the environment variable `name`, or `fallback` when
// it is unset. Read at every call (a getenv next to a kernel launch), so that
// a test can compare the variants inside one process.
int env_choice(const char* name, int a, int b, int fallback) {
  const char* e = std::getenv(name);
  if (!e) return fallback;
  const std::string_view v(e);
  if (v == std::to_string(a)) return a;
  if (v == std::to_string(b)) return b;
  HG_FAIL(name, " must be ", a, " or ", b, " (got '", v, "')");
}

// f.template operator()<W, WARPS, MT>() for the width serving d and the block
// shape in use: warps per block kMmaWarps or HESSGPT_ATTN_WARPS (4 or 8), and
// in the forward (forward_tiles) 16 rows per warp, or HESSGPT_ATTN_ROWS=32
// (where they fit) for A/B timings.
template <typename F>
void dispatch(int64_t d, bool forward_tiles, F&& f) {
  const int warps = env_choice("HESSGPT_ATTN_WARPS", 4, 8, kMmaWarps);
  const int wanted = forward_tiles ? env_choice("HESSGPT_ATTN_ROWS", 16, 32, 16) / 16 : 1;
  const auto at_width = [&]<int W>() {
    if (warps == 8) return f.template operator()<W, 8, 1>();
    if constexpr (attention_mma_forward_tiles(W, 4, 2) == 2)
      if (attention_mma_forward_tiles(W, 4, wanted) == 2) return f.template operator()<W, 4, 2>();
    return f.template operator()<W, 4, 1>();
  };
  switch (attention_width(d)) {
    case 32: return at_width.template operator()<32>();
    case 64: return at_width.template operator()<64>();
    case 128: return at_width.template operator()<128>();
    default:
      HG_FAIL("attention: head dim ", d, " is not supported by the CUDA kernels (at most ",
              kAttnMaxHeadDim, ")");
  }
}

}  // namespace

size_t attention_mma_scratch_bytes(int64_t b, int64_t tq, int64_t tk, int64_t h, int64_t kv,
                                   int64_t d, bool backward) {
  return attention_pack_layout(b, tq, tk, h, kv, d, backward).bytes;
}

template <typename Out, typename In>
void attention_mma_forward(Out* out, float* lse, const In* q, const In* k, const In* v,
                           int64_t b, int64_t tq, int64_t tk, int64_t h,
                           int64_t kv, int64_t d, float scale, int64_t q_pos0, void* scratch,
                           cudaStream_t stream) {
  if (b <= 0 || tq <= 0) return;
  const AttnShape s{b, tq, tk, h, kv, d};
  const AttnPackLayout lay = attention_pack_layout(b, tq, tk, h, kv, d, false);
  bf16 *qp = at(scratch, lay.q), *kp = at(scratch, lay.k), *vp = at(scratch, lay.v);
  pack(qp, q, b, tq, lay.tqp, h, d, lay.w, stream);
  pack(kp, k, b, tk, lay.tkp, kv, d, lay.w, stream);
  pack(vp, v, b, tk, lay.tkp, kv, d, lay.w, stream);
  Packed pk;
  pk.q = qp;
  pk.k = kp;
  pk.v = vp;
  pk.tqp = lay.tqp;
  pk.tkp = lay.tkp;
  dispatch(d, true, [&]<int W, int WARPS, int MT>() {
    forward_at<W, WARPS, MT>(device_ptr(out), lse, pk, s, scale, q_pos0, stream);
  });
}
#define HG_ATTENTION_MMA_FORWARD(Out, In)                                                    \
  template void attention_mma_forward(Out*, float*, const In*, const In*, const In*, int64_t, \
                                      int64_t, int64_t, int64_t, int64_t, int64_t, float,     \
                                      int64_t, void*, cudaStream_t);
HG_ATTENTION_MMA_FORWARD(float, float)
HG_ATTENTION_MMA_FORWARD(uint16_t, float)
HG_ATTENTION_MMA_FORWARD(float, uint16_t)
HG_ATTENTION_MMA_FORWARD(uint16_t, uint16_t)
#undef HG_ATTENTION_MMA_FORWARD

template <typename Out, typename In>
void attention_mma_backward(float* dq, float* dk, float* dv, float* delta, const float* dout,
                            const In* q, const In* k, const In* v, const Out* out,
                            const float* lse, int64_t b, int64_t t, int64_t h, int64_t kv,
                            int64_t d, float scale, void* scratch, cudaStream_t stream) {
  if (b <= 0 || t <= 0) return;
  const AttnShape s{b, t, t, h, kv, d};
  const AttnPackLayout lay = attention_pack_layout(b, t, t, h, kv, d, true);
  bf16 *qp = at(scratch, lay.q), *kp = at(scratch, lay.k), *vp = at(scratch, lay.v),
       *dop = at(scratch, lay.dout);
  pack(qp, q, b, t, lay.tqp, h, d, lay.w, stream);
  pack(kp, k, b, t, lay.tkp, kv, d, lay.w, stream);
  pack(vp, v, b, t, lay.tkp, kv, d, lay.w, stream);
  pack(dop, dout, b, t, lay.tqp, h, d, lay.w, stream, delta, out);
  Packed pk;
  pk.q = qp;
  pk.k = kp;
  pk.v = vp;
  pk.dout = dop;
  pk.tqp = lay.tqp;
  pk.tkp = lay.tkp;
  dispatch(d, false, [&]<int W, int WARPS, int>() {
    backward_at<W, WARPS>(dq, dk, dv, delta, lse, pk, s, scale, stream);
  });
}

#define HG_ATTENTION_MMA_BACKWARD(Out, In)                                                  \
  template void attention_mma_backward(float*, float*, float*, float*, const float*, const In*, \
                                       const In*, const In*, const Out*, const float*, int64_t, \
                                       int64_t, int64_t, int64_t, int64_t, float, void*,        \
                                       cudaStream_t);
HG_ATTENTION_MMA_BACKWARD(float, float)
HG_ATTENTION_MMA_BACKWARD(uint16_t, float)
HG_ATTENTION_MMA_BACKWARD(float, uint16_t)
HG_ATTENTION_MMA_BACKWARD(uint16_t, uint16_t)
#undef HG_ATTENTION_MMA_BACKWARD

}  // namespace hessgpt::cuda
