#include "model/model.h"

#include <cmath>

#include "core/env_switch.h"
#include "core/rng.h"
#include "model/rope_tables.h"

namespace hessgpt {

Model::Model(const ModelConfig& config, Backend& backend, DType dtype)
    : config_(config), backend_(backend), dtype_(dtype), layout_(make_param_layout(config)) {
  config_.validate();
  if (!backend_.supports(dtype_))
    HG_FAIL("backend ", backend_.name(), " cannot compute in ", dtype_name(dtype_));
  params_ = Buffer(&backend_, static_cast<size_t>(layout_.total) * dtype_size(dtype_));
  backend_.fill(params(), 0.0);
  weight_copies_ = WeightCopies(config_, layout_);
}

Tensor Model::param(int index) const {
  const ParamInfo& p = layout_.params[static_cast<size_t>(index)];
  const size_t offset = static_cast<size_t>(p.offset) * dtype_size(dtype_);
  return p.shape.size() == 1 ? params_.tensor(dtype_, {p.shape[0]}, offset)
                             : params_.tensor(dtype_, {p.shape[0], p.shape[1]}, offset);
}

// HESSGPT_BF16_WEIGHT_COPIES=0 converts inside each product instead.
bool Model::weight_copies_wanted(bool bf16_activations) const {
  if (!bf16_activations || has_lora() || dtype_ != DType::F32 ||
      backend_.matmul_precision() != MatmulPrecision::BF16)
    return false;
  return env_switch_on("HESSGPT_BF16_WEIGHT_COPIES");
}

Tensor Model::product_weight(int index) const {
  return weight_copies_live_ ? weight_copies_.weight(index) : param(index);
}

Tensor Model::stacked_product_weights(int first, int second, int64_t rows) const {
  const Tensor a = product_weight(first), b = product_weight(second);
  if (static_cast<const char*>(a.data) + a.bytes() != b.data) return {};
  return Tensor(a.data, a.dtype, a.device, {rows, a.cols()});
}

void Model::enable_grads() {
  if (has_grads()) return;
  grads_ = Buffer(&backend_, params_.bytes());
  backend_.fill(grads(), 0.0);
}

void Model::zero_grads() {
  if (has_lora()) {
    zero_lora_grads();
    return;
  }
  if (!has_grads()) {
    enable_grads();  // allocates zeroed gradients
    return;
  }
  backend_.fill(grads(), 0.0);
}

Tensor Model::grads() const {
  HG_CHECK(has_grads(), "gradients not enabled");
  return grads_.tensor(dtype_, {layout_.total});
}

Tensor Model::grad(int index) const {
  HG_CHECK(has_grads(), "gradients not enabled");
  const ParamInfo& p = layout_.params[static_cast<size_t>(index)];
  const size_t offset = static_cast<size_t>(p.offset) * dtype_size(dtype_);
  return p.shape.size() == 1 ? grads_.tensor(dtype_, {p.shape[0]}, offset)
                             : grads_.tensor(dtype_, {p.shape[0], p.shape[1]}, offset);
}

void Model::init_random(uint64_t seed) {
  Rng rng(seed);
  std::vector<float> values(static_cast<size_t>(layout_.total));
  const double residual_scale = 1.0 / std::sqrt(2.0 * static_cast<double>(config_.num_hidden_layers));
  for (size_t i = 0; i < layout_.params.size(); ++i) {
    const ParamInfo& p = layout_.params[i];
    float* dst = values.data() + p.offset;
    if (p.kind == ParamKind::Norm) {
      std::fill(dst, dst + p.numel, 1.0f);
      continue;
    }
    const bool residual_out = p.name.ends_with("o_proj.weight") ||
                              p.name.ends_with("down_proj.weight");
    const double stddev = 0.02 * (residual_out ? residual_scale : 1.0);
    for (int64_t j = 0; j < p.numel; ++j) dst[j] = static_cast<float>(rng.normal() * stddev);
  }
  set_params_host(values);
}

void Model::set_params_host(const std::vector<float>& values) {
  HG_CHECK(static_cast<int64_t>(values.size()) == layout_.total, "parameter count mismatch");
  upload_floats(backend_, params(), values);
}

std::vector<float> Model::params_host() const { return download_floats(backend_, params()); }
std::vector<float> Model::grads_host() const { return download_floats(backend_, grads()); }

void Model::ensure_rope(int64_t positions) {
  positions = std::max(positions, config_.max_position_embeddings);
  if (positions <= rope_positions_) return;
  rope_ = upload_rope_tables(backend_, config_, positions, dtype_);
  rope_positions_ = positions;
}

MemoryOptions Model::memory_options() const {
  MemoryOptions m = effective_memory_options(memory_, dtype_, has_lora() ? &lora_config_ : nullptr);
  if (!backend_.supports(DType::BF16)) m.bf16_ffn = m.bf16_activations = false;
  return m;
}

void Model::prepare(const int32_t* ids, const int32_t* targets, int64_t batch, int64_t seq,
                    bool training) {
  HG_CHECK(batch > 0 && seq > 0, "empty batch");
  ArenaOptions want;
  want.training = training;
  if (has_lora()) want.lora = {lora_rank_, lora_config_.target_mask()};
  want.memory = memory_options();
  // Gate and up side by side need their weight copies padded alike
  // (HESSGPT_JOINED_GATE_UP=0 keeps them apart).
  want.join_gate_up = weight_copies_wanted(want.memory.bf16_activations) &&
                      env_switch_on("HESSGPT_JOINED_GATE_UP");
  // BF16 logits for training (HESSGPT_BF16_LOGITS=0 keeps them F32): an
  // evaluation scores F32 ones, which it may also hand out.
  want.bf16_logits = training && bf16_logits_wanted(want.memory);
  // Evaluation runs in any layout of its shape (it only needs the BF16
  // storage to match); training needs a training one whose sharing matches.
  const bool same_layout = arena_.data() && acts_.batch == batch && acts_.seq == seq &&
                           acts_.bf16_ffn == want.memory.bf16_ffn &&
                           acts_.bf16_activations == want.memory.bf16_activations &&
                           acts_.joined_gate_up == want.join_gate_up &&
                           acts_.bf16_logits == want.bf16_logits &&
                           (!training || (arena_training_ &&
                                          acts_.shared_attention == want.memory.recompute &&
                                          acts_.shared_mlp == (want.memory.recompute ||
                                                               want.memory.recompute_mlp)));
  if (!same_layout) {
    // Fine-tuning pads each batch to its own length, so the shape changes
    // nearly every step. The arena only grows: re-carving the old buffer
    // spares a fresh allocation (and the kernel zeroing its pages) per step.
    const size_t bytes = activation_bytes(config_, batch, seq, dtype_, want);
    if (!arena_.data() || bytes > arena_.bytes()) {
      arena_ = Buffer();  // free first: the old arena may be large
      arena_ = Buffer(&backend_, bytes);
    }
    acts_ = layout_activations(config_, arena_, batch, seq, dtype_, want);
    arena_training_ = training;
  }
  ensure_rope(seq);
  const int64_t n = batch * seq;
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= config_.vocab_size)
      HG_FAIL("token id ", ids[i], " at position ", i, " is outside the vocabulary [0, ",
              config_.vocab_size, ")");
  backend_.copy_from_host(acts_.ids, ids);
  if (targets) {
    for (int64_t i = 0; i < n; ++i)
      if (targets[i] != -100 && (targets[i] < 0 || targets[i] >= config_.vocab_size))
        HG_FAIL("target id ", targets[i], " at position ", i, " is outside the vocabulary [0, ",
                config_.vocab_size, ")");
    targets_host_.assign(targets, targets + n);
  } else {
    targets_host_.assign(static_cast<size_t>(n), -100);
  }
  backend_.copy_from_host(acts_.targets, targets_host_.data());
}

LossSum Model::evaluate(const int32_t* ids, const int32_t* targets, int64_t batch, int64_t seq,
                        float* logits_out) {
  prepare(ids, targets, batch, seq, false);
  begin_lora_pass(false);
  forward_blocks();
  return head_loss(head_forward(false, 0.0, logits_out));
}

LossSum Model::forward_backward(const int32_t* ids, const int32_t* targets, int64_t batch,
                                int64_t seq, double loss_scale) {
  HG_CHECK(targets != nullptr, "training needs targets");
  if (trains_base()) enable_grads();
  prepare(ids, targets, batch, seq, true);
  begin_lora_pass(true);
  forward_blocks();
  const int64_t scored = head_forward(true, loss_scale, nullptr);
  backward_blocks();
  end_lora_pass();
  // Read back after the backward is enqueued: the device never waits on the host mid-step.
  return head_loss(scored);
}

}  // namespace hessgpt
