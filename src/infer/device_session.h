// The KV-cache session written once against the Backend interface, so that
// it decodes wherever a Model lives (the CUDA GPU; the CPU backend for its
// tests). The same cached forward pass as DecoderSession::feed's batched
// path (session.cpp): prefill of t tokens in one pass, op for op; decoding one
// token at a time through a step whose attention reads the position on the
// device (Backend::decode_attention), so that the backend can record the
// step once and replay it at every position (Backend::record: a CUDA graph).
//
// Weights: the FP32 parameters of a Model on the session's backend (its
// param() views, no copies). Backend memory: the KV cache (per layer K and V
// [capacity, KV, D]), RoPE tables [capacity, D/2] uploaded once, scratch for
// up to the largest t fed so far, a logits block for the head, and the
// decoding step's own tensors. Per feed the host sends the ids (and the
// position) and receives one logits row (or, with all_logits, the head's
// rows in chunks of 32 MB).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "infer/device_weights.h"
#include "infer/session_interface.h"
#include "model/model.h"

namespace hessgpt::infer {

class DeviceSession final : public Session {
 public:
  // capacity: positions the cache holds (0: the config's max_position_embeddings).
  // The model must be FP32 and outlive the session; it runs on model.backend().
  // format: the matrices as the products read them, FP32 (the model's own) or
  // BF16 (copies, as the CPU DecoderSession's BF16 format: the embedding rows
  // looked up are rounded to BF16 too; norms stay FP32).
  explicit DeviceSession(const Model& model, int64_t capacity = 0,
                         WeightFormat format = WeightFormat::F32);
  // The same, owning the model.
  explicit DeviceSession(std::unique_ptr<const Model> model, int64_t capacity = 0,
                         WeightFormat format = WeightFormat::F32);

  const ModelConfig& config() const override { return m_.config(); }
  int64_t position() const override { return pos_; }
  int64_t capacity() const override { return capacity_; }
  size_t kv_cache_bytes() const override { return kv_.bytes(); }
  SessionInfo info() const override;
  void reset() override { pos_ = 0; }
  std::span<const float> feed(std::span<const int32_t> ids,
                              float* all_logits = nullptr) override;

  // Logits floats per head pass (rows * V, at least one row) when all rows
  // are wanted: 32 MB by default; tests set it small to cross chunk edges.
  void set_head_chunk_floats(int64_t floats) { head_chunk_floats_ = floats; }
  // Whether the last token decoded replayed a recording of the step
  // (Backend::record: a CUDA graph) rather than issuing its ops one by one.
  bool replayed_last_token() const { return replayed_; }

 private:
  // One token after the prompt: its id and position uploaded, then the step's
  // ops from a recording where the backend makes one (recorded at the second
  // token, after a first run op by op has grown the backend's scratch), else
  // op by op.
  void decode_token(int32_t id);
  // The step from the embedding on, on the step's own tensors; nothing in it
  // depends on the token or the position but the device-held io_.
  void decode_ops();
  void ensure_scratch(int64_t t);
  // q [t, H*D], k [t, KV*D] (projections) -> QK-Norm/RoPE -> K into the
  // cache -> att_, for t tokens from position pos_ of layer l (V already in
  // the cache).
  void attend(int64_t layer, int64_t t, const Tensor& q, const Tensor& k);
  // y[t, out] = x[t, in] w^T.
  void linear(const Tensor& y, const Tensor& x, const Tensor& w);
  // The same through stacked weights (y holds the parts' outputs side by
  // side) where there are, else part by part: {output, weights} each.
  using TensorPair = std::pair<const Tensor*, const Tensor*>;
  void linear_stacked(const Tensor& y, const Tensor& x, const Tensor& stacked,
                      std::initializer_list<TensorPair> parts);
  // The same over rmsnorm(x1_): where the rows are stacked, one product with
  // the norm folded in where the backend can (Backend::rmsnorm_matmul).
  void normed_linear(const Tensor& y, const Tensor& norm_w, const Tensor& stacked,
                     std::initializer_list<TensorPair> parts);
  // x's rows as a BF16 session reads the embedding: rounded to BF16 (through
  // x16, of x's size); nothing for FP32 weights.
  void round_embedding(const Tensor& x, const Tensor& x16);
  // A backend tensor at `p` (device memory).
  Tensor dev(float* p, std::initializer_list<int64_t> dims) const;
  float* k_cache(int64_t layer) const;
  float* v_cache(int64_t layer) const;

  std::unique_ptr<const Model> owned_;  // null when the caller keeps the model
  const Model& m_;
  Backend& be_;
  DeviceWeights w_;
  int64_t capacity_ = 0;
  int64_t pos_ = 0;
  int64_t layer_stride_ = 0;  // capacity * KV * head_dim floats
  Buffer kv_;                 // [2L, capacity, KV, D]: K of layer l at 2l, V at 2l + 1
  BackendRopeTables rope_;    // [capacity, D/2] each
  // Scratch for up to scratch_rows_ tokens, one buffer carved into tensors.
  int64_t scratch_rows_ = 0;
  Buffer scratch_;
  Tensor ids_, x_, x16_, ln_, q_, qn_, att_, k_, lse_, rstd_, gate_, up_, act_;
  // One token (decoding): its own tensors, carved once, so that a recording
  // keeps valid pointers whatever prompts are fed in between. q|k|v and
  // gate|up each come out of one product over the stacked weights (fewer
  // launches: decoding is launch-bound), when the layout keeps those weights
  // adjacent.
  Buffer step_;
  Tensor io_;  // I32 [2]: the token's id, then its position
  Tensor x1_, x16_1_, ln1_, rstd1_, q1_, att1_, logits1_;
  Tensor qkv1_, gate_up1_, act1_;  // [1, H*D + 2 KV*D], [1, 2 FFN], [1, FFN]
  std::unique_ptr<RecordedOps> recorded_;
  bool step_warm_ = false;    // the step has run op by op once
  bool may_record_ = true;    // false once the backend has declined
  bool replayed_ = false;
  int64_t head_chunk_floats_ = int64_t{8} << 20;
  int64_t head_rows_ = 0;  // rows of the logits block
  Buffer head_;
  Tensor logits_dev_;
  std::vector<float> logits_;  // the last token's, on the host
};

}  // namespace hessgpt::infer
