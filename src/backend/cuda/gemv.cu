// Products of a few rows, c[m, n] = alpha a b^T + beta c (m <= kGemvMaxRows):
// decoding's one token. A GEMM tiles c, so such a product runs on about
// n / 128 thread blocks, each pulling its slice of b (the weights) at a small
// share of the memory's bandwidth; here every warp reads one row of b once,
// for all m rows of a, and the whole GPU streams the weights. The weights may
// be BF16 (storage: decoding's BF16 sessions), half the bytes to stream.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/gemv_dot.cuh"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace hessgpt::cuda {
namespace {

// One warp per column n of c (gemv_dot.cuh: warp_dot). Launched chained
// (chained_launch.cuh): the block's weight rows go to L2 while the kernel
// before it finishes.
template <int M, bool kBf16, typename W>
__global__ void gemv_kernel(float* c, const float* a, const W* b, int64_t n, int64_t k,
                            int64_t ldb, float alpha, float beta, bool a_vec) {
  allow_next_grid();
  prefetch_block_rows(b, n, k, ldb, static_cast<int64_t>(blockIdx.x) * kGemvWarps);
  wait_for_previous_grid();
  const int lane = threadIdx.x & 31;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (col >= n) return;
  float acc[M];
  warp_dot<M, kBf16, W>(acc, b + col * ldb, a, k, a_vec, lane);
  if (lane != 0) return;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float* out = c + m * n + col;
    // beta == 0 never reads c (it may hold anything, NaN included).
    *out = beta == 0.0f ? alpha * acc[m] : alpha * acc[m] + beta * *out;
  }
}

template <int M, typename W>
void launch(float* c, const float* a, const W* b, int64_t n, int64_t k, int64_t ldb, float alpha,
            float beta, bool bf16, cudaStream_t stream) {
  const bool a_vec = k % 4 == 0 && aligned_to(a, 16);
  const auto blocks = static_cast<unsigned>(gemv_blocks(n));
  const auto go = [&](auto kernel) {
    launch_chained(kernel, blocks, kGemvWarps * 32, 0, stream, c, a, b, n, k, ldb, alpha, beta,
                   a_vec);
  };
  bf16 ? go(gemv_kernel<M, true, W>) : go(gemv_kernel<M, false, W>);
}

template <typename W>
void gemv_typed(float* c, const float* a, const W* b, int64_t m, int64_t n, int64_t k,
                int64_t ldb, float alpha, float beta, bool bf16, cudaStream_t stream) {
  switch (m) {
    case 1: return launch<1>(c, a, b, n, k, ldb, alpha, beta, bf16, stream);
    case 2: return launch<2>(c, a, b, n, k, ldb, alpha, beta, bf16, stream);
    case 3: return launch<3>(c, a, b, n, k, ldb, alpha, beta, bf16, stream);
    case 4: return launch<4>(c, a, b, n, k, ldb, alpha, beta, bf16, stream);
    case 5: return launch<5>(c, a, b, n, k, ldb, alpha, beta, bf16, stream);
    case 6: return launch<6>(c, a, b, n, k, ldb, alpha, beta, bf16, stream);
    case 7: return launch<7>(c, a, b, n, k, ldb, alpha, beta, bf16, stream);
    case 8: return launch<8>(c, a, b, n, k, ldb, alpha, beta, bf16, stream);
    default: HG_FAIL("gemv_rows: ", m, " rows (at most ", kGemvMaxRows, ")");
  }
}

}  // namespace

void gemv_rows(float* c, const float* a, const void* b, bool b_bf16, int64_t m, int64_t n,
               int64_t k, int64_t ldb, float alpha, float beta, bool bf16_operands,
               cudaStream_t stream) {
  if (m <= 0 || n <= 0) return;
  if (b_bf16)
    gemv_typed(c, a, static_cast<const __nv_bfloat16*>(b), m, n, k, ldb, alpha, beta,
               bf16_operands, stream);
  else
    gemv_typed(c, a, static_cast<const float*>(b), m, n, k, ldb, alpha, beta, bf16_operands,
               stream);
}

}  // namespace hessgpt::cuda
