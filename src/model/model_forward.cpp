// The forward pass: embedding, L pre-norm blocks (GQA attention with QK-Norm
// and RoPE, SwiGLU MLP), final norm, and the tied, soft-capped head whose
// logits are produced one row chunk at a time.
#include <algorithm>
#include <cmath>
#include <vector>

#include "model/model.h"

namespace hessgpt {

void Model::attention_inputs(int64_t l) {
  Backend& be = backend_;
  const ModelConfig& c = config_;
  const LayerParamIndex& p = layout_.layers[static_cast<size_t>(l)];
  LayerActivations& la = acts_.layers[static_cast<size_t>(l)];
  const int64_t b = acts_.batch, t = acts_.seq, n = b * t;
  const int64_t h = c.num_attention_heads, kv = c.num_key_value_heads, hd = c.head_dim;
  if (c.qk_norm) {
    be.qk_norm_rope_forward(la.q, la.rstd_q, la.q_raw.view({b, t, h, hd}), param(p.q_norm),
                            c.rms_norm_eps, rope_.cos, rope_.sin, 0);
    be.qk_norm_rope_forward(la.k, la.rstd_k, la.k_raw.view({b, t, kv, hd}), param(p.k_norm),
                            c.rms_norm_eps, rope_.cos, rope_.sin, 0);
    return;
  }
  be.copy(la.q.view({n, h * hd}), la.q_raw);
  be.copy(la.k.view({n, kv * hd}), la.k_raw);
  be.rope_forward(la.q, rope_.cos, rope_.sin, 0);
  be.rope_forward(la.k, rope_.cos, rope_.sin, 0);
}

void Model::forward_blocks() {
  Backend& be = backend_;
  const ModelConfig& c = config_;
  Activations& a = acts_;
  const int64_t b = a.batch, t = a.seq, n = b * t;
  const int64_t h = c.num_attention_heads, kv = c.num_key_value_heads, hd = c.head_dim;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));

  // This pass's products read BF16 copies of the weights (weight_copies.h).
  weight_copies_live_ = uses_weight_copies();
  if (weight_copies_live_) weight_copies_.refresh(be, layout_, params());
  else weight_copies_.release();

  Tensor x = a.layers.empty() ? a.output : a.layers[0].input;
  be.embedding_forward(x, a.ids, param(layout_.embed));

  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerParamIndex& p = layout_.layers[static_cast<size_t>(l)];
    LayerActivations& la = a.layers[static_cast<size_t>(l)];
    // Attention sub-block.
    be.rmsnorm_forward(la.ln1, la.rstd1, la.input, param(p.input_norm), c.rms_norm_eps);
    project(l, LoraTarget::Q, p.q_proj, la.q_raw, la.ln1);
    project(l, LoraTarget::K, p.k_proj, la.k_raw, la.ln1);
    project(l, LoraTarget::V, p.v_proj, la.v.view({n, kv * hd}), la.ln1);
    attention_inputs(l);
    be.attention_forward(la.att, la.lse, la.q, la.k, la.v, scale, 0);
    project(l, LoraTarget::O, p.o_proj, la.mid, la.att.view({n, h * hd}), &la.input);
    // MLP sub-block.
    be.rmsnorm_forward(la.ln2, la.rstd2, la.mid, param(p.post_norm), c.rms_norm_eps);
    if (a.joined_gate_up) {
      be.matmul(la.gate_up, la.ln2, false, gate_up_weights(p), true, 1.0f, 0.0f);
      be.swiglu_forward_joined(la.act, la.gate_up);
    } else {
      project(l, LoraTarget::Gate, p.gate_proj, la.gate, la.ln2);
      project(l, LoraTarget::Up, p.up_proj, la.up, la.ln2);
      be.swiglu_forward(la.act, la.gate, la.up);
    }
    const Tensor out = l + 1 < c.num_hidden_layers
                           ? a.layers[static_cast<size_t>(l + 1)].input
                           : a.output;
    project(l, LoraTarget::Down, p.down_proj, out, la.act, &la.mid);
  }
  be.rmsnorm_forward(a.lnf, a.rstdf, a.output, param(layout_.final_norm), c.rms_norm_eps);
}

int64_t Model::head_forward(bool training, double loss_scale, float* logits_out) {
  Backend& be = backend_;
  Activations& a = acts_;
  const int64_t n = a.batch * a.seq, v = config_.vocab_size;
  HG_CHECK(!(logits_out && a.bf16_logits), "a logits dump needs F32 logits (an evaluation's)");
  // The tied embedding as the products read it (activations.h: embed16).
  Tensor embed = param(layout_.embed);
  if (a.bf16_activations) {
    be.convert(a.embed16, embed);
    embed = a.embed16;
  }

  // Rows without a target need no logits. Fine-tuning masks most of a
  // conversation (system, user, tool results, padding) and the vocabulary
  // projection is most of a small model's compute, so the scored rows are
  // gathered into a dense block first. A logits dump needs every row.
  std::vector<int32_t> rows, row_targets;
  for (int64_t i = 0; i < n; ++i) {
    if (targets_host_[static_cast<size_t>(i)] == -100) continue;
    rows.push_back(static_cast<int32_t>(i));
    row_targets.push_back(targets_host_[static_cast<size_t>(i)]);
  }
  const int64_t m = static_cast<int64_t>(rows.size());
  const bool compact = logits_out == nullptr && m < n;
  Tensor hidden_all = a.lnf, targets_all = a.targets, dhidden_all = a.dln;
  int64_t scored = n;
  if (compact) {
    scored = m;
    if (m > 0) {
      be.copy_from_host(a.head_rows.slice(0, m), rows.data());
      be.copy_from_host(a.head_targets.slice(0, m), row_targets.data());
      be.embedding_forward(a.head_hidden.slice(0, m), a.head_rows.slice(0, m), a.lnf);
    }
    hidden_all = a.head_hidden;
    targets_all = a.head_targets;
    if (training) dhidden_all = a.head_dhidden;
  }

  for (int64_t r0 = 0; r0 < scored; r0 += a.head_chunk) {
    const int64_t r1 = std::min(scored, r0 + a.head_chunk);
    const Tensor logits = a.logits.slice(0, r1 - r0);
    const Tensor hidden = hidden_all.slice(r0, r1);
    be.matmul(logits, hidden, false, embed, true, 1.0f, 0.0f);
    if (logits_out) {
      // Evaluation with a logits dump: cap a copy-out first, then score.
      Tensor capped = logits;
      be.softcap_forward(capped, config_.logit_softcap);
      if (dtype_ == DType::F32) {
        be.copy_to_host(logits_out + r0 * v, capped);
      } else {
        const std::vector<float> values = download_floats(be, capped);
        std::copy(values.begin(), values.end(), logits_out + r0 * v);
      }
      // Logits are capped already: score them uncapped (cap 0) to avoid capping twice.
      be.softcap_cross_entropy(logits, a.losses.slice(r0, r1), targets_all.slice(r0, r1), 0.0, 0.0);
    } else if (a.bf16_logits) {
      // The gradient over the BF16 logits themselves (in place).
      be.softcap_cross_entropy_into(logits, logits, a.losses.slice(r0, r1),
                                    targets_all.slice(r0, r1), config_.logit_softcap,
                                    training ? loss_scale : 0.0);
    } else if (training && a.bf16_activations) {
      be.softcap_cross_entropy_into(a.dlogits16.slice(0, r1 - r0), logits, a.losses.slice(r0, r1),
                                    targets_all.slice(r0, r1), config_.logit_softcap, loss_scale);
    } else {
      be.softcap_cross_entropy(logits, a.losses.slice(r0, r1), targets_all.slice(r0, r1),
                               config_.logit_softcap, training ? loss_scale : 0.0);
    }
    if (training) {
      // dlnf[rows] = dlogits E ; dE += dlogits^T lnf[rows] (when the base trains)
      const Tensor dlogits =
          a.bf16_activations && !a.bf16_logits ? a.dlogits16.slice(0, r1 - r0) : logits;
      be.matmul(dhidden_all.slice(r0, r1), dlogits, false, embed, false, 1.0f, 0.0f);
      if (trains_base()) be.matmul(grad(layout_.embed), dlogits, true, hidden, false, 1.0f, 1.0f);
    }
  }
  if (training && compact) {
    // Unscored rows get no gradient; scored rows are scattered back (unique
    // indices, so the scatter-add is a plain copy).
    be.fill(a.dln, 0.0);
    if (m > 0) be.embedding_backward(a.dln, a.head_rows.slice(0, m), a.head_dhidden.slice(0, m));
  }

  return scored;
}

LossSum Model::head_loss(int64_t scored) {
  // Sum the per-token losses on the host in double, in order. Rows without a
  // target scored 0 (backend.h), so every scored row adds; the count is the
  // targets'.
  std::vector<double> losses_host(static_cast<size_t>(scored));
  if (scored > 0) {
    if (dtype_ == DType::F32) {
      std::vector<float> l(static_cast<size_t>(scored));
      backend_.copy_to_host(l.data(), acts_.losses.slice(0, scored));
      losses_host.assign(l.begin(), l.end());
    } else {
      backend_.copy_to_host(losses_host.data(), acts_.losses.slice(0, scored));
    }
  }
  LossSum loss;
  for (const double l : losses_host) loss.sum += l;
  loss.count = static_cast<int64_t>(std::count_if(targets_host_.begin(), targets_host_.end(),
                                                  [](int32_t t) { return t != -100; }));
  return loss;
}

}  // namespace hessgpt
