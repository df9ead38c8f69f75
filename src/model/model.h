// The HessGPT decoder (SPEC §1), written once against the Backend interface:
// named parameters in one flat buffer, an activation arena sized per batch,
// a forward pass and its exact backward. No device code and no file I/O here.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "backend/backend.h"
#include "core/model_config.h"
#include "model/activations.h"
#include "model/lora.h"
#include "model/lora_dropout.h"
#include "model/param_layout.h"
#include "model/rope_tables.h"
#include "model/weight_copies.h"

namespace hessgpt {

struct LossSum {
  double sum = 0.0;    // sum of per-token cross-entropies
  int64_t count = 0;   // tokens whose target is not -100
  double mean() const { return count ? sum / static_cast<double>(count) : 0.0; }
};

class Model {
 public:
  // dtype: F32 for real work; F64 on the CPU backend for reference checks.
  Model(const ModelConfig& config, Backend& backend, DType dtype = DType::F32);

  const ModelConfig& config() const { return config_; }
  const ParamLayout& layout() const { return layout_; }
  Backend& backend() const { return backend_; }
  DType dtype() const { return dtype_; }

  Tensor params() const { return params_.tensor(dtype_, {layout_.total}); }
  Tensor param(int index) const;
  // Gradients exist after enable_grads(); same layout as params.
  bool has_grads() const { return grads_.data() != nullptr; }
  void enable_grads();
  void zero_grads();
  Tensor grads() const;
  Tensor grad(int index) const;

  // N(0, 0.02) matrices, o_proj/down_proj scaled by 1/sqrt(2L), norms = 1.
  void init_random(uint64_t seed);
  // Host values in layout order (layout().total of them).
  void set_params_host(const std::vector<float>& values);
  std::vector<float> params_host() const;
  std::vector<float> grads_host() const;

  // Forward only. targets may be null (no loss). logits_out, when given, receives
  // the soft-capped logits [batch*seq, V] as float.
  LossSum evaluate(const int32_t* ids, const int32_t* targets, int64_t batch, int64_t seq,
                   float* logits_out = nullptr);

  // Forward and backward: grads += loss_scale * d(sum of token losses)/d(params).
  LossSum forward_backward(const int32_t* ids, const int32_t* targets, int64_t batch,
                           int64_t seq, double loss_scale);

  // ---- LoRA -----------------------------------------------------------------
  // Adds adapters (A uniform(+-1/sqrt(in)), B = 0) and freezes the base: from
  // then on backward computes adapter gradients only (base grads are neither
  // computed nor allocated). Only before the first pass.
  void enable_lora(const LoraConfig& lora, uint64_t seed);
  bool has_lora() const { return lora_rank_ > 0; }
  const LoraConfig& lora_config() const { return lora_config_; }
  const ParamLayout& lora_layout() const { return lora_layout_.params; }
  Tensor lora_params() const;
  Tensor lora_param(int index) const;
  Tensor lora_grads() const;
  Tensor lora_grad(int index) const;
  void zero_lora_grads();
  void set_lora_params_host(const std::vector<float>& values);
  std::vector<float> lora_params_host() const;
  std::vector<float> lora_grads_host() const;
  // W += s B A for every adapted matrix, then drops the adapters.
  void merge_lora();
  // Dropout masks (LoraConfig::dropout > 0) derive from the seed given to
  // enable_lora and this counter; each forward_backward uses it, then adds 1.
  // A trainer that sets it from its step count replays the same masks after a
  // resume; setting it back repeats a pass's masks (finite differences).
  void set_lora_dropout_counter(uint64_t counter) { lora_dropout_counter_ = counter; }
  uint64_t lora_dropout_counter() const { return lora_dropout_counter_; }
  // True when backward computes base-weight gradients (no LoRA, or --full).
  bool trains_base() const { return !has_lora(); }

  // How passes keep activations (MemoryOptions in activations.h: selective
  // recomputation, BF16 storage). Takes effect at the next pass.
  void set_memory_options(const MemoryOptions& wanted) { memory_ = wanted; }
  // What is in force: BF16 storage only for F32 models, and not where the
  // adapters rule it out (effective_memory_options).
  MemoryOptions memory_options() const;

  // The arena currently allocated, in bytes.
  size_t activation_arena_bytes() const { return arena_.bytes(); }

 private:
  void prepare(const int32_t* ids, const int32_t* targets, int64_t batch, int64_t seq,
               bool training);
  void ensure_rope(int64_t positions);
  void forward_blocks();
  // QK-Norm and RoPE of layer l: q_raw, k_raw -> q, k (forward, and backward
  // under recomputation).
  void attention_inputs(int64_t l);
  // The head, enqueued; returns how many rows it scored (all, or the compact
  // ones with a target), whose losses head_loss reads back and sums.
  int64_t head_forward(bool training, double loss_scale, float* logits_out);
  LossSum head_loss(int64_t scored);
  void backward_blocks();
  // y = x W^T (+ residual when given) for a target, plus its adapter when present.
  void project(int64_t layer, LoraTarget target, int weight, const Tensor& y, const Tensor& x,
               const Tensor* residual = nullptr);
  // The matching backward: dW (base trained), adapter grads, and dx (= or +=).
  void project_backward(int64_t layer, LoraTarget target, int weight, const Tensor& dx,
                        const Tensor& dy, const Tensor& x, float dx_beta);
  // k and v's projection backward as one product for dln and one for their
  // stacked weights' gradient (model_backward.cpp), where it applies.
  bool fuses_kv_projections() const;
  Tensor kv_gradient_operand() const;  // where the fused operand lives, or none
  void kv_projections_backward(const LayerParamIndex& p, const Tensor& ln1);
  // q's too: one product for dln and one for the stacked q, k, v weights'
  // gradient, over the arena's dqkv (model_backward.cpp), where it applies.
  bool fuses_qkv_projections() const;
  void qkv_projections_backward(const LayerParamIndex& p, const Tensor& ln1);
  // Gate and up side by side (Activations::joined_gate_up): their stacked
  // weight copies, and SwiGLU's, the input's and the weights' gradients.
  Tensor gate_up_weights(const LayerParamIndex& p) const;
  // Where a norm's input gradient goes when one product writes it (fused
  // q|k|v, joined gate|up): its BF16 copy where the arena has one, else dln.
  Tensor one_product_dln() const { return acts_.dln16.data ? acts_.dln16 : acts_.dln; }
  void gate_up_backward(const LayerParamIndex& p, const LayerActivations& la);
  // Dropout is live only inside forward_backward, never in evaluate.
  void begin_lora_pass(bool training);
  void end_lora_pass();
  LoraDropoutKey lora_dropout_key_at(int64_t layer, int target) const;
  int64_t lora_dropout_chunk_rows();
  // dst (+)= mask(src) for rows [row0, row0 + rows) of the pass, wherever the tensors live.
  void apply_lora_dropout(const LoraDropoutKey& key, const Tensor& dst, const Tensor& src,
                          int64_t row0, bool accumulate);
  // Where a norm's weight gradient goes: the real gradient, or scratch when frozen.
  Tensor norm_grad(int index);
  // The products read a weight matrix through its BF16 copy during passes
  // that make them (weight_copies.h), else as the parameter itself.
  bool uses_weight_copies() const { return weight_copies_wanted(acts_.bf16_activations); }
  bool weight_copies_wanted(bool bf16_activations) const;
  Tensor product_weight(int index) const;
  // [rows of first; rows of second] as one operand of the products, where
  // the two matrices lie back to back (q, k, v for the fused backward).
  Tensor stacked_product_weights(int first, int second, int64_t rows) const;

  ModelConfig config_;
  Backend& backend_;
  DType dtype_;
  ParamLayout layout_;
  Buffer params_;
  Buffer grads_;
  Buffer arena_;
  Activations acts_;
  // The pass's targets as prepare() copied them up (-100 where none): the
  // head picks its rows from them without reading them back.
  std::vector<int32_t> targets_host_;
  bool arena_training_ = false;
  MemoryOptions memory_;
  BackendRopeTables rope_;
  int64_t rope_positions_ = 0;
  LoraConfig lora_config_;
  int64_t lora_rank_ = 0;
  LoraLayout lora_layout_;
  Buffer lora_params_, lora_grads_, norm_scratch_;
  bool lora_dropout_active_ = false;
  uint64_t lora_dropout_seed_ = 0, lora_dropout_counter_ = 0;
  Buffer lora_dropout_scratch_;  // a few rows of dropout(x) or du A, not whole masks
  WeightCopies weight_copies_;
  bool weight_copies_live_ = false;  // this pass's products read weight_copies_
};

}  // namespace hessgpt
