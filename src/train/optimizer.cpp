#include "train/optimizer.h"

#include <cmath>

namespace hessgpt {

std::vector<AdamWGroup> decay_groups(const ParamLayout& layout) {
  std::vector<AdamWGroup> groups;
  for (const ParamInfo& p : layout.params) {
    if (!groups.empty() && groups.back().decays == p.decays() &&
        groups.back().offset + groups.back().count == p.offset)
      groups.back().count += p.numel;
    else
      groups.push_back({p.offset, p.numel, p.decays()});
  }
  return groups;
}

AdamW::AdamW(Model& model, const AdamWConfig& config)
    : model_(model), lora_(model.has_lora()), config_(config) {
  if (!lora_) model_.enable_grads();
  groups_ = decay_groups(layout());
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
  AdamWParams hp;
  hp.lr = lr;
  hp.beta1 = config_.beta1;
  hp.beta2 = config_.beta2;
  hp.eps = config_.eps;
  hp.weight_decay = config_.weight_decay;
  hp.step = step_;
  hp.grad_scale = scale;
  model_.backend().adamw_step_groups(params(), grads(), first_moment(), second_moment(), groups_,
                                     hp);
}

}  // namespace hessgpt
