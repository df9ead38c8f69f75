#include "backend/cuda/attention_cudnn.h"

#include <cmath>
#include <cstdlib>
#include <string_view>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "core/error.h"
#include "core/log.h"

#ifdef HESSGPT_HAVE_CUDNN
#include "backend/cuda/attention_cudnn_graphs.h"
#include "backend/cuda/cudnn_api.h"
#include "backend/cuda/cudnn_graph.h"
#else
namespace hessgpt::cuda {
class CudnnGraph {};
}  // namespace hessgpt::cuda
#endif

namespace hessgpt::cuda {

CudnnAttention::CudnnAttention(cudaStream_t stream) : stream_(stream) {}

CudnnAttention::~CudnnAttention() {
  plans_.clear();  // descriptors before the handle they were built with
#ifdef HESSGPT_HAVE_CUDNN
  if (handle_) cudnn()->destroy(static_cast<cudnnHandle_t>(handle_));
#endif
}

bool CudnnAttention::available() {
  if (tried_) return handle_ != nullptr;
  tried_ = true;
#ifdef HESSGPT_HAVE_CUDNN
  const CudnnApi* api = cudnn(&why_unavailable_);
  if (!api) return false;
  cudnnHandle_t h = nullptr;
  const cudnnStatus_t st = api->create(&h);
  if (st != CUDNN_STATUS_SUCCESS) {
    why_unavailable_ = std::string("cudnnCreate: ") + api->error_string(st);
    return false;
  }
  api->set_stream(h, stream_);
  handle_ = h;
  return true;
#else
  why_unavailable_ = "built without cuDNN's headers (set CUDNN_ROOT when configuring)";
  return false;
#endif
}

std::string CudnnAttention::status() {
  if (!available()) return "cuDNN unavailable: " + why_unavailable_;
#ifdef HESSGPT_HAVE_CUDNN
  const size_t v = cudnn()->get_version();
  std::string s = "cuDNN " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) +
                  "." + std::to_string(v % 100);
  for (const auto& [key, graph] : plans_) {
    const auto& [backward, b, t, h, kv, d, scale] = key;
    s += str_cat("; ", backward ? "backward" : "forward", " t=", t, ": ",
                 graph ? graph->engine() : "no plan");
  }
  return s;
#else
  return "";
#endif
}

std::string CudnnAttention::device_properties_json() {
  if (!available()) return "";
#ifdef HESSGPT_HAVE_CUDNN
  try {
    const CudnnDescriptor props = cudnn_device_properties(*cudnn(), static_cast<cudnnHandle_t>(handle_));
    return cudnn_device_properties_json(*cudnn(), props);
  } catch (const CudnnError& e) {
    HG_FAIL("attention: ", e.what());
  }
#else
  return "";
#endif
}

namespace {
std::string shape_text(const CudnnAttnShape& s) {
  return str_cat("b=", s.b, " t=", s.t, " h=", s.h, " kv=", s.kv, " d=", s.d);
}

#ifdef HESSGPT_HAVE_CUDNN
// HESSGPT_CUDNN_FORWARD_CONFIG / HESSGPT_CUDNN_BACKWARD_CONFIG: which of the
// heuristics' engine configs to try first (the log lists them), to time each
// (gpu-check's CUDNN_CONFIG_SWEEP); unset: the heuristics' order.
int64_t preferred_config(bool backward) {
  const char* name = backward ? "HESSGPT_CUDNN_BACKWARD_CONFIG" : "HESSGPT_CUDNN_FORWARD_CONFIG";
  const char* e = std::getenv(name);
  if (!e || !*e) return -1;
  char* end = nullptr;
  const long v = std::strtol(e, &end, 10);
  if (*end != '\0' || v < 0) HG_FAIL(name, " must be a config index, 0 or more (got '", e, "')");
  return v;
}

// "0: engine 6 (KERNEL_CFG 26); 1: ..." for the log.
std::string configs_text(CudnnGraph& g) {
  std::string text;
  for (int64_t i = 0; i < g.engine_configs(); ++i)
    text += str_cat(i == 0 ? "" : "; ", i, ": ", g.config_text(i));
  return text;
}
#endif
}  // namespace

const CudnnGraph* CudnnAttention::plan(bool backward, const CudnnAttnShape& s) {
  if (!available()) return nullptr;
#ifdef HESSGPT_HAVE_CUDNN
  const auto key = std::tuple_cat(std::make_tuple(backward), s.key());
  const auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();
  std::unique_ptr<CudnnGraph>& graph = plans_[key];  // stays null where cuDNN cannot run the shape
  if (const std::string no = cudnn_sdpa_unsupported(cudnn()->get_version(), s); !no.empty()) {
    log_warn("attention: cuDNN's fused attention does not take ", shape_text(s), ": ", no,
             "; our kernels run it");
    return nullptr;
  }
  // The variants differ in details cuDNN's versions disagree on: the first
  // whose plan finalises is kept.
  CudnnSdpaVariant variant;
  std::string why;
  graph = plan_sdpa(*cudnn(), static_cast<cudnnHandle_t>(handle_), nullptr, backward, s,
                    &variant, &why, preferred_config(backward));
  if (graph)
    log_info("attention: cuDNN fused ", backward ? "backward" : "forward", " for ",
             shape_text(s), " (", variant.name(), "): engine ", graph->engine(), ", workspace ",
             graph->workspace_bytes(), " bytes; configs offered: ", configs_text(*graph));
  else
    log_warn("attention: cuDNN has no fused ", backward ? "backward" : "forward", " for ",
             shape_text(s), "; our kernels run it. ", why);
  return graph.get();
#else
  (void)backward;
  (void)s;
  return nullptr;
#endif
}

bool CudnnAttention::backward_planned(const CudnnAttnShape& s) { return plan(true, s) != nullptr; }

namespace {
#ifdef HESSGPT_HAVE_CUDNN
// A run that fails after its plan was built is an error, not a fallback.
void execute(void* handle, const CudnnGraph& g,
             const std::vector<std::pair<int64_t, void*>>& pointers, void* workspace) {
  try {
    cudnn_execute(*cudnn(), static_cast<cudnnHandle_t>(handle), g.plan(), pointers, workspace);
  } catch (const CudnnError& e) {
    HG_FAIL("attention: ", e.what());
  }
}
#endif
}  // namespace

bool CudnnAttention::forward(uint16_t* out, float* stats, const uint16_t* q, const uint16_t* k,
                             const uint16_t* v, const CudnnAttnShape& s) {
  const CudnnGraph* g = plan(false, s);
  if (!g) return false;
#ifdef HESSGPT_HAVE_CUDNN
  // By-value scalars: host values, read when the work is enqueued.
  float scale = s.scale, fill = -INFINITY;
  execute(handle_, *g,
          {{kSdpaQ, const_cast<uint16_t*>(q)},
           {kSdpaK, const_cast<uint16_t*>(k)},
           {kSdpaV, const_cast<uint16_t*>(v)},
           {kSdpaO, out},
           {kSdpaStats, stats},
           {kSdpaScale, &scale},
           {kSdpaFill, &fill}},
          workspace_.get(static_cast<size_t>(g->workspace_bytes())));
  ++calls_;
  return true;
#else
  (void)out, (void)stats, (void)q, (void)k, (void)v;
  return false;
#endif
}

bool CudnnAttention::backward(uint16_t* dq, uint16_t* dk, uint16_t* dv, const uint16_t* dout,
                              const uint16_t* q, const uint16_t* k, const uint16_t* v,
                              const uint16_t* out, const float* stats, const CudnnAttnShape& s) {
  const CudnnGraph* g = plan(true, s);
  if (!g) return false;
#ifdef HESSGPT_HAVE_CUDNN
  const SdpaBackwardBuffers buf = sdpa_backward_buffers(s);
  char* ws = static_cast<char*>(workspace_.get(static_cast<size_t>(buf.bytes + g->workspace_bytes())));
  // cuDNN clears the dQ accumulator itself from 9.6 on (its frontend's note).
  if (cudnn()->get_version() < 90600)
    HG_CUDA_CHECK(cudaMemsetAsync(ws + buf.dq_accum, 0, static_cast<size_t>(buf.softmax_sum),
                                  stream_));
  float scale = s.scale, one = 1.0f, fill = -INFINITY;
  execute(handle_, *g,
          {{kSdpaQ, const_cast<uint16_t*>(q)},
           {kSdpaK, const_cast<uint16_t*>(k)},
           {kSdpaV, const_cast<uint16_t*>(v)},
           {kSdpaO, const_cast<uint16_t*>(out)},
           {kSdpaDO, const_cast<uint16_t*>(dout)},
           {kSdpaStats, const_cast<float*>(stats)},
           {kSdpaDQ, dq},
           {kSdpaDK, dk},
           {kSdpaDV, dv},
           {kSdpaScale, &scale},
           {kSdpaOne, &one},
           {kSdpaFill, &fill},
           {kSdpaSoftmaxSum, ws + buf.softmax_sum},
           {kSdpaDqAccum, ws + buf.dq_accum}},
          ws + buf.plan);
  ++calls_;
  return true;
#else
  (void)dq, (void)dk, (void)dv, (void)dout, (void)q, (void)k, (void)v, (void)out, (void)stats;
  return false;
#endif
}

}  // namespace hessgpt::cuda
