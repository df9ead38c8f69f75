// Token embedding gather and its scatter-add backward. The backward is
// deterministic without atomics: positions are grouped by id on the host
// (make_embedding_runs), and one block per (id, column chunk) adds its rows
// in position order, as the CPU kernel does.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace hessgpt::cuda {
namespace {

// One block row per position: blockIdx.y = position chunk, threads over columns.
__global__ void embedding_forward_kernel(float* out, const int32_t* ids, const float* table,
                                         int64_t n, int64_t c, int64_t v, uint32_t* bad) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int32_t id = ids[i];
    if (id < 0 || id >= v) {
      if (threadIdx.x == 0) atomicMin(bad, static_cast<uint32_t>(i));
      continue;
    }
    const float* src = table + static_cast<int64_t>(id) * c;
    float* dst = out + i * c;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) dst[j] = src[j];
  }
}

__global__ void embedding_backward_kernel(float* dtable, const int32_t* order,
                                          const int32_t* offsets, const int32_t* run_ids,
                                          const float* dout, int64_t c) {
  const int64_t run = blockIdx.x;
  const int64_t col = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (col >= c) return;
  float acc = 0.0f;
  // The CPU adds each row straight into dtable; summing the run first and
  // adding once rounds differently only in the last bits (tested with a
  // tolerance), and reads dtable once instead of once per row.
  for (int32_t s = offsets[run]; s < offsets[run + 1]; ++s)
    acc += dout[static_cast<int64_t>(order[s]) * c + col];
  dtable[static_cast<int64_t>(run_ids[run]) * c + col] += acc;
}

}  // namespace

void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t n, int64_t c,
                       int64_t v, uint32_t* bad, cudaStream_t stream) {
  if (n <= 0 || c <= 0) return;
  const int64_t blocks = std::min<int64_t>(n, 65535);
  const int threads = static_cast<int>(std::min<int64_t>(round_up(c, 32), kThreads));
  embedding_forward_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(out, ids, table,
                                                                                 n, c, v, bad);
  HG_CUDA_CHECK_LAUNCH();
}

void embedding_backward(float* dtable, const int32_t* order, const int32_t* offsets,
                        const int32_t* run_ids, int64_t runs, const float* dout, int64_t c,
                        cudaStream_t stream) {
  if (runs <= 0 || c <= 0) return;
  const dim3 grid(static_cast<unsigned>(runs),
                  static_cast<unsigned>(ceil_div(c, kEmbeddingColumns)));
  embedding_backward_kernel<<<grid, kEmbeddingColumns, 0, stream>>>(dtable, order, offsets,
                                                                   run_ids, dout, c);
  HG_CUDA_CHECK_LAUNCH();
}

}  // namespace hessgpt::cuda
