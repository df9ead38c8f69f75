// The operation graphs cuDNN's fused flash-attention engine recognises, in
// the backend API's own terms (cuDNN 9.x before the single-op forms of 9.21):
// the forward's two products with the scale, the causal mask and a softmax
// that also writes its statistics between them; the backward's recomputed
// scores and its four products, as cuDNN's own frontend spells them out.
// Transposed operands are strided views of the same memory (no copies).
#pragma once

#include <cudnn_graph.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/attention_cudnn.h"
#include "backend/cuda/cudnn_graph.h"

namespace hessgpt::cuda {

// The uids of the real tensors: the keys of the variant pack.
enum CudnnSdpaUid : int64_t {
  kSdpaQ = 1, kSdpaK, kSdpaV, kSdpaO, kSdpaStats, kSdpaScale, kSdpaFill,
  kSdpaDO = 101, kSdpaDQ, kSdpaDK, kSdpaDV, kSdpaOne, kSdpaSoftmaxSum, kSdpaDqAccum,
};

// Details on which cuDNN's frontend versions differ; plans are tried with
// each in turn (cudnn_sdpa_variants) until one finalises.
// dQ is BF16, as the frontend writes it. An F32 dQ (the accumulator written
// out as is) passes cuDNN's support checks, but on an H200 with cuDNN 9.19 it
// wrote only the first half of dQ, as if sized for BF16.
struct CudnnSdpaVariant {
  cudnnDataType_t index_precision = CUDNN_DATA_FLOAT;  // GEN_INDEX's math precision
  cudnnDataType_t k_view_type = CUDNN_DATA_FLOAT;      // the backward's untransposed K view
  std::string name() const;
};
// The variants to try for a pass, most likely first.
std::vector<CudnnSdpaVariant> cudnn_sdpa_variants(bool backward);

// Why cuDNN `version` (cudnnGetVersion's number) cannot run shape s, or ""
// when it can: the gates of cuDNN's frontend for this graph on Hopper.
std::string cudnn_sdpa_unsupported(size_t version, const CudnnAttnShape& s);

void build_sdpa_forward(CudnnGraph& g, const CudnnAttnShape& s, const CudnnSdpaVariant& v);
void build_sdpa_backward(CudnnGraph& g, const CudnnAttnShape& s, const CudnnSdpaVariant& v);

// A finished plan for one pass, from the first variant whose plan finalises
// (`variant` names it); null when none does, with each variant's error in
// `why`. For the handle's GPU, or (handle null) for saved device properties.
// prefer_config: the heuristics' config to try first (CudnnGraph::finish).
std::unique_ptr<CudnnGraph> plan_sdpa(const CudnnApi& api, cudnnHandle_t handle,
                                      const CudnnDescriptor* device, bool backward,
                                      const CudnnAttnShape& s, CudnnSdpaVariant* variant,
                                      std::string* why, int64_t prefer_config = -1);

// The backward's own F32 buffers, placed before the plan's workspace: the dQ
// accumulator [B, H, T, D] and the row sums of dO * O [B, H, T], each at a
// 256-byte boundary.
struct SdpaBackwardBuffers {
  int64_t dq_accum = 0, softmax_sum = 0, plan = 0;  // byte offsets
  int64_t bytes = 0;                                // before the plan's workspace
};
SdpaBackwardBuffers sdpa_backward_buffers(const CudnnAttnShape& s);

}  // namespace hessgpt::cuda
