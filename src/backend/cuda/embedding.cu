// Token embedding gather and its scatter-add backward. The backward is
// deterministic without atomics: positions are grouped by id on the device
// (CUB's stable radix sort of (id, position), then the runs of equal ids), and
// one block per (run, column chunk) adds its rows in position order, as the
// CPU kernel does. No host round trip: the grouping used to be a host counting
// sort after a read-back of the ids, ~0.8 ms of idle GPU a training step.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_run_length_encode.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <bit>

#include "backend/cuda/cuda_check.h"
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
      if (bad && threadIdx.x == 0) atomicMin(bad, static_cast<uint32_t>(i));
      continue;
    }
    const float* src = table + static_cast<int64_t>(id) * c;
    float* dst = out + i * c;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) dst[j] = src[j];
  }
}

// keys[i] = ids[i], or v for an id outside [0, v) (its rows are then skipped,
// and the smallest such position recorded in *bad); positions[i] = i.
__global__ void embedding_keys_kernel(uint32_t* keys, int32_t* positions, const int32_t* ids,
                                      int64_t n, int64_t v, uint32_t* bad) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    const int32_t id = ids[i];
    const bool ok = id >= 0 && id < v;
    if (!ok) atomicMin(bad, static_cast<uint32_t>(i));
    keys[i] = static_cast<uint32_t>(ok ? id : v);
    positions[i] = static_cast<int32_t>(i);
  }
}

// Block (run, column chunk): dtable[run_ids[run]] += the run's rows of dout, in
// position order. Blocks past the number of runs (known only on the device)
// return at once.
__global__ void embedding_backward_kernel(float* dtable, const int32_t* order,
                                          const int32_t* offsets, const int32_t* counts,
                                          const uint32_t* run_ids, const int32_t* num_runs,
                                          const float* dout, int64_t c, int64_t v) {
  const int64_t run = blockIdx.x;
  const int64_t col = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (run >= *num_runs || col >= c || run_ids[run] >= static_cast<uint64_t>(v)) return;
  float acc = 0.0f;
  // The CPU adds each row straight into dtable; summing the run first and
  // adding once rounds differently only in the last bits (tested with a
  // tolerance), and reads dtable once instead of once per row. Unrolled so
  // that a frequent token's long run keeps several rows' loads in flight.
  const int32_t begin = offsets[run], end = begin + counts[run];
#pragma unroll 8
  for (int32_t s = begin; s < end; ++s) acc += dout[static_cast<int64_t>(order[s]) * c + col];
  dtable[static_cast<int64_t>(run_ids[run]) * c + col] += acc;
}

// The scratch's pieces: seven arrays of n ints, the run count, then CUB's
// temporary storage (the largest of the three calls'), each 256-byte aligned.
constexpr int kEmbeddingArrays = 7;
// Keys unsigned: the sort looks at their low end_bit bits only.
struct EmbeddingScratch {
  uint32_t *keys, *sorted_keys, *run_ids;
  int32_t *positions, *order, *counts, *offsets, *num_runs;
  void* temp;
  size_t temp_bytes;
};

size_t align256(size_t bytes) { return (bytes + 255) / 256 * 256; }
size_t array_bytes(int64_t n) { return align256(sizeof(int32_t) * static_cast<size_t>(n)); }

// CUB's temporary bytes for n keys of end_bit bits (queries only: no device work).
size_t cub_temp_bytes(int64_t n, int end_bit) {
  size_t sort = 0, encode = 0, scan = 0;
  const int count = static_cast<int>(n);
  uint32_t* no_keys = nullptr;
  int32_t* none = nullptr;
  HG_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort, no_keys, no_keys, none, none, count,
                                                0, end_bit));
  HG_CUDA_CHECK(
      cub::DeviceRunLengthEncode::Encode(nullptr, encode, no_keys, no_keys, none, none, count));
  HG_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, scan, none, none, count));
  return std::max({sort, encode, scan, size_t{1}});
}

size_t scratch_bytes(int64_t n, int end_bit) {
  return kEmbeddingArrays * array_bytes(n) + 256 + cub_temp_bytes(n, end_bit);
}

EmbeddingScratch carve_scratch(void* base, int64_t n, int end_bit) {
  EmbeddingScratch s{};
  auto* p = static_cast<char*>(base);
  const auto array = [&](int k) { return p + static_cast<size_t>(k) * array_bytes(n); };
  s.keys = reinterpret_cast<uint32_t*>(array(0));
  s.sorted_keys = reinterpret_cast<uint32_t*>(array(1));
  s.run_ids = reinterpret_cast<uint32_t*>(array(2));
  s.positions = reinterpret_cast<int32_t*>(array(3));
  s.order = reinterpret_cast<int32_t*>(array(4));
  s.counts = reinterpret_cast<int32_t*>(array(5));
  s.offsets = reinterpret_cast<int32_t*>(array(6));
  s.num_runs = reinterpret_cast<int32_t*>(p + kEmbeddingArrays * array_bytes(n));
  s.temp = p + kEmbeddingArrays * array_bytes(n) + 256;
  s.temp_bytes = cub_temp_bytes(n, end_bit);
  return s;
}

// Bits that hold every key: ids below v and v itself (the skipped rows').
int key_bits(int64_t v) {
  return std::max(1, static_cast<int>(std::bit_width(static_cast<uint64_t>(v))));
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

size_t embedding_backward_scratch(int64_t n, int64_t v) {
  return n <= 0 ? 0 : scratch_bytes(n, key_bits(v));
}

void embedding_backward(float* dtable, const int32_t* ids, int64_t n, int64_t v, const float* dout,
                        int64_t c, void* scratch, uint32_t* bad, cudaStream_t stream) {
  if (n <= 0 || c <= 0) return;
  const int end_bit = key_bits(v);
  const EmbeddingScratch s = carve_scratch(scratch, n, end_bit);
  const int count = static_cast<int>(n);
  launch_elementwise(n, stream, embedding_keys_kernel, s.keys, s.positions, ids, n, v, bad);
  size_t temp = s.temp_bytes;
  HG_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(s.temp, temp, s.keys, s.sorted_keys, s.positions,
                                                s.order, count, 0, end_bit, stream));
  temp = s.temp_bytes;
  HG_CUDA_CHECK(cub::DeviceRunLengthEncode::Encode(s.temp, temp, s.sorted_keys, s.run_ids,
                                                   s.counts, s.num_runs, count, stream));
  temp = s.temp_bytes;
  HG_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(s.temp, temp, s.counts, s.offsets, count, stream));
  const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>(ceil_div(c, kEmbeddingColumns)));
  embedding_backward_kernel<<<grid, kEmbeddingColumns, 0, stream>>>(
      dtable, s.order, s.offsets, s.counts, s.run_ids, s.num_runs, dout, c, v);
  HG_CUDA_CHECK_LAUNCH();
}

}  // namespace hessgpt::cuda
