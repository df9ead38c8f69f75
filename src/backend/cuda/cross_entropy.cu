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

#include "backend/cuda/chained_launch.h"
#include "backend/cuda/cross_entropy_choice.h"
#include "backend/cuda/cross_entropy_rows.cuh"
#include "backend/cuda/cross_entropy_segments.cuh"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "core/error.h"
#include "core/log.h"

namespace hessgpt::cuda {
namespace {

__global__ void softcap_kernel(float* logits, int64_t n, float cap, float inv_cap) {
  for (int64_t i = global_thread(); i < n; i += grid_stride())
    logits[i] = cap * tanhf(logits[i] * inv_cap);
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

bool clusters_take(int64_t v) {
  return cross_entropy_cluster_size(v) != 0 && loaded_code_ptx_version() >= 90 &&
         !clusters_refused.load();
}

// False (nothing launched) where the one-pass form cannot run.
template <typename L, typename Grad>
bool launch_cluster_kernel(const L* logits, Grad* grad, float* losses, const int32_t* targets,
                           int64_t rows, int64_t v, float cap, float inv_cap, float dscale,
                           uint32_t* bad, cudaStream_t stream) {
  if (!clusters_take(v)) return false;
  const int64_t cluster = cross_entropy_cluster_size(v);
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

const char* cross_entropy_kernel_for(int64_t v) {
  switch (ce_kernel_choice()) {
    case CeKernel::Rows: return "rows";
    case CeKernel::Warp: return "warp";
    case CeKernel::Split: return "split";
    case CeKernel::Cluster: return clusters_take(v) ? "cluster" : "split";
  }
  return "split";
}

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
