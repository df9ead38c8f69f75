// Soft-capped logits and the fused cross-entropy. By default (sm_90) a
// cluster of blocks per row, one block per segment of kCrossEntropySpan
// values: each block holds its segment's capped values, the cluster shares
// the segments' (max, sum of exponentials) through distributed shared memory,
// and each block writes its segment's gradient: the row is read once. Where
// clusters are not to be had, the split kernels do the same in two launches
// (the partial sums through global memory, the row read twice); they keep
// thousands of blocks in flight where a block per row has one row per SM:
// 0.32 against 0.37 ms on an H200 for model1's head chunk (2096 x 32008). The
// gradient is written over the logits or into a separate (BF16) tensor; the
// probability matrix never exists. Two other forms for A/B timings
// (HESSGPT_CE_KERNEL): a block per row, which holds up to kCrossEntropyHeld
// capped values in registers (else an online softmax and a second sweep), and
// a warp per row.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string_view>
#include <type_traits>

#include <cooperative_groups.h>

#include "backend/cuda/chained_launch.h"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "core/error.h"
#include "core/log.h"

namespace hessgpt::cuda {
namespace {

constexpr int32_t kIgnoreIndex = -100;

__device__ __forceinline__ float capped(float z, float cap, float inv_cap) {
  return cap > 0.0f ? cap * tanhf(z * inv_cap) : z;
}

// Merge two (max, sum of exp(x - max)) summaries; an empty one has max -inf.
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  if (m2 == -INFINITY) return;
  if (m == -INFINITY) {
    m = m2;
    s = s2;
    return;
  }
  const float mx = fmaxf(m, m2);
  s = s * expf(m - mx) + s2 * expf(m2 - mx);
  m = mx;
}

// A row whose target is ignored or out of range (reported through bad, the
// smallest such row): loss 0 and, when a gradient is wanted, zeros. True when
// the row needs nothing else. The row's threads are thread 0 .. threads - 1
// (a block's, or a warp's lanes); they take values [begin, end) of it (end
// -1: the whole row), and the ones that start at 0 report and write the loss.
template <typename Grad>
__device__ bool ignored_row(int64_t r, int32_t target, int64_t v, Grad* gz, float* losses,
                            float dscale, uint32_t* bad, int thread, int threads,
                            int64_t begin = 0, int64_t end = -1) {
  if (target != kIgnoreIndex && target >= 0 && target < v) return false;
  if (begin == 0 && thread == 0) {
    if (target != kIgnoreIndex) atomicMin(bad, static_cast<uint32_t>(r));
    losses[r] = 0.0f;
  }
  if (dscale != 0.0f)
    for (int64_t i = begin + thread; i < (end < 0 ? v : end); i += threads)
      store_float(gz + i, 0.0f);
  return true;
}

// Every lane's (max, sum) summary merged into one, held by every lane.
__device__ __forceinline__ void merge_across_warp(float& m, float& s) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float m2 = __shfl_xor_sync(kFullMask, m, off);
    const float s2 = __shfl_xor_sync(kFullMask, s, off);
    merge(m, s, m2, s2);
  }
}

// Every thread's (max, sum) summary merged into warp 0's lanes (thread 0
// holds the row's); shared_m/s: a slot per warp, free again after the
// caller's next __syncthreads().
__device__ __forceinline__ void merge_across_block(float& m, float& s, float* shared_m,
                                                   float* shared_s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  merge_across_warp(m, s);
  if (lane == 0) {
    shared_m[warp] = m;
    shared_s[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    m = lane < warps ? shared_m[lane] : -INFINITY;
    s = lane < warps ? shared_s[lane] : 0.0f;
    merge_across_warp(m, s);
  }
}

// Rows of at most kCrossEntropyHeld: thread t holds the capped logits t,
// t + blockDim, ... (-inf past the row's end, which add exp(-inf) = 0).
template <typename L, typename Grad>
__global__ void __launch_bounds__(kCrossEntropyHeldThreads)
    cross_entropy_held_kernel(const L* logits, Grad* grad, float* losses,
                              const int32_t* targets, int64_t rows, int64_t v, float cap,
                              float inv_cap, float dscale, uint32_t* bad) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const L* z = logits + r * v;
    Grad* gz = grad + r * v;
    const int32_t target = targets[r];
    if (ignored_row(r, target, v, gz, losses, dscale, bad, threadIdx.x, blockDim.x)) continue;
    // Slot k is element threadIdx.x + k * kCrossEntropyHeldThreads: constant
    // offsets from the thread's first element (immediates in the loads and
    // stores, not a register each).
    const L* zt = z + threadIdx.x;
    Grad* gt = gz + threadIdx.x;
    const int64_t left = v - threadIdx.x, target_at = target - static_cast<int64_t>(threadIdx.x);
    float x[kCrossEntropyPerThread];
    float m = -INFINITY;
#pragma unroll
    for (int k = 0; k < kCrossEntropyPerThread; ++k) {
      x[k] = k * kCrossEntropyHeldThreads < left
                 ? capped(as_float(zt[k * kCrossEntropyHeldThreads]), cap, inv_cap)
                 : -INFINITY;
      m = fmaxf(m, x[k]);
    }
    // Every read of the row is behind this barrier, so the gradient may
    // overwrite it below.
    m = block_max(m, scratch);
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < kCrossEntropyPerThread; ++k) s += expf(x[k] - m);
    const float lse = m + logf(block_sum(s, scratch));
#pragma unroll
    for (int k = 0; k < kCrossEntropyPerThread; ++k) {
      const bool is_target = k * kCrossEntropyHeldThreads == target_at;
      if (is_target) losses[r] = lse - x[k];
      if (dscale != 0.0f && k * kCrossEntropyHeldThreads < left) {
        const float t = x[k] * inv_cap;  // tanh(z / cap); 0 when uncapped
        float g = dscale * expf(x[k] - lse) * (1.0f - t * t);
        if (is_target) g -= dscale * (1.0f - t * t);  // the one-hot term
        store_float(gt + k * kCrossEntropyHeldThreads, g);
      }
    }
  }
}

__global__ void softcap_kernel(float* logits, int64_t n, float cap, float inv_cap) {
  for (int64_t i = global_thread(); i < n; i += grid_stride())
    logits[i] = cap * tanhf(logits[i] * inv_cap);
}

// Wider rows. The gradient goes to grad (rows v apart): the logits
// themselves, or a BF16 tensor.
template <typename L, typename Grad>
__global__ void __launch_bounds__(kCrossEntropyThreads)
    cross_entropy_sweep_kernel(const L* logits, Grad* grad, float* losses, const int32_t* targets,
                         int64_t rows, int64_t v, float cap, float inv_cap, float dscale,
                         uint32_t* bad) {
  __shared__ float shared_m[32], shared_s[32];
  __shared__ float row_lse;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const L* z = logits + r * v;
    Grad* gz = grad + r * v;
    const int32_t target = targets[r];
    if (ignored_row(r, target, v, gz, losses, dscale, bad, threadIdx.x, blockDim.x)) continue;
    float m = -INFINITY, s = 0.0f;
    for (int64_t i = threadIdx.x; i < v; i += blockDim.x) {
      const float x = capped(as_float(z[i]), cap, inv_cap);
      if (x > m) {
        s = s * expf(m - x) + 1.0f;  // expf(-inf) = 0 on the first element
        m = x;
      } else {
        s += expf(x - m);
      }
    }
    merge_across_block(m, s, shared_m, shared_s);
    if (threadIdx.x == 0) {
      const float lse = m + logf(s);
      row_lse = lse;
      losses[r] = lse - capped(as_float(z[target]), cap, inv_cap);
    }
    __syncthreads();
    const float lse = row_lse;
    if (dscale != 0.0f) {
      for (int64_t i = threadIdx.x; i < v; i += blockDim.x) {
        const float x = capped(as_float(z[i]), cap, inv_cap);
        const float t = x * inv_cap;  // tanh(z / cap); 0 when uncapped
        float g = dscale * expf(x - lse) * (1.0f - t * t);
        if (i == target) g -= dscale * (1.0f - t * t);  // the one-hot term
        store_float(gz + i, g);
      }
    }
    __syncthreads();  // shared_m/s and row_lse are reused by the next row
  }
}

// The kernels that sweep a row VEC values at a time (4: 16-byte accesses,
// the caller checks the alignment) share these steps.
template <int VEC, typename L>
__device__ __forceinline__ void load_capped(const L* z, float (&x)[VEC], float cap,
                                            float inv_cap) {
  if constexpr (VEC == 4) {
    const Pack<L, 4> p = load_pack<4>(z);
#pragma unroll
    for (int k = 0; k < 4; ++k) x[k] = capped(as_float(p.v[k]), cap, inv_cap);
  } else {
    x[0] = capped(as_float(*z), cap, inv_cap);
  }
}

// The running (max m, sum s of exp(x - m)) with VEC more values.
template <int VEC>
__device__ __forceinline__ void add_online(float& m, float& s, const float (&x)[VEC]) {
  float mx = x[0];
#pragma unroll
  for (int k = 1; k < VEC; ++k) mx = fmaxf(mx, x[k]);
  if (mx > m) {
    s *= expf(m - mx);  // 0 * expf(-inf) on a thread's first values
    m = mx;
  }
#pragma unroll
  for (int k = 0; k < VEC; ++k) s += expf(x[k] - m);
}

// The gradient of values first .. first + VEC - 1 (capped x) into gz + first;
// target_at: the target's offset from first (outside [0, VEC): none here).
template <int VEC, typename Grad>
__device__ __forceinline__ void store_gradient(Grad* gz, const float (&x)[VEC], float lse,
                                               int64_t target_at, float inv_cap, float dscale) {
  float g[VEC];
#pragma unroll
  for (int k = 0; k < VEC; ++k) {
    const float t = x[k] * inv_cap;  // tanh(z / cap); 0 when uncapped
    g[k] = dscale * expf(x[k] - lse) * (1.0f - t * t);
    if (k == target_at) g[k] -= dscale * (1.0f - t * t);  // the one-hot term
  }
  if constexpr (VEC == 4) {
    Pack<Grad, 4> out;
#pragma unroll
    for (int k = 0; k < 4; ++k) store_float(&out.v[k], g[k]);
    store_pack<4>(gz, out);
  } else {
    store_float(gz, g[0]);
  }
}

// One warp per row and two sweeps: an online max and sum of exponentials
// (per lane, merged across the warp), then the gradient from a second read of
// the row (from L2 while it is still there). No block barriers, and many rows
// in flight per SM, where the register-held kernel keeps one 1024-thread block
// (one row) per SM that idles through its reductions. VEC: values per access
// (4: 16-byte loads, the row width a multiple of 4 and the rows aligned).
template <int VEC, typename L, typename Grad>
__global__ void __launch_bounds__(kCrossEntropyWarpThreads)
    cross_entropy_warp_kernel(const L* logits, Grad* grad, float* losses, const int32_t* targets,
                              int64_t rows, int64_t v, float cap, float inv_cap, float dscale,
                              uint32_t* bad) {
  const int lane = threadIdx.x & 31;
  const int64_t warps_per_block = blockDim.x >> 5;
  const int64_t stride = gridDim.x * warps_per_block;
  for (int64_t r = blockIdx.x * warps_per_block + (threadIdx.x >> 5); r < rows; r += stride) {
    const L* z = logits + r * v;
    Grad* gz = grad + r * v;
    const int32_t target = targets[r];
    if (ignored_row(r, target, v, gz, losses, dscale, bad, lane, 32)) continue;
    float m = -INFINITY, s = 0.0f;
#pragma unroll 4
    for (int64_t i = lane * VEC; i < v; i += 32 * VEC) {
      float x[VEC];
      load_capped(z + i, x, cap, inv_cap);
      add_online(m, s, x);
    }
    merge_across_warp(m, s);
    const float lse = m + logf(s);
    if (lane == 0) losses[r] = lse - capped(as_float(z[target]), cap, inv_cap);
    if (dscale == 0.0f) continue;
    __syncwarp();  // z[target] is read before the gradient may overwrite it
#pragma unroll 4
    for (int64_t i = lane * VEC; i < v; i += 32 * VEC) {
      float x[VEC];
      load_capped(z + i, x, cap, inv_cap);
      store_gradient(gz + i, x, lse, target - i, inv_cap, dscale);
    }
  }
}

// The split kernels' item i: row i / segments, values [begin, end) of it.
struct SplitItem {
  int64_t row, begin, end;
};
__device__ __forceinline__ SplitItem split_item(int64_t item, int64_t segments, int64_t v) {
  const int64_t begin = item % segments * kCrossEntropySpan, end = begin + kCrossEntropySpan;
  return {item / segments, begin, end < v ? end : v};
}

// A segment is kSweeps strides of the block; each thread loads all of its
// values (capped) before it uses any, so that kSweeps loads are in flight
// per thread rather than one (the sixth GPU session: 1.9 TB/s for the
// two-pass sweep of model1's chunks). Used in the loops' order: the same sums.
template <int VEC>
constexpr int kSweeps = static_cast<int>(kCrossEntropySpan / (kCrossEntropySplitThreads * VEC));
static_assert(kSweeps<4> * kCrossEntropySplitThreads * 4 == kCrossEntropySpan);
static_assert(kSweeps<1> * kCrossEntropySplitThreads == kCrossEntropySpan);

// x[b] = the capped values at first + b * stride (VEC each) where they lie
// before end; returns how many do.
template <int VEC, typename L>
__device__ __forceinline__ int load_segment(const L* z, int64_t first, int64_t end,
                                            float (&x)[kSweeps<VEC>][VEC], float cap,
                                            float inv_cap) {
  constexpr int64_t kStride = int64_t{kCrossEntropySplitThreads} * VEC;
  int loaded = 0;
#pragma unroll
  for (int b = 0; b < kSweeps<VEC>; ++b)
    if (first + b * kStride < end) {
      load_capped(z + first + b * kStride, x[b], cap, inv_cap);
      loaded = b + 1;
    }
  return loaded;
}

// Split pass 1: the (max, sum of exp(x - max)) of each segment of each row
// that has a target, into partials[row * segments + segment].
template <int VEC, typename L>
__global__ void __launch_bounds__(kCrossEntropySplitThreads)
    cross_entropy_partials_kernel(const L* logits, float2* partials, const int32_t* targets,
                                  int64_t rows, int64_t v, int64_t segments, float cap,
                                  float inv_cap) {
  constexpr int kWarps = kCrossEntropySplitThreads / 32;
  __shared__ float shared_m[kWarps], shared_s[kWarps];
  for (int64_t item = blockIdx.x; item < rows * segments; item += gridDim.x) {
    const SplitItem it = split_item(item, segments, v);
    const int32_t target = targets[it.row];
    if (target < 0 || target >= v) continue;  // pass 2 handles the row alone
    float x[kSweeps<VEC>][VEC];
    const int loaded = load_segment<VEC>(logits + it.row * v, it.begin + threadIdx.x * VEC,
                                         it.end, x, cap, inv_cap);
    float m = -INFINITY, s = 0.0f;
#pragma unroll
    for (int b = 0; b < kSweeps<VEC>; ++b)
      if (b < loaded) add_online(m, s, x[b]);
    merge_across_block(m, s, shared_m, shared_s);
    if (threadIdx.x == 0) partials[item] = make_float2(m, s);
    __syncthreads();  // shared_m/s are reused by the next item
  }
}

// Split pass 2: each block merges its row's partials (a few, from L2) into
// the log-sum-exp, then writes its segment's gradient; the block holding the
// target writes the loss. Rows without a valid target are pass 1's gap:
// loss 0, zero gradient, and an out-of-range target reported.
template <int VEC, typename L, typename Grad>
__global__ void __launch_bounds__(kCrossEntropySplitThreads)
    cross_entropy_split_grad_kernel(const L* logits, Grad* grad, float* losses,
                                    const float2* partials, const int32_t* targets, int64_t rows,
                                    int64_t v, int64_t segments, float cap, float inv_cap,
                                    float dscale, uint32_t* bad) {
  for (int64_t item = blockIdx.x; item < rows * segments; item += gridDim.x) {
    const SplitItem it = split_item(item, segments, v);
    const int32_t target = targets[it.row];
    const bool holds_target = target >= it.begin && target < it.end;
    Grad* gz = grad + it.row * v;
    if (ignored_row(it.row, target, v, gz, losses, dscale, bad, threadIdx.x,
                    kCrossEntropySplitThreads, it.begin, it.end))
      continue;
    if (dscale == 0.0f && !holds_target) continue;
    float m = -INFINITY, s = 0.0f;
    for (int64_t k = 0; k < segments; ++k) {
      const float2 p = partials[it.row * segments + k];
      merge(m, s, p.x, p.y);
    }
    const float lse = m + logf(s);
    const L* z = logits + it.row * v;
    if (dscale == 0.0f) {
      if (threadIdx.x == 0) losses[it.row] = lse - capped(as_float(z[target]), cap, inv_cap);
      continue;
    }
    // Every value this thread writes is loaded first (the gradient may go over the logits).
    constexpr int64_t kStride = int64_t{kCrossEntropySplitThreads} * VEC;
    const int64_t first = it.begin + threadIdx.x * VEC;
    float x[kSweeps<VEC>][VEC];
    const int loaded = load_segment<VEC>(z, first, it.end, x, cap, inv_cap);
#pragma unroll
    for (int b = 0; b < kSweeps<VEC>; ++b) {
      if (b >= loaded) break;
      const int64_t i = first + b * kStride, target_at = target - i;
#pragma unroll
      for (int k = 0; k < VEC; ++k)
        if (k == target_at) losses[it.row] = lse - x[b][k];
      store_gradient(gz + i, x[b], lse, target_at, inv_cap, dscale);
    }
  }
}

// The split kernels' work in one pass where a row's segments can share
// memory: the row's blocks form a cluster (sm_90), each keeps its segment's
// capped values in registers, puts its (max, sum) in shared memory, and after
// the cluster's barrier reads every segment's from its neighbours (DSMEM) in
// segment order. The row is read once, not twice, and each value's tanh and
// exp are worked out once each for the row's sum; the arithmetic and its order
// are the split kernels' (same losses and gradients, bit for bit). The
// segments of a row (gridDim.x a multiple of them) are the cluster's blocks,
// so every block of a cluster takes the same rows: the barriers are uniform.
template <int VEC, typename L, typename Grad>
__global__ void __launch_bounds__(kCrossEntropySplitThreads)
    cross_entropy_cluster_kernel(const L* logits, Grad* grad, float* losses,
                                 const int32_t* targets, int64_t rows, int64_t v, float cap,
                                 float inv_cap, float dscale, uint32_t* bad) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  constexpr int kWarps = kCrossEntropySplitThreads / 32;
  constexpr int64_t kStride = int64_t{kCrossEntropySplitThreads} * VEC;
  __shared__ float shared_m[kWarps], shared_s[kWarps];
  __shared__ float2 summary;  // this segment's (max, sum), read by the whole cluster
  const cg::cluster_group cluster = cg::this_cluster();
  const int64_t segments = cluster.num_blocks(), segment = cluster.block_rank();
  const int64_t clusters = gridDim.x / segments;
  for (int64_t row = blockIdx.x / segments; row < rows; row += clusters) {
    const SplitItem it = split_item(row * segments + segment, segments, v);
    const int32_t target = targets[row];
    Grad* gz = grad + row * v;
    // The same for every block of the row: none of them reaches a barrier.
    if (ignored_row(row, target, v, gz, losses, dscale, bad, threadIdx.x,
                    kCrossEntropySplitThreads, it.begin, it.end))
      continue;
    const int64_t first = it.begin + threadIdx.x * VEC;
    float x[kSweeps<VEC>][VEC];
    const int loaded = load_segment<VEC>(logits + row * v, first, it.end, x, cap, inv_cap);
    float m = -INFINITY, s = 0.0f;
#pragma unroll
    for (int b = 0; b < kSweeps<VEC>; ++b)
      if (b < loaded) add_online(m, s, x[b]);
    merge_across_block(m, s, shared_m, shared_s);
    if (threadIdx.x == 0) summary = make_float2(m, s);
    cluster.sync();  // every segment's summary written
    m = -INFINITY;
    s = 0.0f;
    for (unsigned k = 0; k < static_cast<unsigned>(segments); ++k) {
      const float2 p = *cluster.map_shared_rank(&summary, k);
      merge(m, s, p.x, p.y);
    }
    const float lse = m + logf(s);
#pragma unroll
    for (int b = 0; b < kSweeps<VEC>; ++b) {
      if (b >= loaded) break;
      const int64_t i = first + b * kStride, target_at = target - i;
#pragma unroll
      for (int k = 0; k < VEC; ++k)
        if (k == target_at) losses[row] = lse - x[b][k];
      if (dscale != 0.0f) store_gradient(gz + i, x[b], lse, target_at, inv_cap, dscale);
    }
    // No block overwrites its summary (or leaves, freeing it) while another
    // may still read it; shared_m/s are free again too.
    cluster.sync();
  }
#else
  __trap();  // the host launches it only where the loaded code is sm_90's
#endif
}

enum class CeKernel { Rows, Warp, Split, Cluster };

// HESSGPT_CE_KERNEL: "cluster" (the default: a cluster of blocks per row, one
// pass; the split kernels where the loaded code is not sm_90's or a row needs
// more than kCrossEntropyMaxCluster blocks), "split" (blocks per row segment,
// two passes), "rows" (one block per row, register-held up to
// kCrossEntropyHeld, else two sweeps) or "warp" (a warp per row) for A/B
// timings. Read at every call, so that a test can compare them in one process.
CeKernel ce_kernel_choice() {
  const char* e = std::getenv("HESSGPT_CE_KERNEL");
  if (!e || !*e || std::string_view(e) == "cluster") return CeKernel::Cluster;
  if (std::string_view(e) == "split") return CeKernel::Split;
  if (std::string_view(e) == "rows") return CeKernel::Rows;
  if (std::string_view(e) == "warp") return CeKernel::Warp;
  HG_FAIL("HESSGPT_CE_KERNEL must be cluster, split, rows or warp (got '", e, "')");
}

// 16-byte accesses (4 values a thread, as the split kernels') where the
// widths and the rows allow.
template <typename L, typename Grad>
bool four_at_a_time(const L* logits, const Grad* grad, int64_t v) {
  return v % 4 == 0 && aligned_to(logits, 4 * sizeof(L)) && aligned_to(grad, 4 * sizeof(Grad));
}

// Set once a GPU refuses the clusters' launch shape (a partitioned GPU may
// grant fewer blocks a cluster): the split kernels take every later call.
std::atomic<bool> clusters_refused{false};

bool refusal_of_cluster_shape(cudaError_t err) {
  return err == cudaErrorInvalidClusterSize || err == cudaErrorInvalidConfiguration ||
         err == cudaErrorNotSupported;
}

// False (nothing launched) where the one-pass form cannot run.
template <typename L, typename Grad>
bool launch_cluster_kernel(const L* logits, Grad* grad, float* losses, const int32_t* targets,
                           int64_t rows, int64_t v, float cap, float inv_cap, float dscale,
                           uint32_t* bad, cudaStream_t stream) {
  const int64_t cluster = cross_entropy_cluster_size(v);
  if (cluster == 0 || loaded_code_ptx_version() < 90 || clusters_refused.load()) return false;
  cudaLaunchAttribute dims{};
  dims.id = cudaLaunchAttributeClusterDimension;
  dims.val.clusterDim.x = static_cast<unsigned>(cluster);
  dims.val.clusterDim.y = 1;
  dims.val.clusterDim.z = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(cross_entropy_cluster_blocks(rows, cluster)));
  config.blockDim = dim3(kCrossEntropySplitThreads);
  config.stream = stream;
  config.attrs = &dims;
  config.numAttrs = 1;
  const auto launch = [&](auto kernel) {
    return cudaLaunchKernelEx(&config, kernel, logits, grad, losses, targets, rows, v, cap,
                              inv_cap, dscale, bad);
  };
  const cudaError_t err = four_at_a_time(logits, grad, v)
                              ? launch(cross_entropy_cluster_kernel<4, L, Grad>)
                              : launch(cross_entropy_cluster_kernel<1, L, Grad>);
  if (err == cudaSuccess) return true;
  if (!refusal_of_cluster_shape(err)) HG_CUDA_CHECK(err);
  (void)cudaGetLastError();  // the refusal is not the next call's error
  clusters_refused.store(true);
  log_warn("cross-entropy: the GPU refused clusters of ", cluster, " blocks (",
           cudaGetErrorString(err), "); the two-pass kernels take the rows");
  return false;
}

template <typename L, typename Grad>
void launch_split_kernels(const L* logits, Grad* grad, float* losses, const int32_t* targets,
                          int64_t rows, int64_t v, float cap, float inv_cap, float dscale,
                          uint32_t* bad, float* scratch, cudaStream_t stream) {
  HG_CHECK(scratch != nullptr, "cross-entropy: the split kernels need their scratch");
  const int64_t segments = cross_entropy_segments(v);
  const auto blocks = static_cast<unsigned>(std::min<int64_t>(rows * segments, int64_t{1} << 20));
  auto* partials = reinterpret_cast<float2*>(scratch);
  const bool vec = four_at_a_time(logits, grad, v);
  const auto launch = [&](auto width) {
    constexpr int VEC = decltype(width)::value;
    cross_entropy_partials_kernel<VEC><<<blocks, kCrossEntropySplitThreads, 0, stream>>>(
        logits, partials, targets, rows, v, segments, cap, inv_cap);
    HG_CUDA_CHECK_LAUNCH();
    cross_entropy_split_grad_kernel<VEC><<<blocks, kCrossEntropySplitThreads, 0, stream>>>(
        logits, grad, losses, partials, targets, rows, v, segments, cap, inv_cap, dscale, bad);
    HG_CUDA_CHECK_LAUNCH();
  };
  if (vec) launch(std::integral_constant<int, 4>{});
  else launch(std::integral_constant<int, 1>{});
}

template <typename L, typename Grad>
void launch_warp_kernel(const L* logits, Grad* grad, float* losses, const int32_t* targets,
                        int64_t rows, int64_t v, float cap, float inv_cap, float dscale,
                        uint32_t* bad, cudaStream_t stream) {
  constexpr int64_t kRowsPerBlock = kCrossEntropyWarpThreads / 32;
  const auto blocks = static_cast<unsigned>(std::min<int64_t>(ceil_div(rows, kRowsPerBlock), 65535));
  if (four_at_a_time(logits, grad, v))
    cross_entropy_warp_kernel<4><<<blocks, kCrossEntropyWarpThreads, 0, stream>>>(
        logits, grad, losses, targets, rows, v, cap, inv_cap, dscale, bad);
  else
    cross_entropy_warp_kernel<1><<<blocks, kCrossEntropyWarpThreads, 0, stream>>>(
        logits, grad, losses, targets, rows, v, cap, inv_cap, dscale, bad);
  HG_CUDA_CHECK_LAUNCH();
}

}  // namespace

void softcap(float* logits, int64_t rows, int64_t v, float cap, cudaStream_t stream) {
  if (cap <= 0.0f) return;
  launch_elementwise(rows * v, stream, softcap_kernel, logits, rows * v, cap, 1.0f / cap);
}

int64_t softcap_cross_entropy_scratch(int64_t rows, int64_t v) {
  const CeKernel kernel = ce_kernel_choice();  // the cluster kernel may fall back to split
  return kernel == CeKernel::Split || kernel == CeKernel::Cluster
             ? 2 * rows * cross_entropy_segments(v)
             : 0;
}

template <typename Logit, typename Grad>
void softcap_cross_entropy(const Logit* logits_in, float* losses, const int32_t* targets,
                           int64_t rows, int64_t v, float cap, float dscale, uint32_t* bad,
                           cudaStream_t stream, Grad* grad, float* scratch) {
  if (rows <= 0) return;
  const auto* logits = device_ptr(logits_in);
  const float inv_cap = cap > 0.0f ? 1.0f / cap : 0.0f;
  switch (ce_kernel_choice()) {
    case CeKernel::Warp:
      return launch_warp_kernel(logits, device_ptr(grad), losses, targets, rows, v, cap, inv_cap,
                                dscale, bad, stream);
    case CeKernel::Cluster:
      if (launch_cluster_kernel(logits, device_ptr(grad), losses, targets, rows, v, cap, inv_cap,
                                dscale, bad, stream))
        return;
      [[fallthrough]];
    case CeKernel::Split:
      return launch_split_kernels(logits, device_ptr(grad), losses, targets, rows, v, cap, inv_cap,
                                  dscale, bad, scratch, stream);
    case CeKernel::Rows:
      break;
  }
  const int64_t blocks = std::min<int64_t>(rows, 65535);
  if (v <= kCrossEntropyHeld)
    cross_entropy_held_kernel<<<static_cast<unsigned>(blocks), kCrossEntropyHeldThreads, 0,
                                stream>>>(logits, device_ptr(grad), losses, targets, rows, v, cap,
                                          inv_cap, dscale, bad);
  else
    cross_entropy_sweep_kernel<<<static_cast<unsigned>(blocks), kCrossEntropyThreads, 0,
                                 stream>>>(logits, device_ptr(grad), losses, targets, rows, v,
                                           cap, inv_cap, dscale, bad);
  HG_CUDA_CHECK_LAUNCH();
}
#define HG_CROSS_ENTROPY(LOGIT, GRAD)                                                          \
  template void softcap_cross_entropy(const LOGIT*, float*, const int32_t*, int64_t, int64_t,   \
                                      float, float, uint32_t*, cudaStream_t, GRAD*, float*);
HG_CROSS_ENTROPY(float, float)
HG_CROSS_ENTROPY(float, uint16_t)
HG_CROSS_ENTROPY(uint16_t, uint16_t)
#undef HG_CROSS_ENTROPY

}  // namespace hessgpt::cuda
