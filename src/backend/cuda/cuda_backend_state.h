// What the CUDA backend's source files share (cuda_backend.cpp and
// cuda_backend_attention.cpp): the interface checks, typed views of tensors,
// and the backend's state (stream, cuBLASLt, cuDNN's attention, scratch).
// Private to the backend: CUDA headers are fine here.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "backend/cuda/attention_cudnn.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_scratch.h"
#include "backend/cuda/launch_config.h"
#include "backend/cuda/matmul_lt.h"

namespace hessgpt {
namespace cuda_backend_detail {

inline void check_f32(const Tensor& t, const char* what) {
  HG_CHECK(t.device == Device::CUDA && t.data != nullptr, what, " is not a CUDA tensor");
  if (t.dtype != DType::F32)
    HG_FAIL("the CUDA backend computes in F32, not ", dtype_name(t.dtype), " (", what, ")");
}

inline void check_i32(const Tensor& t, const char* what) {
  HG_CHECK(t.device == Device::CUDA && t.data != nullptr, what, " is not a CUDA tensor");
  HG_CHECK(t.dtype == DType::I32, what, " must be I32");
}

inline void check_same(const Tensor& a, const Tensor& b, const char* what) {
  HG_CHECK(a.dtype == b.dtype, what, ": dtype mismatch ", dtype_name(a.dtype), " vs ",
           dtype_name(b.dtype));
  HG_CHECK(a.numel() == b.numel(), what, ": size mismatch ", a.shape_string(), " vs ",
           b.shape_string());
}

inline float* f32(const Tensor& t) { return t.as<float>(); }
inline uint16_t* bits(const Tensor& t) { return t.as<uint16_t>(); }

// F32, or BF16 storage where the op allows it (backend.h).
inline void check_f32_or_bf16(const Tensor& t, const char* what) {
  HG_CHECK(t.device == Device::CUDA && t.data != nullptr, what, " is not a CUDA tensor");
  if (t.dtype != DType::F32 && t.dtype != DType::BF16)
    HG_FAIL("the CUDA backend stores ", what, " in F32 or BF16, not ", dtype_name(t.dtype));
}

// A tensor as cuBLASLt's operand: its storage, row length and row count.
inline cuda::LtOperand lt_operand(const Tensor& t) {
  return cuda::LtOperand{t.data, t.dtype == DType::BF16, t.cols(), t.rows()};
}

// The same element count, whatever the (F32 or BF16) storage.
inline void check_size(const Tensor& a, const Tensor& b, const char* what) {
  HG_CHECK(a.numel() == b.numel(), what, ": size mismatch ", a.shape_string(), " vs ",
           b.shape_string());
}

inline constexpr uint32_t kNoBadIndex = std::numeric_limits<uint32_t>::max();


}  // namespace cuda_backend_detail

// Scratch buffers that grow on demand; one per use so that no two live uses
// of one op share memory. All work is on one stream, so a buffer is free for
// the next op as soon as the previous op is enqueued.
enum ScratchSlot {
  kReducePartials, kDwPartials, kAttnDelta, kAttnPack, kAttnOut, kAttnWide, kAttnCudnn,
  kAttnGrads, kCePartials, kEmbeddingRuns, kFlags, kAdamWChunks, kDecodePartials, kSlots
};

struct CudaBackend::State {
  int device = 0;
  cudaStream_t stream = nullptr;
  std::unique_ptr<cuda::LtMatmul> lt;
  std::unique_ptr<cuda::CudnnAttention> cudnn_attention;  // on first use
  std::array<cuda::DeviceScratch, kSlots> scratch;
  void* pinned = nullptr;  // small host buffer for results read back (flags, sums)
  std::vector<cudaEvent_t> marks;  // timing marks; the first marks_used are recorded
  size_t marks_used = 0;
  // adamw_step_groups: the groups last seen, and how many chunks their table
  // in kAdamWChunks holds (uploaded again only when the groups change).
  std::vector<AdamWGroup> adamw_groups;
  int64_t adamw_chunk_count = 0;

  void* get(ScratchSlot slot, size_t bytes) { return scratch[static_cast<size_t>(slot)].get(bytes); }

  cuda::CudnnAttention& cudnn() {
    if (!cudnn_attention) cudnn_attention = std::make_unique<cuda::CudnnAttention>(stream);
    return *cudnn_attention;
  }

  // A device word set to "no bad index" before a kernel that validates ids.
  uint32_t* reset_flag() {
    auto* flag = static_cast<uint32_t*>(get(kFlags, sizeof(uint32_t)));
    HG_CUDA_CHECK(cudaMemsetAsync(flag, 0xff, sizeof(uint32_t), stream));
    return flag;
  }

  // Waits for the stream and returns the smallest bad index (kNoBadIndex if none).
  uint32_t read_flag() {
    auto* host = static_cast<uint32_t*>(pinned);
    HG_CUDA_CHECK(cudaMemcpyAsync(host, scratch[kFlags].data(), sizeof(uint32_t),
                                  cudaMemcpyDeviceToHost, stream));
    HG_CUDA_CHECK(cudaStreamSynchronize(stream));
    return *host;
  }

  // After a kernel that checked ids against [0, vocab) into the flag: throws
  // Error naming the first bad one (kind: "token" or "target").
  void check_ids_flag(const Tensor& ids, const char* kind, int64_t vocab) {
    const uint32_t bad = read_flag();
    if (bad != cuda_backend_detail::kNoBadIndex)
      HG_FAIL(kind, " id ", read_i32(ids, bad), " at position ", bad,
              " is outside the vocabulary [0, ", vocab, ")");
  }

  int32_t read_i32(const Tensor& t, int64_t index) {
    int32_t value = 0;
    HG_CUDA_CHECK(cudaMemcpyAsync(&value, t.as<int32_t>() + index, sizeof(value),
                                  cudaMemcpyDeviceToHost, stream));
    HG_CUDA_CHECK(cudaStreamSynchronize(stream));
    return value;
  }
};

}  // namespace hessgpt
