// Products of a few rows, c[m, n] = alpha a b^T + beta c (m <= kGemvMaxRows):
// decoding's one token. A GEMM tiles c, so such a product runs on about
// n / 128 thread blocks, each pulling its slice of b (the weights) at a small
// share of the memory's bandwidth; here every warp reads one row of b once,
// for all m rows of a, and the whole GPU streams the weights.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace hessgpt::cuda {
namespace {

// An operand value as the product reads it: itself, or rounded to BF16 (the
// BF16 products' operands).
template <bool kBf16>
__device__ __forceinline__ float operand(float x) {
  if constexpr (kBf16) return __bfloat162float(__float2bfloat16_rn(x));
  return x;
}

// One warp per column n of c: lane l takes k = l, l + 32, ... (4 at a time
// where rows are 16-byte aligned), then the warp adds its lanes.
template <int M, bool kBf16, bool kVec>
__global__ void gemv_kernel(float* c, const float* a, const float* b, int64_t n, int64_t k,
                            float alpha, float beta) {
  const int lane = threadIdx.x & 31;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (col >= n) return;
  const float* row = b + col * k;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  if constexpr (kVec) {
    for (int64_t i = 4 * lane; i < k; i += 4 * 32) {
      const Pack<float, 4> w = load_pack<4>(row + i);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const Pack<float, 4> x = load_pack<4>(a + m * k + i);
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[m] += operand<kBf16>(x.v[e]) * operand<kBf16>(w.v[e]);
      }
    }
  } else {
#pragma unroll 4
    for (int64_t i = lane; i < k; i += 32) {
      const float w = operand<kBf16>(row[i]);
#pragma unroll
      for (int m = 0; m < M; ++m) acc[m] += operand<kBf16>(a[m * k + i]) * w;
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = warp_sum(acc[m]);
  if (lane != 0) return;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float* out = c + m * n + col;
    // beta == 0 never reads c (it may hold anything, NaN included).
    *out = beta == 0.0f ? alpha * acc[m] : alpha * acc[m] + beta * *out;
  }
}

template <int M>
void launch(float* c, const float* a, const float* b, int64_t n, int64_t k, float alpha,
            float beta, bool bf16, bool vec, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(gemv_blocks(n));
  const auto go = [&](auto kernel) {
    kernel<<<blocks, kGemvWarps * 32, 0, stream>>>(c, a, b, n, k, alpha, beta);
    HG_CUDA_CHECK_LAUNCH();
  };
  if (bf16) vec ? go(gemv_kernel<M, true, true>) : go(gemv_kernel<M, true, false>);
  else vec ? go(gemv_kernel<M, false, true>) : go(gemv_kernel<M, false, false>);
}

}  // namespace

void gemv_rows(float* c, const float* a, const float* b, int64_t m, int64_t n, int64_t k,
               float alpha, float beta, bool bf16_operands, cudaStream_t stream) {
  if (m <= 0 || n <= 0) return;
  const bool vec = k % 4 == 0 && aligned_to(a, 16) && aligned_to(b, 16);
  switch (m) {
    case 1: return launch<1>(c, a, b, n, k, alpha, beta, bf16_operands, vec, stream);
    case 2: return launch<2>(c, a, b, n, k, alpha, beta, bf16_operands, vec, stream);
    case 3: return launch<3>(c, a, b, n, k, alpha, beta, bf16_operands, vec, stream);
    case 4: return launch<4>(c, a, b, n, k, alpha, beta, bf16_operands, vec, stream);
    case 5: return launch<5>(c, a, b, n, k, alpha, beta, bf16_operands, vec, stream);
    case 6: return launch<6>(c, a, b, n, k, alpha, beta, bf16_operands, vec, stream);
    case 7: return launch<7>(c, a, b, n, k, alpha, beta, bf16_operands, vec, stream);
    case 8: return launch<8>(c, a, b, n, k, alpha, beta, bf16_operands, vec, stream);
    default: HG_FAIL("gemv_rows: ", m, " rows (at most ", kGemvMaxRows, ")");
  }
}

}  // namespace hessgpt::cuda
