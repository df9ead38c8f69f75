#include "backend/cuda/cudnn_graph.h"

namespace hessgpt::cuda {

void cudnn_check(const CudnnApi& api, cudnnStatus_t status, const std::string& what) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  char last[512] = {0};
  api.last_error_string(last, sizeof last);
  throw CudnnError("cuDNN " + what + ": " + api.error_string(status) +
                   (last[0] ? std::string(" (") + last + ")" : std::string()));
}

CudnnDescriptor::CudnnDescriptor(const CudnnApi& api, cudnnBackendDescriptorType_t type,
                                 const char* what)
    : api_(&api), what_(what) {
  cudnn_check(api, api.create_descriptor(type, &d_), std::string("create ") + what);
}

CudnnDescriptor::~CudnnDescriptor() {
  if (d_) api_->destroy_descriptor(d_);
}

CudnnDescriptor& CudnnDescriptor::operator=(CudnnDescriptor&& o) noexcept {
  if (this != &o) {
    if (d_) api_->destroy_descriptor(d_);
    api_ = o.api_;
    d_ = std::exchange(o.d_, nullptr);
    what_ = o.what_;
  }
  return *this;
}

CudnnDescriptor& CudnnDescriptor::set(cudnnBackendAttributeName_t name,
                                      cudnnBackendAttributeType_t type, int64_t count,
                                      const void* values) {
  cudnn_check(*api_, api_->set_attribute(d_, name, type, count, values),
              std::string(what_) + " attribute " + std::to_string(static_cast<int>(name)));
  return *this;
}

CudnnDescriptor& CudnnDescriptor::finalize() {
  cudnn_check(*api_, api_->finalize(d_), std::string("finalize ") + what_);
  return *this;
}

namespace {
// Reads up to `count` values of attribute `name` into `values` (throws
// CudnnError naming `what`); returns how many there are.
int64_t get_attribute(const CudnnApi& api, cudnnBackendDescriptor_t d,
                      cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
                      int64_t count, void* values, const char* what) {
  int64_t got = 0;
  cudnn_check(api, api.get_attribute(d, name, type, count, &got, values), what);
  return got;
}
}  // namespace

std::vector<int64_t> packed_strides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) s[i - 1] = s[i] * dims[i];
  return s;
}

CudnnDescriptor& CudnnGraph::keep(CudnnDescriptor d) {
  kept_.push_back(std::move(d));
  return kept_.back();
}

const CudnnDescriptor& CudnnGraph::tensor(const CudnnTensorSpec& spec) {
  CudnnDescriptor& t = keep(CudnnDescriptor(api_, CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor"));
  t.set_type(CUDNN_ATTR_TENSOR_DATA_TYPE, spec.type)
      .set_i64s(CUDNN_ATTR_TENSOR_DIMENSIONS, spec.dims)
      .set_i64s(CUDNN_ATTR_TENSOR_STRIDES, spec.strides)
      .set_i64(CUDNN_ATTR_TENSOR_UNIQUE_ID, spec.uid)
      .set_i64(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, 16);
  if (spec.is_virtual) t.set_bool(CUDNN_ATTR_TENSOR_IS_VIRTUAL, true);
  if (spec.by_value) t.set_bool(CUDNN_ATTR_TENSOR_IS_BY_VALUE, true);
  return t.finalize();
}

void CudnnGraph::matmul(const CudnnDescriptor& a, const CudnnDescriptor& b,
                               const CudnnDescriptor& c) {
  CudnnDescriptor& desc = keep(CudnnDescriptor(api_, CUDNN_BACKEND_MATMUL_DESCRIPTOR, "matmul"));
  const double no_padding = 0.0;
  desc.set_type(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_DATA_FLOAT)
      .set(CUDNN_ATTR_MATMUL_PADDING_VALUE, CUDNN_TYPE_DOUBLE, 1, &no_padding)
      .finalize();
  CudnnDescriptor& op =
      keep(CudnnDescriptor(api_, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "matmul operation"));
  op.set_desc(CUDNN_ATTR_OPERATION_MATMUL_ADESC, a)
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_BDESC, b)
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_CDESC, c)
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_DESC, desc)
      .finalize();
  ops_.push_back(op.get());
}

void CudnnGraph::pointwise(cudnnPointwiseMode_t mode, const CudnnDescriptor& x,
                           const CudnnDescriptor& y, const Pointwise& more) {
  CudnnDescriptor& desc =
      keep(CudnnDescriptor(api_, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise"));
  desc.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode)
      .set_type(CUDNN_ATTR_POINTWISE_MATH_PREC, more.precision);
  if (more.axis >= 0) desc.set_i64(CUDNN_ATTR_POINTWISE_AXIS, more.axis);
  desc.finalize();
  const float one = 1.0f;
  CudnnDescriptor& op = keep(
      CudnnDescriptor(api_, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "pointwise operation"));
  op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, desc)
      .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x)
      .set(CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one)
      .set(CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one);
  if (more.b) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *more.b);
  if (more.t) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_TDESC, *more.t);
  op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y).finalize();
  ops_.push_back(op.get());
}

void CudnnGraph::reduction(cudnnReduceTensorOp_t reduce, const CudnnDescriptor& x,
                                  const CudnnDescriptor& y) {
  CudnnDescriptor& desc =
      keep(CudnnDescriptor(api_, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, "reduction"));
  desc.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &reduce)
      .set_type(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_DATA_FLOAT);
  // Said explicitly from 9.11 on, as cuDNN's own frontend does.
  if (api_.get_version() >= 91100) desc.set_bool(CUDNN_ATTR_REDUCTION_IS_DETERMINISTIC, false);
  desc.finalize();
  CudnnDescriptor& op = keep(
      CudnnDescriptor(api_, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, "reduction operation"));
  op.set_desc(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x)
      .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y)
      .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_DESC, desc)
      .finalize();
  ops_.push_back(op.get());
}

void CudnnGraph::reshape(const CudnnDescriptor& x, const CudnnDescriptor& y) {
  CudnnDescriptor& op = keep(
      CudnnDescriptor(api_, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, "reshape operation"));
  op.set_desc(CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x)
      .set_desc(CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y)
      .finalize();
  ops_.push_back(op.get());
}

int64_t CudnnGraph::engine_configs() {
  if (configs_ >= 0) return configs_;
  CudnnDescriptor& graph =
      keep(CudnnDescriptor(api_, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph"));
  if (handle_) graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle_);
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
            static_cast<int64_t>(ops_.size()), ops_.data())
      .finalize();
  CudnnDescriptor& heur =
      keep(CudnnDescriptor(api_, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "engine heuristics"));
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph)
      .set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  if (device_) heur.set_desc(CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, *device_);
  heur.finalize();
  const int64_t count = get_attribute(api_, heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, nullptr,
                                      "engine heuristics: count");
  first_config_ = kept_.size();
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i)
    raw.push_back(
        keep(CudnnDescriptor(api_, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config")).get());
  // The results are the configs that pass their engines' support checks.
  configs_ = count > 0 ? get_attribute(api_, heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, count, raw.data(),
                                       "engine heuristics: results")
                       : 0;
  return configs_;
}

void CudnnGraph::finish(int64_t prefer) {
  const int64_t returned = engine_configs();
  if (returned <= 0) throw CudnnError("cuDNN: no engine supports this operation graph");
  const size_t first = first_config_;
  std::vector<int64_t> order;
  if (prefer >= 0 && prefer < returned) order.push_back(prefer);
  for (int64_t i = 0; i < returned; ++i)
    if (i != prefer) order.push_back(i);
  std::string why;
  for (const int64_t i : order) {
    try {
      CudnnDescriptor plan(api_, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "execution plan");
      if (handle_) plan.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle_);
      if (device_) plan.set_desc(CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP, *device_);
      plan.set_desc(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, kept_[first + static_cast<size_t>(i)])
          .finalize();
      get_attribute(api_, plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64,
                    1, &workspace_, "execution plan: workspace size");
      plan_ = std::move(plan);
      engine_ = "config " + std::to_string(i) + " of " + std::to_string(returned) + ": " +
                config_text(i);
      return;
    } catch (const CudnnError& e) {
      why += std::string(why.empty() ? "" : "; ") + e.what();
    }
  }
  throw CudnnError("cuDNN: none of " + std::to_string(returned) +
                   " engine configs gave a plan: " + why);
}

namespace {
const char* knob_name(cudnnBackendKnobType_t k) {
  switch (k) {
    case CUDNN_KNOB_TYPE_SWIZZLE: return "SWIZZLE";
    case CUDNN_KNOB_TYPE_TILE_SIZE: return "TILE_SIZE";
    case CUDNN_KNOB_TYPE_EDGE: return "EDGE";
    case CUDNN_KNOB_TYPE_MULTIPLY: return "MULTIPLY";
    case CUDNN_KNOB_TYPE_SPLIT_K_BUF: return "SPLIT_K_BUF";
    case CUDNN_KNOB_TYPE_TILEK: return "TILEK";
    case CUDNN_KNOB_TYPE_STAGES: return "STAGES";
    case CUDNN_KNOB_TYPE_REDUCTION_MODE: return "REDUCTION_MODE";
    case CUDNN_KNOB_TYPE_SPLIT_K_SLC: return "SPLIT_K_SLC";
    case CUDNN_KNOB_TYPE_IDX_MODE: return "IDX_MODE";
    case CUDNN_KNOB_TYPE_SPECFILT: return "SPECFILT";
    case CUDNN_KNOB_TYPE_KERNEL_CFG: return "KERNEL_CFG";
    case CUDNN_KNOB_TYPE_WORKSPACE: return "WORKSPACE";
    case CUDNN_KNOB_TYPE_TILE_CGA_M: return "TILE_CGA_M";
    case CUDNN_KNOB_TYPE_TILE_CGA_N: return "TILE_CGA_N";
    case CUDNN_KNOB_TYPE_BLOCK_SIZE: return "BLOCK_SIZE";
    case CUDNN_KNOB_TYPE_OCCUPANCY: return "OCCUPANCY";
    case CUDNN_KNOB_TYPE_ARRAY_SIZE_PER_THREAD: return "ARRAY_SIZE_PER_THREAD";
    case CUDNN_KNOB_TYPE_SPLIT_COLS: return "SPLIT_COLS";
    case CUDNN_KNOB_TYPE_TILE_ROWS: return "TILE_ROWS";
    case CUDNN_KNOB_TYPE_TILE_COLS: return "TILE_COLS";
    case CUDNN_KNOB_TYPE_LOAD_SIZE: return "LOAD_SIZE";
    default: return nullptr;
  }
}
}  // namespace

std::string CudnnGraph::config_text(int64_t i) {
  if (i < 0 || i >= engine_configs())
    throw CudnnError("cuDNN: engine config " + std::to_string(i) + " out of range");
  const cudnnBackendDescriptor_t cfg = kept_[first_config_ + static_cast<size_t>(i)].get();
  CudnnDescriptor engine(api_, CUDNN_BACKEND_ENGINE_DESCRIPTOR, "engine");
  cudnnBackendDescriptor_t engine_d = engine.get();
  int64_t index = -1;
  get_attribute(api_, cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                &engine_d, "engine config: engine");
  get_attribute(api_, engine_d, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &index,
                "engine: global index");
  // Knob choices come back into descriptors made beforehand: as many as there
  // are knob types is always enough.
  std::vector<CudnnDescriptor> knobs;
  std::vector<cudnnBackendDescriptor_t> raw;
  knobs.reserve(CUDNN_KNOB_TYPE_COUNTS);
  for (int k = 0; k < CUDNN_KNOB_TYPE_COUNTS; ++k) {
    knobs.emplace_back(api_, CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, "knob choice");
    raw.push_back(knobs.back().get());
  }
  const int64_t got =
      get_attribute(api_, cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                    static_cast<int64_t>(raw.size()), raw.data(), "engine config: knob choices");
  std::string text = "engine " + std::to_string(index);
  for (int64_t k = 0; k < got; ++k) {
    cudnnBackendKnobType_t type{};
    int64_t value = 0;
    const cudnnBackendDescriptor_t knob = raw[static_cast<size_t>(k)];
    get_attribute(api_, knob, CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &type,
                  "knob choice: type");
    get_attribute(api_, knob, CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &value,
                  "knob choice: value");
    const char* name = knob_name(type);
    text += (k == 0 ? " (" : ", ") +
            (name ? std::string(name) : "knob " + std::to_string(static_cast<int>(type))) + " " +
            std::to_string(value);
  }
  return got > 0 ? text + ")" : text;
}

CudnnDescriptor cudnn_device_properties(const CudnnApi& api, cudnnHandle_t handle) {
  CudnnDescriptor d(api, CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, "device properties");
  d.set(CUDNN_ATTR_DEVICEPROP_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle).finalize();
  return d;
}

CudnnDescriptor cudnn_device_properties(const CudnnApi& api, const std::string& json) {
  CudnnDescriptor d(api, CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, "device properties");
  d.set(CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR,
        static_cast<int64_t>(json.size()), json.data())
      .finalize();
  return d;
}

std::string cudnn_device_properties_json(const CudnnApi& api, const CudnnDescriptor& props) {
  const int64_t size = get_attribute(api, props.get(), CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION,
                                     CUDNN_TYPE_CHAR, 0, nullptr, "device properties: JSON size");
  std::string json(static_cast<size_t>(size), '\0');
  json.resize(static_cast<size_t>(
      get_attribute(api, props.get(), CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR,
                    size, json.data(), "device properties: JSON")));
  while (!json.empty() && json.back() == '\0') json.pop_back();
  return json;
}

void cudnn_execute(const CudnnApi& api, cudnnHandle_t handle, const CudnnDescriptor& plan,
                   const std::vector<std::pair<int64_t, void*>>& pointers, void* workspace) {
  std::vector<int64_t> uids;
  std::vector<void*> ptrs;
  for (const auto& [uid, p] : pointers) {
    uids.push_back(uid);
    ptrs.push_back(p);
  }
  CudnnDescriptor pack(api, CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, "variant pack");
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, static_cast<int64_t>(uids.size()),
           uids.data())
      .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR,
           static_cast<int64_t>(ptrs.size()), ptrs.data())
      .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace)
      .finalize();
  cudnn_check(api, api.execute(handle, plan.get(), pack.get()), "execute");
}

}  // namespace hessgpt::cuda
