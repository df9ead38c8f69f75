// Causal GQA attention through cuDNN's fused flash attention (its graph API,
// cudnn_graph.h): forward with the softmax statistics, and backward. BF16
// q, k, v, out, dout, dq, dk, dv in
// the layout of the rest of the backend ([B, T, heads, D], read in place
// through strides) and F32 statistics
// [B, heads, T]: the same logsumexp of the scaled scores as our kernels' lse,
// so either side's forward feeds either side's backward.
//
// The default under BF16 storage (HESSGPT_ATTENTION, cuda_backend_attention.cpp;
// "ours" turns it off): where the library is
// missing or has no engine for a shape, the calls return false, say why once
// on the log, and the backend runs its own kernels.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "backend/cuda/device_scratch.h"

namespace hessgpt::cuda {

class CudnnGraph;

struct CudnnAttnShape {
  int64_t b = 0, t = 0, h = 0, kv = 0, d = 0;
  float scale = 0.0f;
  auto key() const { return std::make_tuple(b, t, h, kv, d, scale); }
};

class CudnnAttention {
 public:
  explicit CudnnAttention(cudaStream_t stream);
  ~CudnnAttention();
  CudnnAttention(const CudnnAttention&) = delete;
  CudnnAttention& operator=(const CudnnAttention&) = delete;

  // Whether cuDNN could be loaded (its version, or why not, in status()).
  bool available();
  // Whether a backward plan exists for the shape (built now if need be).
  bool backward_planned(const CudnnAttnShape& s);
  // Each returns false, enqueuing nothing, when cuDNN cannot run the shape.
  // Pointers: device memory, BF16 as uint16_t.
  bool forward(uint16_t* out, float* stats, const uint16_t* q, const uint16_t* k,
               const uint16_t* v, const CudnnAttnShape& s);
  bool backward(uint16_t* dq, uint16_t* dk, uint16_t* dv, const uint16_t* dout,
                const uint16_t* q, const uint16_t* k, const uint16_t* v, const uint16_t* out,
                const float* stats, const CudnnAttnShape& s);
  // "cuDNN 9.19.0" or why it is unavailable, plus the plans built so far.
  std::string status();
  // This GPU's properties as cuDNN plans with them, in their JSON form (saved,
  // they plan without the GPU: cudnn_sdpa_graph_test.cpp); "" when cuDNN is
  // unavailable.
  std::string device_properties_json();
  // Calls that ran on cuDNN (tests check the fused path really ran).
  int64_t calls() const { return calls_; }

 private:
  // A shape's plan, built on first use; null when cuDNN cannot run it.
  const CudnnGraph* plan(bool backward, const CudnnAttnShape& s);

  cudaStream_t stream_;
  void* handle_ = nullptr;  // cudnnHandle_t, created on first use
  bool tried_ = false;
  std::string why_unavailable_;
  // Keyed by (backward, shape); null graphs: shapes that failed (not retried).
  std::map<std::tuple<bool, int64_t, int64_t, int64_t, int64_t, int64_t, float>,
           std::unique_ptr<CudnnGraph>>
      plans_;
  DeviceScratch workspace_;
  int64_t calls_ = 0;
};

}  // namespace hessgpt::cuda
