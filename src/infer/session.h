// One sequence being decoded (batch 1): a KV cache and the scratch for a
// forward pass over new tokens. feed() runs the prompt as one batched pass
// (prefill) and then single tokens (decode) through the same code: each new
// token's K (after QK-Norm and RoPE) and V are appended to the cache, and the
// attention kernel lets query t at absolute position pos0 + t see cache rows
// 0 .. pos0 + t, so cached decoding computes exactly the full forward pass.
//
// KV cache, per layer: K and V [capacity, KV heads, head_dim] floats (GQA:
// only the key/value heads are kept; each serves H/KV query heads).
// Matrix products: several rows (prefill) -> backend matmul (FP32 weights as
// they are, quantised weights dequantised one tile at a time). One row
// (decode) -> session_decode.cpp: the whole token runs in one OpenMP parallel
// region with 4 barriers per layer instead of ~17 fork/joins.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "infer/infer_weights.h"
#include "infer/session_interface.h"

namespace hessgpt::infer {

class DecoderSession final : public Session {
 public:
  // capacity: positions the cache holds (0: the config's max_position_embeddings).
  // The backend must be the CPU backend; weights must outlive the session.
  DecoderSession(const InferWeights& weights, Backend& backend, int64_t capacity = 0);
  // The same, owning its weights.
  DecoderSession(std::unique_ptr<const InferWeights> weights, Backend& backend,
                 int64_t capacity = 0);

  const ModelConfig& config() const override { return w_.config; }
  int64_t position() const override { return pos_; }
  int64_t capacity() const override { return capacity_; }
  size_t kv_cache_bytes() const override { return kv_.size() * sizeof(float); }
  SessionInfo info() const override;
  void reset() override { pos_ = 0; }
  // Single tokens through the one-region decode path (default) or through the
  // batched path's per-op calls; the two agree bit for bit (tested), the
  // switch is for that test and for A/B timings.
  void set_fused_decode(bool on) { fused_decode_ = on; }

  // See Session::feed.
  std::span<const float> feed(std::span<const int32_t> ids,
                              float* all_logits = nullptr) override;

 private:
  void ensure_scratch(int64_t t);
  // One token at position pos_ (session_decode.cpp); logits into logits_.
  void decode_one(int32_t id);
  // q_, k_ (projections) -> QK-Norm/RoPE -> K into the cache -> att_, for t
  // tokens from position pos_ of layer l (V already in the cache).
  void attend(int64_t layer, int64_t t);
  void linear(float* y, const float* x, int64_t t, const QuantMatrix& w);
  float* k_cache(int64_t layer) { return kv_.data() + (2 * layer) * layer_stride_; }
  float* v_cache(int64_t layer) { return kv_.data() + (2 * layer + 1) * layer_stride_; }

  std::unique_ptr<const InferWeights> owned_;  // null when the caller keeps the weights
  const InferWeights& w_;
  Backend& be_;
  int64_t capacity_ = 0;
  int64_t pos_ = 0;
  bool fused_decode_ = true;
  int64_t layer_stride_ = 0;  // capacity * KV * head_dim
  std::vector<float> kv_;
  std::vector<float> rope_cos_, rope_sin_;
  // Scratch for up to scratch_rows_ tokens.
  int64_t scratch_rows_ = 0;
  std::vector<float> x_, ln_, q_, qn_, k_, att_, lse_, rstd_, gate_, up_, act_, tmp_, logits_;
  std::vector<float> tile_, tile_out_;
  // Decode: each thread's residual stream, norm output, prepared matrix
  // input and attention scratch (see session_decode.cpp).
  struct DecodeLane {
    std::vector<float> x, ln, rstd, p;
    MatvecInput in;
  };
  std::vector<DecodeLane> lanes_;
};

}  // namespace hessgpt::infer
