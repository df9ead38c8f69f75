// The cached forward pass (see session.h): the same block as
// model_forward.cpp, one sequence, with K/V written into the cache.
#include "infer/session.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "model/rope_tables.h"

namespace hessgpt::infer {
namespace {

Tensor host(const float* p, std::initializer_list<int64_t> dims) {
  return Tensor(const_cast<float*>(p), DType::F32, Device::CPU, dims);
}

}  // namespace

void check_feed(const ModelConfig& c, int64_t position, int64_t capacity,
                std::span<const int32_t> ids) {
  const int64_t t = static_cast<int64_t>(ids.size());
  if (t == 0) HG_FAIL("feed: no tokens");
  if (position + t > capacity)
    HG_FAIL("context full: ", position, " cached + ", t, " new tokens exceed the ", capacity,
            " positions of the context");
  for (int64_t i = 0; i < t; ++i)
    if (ids[static_cast<size_t>(i)] < 0 || ids[static_cast<size_t>(i)] >= c.vocab_size)
      HG_FAIL("token id ", ids[static_cast<size_t>(i)], " at position ", position + i,
              " is outside the vocabulary [0, ", c.vocab_size, ")");
}

DecoderSession::DecoderSession(std::unique_ptr<const InferWeights> weights, Backend& backend,
                               int64_t capacity)
    : DecoderSession(*weights, backend, capacity) {
  owned_ = std::move(weights);  // moving the pointer keeps w_'s referent where it is
}

SessionInfo DecoderSession::info() const {
  return {be_.name(), w_.format, w_.group_size, w_.decode_stream_bytes()};
}

DecoderSession::DecoderSession(const InferWeights& weights, Backend& backend, int64_t capacity)
    : w_(weights), be_(backend) {
  const ModelConfig& c = w_.config;
  if (be_.device() != Device::CPU) HG_FAIL("DecoderSession runs on the CPU backend only");
  capacity_ = capacity > 0 ? capacity : c.max_position_embeddings;
  layer_stride_ = capacity_ * c.num_key_value_heads * c.head_dim;
  kv_.assign(static_cast<size_t>(2 * c.num_hidden_layers * layer_stride_), 0.0f);
  // Angles in double, rounded once to float, exactly as Model::ensure_rope.
  const RopeTables tables = make_rope_tables(c, capacity_);
  rope_cos_.assign(tables.cos.begin(), tables.cos.end());
  rope_sin_.assign(tables.sin.begin(), tables.sin.end());
  logits_.resize(static_cast<size_t>(c.vocab_size));
}

void DecoderSession::ensure_scratch(int64_t t) {
  if (t <= scratch_rows_) return;
  const ModelConfig& c = w_.config;
  const auto n = [t](int64_t per_row) { return static_cast<size_t>(t * per_row); };
  const int64_t d = c.hidden_size, qd = c.num_attention_heads * c.head_dim;
  const int64_t kvd = c.num_key_value_heads * c.head_dim, f = c.intermediate_size;
  x_.resize(n(d));
  ln_.resize(n(d));
  tmp_.resize(n(d));
  q_.resize(n(qd));
  qn_.resize(n(qd));
  att_.resize(n(qd));
  k_.resize(n(kvd));
  lse_.resize(n(c.num_attention_heads));
  rstd_.resize(n(c.num_attention_heads));
  gate_.resize(n(f));
  up_.resize(n(f));
  act_.resize(n(f));
  scratch_rows_ = t;
}

// y[t, out] = x[t, in] W^T.
void DecoderSession::linear(float* y, const float* x, int64_t t, const QuantMatrix& w) {
  const int64_t out = w.rows(), in = w.cols();
  if (t == 1) {
    w.matvec(x, y);
    return;
  }
  if (w.format() == WeightFormat::F32) {
    be_.matmul(host(y, {t, out}), host(x, {t, in}), false,
               host(reinterpret_cast<const float*>(w.data()), {out, in}), true, 1.0f, 0.0f);
    return;
  }
  // Dequantise a tile of rows (about 4 MB of floats), multiply, scatter its columns.
  const int64_t tile = std::clamp<int64_t>((int64_t{1} << 20) / in, 16, out);
  tile_.resize(static_cast<size_t>(tile * in));
  tile_out_.resize(static_cast<size_t>(t * tile));
  for (int64_t r0 = 0; r0 < out; r0 += tile) {
    const int64_t r1 = std::min(out, r0 + tile), rows = r1 - r0;
    w.dequantize_rows(r0, r1, tile_.data());
    be_.matmul(host(tile_out_.data(), {t, rows}), host(x, {t, in}), false,
               host(tile_.data(), {rows, in}), true, 1.0f, 0.0f);
    for (int64_t i = 0; i < t; ++i)
      std::memcpy(y + i * out + r0, tile_out_.data() + i * rows,
                  static_cast<size_t>(rows) * sizeof(float));
  }
}

void DecoderSession::attend(int64_t l, int64_t t) {
  const ModelConfig& c = w_.config;
  const int64_t h = c.num_attention_heads, kv = c.num_key_value_heads, hd = c.head_dim;
  const int64_t pos0 = pos_, end = pos_ + t, half = hd / 2;
  const double eps = c.rms_norm_eps;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const InferLayer& L = w_.layers[static_cast<size_t>(l)];
  const Tensor cos = host(rope_cos_.data(), {capacity_, half});
  const Tensor sin = host(rope_sin_.data(), {capacity_, half});
  float* kc = k_cache(l) + pos0 * kv * hd;  // this step's rows of the cache
  if (c.qk_norm) {
    be_.rmsnorm_forward(host(qn_.data(), {t * h, hd}), host(rstd_.data(), {t * h}),
                        host(q_.data(), {t * h, hd}), host(L.q_norm.data(), {hd}), eps);
    be_.rmsnorm_forward(host(kc, {t * kv, hd}), host(rstd_.data(), {t * kv}),
                        host(k_.data(), {t * kv, hd}), host(L.k_norm.data(), {hd}), eps);
  } else {
    std::memcpy(qn_.data(), q_.data(), static_cast<size_t>(t * h * hd) * sizeof(float));
    std::memcpy(kc, k_.data(), static_cast<size_t>(t * kv * hd) * sizeof(float));
  }
  const Tensor qn = host(qn_.data(), {1, t, h, hd});
  be_.rope_forward(qn, cos, sin, pos0);
  be_.rope_forward(host(kc, {1, t, kv, hd}), cos, sin, pos0);
  be_.attention_forward(host(att_.data(), {1, t, h, hd}), host(lse_.data(), {1, h, t}), qn,
                        host(k_cache(l), {1, end, kv, hd}), host(v_cache(l), {1, end, kv, hd}),
                        scale, pos0);
}

std::span<const float> DecoderSession::feed(std::span<const int32_t> ids, float* all_logits) {
  const ModelConfig& c = w_.config;
  const int64_t t = static_cast<int64_t>(ids.size());
  check_feed(c, pos_, capacity_, ids);
  ensure_scratch(t);
  if (t == 1 && fused_decode_) {
    decode_one(ids[0]);
    if (all_logits) std::memcpy(all_logits, logits_.data(), logits_.size() * sizeof(float));
    return {logits_.data(), logits_.size()};
  }
  const int64_t d = c.hidden_size, kv = c.num_key_value_heads;
  const int64_t hd = c.head_dim, f = c.intermediate_size, v = c.vocab_size;
  const int64_t pos0 = pos_, end = pos_ + t;
  const double eps = c.rms_norm_eps;

  for (int64_t i = 0; i < t; ++i)
    w_.embed.dequantize_rows(ids[static_cast<size_t>(i)], ids[static_cast<size_t>(i)] + 1,
                             x_.data() + i * d);
  const Tensor x = host(x_.data(), {t, d});
  const Tensor ln = host(ln_.data(), {t, d});
  const Tensor tmp = host(tmp_.data(), {t, d});

  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const InferLayer& L = w_.layers[static_cast<size_t>(l)];
    float* vc = v_cache(l) + pos0 * kv * hd;  // this step's rows of the cache
    // Attention sub-block; K and V land in the cache.
    be_.rmsnorm_forward(ln, host(rstd_.data(), {t}), x, host(L.input_norm.data(), {d}), eps);
    linear(q_.data(), ln_.data(), t, L.q_proj);
    linear(k_.data(), ln_.data(), t, L.k_proj);
    linear(vc, ln_.data(), t, L.v_proj);
    attend(l, t);
    linear(tmp_.data(), att_.data(), t, L.o_proj);
    be_.add_inplace(x, tmp);
    // MLP sub-block.
    be_.rmsnorm_forward(ln, host(rstd_.data(), {t}), x, host(L.post_norm.data(), {d}), eps);
    linear(gate_.data(), ln_.data(), t, L.gate_proj);
    linear(up_.data(), ln_.data(), t, L.up_proj);
    be_.swiglu_forward(host(act_.data(), {t, f}), host(gate_.data(), {t, f}),
                       host(up_.data(), {t, f}));
    linear(tmp_.data(), act_.data(), t, L.down_proj);
    be_.add_inplace(x, tmp);
  }
  pos_ = end;

  // Head: only the rows whose logits are wanted.
  const Tensor fnorm = host(w_.final_norm.data(), {d});
  if (all_logits) {
    be_.rmsnorm_forward(ln, host(rstd_.data(), {t}), x, fnorm, eps);
    linear(all_logits, ln_.data(), t, w_.embed);
    be_.softcap_forward(host(all_logits, {t, v}), c.logit_softcap);
    std::memcpy(logits_.data(), all_logits + (t - 1) * v, static_cast<size_t>(v) * sizeof(float));
  } else {
    be_.rmsnorm_forward(host(ln_.data(), {1, d}), host(rstd_.data(), {1}),
                        host(x_.data() + (t - 1) * d, {1, d}), fnorm, eps);
    w_.embed.matvec(ln_.data(), logits_.data());
    be_.softcap_forward(host(logits_.data(), {1, v}), c.logit_softcap);
  }
  return {logits_.data(), logits_.size()};
}

}  // namespace hessgpt::infer
