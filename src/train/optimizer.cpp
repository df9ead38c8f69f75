#include "train/optimizer.h"

#include <cmath>

namespace hessgpt {

AdamW::AdamW(Model& model, const AdamWConfig& config)
    : model_(model), lora_(model.has_lora()), config_(config) {
  if (!lora_) model_.enable_grads();
  const size_t bytes = static_cast<size_t>(layout().total) * dtype_size(model_.dtype());
  m_ = Buffer(&model_.backend(), bytes);
  v_ = Buffer(&model_.backend(), bytes);
  model_.backend().fill(first_moment(), 0.0);
  model_.backend().fill(second_moment(), 0.0);
}

double AdamW::grad_norm(double grad_scale) const {
  return std::sqrt(model_.backend().sum_squares(grads())) * std::abs(grad_scale);
}

double AdamW::step(double lr, double grad_scale) {
  const double norm = grad_norm(grad_scale);
  step_with_norm(lr, grad_scale, norm);
  return norm;
}

void AdamW::step_with_norm(double lr, double grad_scale, double norm) {
  double scale = grad_scale;
  if (config_.clip_norm > 0 && norm > config_.clip_norm) scale *= config_.clip_norm / norm;
  ++step_;
  Backend& be = model_.backend();
  const size_t esize = dtype_size(model_.dtype());
  const Tensor params = this->params(), grads = this->grads();
  const Tensor m = first_moment(), v = second_moment();
  auto range = [esize](const Tensor& t, int64_t offset, int64_t n) {
    return Tensor(static_cast<char*>(t.data) + static_cast<size_t>(offset) * esize, t.dtype,
                  t.device, {n});
  };
  // Consecutive parameters with the same decay are updated in one call.
  const auto& ps = layout().params;
  size_t i = 0;
  while (i < ps.size()) {
    size_t j = i + 1;
    while (j < ps.size() && ps[j].decays() == ps[i].decays()) ++j;
    const int64_t offset = ps[i].offset;
    const int64_t n = ps[j - 1].offset + ps[j - 1].numel - offset;
    AdamWParams hp;
    hp.lr = lr;
    hp.beta1 = config_.beta1;
    hp.beta2 = config_.beta2;
    hp.eps = config_.eps;
    hp.weight_decay = ps[i].decays() ? config_.weight_decay : 0.0;
    hp.step = step_;
    hp.grad_scale = scale;
    be.adamw_step(range(params, offset, n), range(grads, offset, n), range(m, offset, n),
                  range(v, offset, n), hp);
    i = j;
  }
}

}  // namespace hessgpt
