// The Model's LoRA side: adapter storage, initialisation, merging, and the
// adapted projection used by forward and backward.
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
  arena_ = Buffer();
}

void Model::project(int64_t layer, LoraTarget target, int weight, const Tensor& y,
                    const Tensor& x, bool accumulate) {
  backend_.matmul(y, x, false, param(weight), true, 1.0f, accumulate ? 1.0f : 0.0f);
  if (!has_lora()) return;
  const LoraLayerIndex& li = lora_layout_.layers[static_cast<size_t>(layer)];
  const int t = static_cast<int>(target);
  if (li.a[static_cast<size_t>(t)] < 0) return;
  const Tensor& u = acts_.layers[static_cast<size_t>(layer)].lora_u[static_cast<size_t>(t)];
  backend_.matmul(u, x, false, lora_param(li.a[static_cast<size_t>(t)]), true, 1.0f, 0.0f);
  backend_.matmul(y, u, false, lora_param(li.b[static_cast<size_t>(t)]), true,
                  static_cast<float>(lora_config_.scale()), 1.0f);
}

void Model::project_backward(int64_t layer, LoraTarget target, int weight, const Tensor& dx,
                             const Tensor& dy, const Tensor& x, float dx_beta) {
  if (trains_base()) backend_.matmul(grad(weight), dy, true, x, false, 1.0f, 1.0f);
  backend_.matmul(dx, dy, false, param(weight), false, 1.0f, dx_beta);
  if (!has_lora()) return;
  const LoraLayerIndex& li = lora_layout_.layers[static_cast<size_t>(layer)];
  const int t = static_cast<int>(target);
  const int a = li.a[static_cast<size_t>(t)], b = li.b[static_cast<size_t>(t)];
  if (a < 0) return;
  const float s = static_cast<float>(lora_config_.scale());
  const Tensor& u = acts_.layers[static_cast<size_t>(layer)].lora_u[static_cast<size_t>(t)];
  backend_.matmul(lora_grad(b), dy, true, u, false, s, 1.0f);           // dB += s dy^T u
  backend_.matmul(acts_.lora_du, dy, false, lora_param(b), false, s, 0.0f);  // du = s dy B
  backend_.matmul(lora_grad(a), acts_.lora_du, true, x, false, 1.0f, 1.0f);  // dA += du^T x
  backend_.matmul(dx, acts_.lora_du, false, lora_param(a), false, 1.0f, 1.0f);  // dx += du A
}

}  // namespace hessgpt
