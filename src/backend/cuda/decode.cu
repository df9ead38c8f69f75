// One decoding step's attention at a position read on the device
// (Backend::decode_attention), in one kernel: the launch does not depend on
// the position, so a recorded decoding step (CUDA graph) replays at every
// position. The keys 0 .. pos in runs of kDecodeKeys, a block per (query
// head, run):
//   - it norms (QK-Norm) and rotates (RoPE) its head's q at the position; the
//     run-0 block writes it to q_out. The run holding the new key norms and
//     rotates that key's k and takes its v too, using them from shared memory,
//     and the group's first head writes both into the cache row. The
//     arithmetic per element is the QK-Norm + RoPE kernels' (rmsnorm_held.cuh).
//   - its warps each keep an online softmax over every kDecodeWarps-th key;
//     the block merges its warps into one partial (max, sum, weighted values),
//     and the head's last block to finish (a counter per head) merges the
//     partials in run order, so the sums do not depend on which block that is.
//   - blocks past the position return at once (launch_config.h says why).
// Three kernels once (rows, attention, merge): launch boundaries cost a token
// more than this work does. A position outside the cache writes nothing into
// the caches and NaN into out: the host checks positions (DeviceSession::feed),
// this keeps a bad one from writing outside the cache. Launched chained with
// the GEMVs around it (chained_launch.cuh).
#include <cmath>

#include "backend/cuda/chained_launch.cuh"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace hessgpt::cuda {
namespace {

constexpr int kDecodePerLane = static_cast<int>(kAttnMaxHeadDim / 32);
static_assert(kDecodeWarps >= 3, "q, k and v each take a warp of the block");

__device__ __forceinline__ bool inside(int64_t pos, int64_t positions) {
  return pos >= 0 && pos < positions;
}

// out [d] = x [d] normed (w: QK-Norm's weights, or null for RoPE alone) and
// rotated by the position's cos and sin rows; one warp.
__device__ void norm_rope_row(float* out, const float* x, const float* w, const float* cr,
                              const float* sr, int64_t d, double eps, int lane) {
  const int64_t half = d / 2;
  float s = 1.0f;
  if (w) {
    double ss = 0.0;
    for (int64_t j = lane; j < half; j += 32) {
      const float lo = x[j], hi = x[j + half];
      ss += static_cast<double>(lo) * lo;
      ss += static_cast<double>(hi) * hi;
    }
    s = static_cast<float>(1.0 / sqrt(warp_sum(ss) / static_cast<double>(d) + eps));
  }
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
    decode_step_kernel(DecodeStep a, float* partials, unsigned* finished) {
  allow_next_grid();
  wait_for_previous_grid();
  const int d = static_cast<int>(a.head_dim);
  const int64_t pos = *a.pos;
  if (!inside(pos, a.positions)) {
    if (blockIdx.y == 0)
      for (int c = threadIdx.x; c < d; c += blockDim.x) a.out[blockIdx.x * d + c] = NAN;
    return;
  }
  const int64_t head = blockIdx.x, run = blockIdx.y, keys = pos + 1;
  const int64_t j0 = run * kDecodeKeys;
  if (j0 >= keys) return;  // the whole block: no barrier is left waiting
  const int64_t j1 = min(keys, j0 + kDecodeKeys);
  const bool holds_new_key = j1 == keys;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t group = a.heads / a.kv_heads, g = head / group;
  // The step's new rows: q for this head; k and v at the position where this
  // run holds it (the cache row is written below, but read from here).
  __shared__ float new_q[kAttnMaxHeadDim], new_k[kAttnMaxHeadDim], new_v[kAttnMaxHeadDim];
  const float* cr = a.cos + pos * (d / 2);
  const float* sr = a.sin + pos * (d / 2);
  if (warp == 0) norm_rope_row(new_q, a.q_raw + head * d, a.q_norm, cr, sr, d, a.eps, lane);
  if (holds_new_key && warp == 1)
    norm_rope_row(new_k, a.k_raw + g * d, a.k_norm, cr, sr, d, a.eps, lane);
  if (holds_new_key && warp == 2)
    for (int c = lane; c < d; c += 32) new_v[c] = a.v_raw[g * d + c];
  __syncthreads();
  if (run == 0)
    for (int c = threadIdx.x; c < d; c += blockDim.x) a.q_out[head * d + c] = new_q[c];
  if (holds_new_key && head % group == 0) {
    const int64_t row = (pos * a.kv_heads + g) * d;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
      a.k_cache[row + c] = new_k[c];
      a.v_cache[row + c] = new_v[c];
    }
  }
  float qv[kDecodePerLane], acc[kDecodePerLane];
#pragma unroll
  for (int e = 0; e < kDecodePerLane; ++e) {
    const int c = lane + 32 * e;
    qv[e] = c < d ? new_q[c] : 0.0f;
    acc[e] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = j0 + warp; j < j1; j += kDecodeWarps) {
    const bool is_new = j == pos;
    const float* kr = is_new ? new_k : a.k_cache + (j * a.kv_heads + g) * d;
    const float* vr = is_new ? new_v : a.v_cache + (j * a.kv_heads + g) * d;
    float dot = 0.0f;
#pragma unroll
    for (int e = 0; e < kDecodePerLane; ++e) {
      const int c = lane + 32 * e;
      if (c < d) dot += qv[e] * kr[c];
    }
    const float score = warp_sum(dot) * a.scale;
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
  const int64_t runs = ceil_div(keys, kDecodeKeys);
  __shared__ bool merges;
  if (threadIdx.x == 0) merges = atomicAdd(finished + head, 1u) == static_cast<unsigned>(runs - 1);
  __syncthreads();
  if (!merges) return;
  merge_head(a.out + head * d, partials + head * gridDim.y * (d + 2), runs, d);
  if (threadIdx.x == 0) finished[head] = 0;  // ready for the next call
}

}  // namespace

void decode_step(const DecodeStep& step, void* scratch, cudaStream_t stream) {
  // (The shapes are check_decode_attention's; the counters' room is this kernel's.)
  HG_CHECK(step.heads <= kDecodeMaxHeads, "decode step: ", step.heads, " heads (at most ",
           kDecodeMaxHeads, ")");
  const dim3 grid(static_cast<unsigned>(step.heads),
                  static_cast<unsigned>(decode_runs(step.positions)));
  auto* finished = static_cast<unsigned*>(scratch);
  auto* partials = reinterpret_cast<float*>(static_cast<char*>(scratch) + kDecodeCounterBytes);
  launch_chained(decode_step_kernel, grid, kDecodeWarps * 32, 0, stream, step, partials, finished);
}

}  // namespace hessgpt::cuda
