// Cross-entropy over row segments of kCrossEntropySpan values, a block each
// (included by cross_entropy.cu): in two launches (split: the segments'
// summaries through global memory) or in one (cluster: through distributed
// shared memory, sm_90).
#pragma once

#include <cooperative_groups.h>

#include "backend/cuda/cross_entropy_steps.cuh"

namespace hessgpt::cuda {
namespace {

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
    const int64_t first = it.begin + threadIdx.x * VEC;
    float x[kSweeps<VEC>][VEC];
    const int loaded = load_segment<VEC>(z, first, it.end, x, cap, inv_cap);
    finish_segment<VEC>(x, loaded, first, target, lse, losses + it.row, gz, inv_cap, dscale);
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
    finish_segment<VEC>(x, loaded, first, target, m + logf(s), losses + row, gz, inv_cap, dscale);
    // No block overwrites its summary (or leaves, freeing it) while another
    // may still read it; shared_m/s are free again too.
    cluster.sync();
  }
#else
  __trap();  // the host launches it only where the loaded code is sm_90's
#endif
}

}  // namespace
}  // namespace hessgpt::cuda
