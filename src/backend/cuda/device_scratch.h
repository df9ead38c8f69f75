// A device buffer that grows on demand: the scratch of one use, reallocated
// only when a call needs more than it holds. The backend runs everything on
// one stream, so a buffer is free for the next op as soon as the previous one
// is enqueued (and cudaFree, when it grows, waits for the device).
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "backend/cuda/cuda_check.h"

namespace hessgpt::cuda {

// Counts the (re)allocations of every DeviceScratch in the process. A
// recording of ops (CudaBackend::record) holds scratch pointers: it is stale
// once this has moved.
inline std::atomic<uint64_t>& scratch_generation() {
  static std::atomic<uint64_t> generation{0};
  return generation;
}

class DeviceScratch {
 public:
  DeviceScratch() = default;
  // Errors are ignored: a destructor must not throw, and a failing device has
  // reported itself at the last checked call already.
  ~DeviceScratch() {
    if (p_) cudaFree(p_);
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;

  // At least `bytes` of device memory (the old contents are not kept).
  void* get(size_t bytes) {
    if (bytes_ < bytes) {
      if (p_) HG_CUDA_CHECK(cudaFree(p_));
      p_ = nullptr;
      bytes_ = 0;
      scratch_generation().fetch_add(1);
      HG_CUDA_CHECK(cudaMalloc(&p_, bytes));
      bytes_ = bytes;
    }
    return p_;
  }
  void* data() const { return p_; }
  // Whether get(bytes) would allocate anew (contents then undefined).
  bool grows_for(size_t bytes) const { return bytes_ < bytes; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace hessgpt::cuda
