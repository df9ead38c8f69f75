// Causal grouped-query attention, flash-style, in FP32 on the CUDA cores.
// q[B,Tq,H,D], k/v[B,Tk,KV,D], out[B,Tq,H,D], lse[B,H,Tq]; query i sits at
// position q_pos0 + i and sees keys 0 .. q_pos0 + i; query head h reads KV head
// h / (H / KV).
//
// Forward: one block per (batch, head, tile of 32 queries); key/value tiles of
// 32 pass through shared memory with an online softmax, so memory stays linear
// in T. Each warp owns 4 query rows: scores with lane = key (one dot product
// per lane, no reductions), then the P.V update with lane = head-dim column.
// Backward (FlashAttention-2): probabilities recomputed from the saved lse;
// one kernel per key tile for dK/dV (it owns those rows for every query head of
// its KV group, so nothing is written twice and no atomics are needed), one per
// query tile for dQ.
//
// Head dims are padded (with zeros in shared memory) up to a compiled width W
// of 32, 64 or 128. Tensor-core (BF16 MMA) versions are the next step; these
// are the reference the faster ones will be tested against.
#include "backend/cuda/attention_common.cuh"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace hessgpt::cuda {
namespace {

constexpr int kTile = kAttnTile;
constexpr int kRows = kAttnRowsPerWarp;
constexpr int kBlockThreads = kAttnWarps * 32;
constexpr int kPad = kAttnScoreStride;  // row stride of the [32, 32] p / ds tiles
constexpr int kKeyPad = kAttnKeyPad;

// dot(a[0..W), b[0..W)) from 16-byte shared-memory reads, summed in order.
template <int W>
__device__ __forceinline__ float dot4(const float* a, const float* b) {
  const float4* a4 = reinterpret_cast<const float4*>(a);
  const float4* b4 = reinterpret_cast<const float4*>(b);
  float s = 0.0f;
#pragma unroll 4
  for (int e = 0; e < W / 4; ++e) {
    const float4 x = a4[e], y = b4[e];
    s = fmaf(x.x, y.x, s);
    s = fmaf(x.y, y.y, s);
    s = fmaf(x.z, y.z, s);
    s = fmaf(x.w, y.w, s);
  }
  return s;
}

using Shape = AttnShape;

// Rows [row0, row0 + 32) of a [*, rows, heads, d] tensor (head fixed) into
// dst[32][stride], zero beyond `rows` and beyond d.
template <int W>
__device__ void load_tile(float* dst, int stride, const float* src, int64_t row0, int64_t rows,
                          int64_t heads, int64_t head, int64_t d, int64_t batch_row0) {
  for (int idx = threadIdx.x; idx < kTile * W; idx += blockDim.x) {
    const int r = idx / W, e = idx % W;
    const int64_t row = row0 + r;
    float val = 0.0f;
    if (row < rows && e < d) val = src[((batch_row0 + row) * heads + head) * d + e];
    dst[r * stride + e] = val;
  }
}

template <int W>
__global__ void __launch_bounds__(kBlockThreads)
    attention_forward_kernel(float* out, float* lse, const float* q, const float* k,
                             const float* v, Shape s, float scale, int64_t q_pos0) {
  extern __shared__ float4 attn_smem[];  // float4: 16-byte aligned for the float4 reads
  float* smem = reinterpret_cast<float*>(attn_smem);
  float* q_s = smem;                 // [32][W]
  float* k_s = q_s + kTile * W;      // [32][W + kKeyPad]
  float* v_s = k_s + kTile * (W + kKeyPad);  // [32][W]
  float* p_s = v_s + kTile * W;              // [32][kPad], each warp its own rows
  constexpr int kCols = W / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const AttnTask task = attention_task(blockIdx.x, s.h, attention_tiles(s.tq));
  const int64_t bi = task.batch, head = task.head, g = head / (s.h / s.kv);
  const int64_t i0 = task.tile * kTile;

  load_tile<W>(q_s, W, q, i0, s.tq, s.h, head, s.d, bi * s.tq);
  float o[kRows][kCols];
  float m_run[kRows], l_run[kRows];
#pragma unroll
  for (int m = 0; m < kRows; ++m) {
    m_run[m] = -INFINITY;
    l_run[m] = 0.0f;
#pragma unroll
    for (int c = 0; c < kCols; ++c) o[m][c] = 0.0f;
  }
  const int64_t last_query = min(s.tq - 1, i0 + kTile - 1);
  const int64_t last_key = min(s.tk - 1, q_pos0 + last_query);
  for (int64_t j0 = 0; j0 <= last_key; j0 += kTile) {
    __syncthreads();  // the previous tile is no longer read
    load_tile<W>(k_s, W + kKeyPad, k, j0, s.tk, s.kv, g, s.d, bi * s.tk);
    load_tile<W>(v_s, W, v, j0, s.tk, s.kv, g, s.d, bi * s.tk);
    __syncthreads();
    const int64_t j = j0 + lane;
    float dot[kRows];
#pragma unroll
    for (int m = 0; m < kRows; ++m)
      dot[m] = dot4<W>(q_s + (warp + kAttnWarps * m) * W, k_s + lane * (W + kKeyPad));
    float p[kRows];
#pragma unroll
    for (int m = 0; m < kRows; ++m) {
      const int64_t i = i0 + warp + kAttnWarps * m;
      const bool valid = i < s.tq && j <= q_pos0 + i;
      const float x = valid ? dot[m] * scale : -INFINITY;
      const float m_new = fmaxf(m_run[m], warp_max(x));
      // Rows past the end of the queries see no key at all: keep them at zero.
      const float correction = m_run[m] == -INFINITY ? 0.0f : expf(m_run[m] - m_new);
      p[m] = valid ? expf(x - m_new) : 0.0f;
      l_run[m] = l_run[m] * correction + warp_sum(p[m]);
      m_run[m] = m_new;
#pragma unroll
      for (int c = 0; c < kCols; ++c) o[m][c] *= correction;
      p_s[(warp + kAttnWarps * m) * kPad + lane] = p[m];
    }
    __syncwarp();  // the warp's p rows are written before its lanes read them
    // O += P V with lane = column: four keys' probabilities per 16-byte read.
#pragma unroll 2
    for (int jj = 0; jj < kTile; jj += 4) {
      float4 pj[kRows];
#pragma unroll
      for (int m = 0; m < kRows; ++m)
        pj[m] = *reinterpret_cast<const float4*>(p_s + (warp + kAttnWarps * m) * kPad + jj);
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        float vj[kCols];
#pragma unroll
        for (int c = 0; c < kCols; ++c) vj[c] = v_s[(jj + t) * W + lane + 32 * c];
#pragma unroll
        for (int m = 0; m < kRows; ++m) {
          const float pv = t == 0 ? pj[m].x : t == 1 ? pj[m].y : t == 2 ? pj[m].z : pj[m].w;
#pragma unroll
          for (int c = 0; c < kCols; ++c) o[m][c] = fmaf(pv, vj[c], o[m][c]);
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < kRows; ++m) {
    const int64_t i = i0 + warp + kAttnWarps * m;
    if (i >= s.tq) continue;
    const float inv = 1.0f / l_run[m];
    float* dst = out + s.q_row(bi, i, head);
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      const int e = lane + 32 * c;
      if (e < s.d) dst[e] = o[m][c] * inv;
    }
    if (lane == 0) lse[s.lse_at(bi, head, i)] = m_run[m] + logf(l_run[m]);
  }
}

// delta[b, h, i] = dout_i . out_i, one warp per row of [B, T, H, D].
template <typename Out>
__global__ void attention_delta_kernel(float* delta, const float* dout, const Out* out,
                                       Shape s) {
  const int lane = threadIdx.x & 31;
  const int64_t rows = s.b * s.tq * s.h;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t r = global_thread() >> 5; r < rows; r += warps) {
    float acc = 0.0f;
    for (int64_t e = lane; e < s.d; e += 32) acc += dout[r * s.d + e] * as_float(out[r * s.d + e]);
    acc = warp_sum(acc);
    const int64_t head = r % s.h, i = (r / s.h) % s.tq, bi = r / (s.h * s.tq);
    if (lane == 0) delta[s.lse_at(bi, head, i)] = acc;
  }
}

// Shared-memory layout of both backward kernels.
template <int W>
struct BackwardSmem {
  float *q, *dout, *k, *v, *p, *ds, *lse, *delta;
  __device__ explicit BackwardSmem(float* base) {
    q = base;
    dout = q + kTile * W;
    k = dout + kTile * W;
    v = k + kTile * (W + kKeyPad);
    p = v + kTile * (W + kKeyPad);
    ds = p + kTile * kPad;
    lse = ds + kTile * kPad;
    delta = lse + kTile;
  }
};

// Scores of the warp's rows against key `lane` of the tile, then p and
// ds = p (dp - delta) for each; masked entries are 0.
template <int W>
__device__ void backward_scores(const BackwardSmem<W>& sm, int64_t i0, int64_t j0, int64_t t,
                                float scale, float (&p)[kRows], float (&ds)[kRows]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float dot[kRows], dp[kRows];
#pragma unroll
  for (int m = 0; m < kRows; ++m) {
    const int r = warp + kAttnWarps * m;
    dot[m] = dot4<W>(sm.q + r * W, sm.k + lane * (W + kKeyPad));
    dp[m] = dot4<W>(sm.dout + r * W, sm.v + lane * (W + kKeyPad));
  }
  const int64_t j = j0 + lane;
#pragma unroll
  for (int m = 0; m < kRows; ++m) {
    const int r = warp + kAttnWarps * m;
    const int64_t i = i0 + r;
    const bool valid = i < t && j <= i;
    p[m] = valid ? expf(dot[m] * scale - sm.lse[r]) : 0.0f;
    ds[m] = p[m] * (dp[m] - sm.delta[r]);
  }
}

template <int W>
__device__ void load_row_stats(const BackwardSmem<W>& sm, const float* lse, const float* delta,
                               const Shape& s, int64_t bi, int64_t head, int64_t i0) {
  for (int r = threadIdx.x; r < kTile; r += blockDim.x) {
    const int64_t i = i0 + r;
    sm.lse[r] = i < s.tq ? lse[s.lse_at(bi, head, i)] : 0.0f;
    sm.delta[r] = i < s.tq ? delta[s.lse_at(bi, head, i)] : 0.0f;
  }
}

template <int W>
__global__ void __launch_bounds__(kBlockThreads)
    attention_dkdv_kernel(float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* lse, const float* delta, Shape s,
                          float scale) {
  extern __shared__ float4 attn_smem[];  // float4: 16-byte aligned for the float4 reads
  float* smem = reinterpret_cast<float*>(attn_smem);
  const BackwardSmem<W> sm(smem);
  constexpr int kCols = W / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t tiles = attention_tiles(s.tk);
  const AttnTask task = attention_task(blockIdx.x, s.kv, tiles);
  // Early key tiles meet the most queries: hand them out first.
  const int64_t bi = task.batch, g = task.head, j0 = (tiles - 1 - task.tile) * kTile;
  const int64_t group = s.h / s.kv;

  load_tile<W>(sm.k, W + kKeyPad, k, j0, s.tk, s.kv, g, s.d, bi * s.tk);
  load_tile<W>(sm.v, W + kKeyPad, v, j0, s.tk, s.kv, g, s.d, bi * s.tk);
  float dk_acc[kRows][kCols], dv_acc[kRows][kCols];
#pragma unroll
  for (int m = 0; m < kRows; ++m)
#pragma unroll
    for (int c = 0; c < kCols; ++c) dk_acc[m][c] = dv_acc[m][c] = 0.0f;

  for (int64_t head = g * group; head < (g + 1) * group; ++head) {
    for (int64_t i0 = j0; i0 < s.tq; i0 += kTile) {
      __syncthreads();  // the previous query tile is no longer read
      load_tile<W>(sm.q, W, q, i0, s.tq, s.h, head, s.d, bi * s.tq);
      load_tile<W>(sm.dout, W, dout, i0, s.tq, s.h, head, s.d, bi * s.tq);
      load_row_stats<W>(sm, lse, delta, s, bi, head, i0);
      __syncthreads();
      float p[kRows], ds[kRows];
      backward_scores<W>(sm, i0, j0, s.tq, scale, p, ds);
      // Stored transposed, [key][query row], so that phase 2 reads four rows'
      // values of one key in a 16-byte access.
#pragma unroll
      for (int m = 0; m < kRows; ++m) {
        const int r = warp + kAttnWarps * m;
        sm.p[lane * kPad + r] = p[m];
        sm.ds[lane * kPad + r] = ds[m];
      }
      __syncthreads();
      // This warp's keys jr = warp + 8m; lane = column.
#pragma unroll 2
      for (int r = 0; r < kTile; r += 4) {
        float4 pr[kRows], dsr[kRows];
#pragma unroll
        for (int m = 0; m < kRows; ++m) {
          const int jr = warp + kAttnWarps * m;
          pr[m] = *reinterpret_cast<const float4*>(sm.p + jr * kPad + r);
          dsr[m] = *reinterpret_cast<const float4*>(sm.ds + jr * kPad + r);
        }
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          float qv[kCols], dov[kCols];
#pragma unroll
          for (int c = 0; c < kCols; ++c) {
            qv[c] = sm.q[(r + t) * W + lane + 32 * c];
            dov[c] = sm.dout[(r + t) * W + lane + 32 * c];
          }
#pragma unroll
          for (int m = 0; m < kRows; ++m) {
            const float pv = t == 0 ? pr[m].x : t == 1 ? pr[m].y : t == 2 ? pr[m].z : pr[m].w;
            const float dv_ = t == 0 ? dsr[m].x : t == 1 ? dsr[m].y : t == 2 ? dsr[m].z : dsr[m].w;
#pragma unroll
            for (int c = 0; c < kCols; ++c) {
              dv_acc[m][c] = fmaf(pv, dov[c], dv_acc[m][c]);
              dk_acc[m][c] = fmaf(dv_, qv[c], dk_acc[m][c]);
            }
          }
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < kRows; ++m) {
    const int64_t j = j0 + warp + kAttnWarps * m;
    if (j >= s.tk) continue;
    const int64_t row = s.k_row(bi, j, g);
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      const int e = lane + 32 * c;
      if (e < s.d) {
        dk[row + e] = scale * dk_acc[m][c];
        dv[row + e] = dv_acc[m][c];
      }
    }
  }
}

template <int W>
__global__ void __launch_bounds__(kBlockThreads)
    attention_dq_kernel(float* dq, const float* dout, const float* q, const float* k,
                        const float* v, const float* lse, const float* delta, Shape s,
                        float scale) {
  extern __shared__ float4 attn_smem[];  // float4: 16-byte aligned for the float4 reads
  float* smem = reinterpret_cast<float*>(attn_smem);
  const BackwardSmem<W> sm(smem);
  constexpr int kCols = W / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const AttnTask task = attention_task(blockIdx.x, s.h, attention_tiles(s.tq));
  const int64_t bi = task.batch, head = task.head, g = head / (s.h / s.kv);
  const int64_t i0 = task.tile * kTile;

  load_tile<W>(sm.q, W, q, i0, s.tq, s.h, head, s.d, bi * s.tq);
  load_tile<W>(sm.dout, W, dout, i0, s.tq, s.h, head, s.d, bi * s.tq);
  load_row_stats<W>(sm, lse, delta, s, bi, head, i0);
  float dq_acc[kRows][kCols];
#pragma unroll
  for (int m = 0; m < kRows; ++m)
#pragma unroll
    for (int c = 0; c < kCols; ++c) dq_acc[m][c] = 0.0f;

  const int64_t last_key = min(s.tq - 1, i0 + kTile - 1);
  for (int64_t j0 = 0; j0 <= last_key; j0 += kTile) {
    __syncthreads();
    load_tile<W>(sm.k, W + kKeyPad, k, j0, s.tk, s.kv, g, s.d, bi * s.tk);
    load_tile<W>(sm.v, W + kKeyPad, v, j0, s.tk, s.kv, g, s.d, bi * s.tk);
    __syncthreads();
    float p[kRows], ds[kRows];
    backward_scores<W>(sm, i0, j0, s.tq, scale, p, ds);
    // The warp's own rows of ds (lane = key), read back four keys at a time.
#pragma unroll
    for (int m = 0; m < kRows; ++m) sm.ds[(warp + kAttnWarps * m) * kPad + lane] = ds[m];
    __syncwarp();
#pragma unroll 2
    for (int jj = 0; jj < kTile; jj += 4) {
      float4 dsj[kRows];
#pragma unroll
      for (int m = 0; m < kRows; ++m)
        dsj[m] = *reinterpret_cast<const float4*>(sm.ds + (warp + kAttnWarps * m) * kPad + jj);
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        float kj[kCols];
#pragma unroll
        for (int c = 0; c < kCols; ++c) kj[c] = sm.k[(jj + t) * (W + kKeyPad) + lane + 32 * c];
#pragma unroll
        for (int m = 0; m < kRows; ++m) {
          const float d = t == 0 ? dsj[m].x : t == 1 ? dsj[m].y : t == 2 ? dsj[m].z : dsj[m].w;
#pragma unroll
          for (int c = 0; c < kCols; ++c) dq_acc[m][c] = fmaf(d, kj[c], dq_acc[m][c]);
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < kRows; ++m) {
    const int64_t i = i0 + warp + kAttnWarps * m;
    if (i >= s.tq) continue;
    float* dst = dq + s.q_row(bi, i, head);
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      const int e = lane + 32 * c;
      if (e < s.d) dst[e] = scale * dq_acc[m][c];
    }
  }
}

template <int W>
void forward_at_width(float* out, float* lse, const float* q, const float* k, const float* v,
                      const Shape& s, float scale, int64_t q_pos0, cudaStream_t stream) {
  static std::once_flag once;
  const size_t smem = attention_forward_smem(W);
  allow_smem(attention_forward_kernel<W>, smem, once);
  const int64_t blocks = s.b * s.h * attention_tiles(s.tq);
  attention_forward_kernel<W><<<static_cast<unsigned>(blocks), kBlockThreads, smem, stream>>>(
      out, lse, q, k, v, s, scale, q_pos0);
  HG_CUDA_CHECK_LAUNCH();
}

template <int W>
void backward_at_width(float* dq, float* dk, float* dv, const float* delta, const float* dout,
                       const float* q, const float* k, const float* v, const float* lse,
                       const Shape& s, float scale, cudaStream_t stream) {
  static std::once_flag once_dkdv, once_dq;
  const size_t smem = attention_backward_smem(W);
  allow_smem(attention_dkdv_kernel<W>, smem, once_dkdv);
  allow_smem(attention_dq_kernel<W>, smem, once_dq);
  const int64_t kv_blocks = s.b * s.kv * attention_tiles(s.tk);
  attention_dkdv_kernel<W><<<static_cast<unsigned>(kv_blocks), kBlockThreads, smem, stream>>>(
      dk, dv, dout, q, k, v, lse, delta, s, scale);
  HG_CUDA_CHECK_LAUNCH();
  const int64_t q_blocks = s.b * s.h * attention_tiles(s.tq);
  attention_dq_kernel<W><<<static_cast<unsigned>(q_blocks), kBlockThreads, smem, stream>>>(
      dq, dout, q, k, v, lse, delta, s, scale);
  HG_CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename Out>
void attention_delta(float* delta, const float* dout, const Out* out, const AttnShape& s,
                     cudaStream_t stream) {
  const int64_t rows = s.b * s.tq * s.h;
  if (rows <= 0) return;
  const int64_t blocks = std::min<int64_t>(ceil_div(rows, kThreads / 32), kMaxElementwiseBlocks);
  attention_delta_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      delta, dout, device_ptr(out), s);
  HG_CUDA_CHECK_LAUNCH();
}
template void attention_delta(float*, const float*, const float*, const AttnShape&, cudaStream_t);
template void attention_delta(float*, const float*, const uint16_t*, const AttnShape&,
                              cudaStream_t);

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       int64_t b, int64_t tq, int64_t tk, int64_t h, int64_t kv, int64_t d,
                       float scale, int64_t q_pos0, cudaStream_t stream) {
  if (b <= 0 || tq <= 0) return;
  const Shape s{b, tq, tk, h, kv, d};
  switch (attention_width(d)) {
    case 32: return forward_at_width<32>(out, lse, q, k, v, s, scale, q_pos0, stream);
    case 64: return forward_at_width<64>(out, lse, q, k, v, s, scale, q_pos0, stream);
    case 128: return forward_at_width<128>(out, lse, q, k, v, s, scale, q_pos0, stream);
    default: HG_FAIL("attention: head dim ", d, " is not supported by the CUDA kernels (at most ",
                     kAttnMaxHeadDim, ")");
  }
}

template <typename Out>
void attention_backward(float* dq, float* dk, float* dv, float* delta, const float* dout,
                        const float* q, const float* k, const float* v, const Out* out,
                        const float* lse, int64_t b, int64_t t, int64_t h, int64_t kv, int64_t d,
                        float scale, cudaStream_t stream) {
  if (b <= 0 || t <= 0) return;
  const Shape s{b, t, t, h, kv, d};
  attention_delta(delta, dout, out, s, stream);
  switch (attention_width(d)) {
    case 32: return backward_at_width<32>(dq, dk, dv, delta, dout, q, k, v, lse, s, scale, stream);
    case 64: return backward_at_width<64>(dq, dk, dv, delta, dout, q, k, v, lse, s, scale, stream);
    case 128: return backward_at_width<128>(dq, dk, dv, delta, dout, q, k, v, lse, s, scale, stream);
    default: HG_FAIL("attention: head dim ", d, " is not supported by the CUDA kernels (at most ",
                     kAttnMaxHeadDim, ")");
  }
}

template void attention_backward(float*, float*, float*, float*, const float*, const float*,
                                 const float*, const float*, const float*, const float*, int64_t,
                                 int64_t, int64_t, int64_t, int64_t, float, cudaStream_t);
template void attention_backward(float*, float*, float*, float*, const float*, const float*,
                                 const float*, const float*, const uint16_t*, const float*,
                                 int64_t, int64_t, int64_t, int64_t, int64_t, float,
                                 cudaStream_t);

}  // namespace hessgpt::cuda
