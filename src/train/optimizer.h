// AdamW over a model's flat parameter buffer, with weight decay on matrices
// only and global-norm gradient clipping folded into the update.
#pragma once

#include "model/model.h"

namespace hessgpt {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double clip_norm = 1.0;  // <= 0 disables clipping
};

// The layout's parameters as AdamW groups: each run of adjacent parameters
// with the same decay (matrices and embeddings decay, norms do not) is one
// group; the backend updates all of them in one call.
std::vector<AdamWGroup> decay_groups(const ParamLayout& layout);

// Optimises the model's trainable set: its weights, or only its LoRA adapters
// when it has them (the frozen base is never in the optimizer).
class AdamW {
 public:
  AdamW(Model& model, const AdamWConfig& config);

  // L2 norm of all gradients (times grad_scale).
  double grad_norm(double grad_scale = 1.0) const;

  // One update at learning rate lr. grad_scale multiplies the gradients first;
  // clipping then scales them down to clip_norm when their norm exceeds it.
  // Returns the pre-clip gradient norm (after grad_scale).
  double step(double lr, double grad_scale = 1.0);
  // An update with a norm computed beforehand (e.g. to check it is finite).
  void step_with_norm(double lr, double grad_scale, double norm);

  int64_t steps_taken() const { return step_; }
  void set_steps_taken(int64_t s) { step_ = s; }
  Tensor first_moment() const { return m_.tensor(model_.dtype(), {layout().total}); }
  Tensor second_moment() const { return v_.tensor(model_.dtype(), {layout().total}); }
  bool optimises_lora() const { return lora_; }
  const AdamWConfig& config() const { return config_; }

 private:
  const ParamLayout& layout() const { return lora_ ? model_.lora_layout() : model_.layout(); }
  Tensor params() const { return lora_ ? model_.lora_params() : model_.params(); }
  Tensor grads() const { return lora_ ? model_.lora_grads() : model_.grads(); }

  Model& model_;
  bool lora_ = false;
  AdamWConfig config_;
  std::vector<AdamWGroup> groups_;  // decay_groups(layout()): the layout is fixed
  Buffer m_, v_;
  int64_t step_ = 0;
};

}  // namespace hessgpt
