// One decoding step's attention at a position read on the device
// (Backend::decode_attention): the launches do not depend on the position, so
// a recorded decoding step (CUDA graph) replays at every position.
//   decode_rows: a warp per head row: q and k normed (QK-Norm) and rotated
//     (RoPE) at the position, q into q_out and k into its cache row; v copied
//     into its cache row. The arithmetic per element is the QK-Norm + RoPE
//     kernels' (rmsnorm_held.cuh).
//   decode_attention: the keys 0 .. pos in runs of kDecodeKeys, a block per
//     (query head, run) whose warps each keep an online softmax over every
//     kDecodeWarps-th key; the block merges its warps into one partial (max,
//     sum, weighted values), and the head's last block to finish (a counter per
//     head) merges its partials in run order, so the sums do not depend on
//     which block that is. Blocks past the position return at once
//     (launch_config.h says why). One kernel fewer a layer than a separate
//     merge: a launch boundary is worth more than the merge's work.
// A position outside the cache writes nothing into the caches and NaN into
// out: the host checks positions (DeviceSession::feed), this keeps a bad one
// from writing outside the cache. All three are launched chained with the
// GEMVs around them (chained_launch.cuh).
#include <cmath>

#include "backend/cuda/chained_launch.cuh"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace hessgpt::cuda {
namespace {

constexpr int kDecodePerLane = static_cast<int>(kAttnMaxHeadDim / 32);

__device__ __forceinline__ bool inside(int64_t pos, int64_t positions) {
  return pos >= 0 && pos < positions;
}

__global__ void decode_rows_kernel(DecodeRows a) {
  allow_next_grid();
  wait_for_previous_grid();
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kDecodeRowWarps + (threadIdx.x >> 5);
  if (row >= a.heads + 2 * a.kv_heads) return;
  const int64_t pos = *a.pos;
  if (!inside(pos, a.positions)) return;
  const int64_t d = a.head_dim, half = d / 2;
  if (row >= a.heads + a.kv_heads) {
    const int64_t g = row - a.heads - a.kv_heads;
    const float* src = a.v_raw + g * d;
    float* dst = a.v_cache + (pos * a.kv_heads + g) * d;
    for (int64_t j = lane; j < d; j += 32) dst[j] = src[j];
    return;
  }
  const bool is_q = row < a.heads;
  const int64_t head = is_q ? row : row - a.heads;
  const float* x = (is_q ? a.q_raw : a.k_raw) + head * d;
  const float* w = is_q ? a.q_norm : a.k_norm;
  float* out = is_q ? a.q_out + head * d : a.k_cache + (pos * a.kv_heads + head) * d;
  float s = 1.0f;
  if (w) {
    double ss = 0.0;
    for (int64_t j = lane; j < half; j += 32) {
      const float lo = x[j], hi = x[j + half];
      ss += static_cast<double>(lo) * lo;
      ss += static_cast<double>(hi) * hi;
    }
    s = static_cast<float>(1.0 / sqrt(warp_sum(ss) / static_cast<double>(d) + a.eps));
  }
  const float* cr = a.cos + pos * half;
  const float* sr = a.sin + pos * half;
  for (int64_t j = lane; j < half; j += 32) {
    float lo = x[j], hi = x[j + half];
    if (w) {
      lo = lo * s * w[j];
      hi = hi * s * w[j + half];
    }
    const float c = cr[j], sn = sr[j];
    out[j] = lo * c - hi * sn;
    out[j + half] = hi * c + lo * sn;
  }
}

// out [D] = the merge of a head's first `runs` partials ([max, sum, D values]
// each, d + 2 apart), in run order.
__device__ void merge_head(float* out, const float* base, int64_t runs, int d) {
  const int64_t stride = d + 2;
  float mx = -INFINITY;
  for (int64_t r = 0; r < runs; ++r) mx = fmaxf(mx, __ldcg(base + r * stride));
  float sum = 0.0f;
  for (int64_t r = 0; r < runs; ++r)
    sum += __ldcg(base + r * stride + 1) * expf(__ldcg(base + r * stride) - mx);
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float v = 0.0f;
    for (int64_t r = 0; r < runs; ++r)
      v += __ldcg(base + r * stride + 2 + c) * expf(__ldcg(base + r * stride) - mx);
    out[c] = v / sum;
  }
}

// A partial's layout: [max, sum, D weighted values].
__global__ void __launch_bounds__(kDecodeWarps * 32)
    decode_attention_kernel(float* out, float* partials, unsigned* finished, const float* q,
                            const float* k_cache, const float* v_cache, const int32_t* pos_p,
                            int64_t positions, int64_t heads, int64_t kv_heads, int d,
                            float scale) {
  allow_next_grid();
  wait_for_previous_grid();
  const int64_t pos = *pos_p;
  if (!inside(pos, positions)) {
    if (blockIdx.y == 0)
      for (int c = threadIdx.x; c < d; c += blockDim.x) out[blockIdx.x * d + c] = NAN;
    return;
  }
  const int64_t head = blockIdx.x, run = blockIdx.y, keys = pos + 1;
  const int64_t j0 = run * kDecodeKeys;
  if (j0 >= keys) return;  // the whole block: no barrier is left waiting
  const int64_t j1 = min(keys, j0 + kDecodeKeys);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t g = head / (heads / kv_heads);
  float qv[kDecodePerLane], acc[kDecodePerLane];
#pragma unroll
  for (int e = 0; e < kDecodePerLane; ++e) {
    const int c = lane + 32 * e;
    qv[e] = c < d ? q[head * d + c] : 0.0f;
    acc[e] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = j0 + warp; j < j1; j += kDecodeWarps) {
    const float* kr = k_cache + (j * kv_heads + g) * d;
    const float* vr = v_cache + (j * kv_heads + g) * d;
    float dot = 0.0f;
#pragma unroll
    for (int e = 0; e < kDecodePerLane; ++e) {
      const int c = lane + 32 * e;
      if (c < d) dot += qv[e] * kr[c];
    }
    const float score = warp_sum(dot) * scale;
    const float m_new = fmaxf(m, score);
    const float keep = expf(m - m_new);  // 0 at the first key (m = -inf)
    const float p = expf(score - m_new);
    l = l * keep + p;
#pragma unroll
    for (int e = 0; e < kDecodePerLane; ++e) {
      const int c = lane + 32 * e;
      if (c < d) acc[e] = acc[e] * keep + p * vr[c];
    }
    m = m_new;
  }
  __shared__ float w_max[kDecodeWarps], w_sum[kDecodeWarps];
  __shared__ float w_acc[kDecodeWarps][kAttnMaxHeadDim];
  if (lane == 0) {
    w_max[warp] = m;
    w_sum[warp] = l;
  }
#pragma unroll
  for (int e = 0; e < kDecodePerLane; ++e) {
    const int c = lane + 32 * e;
    if (c < d) w_acc[warp][c] = acc[e];
  }
  __syncthreads();
  float mx = -INFINITY;
  for (int w = 0; w < kDecodeWarps; ++w) mx = fmaxf(mx, w_max[w]);
  float* part = partials + (head * gridDim.y + run) * (d + 2);
  // A warp without keys (m = -inf) adds nothing; warp 0 always has one.
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < kDecodeWarps; ++w)
      if (w_max[w] > -INFINITY) v += w_acc[w][c] * expf(w_max[w] - mx);
    part[2 + c] = v;
  }
  if (threadIdx.x == 0) {
    float sum = 0.0f;
    for (int w = 0; w < kDecodeWarps; ++w)
      if (w_max[w] > -INFINITY) sum += w_sum[w] * expf(w_max[w] - mx);
    part[0] = mx;
    part[1] = sum;
  }
  // The last of the head's blocks merges (the threadFenceReduction pattern):
  // each thread's partial writes are made visible before the block counts
  // itself, and the merging block reads the others' past its L1.
  __threadfence();
  __syncthreads();
  __shared__ bool merges;
  if (threadIdx.x == 0)
    merges = atomicAdd(finished + head, 1u) == static_cast<unsigned>(ceil_div(keys, kDecodeKeys)) - 1;
  __syncthreads();
  if (!merges) return;
  merge_head(out + head * d, partials + head * gridDim.y * (d + 2), ceil_div(keys, kDecodeKeys),
             d);
  if (threadIdx.x == 0) finished[head] = 0;  // ready for the next call
}


}  // namespace

void decode_rows(const DecodeRows& a, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(decode_rows_blocks(a.heads, a.kv_heads));
  launch_chained(decode_rows_kernel, blocks, kDecodeRowWarps * 32, 0, stream, a);
}

void decode_attention(float* out, void* scratch, const float* q, const float* k_cache,
                      const float* v_cache, const int32_t* pos, int64_t positions, int64_t heads,
                      int64_t kv_heads, int64_t head_dim, float scale, cudaStream_t stream) {
  const int64_t runs = decode_runs(positions);
  const dim3 grid(static_cast<unsigned>(heads), static_cast<unsigned>(runs));
  const int d = static_cast<int>(head_dim);
  HG_CHECK(heads <= kDecodeMaxHeads, "decode attention: ", heads, " heads (at most ",
           kDecodeMaxHeads, ")");
  auto* finished = static_cast<unsigned*>(scratch);
  auto* partials = reinterpret_cast<float*>(static_cast<char*>(scratch) + kDecodeCounterBytes);
  launch_chained(decode_attention_kernel, grid, kDecodeWarps * 32, 0, stream, out, partials,
                 finished, q, k_cache, v_cache, pos, positions, heads, kv_heads, d, scale);
}

}  // namespace hessgpt::cuda
