// The Model's LoRA side: adapter storage, initialisation, merging, and the
// adapted projection used by forward and backward.
#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "model/model.h"

namespace hessgpt {

namespace {
Tensor view_of(const Buffer& buf, DType dtype, const ParamInfo& p) {
  return buf.tensor(dtype, {p.shape[0], p.shape[1]}, static_cast<size_t>(p.offset) * dtype_size(dtype));
}
}  // namespace

void Model::enable_lora(const LoraConfig& lora, uint64_t seed) {
  HG_CHECK(!has_lora(), "LoRA is already enabled");
  HG_CHECK(!arena_.data(), "enable LoRA before the first forward pass");
  lora_layout_ = make_lora_layout(config_, lora);
  lora_config_ = lora;
  lora_rank_ = lora.rank;
  lora_dropout_seed_ = seed;
  const size_t bytes = static_cast<size_t>(lora_layout_.params.total) * dtype_size(dtype_);
  lora_params_ = Buffer(&backend_, bytes);
  lora_grads_ = Buffer(&backend_, bytes);
  backend_.fill(lora_grads(), 0.0);
  // PEFT's default: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming-uniform, a = sqrt 5), B = 0.
  Rng rng(seed);
  std::vector<float> values(static_cast<size_t>(lora_layout_.params.total), 0.0f);
  for (const ParamInfo& p : lora_layout_.params.params) {
    if (p.name.find("lora_A") == std::string::npos) continue;
    const double bound = 1.0 / std::sqrt(static_cast<double>(p.shape[1]));
    for (int64_t i = 0; i < p.numel; ++i)
      values[static_cast<size_t>(p.offset + i)] = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
  }
  set_lora_params_host(values);
  grads_ = Buffer();  // the frozen base needs no gradients
  const int64_t widest = std::max(config_.hidden_size, config_.head_dim);
  norm_scratch_ = Buffer(&backend_, static_cast<size_t>(widest) * dtype_size(dtype_));
}

Tensor Model::lora_params() const {
  HG_CHECK(has_lora(), "LoRA not enabled");
  return lora_params_.tensor(dtype_, {lora_layout_.params.total});
}
Tensor Model::lora_grads() const {
  HG_CHECK(has_lora(), "LoRA not enabled");
  return lora_grads_.tensor(dtype_, {lora_layout_.params.total});
}
Tensor Model::lora_param(int index) const {
  return view_of(lora_params_, dtype_, lora_layout_.params.params[static_cast<size_t>(index)]);
}
Tensor Model::lora_grad(int index) const {
  return view_of(lora_grads_, dtype_, lora_layout_.params.params[static_cast<size_t>(index)]);
}
void Model::zero_lora_grads() { backend_.fill(lora_grads(), 0.0); }
void Model::set_lora_params_host(const std::vector<float>& v) {
  HG_CHECK(static_cast<int64_t>(v.size()) == lora_layout_.params.total, "LoRA parameter count mismatch");
  upload_floats(backend_, lora_params(), v);
}
std::vector<float> Model::lora_params_host() const { return download_floats(backend_, lora_params()); }
std::vector<float> Model::lora_grads_host() const { return download_floats(backend_, lora_grads()); }

Tensor Model::norm_grad(int index) {
  if (trains_base()) return grad(index);
  const int64_t n = layout_.params[static_cast<size_t>(index)].numel;
  return norm_scratch_.tensor(dtype_, {n});
}

void Model::merge_lora() {
  HG_CHECK(has_lora(), "LoRA not enabled");
  const float s = static_cast<float>(lora_config_.scale());
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    const LoraLayerIndex& li = lora_layout_.layers[static_cast<size_t>(l)];
    for (int t = 0; t < kLoraTargets; ++t) {
      if (li.a[static_cast<size_t>(t)] < 0) continue;
      const ParamInfo* base = layout_.find(lora_base_name(l, static_cast<LoraTarget>(t)));
      HG_CHECK(base != nullptr, "no base weight for a LoRA target");
      // W[out, in] += s * B[out, r] A[r, in]
      backend_.matmul(param(static_cast<int>(base - layout_.params.data())),
                      lora_param(li.b[static_cast<size_t>(t)]), false,
                      lora_param(li.a[static_cast<size_t>(t)]), false, s, 1.0f);
    }
  }
  lora_rank_ = 0;
  lora_layout_ = LoraLayout{};
  lora_params_ = Buffer();
  lora_grads_ = Buffer();
  lora_dropout_scratch_ = Buffer();
  arena_ = Buffer();
}

void Model::begin_lora_pass(bool training) {
  lora_dropout_active_ = training && has_lora() && lora_config_.dropout > 0;
}

void Model::end_lora_pass() {
  lora_dropout_active_ = false;
  ++lora_dropout_counter_;
}

LoraDropoutKey Model::lora_dropout_key_at(int64_t layer, int target) const {
  return lora_dropout_key(lora_dropout_seed_, lora_dropout_counter_, layer, target, lora_config_.dropout);
}

// Rows per dropout chunk: about 1 Mi elements of the widest adapted input, so
// the scratch stays a few MiB at any batch instead of another [N, in] tensor.
int64_t Model::lora_dropout_chunk_rows() {
  const auto mask = lora_config_.target_mask();
  int64_t widest = 1;
  for (int t = 0; t < kLoraTargets; ++t)
    if (mask[static_cast<size_t>(t)])
      widest = std::max(widest, lora_in_features(config_, static_cast<LoraTarget>(t)));
  const int64_t rows = std::max<int64_t>(1, (int64_t{1} << 20) / widest);
  const size_t bytes = static_cast<size_t>(rows * widest) * dtype_size(dtype_);
  if (lora_dropout_scratch_.bytes() < bytes) lora_dropout_scratch_ = Buffer(&backend_, bytes);
  return rows;
}

void Model::apply_lora_dropout(const LoraDropoutKey& key, const Tensor& dst, const Tensor& src,
                               int64_t row0, bool accumulate) {
  const int64_t rows = src.rows(), cols = src.cols();
  auto run = [&](auto* d, const auto* s) {
    lora_dropout_apply(key, d, s, row0, rows, cols, accumulate);
  };
  if (dst.device == Device::CPU && src.device == Device::CPU) {
    if (dtype_ == DType::F64) run(dst.as<double>(), src.as<const double>());
    else run(dst.as<float>(), src.as<const float>());
    return;
  }
  // Device memory: stage through the host until a backend kernel exists.
  std::vector<float> d = download_floats(backend_, dst), s = download_floats(backend_, src);
  run(d.data(), static_cast<const float*>(s.data()));
  upload_floats(backend_, dst, d);
}

namespace {
// 2-D [rows, cols] reading, so that slice() takes rows whatever the tensor's shape.
Tensor as_rows(const Tensor& t) { return t.view({t.rows(), t.cols()}); }
}  // namespace

void Model::project(int64_t layer, LoraTarget target, int weight, const Tensor& y,
                    const Tensor& x, const Tensor* residual) {
  const Tensor w = product_weight(weight);
  if (residual) backend_.matmul_add(y, x, false, w, true, *residual);
  else backend_.matmul(y, x, false, w, true, 1.0f, 0.0f);
  if (!has_lora()) return;
  const LoraLayerIndex& li = lora_layout_.layers[static_cast<size_t>(layer)];
  const int t = static_cast<int>(target);
  if (li.a[static_cast<size_t>(t)] < 0) return;
  const Tensor& u = acts_.layers[static_cast<size_t>(layer)].lora_u[static_cast<size_t>(t)];
  const Tensor a = lora_param(li.a[static_cast<size_t>(t)]);
  if (!lora_dropout_active_) {
    backend_.matmul(u, x, false, a, true, 1.0f, 0.0f);
  } else {
    // u = dropout(x) A^T a chunk of rows at a time: the dropped copy of x never exists whole.
    const LoraDropoutKey key = lora_dropout_key_at(layer, t);
    const Tensor xr = as_rows(x), ur = as_rows(u);
    const int64_t n = xr.rows(), in = xr.cols(), chunk = lora_dropout_chunk_rows();
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
      const int64_t r1 = std::min(n, r0 + chunk);
      const Tensor xd = lora_dropout_scratch_.tensor(dtype_, {r1 - r0, in});
      apply_lora_dropout(key, xd, xr.slice(r0, r1), r0, false);
      backend_.matmul(ur.slice(r0, r1), xd, false, a, true, 1.0f, 0.0f);
    }
  }
  backend_.matmul(y, u, false, lora_param(li.b[static_cast<size_t>(t)]), true,
                  static_cast<float>(lora_config_.scale()), 1.0f);
}

void Model::project_backward(int64_t layer, LoraTarget target, int weight, const Tensor& dx,
                             const Tensor& dy, const Tensor& x, float dx_beta) {
  if (trains_base()) backend_.matmul(grad(weight), dy, true, x, false, 1.0f, 1.0f);
  backend_.matmul(dx, dy, false, product_weight(weight), false, 1.0f, dx_beta);
  if (!has_lora()) return;
  const LoraLayerIndex& li = lora_layout_.layers[static_cast<size_t>(layer)];
  const int t = static_cast<int>(target);
  const int a = li.a[static_cast<size_t>(t)], b = li.b[static_cast<size_t>(t)];
  if (a < 0) return;
  const float s = static_cast<float>(lora_config_.scale());
  const Tensor& u = acts_.layers[static_cast<size_t>(layer)].lora_u[static_cast<size_t>(t)];
  backend_.matmul(lora_grad(b), dy, true, u, false, s, 1.0f);           // dB += s dy^T u
  backend_.matmul(acts_.lora_du, dy, false, lora_param(b), false, s, 0.0f);  // du = s dy B
  if (!lora_dropout_active_) {
    backend_.matmul(lora_grad(a), acts_.lora_du, true, x, false, 1.0f, 1.0f);  // dA += du^T x
    backend_.matmul(dx, acts_.lora_du, false, lora_param(a), false, 1.0f, 1.0f);  // dx += du A
    return;
  }
  // The forward's masks, regenerated from the same key: dA += du^T dropout(x),
  // dx += dropout'(du A) (same mask and 1/(1-p) scale).
  const LoraDropoutKey key = lora_dropout_key_at(layer, t);
  const Tensor xr = as_rows(x), dxr = as_rows(dx), dur = as_rows(acts_.lora_du);
  const int64_t n = xr.rows(), in = xr.cols(), chunk = lora_dropout_chunk_rows();
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t r1 = std::min(n, r0 + chunk);
    const Tensor scratch = lora_dropout_scratch_.tensor(dtype_, {r1 - r0, in});
    const Tensor du = dur.slice(r0, r1);
    apply_lora_dropout(key, scratch, xr.slice(r0, r1), r0, false);
    backend_.matmul(lora_grad(a), du, true, scratch, false, 1.0f, 1.0f);
    backend_.matmul(scratch, du, false, lora_param(a), false, 1.0f, 0.0f);
    apply_lora_dropout(key, dxr.slice(r0, r1), scratch, r0, true);
  }
}

}  // namespace hessgpt
