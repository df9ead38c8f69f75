// Decoding's products with the op before them folded in: c = rmsnorm(x) W^T
// (the block norms before q|k|v, gate|up and the head) and c += swiglu(gate,
// up) W^T (the down projection). Each block first builds the product's
// operand in shared memory, as the two ops would have written it (the same
// arithmetic per value), then its warps take columns as gemv.cu's do. A token
// is ~10 small kernels a layer, each a launch and a drain: this takes three of
// them out (Backend::rmsnorm_matmul, Backend::swiglu_matmul_add).
#include <algorithm>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/gemv_dot.cuh"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace hessgpt::cuda {
namespace {

enum class Prologue { kNorm, kSwiglu };

// x: the norm's input, or gate; y: the norm's weight, or up (k values each).
// Launched chained (chained_launch.cuh), as gemv.cu's kernel: the weight rows
// of the block's first columns go to L2 while the kernel before it finishes.
template <Prologue P, bool kBf16, typename W>
__global__ void gemv_prologue_kernel(float* c, const float* x, const float* y, double eps,
                                     const W* b, int64_t n, int64_t k, int64_t ldb, float beta) {
  extern __shared__ float a[];  // [k]: the product's operand
  __shared__ double partials[32];
  allow_next_grid();
  prefetch_block_rows(b, n, k, ldb, static_cast<int64_t>(blockIdx.x) * kGemvWarps);
  wait_for_previous_grid();
  if constexpr (P == Prologue::kNorm) {
    double ss = 0.0;  // in double, as rmsnorm.cu
    for (int64_t i = threadIdx.x; i < k; i += blockDim.x) ss += static_cast<double>(x[i]) * x[i];
    ss = block_sum(ss, partials);
    const float s = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(k) + eps));
    for (int64_t i = threadIdx.x; i < k; i += blockDim.x) a[i] = x[i] * s * y[i];
  } else {
    for (int64_t i = threadIdx.x; i < k; i += blockDim.x) {
      const float g = x[i];
      a[i] = g / (1.0f + expf(-g)) * y[i];
    }
  }
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const bool a_vec = k % 4 == 0;  // shared memory is 16-byte aligned
  for (int64_t col = static_cast<int64_t>(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5); col < n;
       col += static_cast<int64_t>(gridDim.x) * kGemvWarps) {
    float acc[1];
    warp_dot<1, kBf16, W>(acc, b + col * ldb, a, k, a_vec, lane);
    // beta == 0 never reads c (it may hold anything, NaN included).
    if (lane == 0) c[col] = beta == 0.0f ? acc[0] : acc[0] + beta * c[col];
  }
}

template <Prologue P, typename W>
void launch(float* c, const float* x, const float* y, double eps, const W* b, int64_t n,
            int64_t k, int64_t ldb, float beta, bool bf16, cudaStream_t stream) {
  if (n <= 0) return;
  HG_CHECK(gemv_prologue_fits(k), "gemv with a prologue: ", k, " values do not fit shared memory");
  const auto blocks = static_cast<unsigned>(gemv_prologue_blocks(n));
  const size_t smem = sizeof(float) * static_cast<size_t>(k);
  const auto go = [&](auto kernel) {
    launch_chained(kernel, blocks, kGemvWarps * 32, smem, stream, c, x, y, eps, b, n, k, ldb,
                   beta);
  };
  bf16 ? go(gemv_prologue_kernel<P, true, W>) : go(gemv_prologue_kernel<P, false, W>);
}

template <Prologue P>
void dispatch(float* c, const float* x, const float* y, double eps, const void* b, bool b_bf16,
              int64_t n, int64_t k, int64_t ldb, float beta, bool bf16, cudaStream_t stream) {
  if (b_bf16)
    launch<P>(c, x, y, eps, static_cast<const __nv_bfloat16*>(b), n, k, ldb, beta, bf16, stream);
  else
    launch<P>(c, x, y, eps, static_cast<const float*>(b), n, k, ldb, beta, bf16, stream);
}

}  // namespace

void gemv_norm(float* c, const float* x, const float* norm_w, double eps, const void* b,
               bool b_bf16, int64_t n, int64_t k, int64_t ldb, bool bf16_operands,
               cudaStream_t stream) {
  dispatch<Prologue::kNorm>(c, x, norm_w, eps, b, b_bf16, n, k, ldb, 0.0f, bf16_operands, stream);
}

void gemv_swiglu(float* c, const float* gate, const float* up, const void* b, bool b_bf16,
                 int64_t n, int64_t k, int64_t ldb, float beta, bool bf16_operands,
                 cudaStream_t stream) {
  dispatch<Prologue::kSwiglu>(c, gate, up, 0.0, b, b_bf16, n, k, ldb, beta, bf16_operands,
                              stream);
}

}  // namespace hessgpt::cuda
