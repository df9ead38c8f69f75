// A thin C++ layer over cuDNN's backend graph API (cudnn_api.h): descriptors
// that free themselves, attribute setters that check, and the steps every
// graph takes (tensors, operations, graph, heuristics, plan, variant pack).
// Errors throw cuda::CudnnError with cuDNN's own message; callers that can
// fall back (the fused attention) catch it.
#pragma once

#include <cudnn_graph.h>

#include <cstdint>
#include <deque>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/cudnn_api.h"

namespace hessgpt::cuda {

class CudnnError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One backend descriptor, destroyed with its owner.
class CudnnDescriptor {
 public:
  CudnnDescriptor() = default;
  CudnnDescriptor(const CudnnApi& api, cudnnBackendDescriptorType_t type, const char* what);
  ~CudnnDescriptor();
  CudnnDescriptor(CudnnDescriptor&& o) noexcept
      : api_(o.api_), d_(std::exchange(o.d_, nullptr)), what_(o.what_) {}
  CudnnDescriptor& operator=(CudnnDescriptor&& o) noexcept;
  CudnnDescriptor(const CudnnDescriptor&) = delete;
  CudnnDescriptor& operator=(const CudnnDescriptor&) = delete;

  cudnnBackendDescriptor_t get() const { return d_; }
  // Sets `count` values of `type` (throws CudnnError naming the attribute).
  CudnnDescriptor& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
                       int64_t count, const void* values);
  CudnnDescriptor& set_i64(cudnnBackendAttributeName_t name, int64_t v) {
    return set(name, CUDNN_TYPE_INT64, 1, &v);
  }
  CudnnDescriptor& set_i64s(cudnnBackendAttributeName_t name, const std::vector<int64_t>& v) {
    return set(name, CUDNN_TYPE_INT64, static_cast<int64_t>(v.size()), v.data());
  }
  CudnnDescriptor& set_bool(cudnnBackendAttributeName_t name, bool v) {
    return set(name, CUDNN_TYPE_BOOLEAN, 1, &v);
  }
  CudnnDescriptor& set_type(cudnnBackendAttributeName_t name, cudnnDataType_t v) {
    return set(name, CUDNN_TYPE_DATA_TYPE, 1, &v);
  }
  CudnnDescriptor& set_desc(cudnnBackendAttributeName_t name, const CudnnDescriptor& v) {
    cudnnBackendDescriptor_t d = v.get();
    return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &d);
  }
  CudnnDescriptor& finalize();

 private:
  const CudnnApi* api_ = nullptr;
  cudnnBackendDescriptor_t d_ = nullptr;
  const char* what_ = "";
};

// Throws CudnnError "<what>: <status name>: <cuDNN's last message>" unless ok.
void cudnn_check(const CudnnApi& api, cudnnStatus_t status, const std::string& what);

// A tensor of the graph: real ones carry a uid the variant pack names,
// virtual ones (intermediates) never leave the fused kernel.
struct CudnnTensorSpec {
  int64_t uid = 0;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  std::vector<int64_t> dims, strides;
  bool is_virtual = false;
  bool by_value = false;  // a host scalar passed in the variant pack
};

// The strides of a packed row-major tensor of these dims.
std::vector<int64_t> packed_strides(const std::vector<int64_t>& dims);

// One operation graph and its execution plan: tensors and operations added in
// the order of the graph, then finish(), which picks the heuristics' first
// engine config whose plan finalises. Everything the plan was built from
// lives as long as this object does.
class CudnnGraph {
 public:
  // Planned for the handle's device, or (handle null) for `device`: saved
  // device properties, which plan without a GPU (cuDNN 9.8+).
  CudnnGraph(const CudnnApi& api, cudnnHandle_t handle, const CudnnDescriptor* device = nullptr)
      : api_(api), handle_(handle), device_(device) {}
  CudnnGraph(const CudnnGraph&) = delete;
  CudnnGraph& operator=(const CudnnGraph&) = delete;

  // A finalised tensor descriptor, kept alive by the graph.
  const CudnnDescriptor& tensor(const CudnnTensorSpec& spec);
  // c = a b (batched over the leading dims), FP32 accumulation.
  void matmul(const CudnnDescriptor& a, const CudnnDescriptor& b, const CudnnDescriptor& c);
  // y = op(x [, b]), in `precision`; t: BINARY_SELECT's selector (y = t ? x : b);
  // axis: GEN_INDEX's.
  struct Pointwise {
    const CudnnDescriptor* b = nullptr;
    const CudnnDescriptor* t = nullptr;
    int64_t axis = -1;
    cudnnDataType_t precision = CUDNN_DATA_FLOAT;
  };
  void pointwise(cudnnPointwiseMode_t mode, const CudnnDescriptor& x, const CudnnDescriptor& y,
                 const Pointwise& more);
  void pointwise(cudnnPointwiseMode_t mode, const CudnnDescriptor& x, const CudnnDescriptor& y) {
    pointwise(mode, x, y, Pointwise{});
  }
  // y = reduce(x) over the dims where y's extent is smaller (1, or a group).
  void reduction(cudnnReduceTensorOp_t op, const CudnnDescriptor& x, const CudnnDescriptor& y);
  // y: another view (dims and strides) of x.
  void reshape(const CudnnDescriptor& x, const CudnnDescriptor& y);
  // The operation graph and its heuristics (mode A): how many engine configs
  // pass their engines' support checks for it (computed once).
  int64_t engine_configs();
  // Those, then the plan of the first config that finalises, starting with
  // config `prefer` where it is one of them (for A/B timings of the configs).
  // Throws CudnnError saying why none did.
  void finish(int64_t prefer = -1);
  // What engine config i of engine_configs() is: "engine 6 (KERNEL_CFG 26)",
  // the engine's global index and its knob choices by name.
  std::string config_text(int64_t i);

  const CudnnDescriptor& plan() const { return plan_; }
  int64_t workspace_bytes() const { return workspace_; }
  // Which of the heuristics' configs the plan uses ("config 0 of 3: engine 6
  // (KERNEL_CFG 26)").
  const std::string& engine() const { return engine_; }

 private:
  CudnnDescriptor& keep(CudnnDescriptor d);
  const CudnnApi& api_;
  cudnnHandle_t handle_;
  const CudnnDescriptor* device_;
  std::deque<CudnnDescriptor> kept_;  // everything, in creation order (a deque: stable references)
  std::vector<cudnnBackendDescriptor_t> ops_;  // in graph order, owned by kept_
  int64_t configs_ = -1;     // engine_configs(), once known
  size_t first_config_ = 0;  // where in kept_ the configs start
  CudnnDescriptor plan_;
  int64_t workspace_ = 0;
  std::string engine_;
};

// A device's properties as cuDNN plans with them (CUDNN_BACKEND_DEVICEPROP_
// DESCRIPTOR, cuDNN 9.8+): from a handle's GPU, or from their JSON form,
// which is how they are saved to plan on a machine without that GPU.
CudnnDescriptor cudnn_device_properties(const CudnnApi& api, cudnnHandle_t handle);
CudnnDescriptor cudnn_device_properties(const CudnnApi& api, const std::string& json);
std::string cudnn_device_properties_json(const CudnnApi& api, const CudnnDescriptor& props);

// Runs a plan: device (or, for by-value tensors, host) pointers by uid.
void cudnn_execute(const CudnnApi& api, cudnnHandle_t handle, const CudnnDescriptor& plan,
                   const std::vector<std::pair<int64_t, void*>>& pointers, void* workspace);

}  // namespace hessgpt::cuda
