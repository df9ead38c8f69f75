// The cached forward pass on any backend (see device_session.h): the block of
// model_forward.cpp for one sequence, with K/V written into the cache, in the
// order of DecoderSession::feed's batched path.
#include "infer/device_session.h"

#include <algorithm>
#include <cmath>

#include "backend/buffer_carver.h"
#include "core/error.h"
#include "model/rope_tables.h"

namespace hessgpt::infer {
namespace {
const Model& checked(const Model& m) {
  if (m.dtype() != DType::F32)
    HG_FAIL("DeviceSession decodes FP32 models (got ", dtype_name(m.dtype()), ")");
  if (m.has_lora()) HG_FAIL("DeviceSession decodes merged weights: merge the LoRA adapters first");
  return m;
}
}  // namespace

DeviceSession::DeviceSession(std::unique_ptr<const Model> model, int64_t capacity,
                             WeightFormat format)
    : DeviceSession(*model, capacity, format) {
  owned_ = std::move(model);  // moving the pointer keeps m_'s referent where it is
}

DeviceSession::DeviceSession(const Model& model, int64_t capacity, WeightFormat format)
    : m_(checked(model)), be_(model.backend()), w_(model, format) {
  const ModelConfig& c = m_.config();
  capacity_ = capacity > 0 ? capacity : c.max_position_embeddings;
  const int64_t kvd = c.num_key_value_heads * c.head_dim;
  layer_stride_ = capacity_ * kvd;
  kv_ = Buffer(&be_, static_cast<size_t>(2 * c.num_hidden_layers * layer_stride_) * sizeof(float));
  // The same tables as Model::ensure_rope.
  rope_ = upload_rope_tables(be_, c, capacity_, DType::F32);
  logits_.resize(static_cast<size_t>(c.vocab_size));
  const int64_t d = c.hidden_size, qd = c.num_attention_heads * c.head_dim;
  const int64_t f = c.intermediate_size;
  step_ = carve_buffer(be_, DType::F32, [&](BufferCarver& cv) {
    io_ = cv.take({2}, DType::I32);
    x1_ = cv.take({1, d});
    x16_1_ = cv.take({1, d}, DType::BF16);
    ln1_ = cv.take({1, d});
    rstd1_ = cv.take({1});
    qkv1_ = cv.take({1, qd + 2 * kvd});
    q1_ = cv.take({1, qd});
    att1_ = cv.take({1, qd});
    gate_up1_ = cv.take({1, 2 * f});
    act1_ = cv.take({1, f});
    logits1_ = cv.take({1, c.vocab_size});
  });
}

SessionInfo DeviceSession::info() const {
  return {be_.name(), w_.format(), 0, w_.bytes_per_token()};
}

Tensor DeviceSession::dev(float* p, std::initializer_list<int64_t> dims) const {
  return Tensor(p, DType::F32, be_.device(), dims);
}

float* DeviceSession::k_cache(int64_t layer) const {
  return static_cast<float*>(kv_.data()) + (2 * layer) * layer_stride_;
}

float* DeviceSession::v_cache(int64_t layer) const {
  return static_cast<float*>(kv_.data()) + (2 * layer + 1) * layer_stride_;
}

void DeviceSession::ensure_scratch(int64_t t) {
  if (t <= scratch_rows_) return;
  const ModelConfig& c = m_.config();
  const int64_t d = c.hidden_size, h = c.num_attention_heads, qd = h * c.head_dim;
  const int64_t kvd = c.num_key_value_heads * c.head_dim, f = c.intermediate_size;
  scratch_ = Buffer();  // free the old block first
  scratch_ = carve_buffer(be_, DType::F32, [&](BufferCarver& cv) {
    ids_ = cv.take({t}, DType::I32);
    x_ = cv.take({t, d});
    x16_ = cv.take({t, d}, DType::BF16);
    ln_ = cv.take({t, d});
    q_ = cv.take({t, qd});
    qn_ = cv.take({t, qd});
    att_ = cv.take({t, qd});
    k_ = cv.take({t, kvd});
    lse_ = cv.take({t * h});
    rstd_ = cv.take({t * h});
    gate_ = cv.take({t, f});
    up_ = cv.take({t, f});
    act_ = cv.take({t, f});
  });
  scratch_rows_ = t;
}

void DeviceSession::linear(const Tensor& y, const Tensor& x, const Tensor& w) {
  be_.matmul(y, x, false, w, true, 1.0f, 0.0f);
}

void DeviceSession::linear_stacked(const Tensor& y, const Tensor& x, const Tensor& stacked,
                                   std::initializer_list<TensorPair> parts) {
  if (stacked.data) return linear(y, x, stacked);
  for (const auto& [out, w] : parts) linear(*out, x, *w);
}

void DeviceSession::normed_linear(const Tensor& y, const Tensor& norm_w, const Tensor& stacked,
                                  std::initializer_list<TensorPair> parts) {
  const double eps = m_.config().rms_norm_eps;
  if (stacked.data) {
    be_.rmsnorm_matmul(y, x1_, norm_w, eps, stacked, ln1_, rstd1_);
    return;
  }
  be_.rmsnorm_forward(ln1_, rstd1_, x1_, norm_w, eps);
  linear_stacked(y, ln1_, stacked, parts);
}

void DeviceSession::round_embedding(const Tensor& x, const Tensor& x16) {
  if (w_.format() != WeightFormat::BF16) return;
  be_.convert(x16, x);
  be_.convert(x, x16);
}

void DeviceSession::attend(int64_t l, int64_t t, const Tensor& q_proj, const Tensor& k_proj) {
  const ModelConfig& c = m_.config();
  const int64_t h = c.num_attention_heads, kv = c.num_key_value_heads, hd = c.head_dim;
  const int64_t pos0 = pos_, end = pos_ + t;
  const double eps = c.rms_norm_eps;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const LayerParamIndex& p = m_.layout().layers[static_cast<size_t>(l)];
  float* kc = k_cache(l) + pos0 * kv * hd;  // this step's rows of the cache
  const Tensor q = q_proj, qn = qn_.slice(0, t);
  const Tensor qn4 = qn.view({1, t, h, hd}), kc4 = dev(kc, {1, t, kv, hd});
  if (c.qk_norm) {
    be_.qk_norm_rope_forward(qn4, rstd_.slice(0, t * h), q.view({1, t, h, hd}), m_.param(p.q_norm),
                             eps, rope_.cos, rope_.sin, pos0);
    be_.qk_norm_rope_forward(kc4, rstd_.slice(0, t * kv), k_proj.view({1, t, kv, hd}),
                             m_.param(p.k_norm), eps, rope_.cos, rope_.sin, pos0);
  } else {
    be_.copy(qn, q);
    be_.copy(dev(kc, {t, kv * hd}), k_proj);
    be_.rope_forward(qn4, rope_.cos, rope_.sin, pos0);
    be_.rope_forward(kc4, rope_.cos, rope_.sin, pos0);
  }
  be_.attention_forward(att_.slice(0, t).view({1, t, h, hd}), lse_.slice(0, t * h).view({1, h, t}),
                        qn4, dev(k_cache(l), {1, end, kv, hd}), dev(v_cache(l), {1, end, kv, hd}),
                        scale, pos0);
}

std::span<const float> DeviceSession::feed(std::span<const int32_t> ids, float* all_logits) {
  const ModelConfig& c = m_.config();
  const ParamLayout& lay = m_.layout();
  const int64_t t = static_cast<int64_t>(ids.size());
  check_feed(c, pos_, capacity_, ids);
  if (t == 1 && !all_logits) {
    decode_token(ids[0]);
    return {logits_.data(), logits_.size()};
  }
  replayed_ = false;
  ensure_scratch(t);
  const int64_t kv = c.num_key_value_heads, hd = c.head_dim, v = c.vocab_size;
  const int64_t pos0 = pos_, end = pos_ + t;
  const double eps = c.rms_norm_eps;

  const Tensor ids_t = ids_.slice(0, t);
  be_.copy_from_host(ids_t, ids.data());
  const Tensor x = x_.slice(0, t), ln = ln_.slice(0, t);
  const Tensor rstd = rstd_.slice(0, t);
  be_.embedding_forward(x, ids_t, m_.param(lay.embed));
  round_embedding(x, x16_.slice(0, t));

  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerParamIndex& p = lay.layers[static_cast<size_t>(l)];
    const Tensor vc = dev(v_cache(l) + pos0 * kv * hd, {t, kv * hd});  // this step's rows
    // Attention sub-block; K and V land in the cache.
    be_.rmsnorm_forward(ln, rstd, x, m_.param(p.input_norm), eps);
    const DeviceLayerWeights& w = w_.layer(l);
    linear(q_.slice(0, t), ln, w.q);
    linear(k_.slice(0, t), ln, w.k);
    linear(vc, ln, w.v);
    attend(l, t, q_.slice(0, t), k_.slice(0, t));
    // The residual adds come out of the products (beta 1): one launch, not two.
    be_.matmul(x, att_.slice(0, t), false, w.o, true, 1.0f, 1.0f);
    // MLP sub-block.
    be_.rmsnorm_forward(ln, rstd, x, m_.param(p.post_norm), eps);
    linear(gate_.slice(0, t), ln, w.gate);
    linear(up_.slice(0, t), ln, w.up);
    be_.swiglu_forward(act_.slice(0, t), gate_.slice(0, t), up_.slice(0, t));
    be_.matmul(x, act_.slice(0, t), false, w.down, true, 1.0f, 1.0f);
  }
  pos_ = end;

  // Head: only the rows whose logits are wanted, at most a chunk of rows per pass.
  const Tensor fnorm = m_.param(lay.final_norm), embed = w_.head();
  const int64_t r_begin = all_logits ? 0 : t - 1;
  const int64_t chunk = std::clamp<int64_t>(head_chunk_floats_ / v, 1, t - r_begin);
  if (chunk > head_rows_) {
    head_ = Buffer();
    head_ = Buffer(&be_, static_cast<size_t>(chunk * v) * sizeof(float));
    logits_dev_ = head_.tensor(DType::F32, {chunk, v});
    head_rows_ = chunk;
  }
  be_.rmsnorm_forward(ln.slice(r_begin, t), rstd.slice(r_begin, t), x.slice(r_begin, t), fnorm, eps);
  for (int64_t r0 = r_begin; r0 < t; r0 += chunk) {
    const int64_t r1 = std::min(t, r0 + chunk);
    const Tensor logits = logits_dev_.slice(0, r1 - r0);
    be_.matmul(logits, ln.slice(r0, r1), false, embed, true, 1.0f, 0.0f);
    be_.softcap_forward(logits, c.logit_softcap);
    if (all_logits) be_.copy_to_host(all_logits + r0 * v, logits);
    else be_.copy_to_host(logits_.data(), logits);
  }
  if (all_logits)
    std::copy(all_logits + (t - 1) * v, all_logits + t * v, logits_.begin());
  return {logits_.data(), logits_.size()};
}

void DeviceSession::decode_token(int32_t id) {
  const int32_t io[2] = {id, static_cast<int32_t>(pos_)};
  be_.copy_from_host(io_, io);
  replayed_ = recorded_ && recorded_->replay();
  if (!replayed_ && step_warm_ && may_record_) {
    recorded_ = be_.record([this] { decode_ops(); });
    may_record_ = recorded_ != nullptr;
    replayed_ = recorded_ && recorded_->replay();
  }
  if (!replayed_) {
    recorded_.reset();
    decode_ops();
    step_warm_ = true;
  }
  be_.copy_to_host(logits_.data(), logits1_);
  ++pos_;
}

void DeviceSession::decode_ops() {
  const ModelConfig& c = m_.config();
  const ParamLayout& lay = m_.layout();
  const int64_t h = c.num_attention_heads, kv = c.num_key_value_heads, hd = c.head_dim;
  const int64_t qd = h * hd, kvd = kv * hd, f = c.intermediate_size;
  const double eps = c.rms_norm_eps;
  const Tensor qkv = qkv1_.view({qd + 2 * kvd}), gate_up = gate_up1_.view({2 * f});
  const Tensor q = qkv.slice(0, qd).view({1, qd}), k = qkv.slice(qd, qd + kvd).view({1, kvd});
  const Tensor v = qkv.slice(qd + kvd, qd + 2 * kvd).view({1, kvd});
  const Tensor gate = gate_up.slice(0, f).view({1, f}), up = gate_up.slice(f, 2 * f).view({1, f});
  Backend::DecodeAttention step;
  step.out = att1_;
  step.q_out = q1_;
  step.q_raw = q;
  step.k_raw = k;
  step.v_raw = v;
  step.cos = rope_.cos;
  step.sin = rope_.sin;
  step.pos = io_.slice(1, 2);
  step.eps = eps;
  step.scale = 1.0 / std::sqrt(static_cast<double>(hd));
  // feed's check_feed checked the id on the host: no read-back, so the lookup
  // is part of the recorded step.
  be_.embedding_forward_prechecked(x1_, io_.slice(0, 1), m_.param(lay.embed));
  round_embedding(x1_, x16_1_);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerParamIndex& p = lay.layers[static_cast<size_t>(l)];
    const DeviceLayerWeights& w = w_.layer(l);
    // The norms and SwiGLU ride in the products that read their output.
    normed_linear(qkv1_, m_.param(p.input_norm), w.qkv, {{&q, &w.q}, {&k, &w.k}, {&v, &w.v}});
    if (c.qk_norm) {
      step.q_norm = m_.param(p.q_norm);
      step.k_norm = m_.param(p.k_norm);
    }
    step.k_cache = dev(k_cache(l), {capacity_, kv, hd});
    step.v_cache = dev(v_cache(l), {capacity_, kv, hd});
    be_.decode_attention(step);
    // The residual adds come out of the products (beta 1): one launch, not two.
    be_.matmul(x1_, att1_, false, w.o, true, 1.0f, 1.0f);
    normed_linear(gate_up1_, m_.param(p.post_norm), w.gate_up, {{&gate, &w.gate}, {&up, &w.up}});
    be_.swiglu_matmul_add(x1_, gate, up, w.down, act1_);
  }
  be_.rmsnorm_matmul(logits1_, x1_, m_.param(lay.final_norm), eps, w_.head(), ln1_, rstd1_);
  be_.softcap_forward(logits1_, c.logit_softcap);
}

}  // namespace hessgpt::infer
