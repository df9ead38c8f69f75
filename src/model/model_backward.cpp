// The backward pass, block by block in reverse. dres carries the gradient of
// the residual stream; each sub-block adds its contribution to it (the
// residual connection passes it through unchanged). Parameter gradients +=.
#include <cmath>

#include "core/env_switch.h"
#include "model/model.h"

namespace hessgpt {

void Model::backward_blocks() {
  Backend& be = backend_;
  const ModelConfig& c = config_;
  Activations& a = acts_;
  const int64_t n = a.batch * a.seq;
  const int64_t h = c.num_attention_heads, kv = c.num_key_value_heads, hd = c.head_dim;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));

  // The products read dres through its BF16 copy where the arena has one
  // (activations.h): the norms' backward writes it beside dres.
  const bool copy_dres = a.dres16.data != nullptr;
  const Tensor& dres_operand = copy_dres ? a.dres16 : a.dres;
  const auto norm_backward = [&](int norm, const Tensor& x, const Tensor& rstd, bool accumulate,
                                 bool copy, const Tensor& dln) {
    if (copy)
      be.rmsnorm_backward_copy(a.dres, a.dres16, norm_grad(norm), dln, x, param(norm), rstd,
                               accumulate);
    else
      be.rmsnorm_backward(a.dres, norm_grad(norm), dln, x, param(norm), rstd, accumulate);
  };

  const bool fuse_kv = fuses_kv_projections();
  const bool fuse_qkv = fuse_kv && fuses_qkv_projections();
  // Final norm: dln holds dloss/dlnf from the head.
  norm_backward(layout_.final_norm, a.output, a.rstdf, false, copy_dres, a.dln);

  for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l) {
    const LayerParamIndex& p = layout_.layers[static_cast<size_t>(l)];
    LayerActivations& la = a.layers[static_cast<size_t>(l)];
    if (a.shared_mlp) {
      // Rebuild what this layer's forward left in the shared tensors
      // (activations.h): ln2 and act now, q, k and ln1 before their use.
      be.rmsnorm_forward(la.ln2, la.rstd2, la.mid, param(p.post_norm), c.rms_norm_eps);
      if (a.joined_gate_up) be.swiglu_forward_joined(la.act, la.gate_up);
      else be.swiglu_forward(la.act, la.gate, la.up);
    }
    // MLP: out = mid + act Wdown^T
    project_backward(l, LoraTarget::Down, p.down_proj, a.dact, dres_operand, la.act, 0.0f);
    if (a.joined_gate_up) {
      gate_up_backward(p, la);
    } else {
      be.swiglu_backward(a.dgate, a.dup, a.dact, la.gate, la.up);
      project_backward(l, LoraTarget::Gate, p.gate_proj, a.dln, a.dgate, la.ln2, 0.0f);
      project_backward(l, LoraTarget::Up, p.up_proj, a.dln, a.dup, la.ln2, 1.0f);
    }
    norm_backward(p.post_norm, la.mid, la.rstd2, true, copy_dres,
                  a.joined_gate_up ? one_product_dln() : a.dln);
    // Attention: mid = input + att Wo^T
    project_backward(l, LoraTarget::O, p.o_proj, a.datt.view({n, h * hd}), dres_operand,
                     la.att.view({n, h * hd}), 0.0f);
    if (a.shared_attention) attention_inputs(l);
    be.attention_backward(a.dq, a.dk, a.dv, a.datt, la.q, la.k, la.v, la.att, la.lse, scale);
    if (c.qk_norm) {
      const int64_t b = a.batch, t = a.seq;
      // Fused, q's and k's gradients go straight to their heads of the q/k/v operand.
      const Tensor qkv_heads = fuse_qkv ? a.dqkv.view({b, t, h + 2 * kv, hd}) : Tensor{};
      be.qk_norm_rope_backward(fuse_qkv ? qkv_heads : a.dq_raw.view({b, t, h, hd}),
                               norm_grad(p.q_norm), a.dq, la.q_raw.view({b, t, h, hd}),
                               param(p.q_norm), la.rstd_q, rope_.cos, rope_.sin, 0, 0);
      be.qk_norm_rope_backward(fuse_qkv ? qkv_heads : a.dk_raw.view({b, t, kv, hd}),
                               norm_grad(p.k_norm), a.dk, la.k_raw.view({b, t, kv, hd}),
                               param(p.k_norm), la.rstd_k, rope_.cos, rope_.sin, 0,
                               fuse_qkv ? h : 0);
    } else {
      be.rope_backward(a.dq, rope_.cos, rope_.sin, 0);
      be.rope_backward(a.dk, rope_.cos, rope_.sin, 0);
      be.copy(a.dq_raw, a.dq.view({n, h * hd}));
      be.copy(a.dk_raw, a.dk.view({n, kv * hd}));
    }
    if (a.shared_attention)
      be.rmsnorm_forward(la.ln1, la.rstd1, la.input, param(p.input_norm), c.rms_norm_eps);
    if (fuse_qkv) {
      qkv_projections_backward(p, la.ln1);
    } else {
      project_backward(l, LoraTarget::Q, p.q_proj, a.dln, a.dq_raw, la.ln1, 0.0f);
      if (fuse_kv) {
        kv_projections_backward(p, la.ln1);
      } else {
        project_backward(l, LoraTarget::K, p.k_proj, a.dln, a.dk_raw, la.ln1, 1.0f);
        project_backward(l, LoraTarget::V, p.v_proj, a.dln, a.dv.view({n, kv * hd}), la.ln1,
                         1.0f);
      }
    }
    // The embedding's backward below reads the F32 dres: no copy after layer 0.
    norm_backward(p.input_norm, la.input, la.rstd1, true, copy_dres && l > 0,
                  fuse_qkv ? one_product_dln() : a.dln);
  }
  if (trains_base()) be.embedding_backward(grad(layout_.embed), a.ids, a.dres);
}

// dk_raw and dv side by side as one BF16 operand [N, 2 KV*D] make k's and v's
// input gradient one product (K = 2 KV*D) and their weight gradient another
// (k_proj, v_proj adjacent: one [2 KV*D, C] block), where separate ones read
// and wrote the F32 dln twice at K = KV*D (memory-bound: 150-185 TFLOP/s on
// an H200). It applies without adapters, with dk_raw in BF16
// (--bf16-activations): the operand then fits in dk's own bytes ([N, KV*D]
// F32), free once QK-Norm's backward has read it, or in datt's where
// attention's gradients are BF16 too (free once attention's backward has
// read it). HESSGPT_FUSED_KV=0 keeps the separate products (A/B timings).
Tensor Model::kv_gradient_operand() const {
  const Activations& a = acts_;
  const int64_t n = a.batch * a.seq, kvd = config_.kv_dim();
  const size_t bytes = dtype_size(DType::BF16) * static_cast<size_t>(n * 2 * kvd);
  for (const Tensor* t : {&a.dk, &a.datt})
    if (t->bytes() >= bytes) return Tensor(t->data, DType::BF16, t->device, {n, 2 * kvd});
  return {};
}

bool Model::fuses_kv_projections() const {
  const Activations& a = acts_;
  if (has_lora() || !a.bf16_activations || a.dk_raw.dtype != DType::BF16 ||
      kv_gradient_operand().data == nullptr)
    return false;
  if (!env_switch_on("HESSGPT_FUSED_KV")) return false;
  for (const LayerParamIndex& p : layout_.layers) {
    const ParamInfo& k = layout_.params[static_cast<size_t>(p.k_proj)];
    if (layout_.params[static_cast<size_t>(p.v_proj)].offset != k.offset + k.numel ||
        !stacked_product_weights(p.k_proj, p.v_proj, 2 * config_.kv_dim()).data)
      return false;
  }
  return true;
}

// q's projection backward joins k's and v's (HESSGPT_FUSED_QKV=0 keeps it
// separate, for A/B timings): QK-Norm's backward writes dq_raw and dk_raw
// straight into their columns of the arena's dqkv and dv is copied beside
// them, then one product gives dln (K = H*D + 2 KV*D, written once: the
// separate q product wrote the F32 dln and the k/v product read and wrote it
// again) and one the stacked [q; k; v] weight gradient. (Concatenating
// dq_raw | dk_raw | dv instead moved 5.6 ms of model1's step on an H200.)
bool Model::fuses_qkv_projections() const {
  if (acts_.dqkv.data == nullptr || !config_.qk_norm) return false;
  if (!env_switch_on("HESSGPT_FUSED_QKV")) return false;
  for (const LayerParamIndex& p : layout_.layers) {
    const ParamInfo& q = layout_.params[static_cast<size_t>(p.q_proj)];
    if (layout_.params[static_cast<size_t>(p.k_proj)].offset != q.offset + q.numel ||
        !stacked_product_weights(p.q_proj, p.k_proj, config_.q_dim() + config_.kv_dim()).data)
      return false;
  }
  return true;
}

void Model::qkv_projections_backward(const LayerParamIndex& p, const Tensor& ln1) {
  Activations& a = acts_;
  const int64_t n = a.batch * a.seq, kvd = config_.kv_dim(), rows = config_.q_dim() + 2 * kvd;
  backend_.copy_columns(a.dqkv, config_.q_dim() + kvd, a.dv.view({n, kvd}));
  const Tensor w = stacked_product_weights(p.q_proj, p.k_proj, rows), gq = grad(p.q_proj);
  const Tensor dw(gq.data, gq.dtype, gq.device, {rows, gq.cols()});
  backend_.matmul(dw, a.dqkv, true, ln1, false, 1.0f, 1.0f);     // d[Wq; Wk; Wv] += dqkv^T ln1
  // dln = dqkv [Wq; Wk; Wv]
  backend_.matmul(one_product_dln(), a.dqkv, false, w, false, 1.0f, 0.0f);
}

void Model::kv_projections_backward(const LayerParamIndex& p, const Tensor& ln1) {
  Activations& a = acts_;
  const int64_t n = a.batch * a.seq, kvd = config_.kv_dim();
  const Tensor dkv = kv_gradient_operand();
  backend_.concat_columns(dkv, a.dk_raw, a.dv.view({n, kvd}));
  const Tensor w = stacked_product_weights(p.k_proj, p.v_proj, 2 * kvd), gk = grad(p.k_proj);
  const Tensor dw(gk.data, gk.dtype, gk.device, {2 * kvd, gk.cols()});
  backend_.matmul(dw, dkv, true, ln1, false, 1.0f, 1.0f);     // d[Wk; Wv] += dkv^T ln1
  backend_.matmul(a.dln, dkv, false, w, false, 1.0f, 1.0f);  // dln += dkv [Wk; Wv]
}

// Gate and up side by side: one product wrote both (forward), and here one
// gives dln (K = 2 FFN: the separate up product read and wrote the F32 dln
// again, 336 MB a layer for model1) and one their weights' gradient. The
// weight copies hold gate's and up's rows padded alike, so they stack as the
// columns do; the gradients do not (3413 rows each for model1), so a padded
// FFN's weight gradient goes through scratch and into each half.
Tensor Model::gate_up_weights(const LayerParamIndex& p) const {
  const int64_t ffn = padded_width(config_.intermediate_size);
  const Tensor w = stacked_product_weights(p.gate_proj, p.up_proj, 2 * ffn);
  HG_CHECK(weight_copies_live_ && w.data, "gate|up: the weight copies are not side by side");
  return w;
}

void Model::gate_up_backward(const LayerParamIndex& p, const LayerActivations& la) {
  Activations& a = acts_;
  const int64_t f = config_.intermediate_size, ffn = la.act.cols();
  backend_.swiglu_backward_joined(a.dgate_up, a.dact, la.gate_up);
  const Tensor gg = grad(p.gate_proj), gu = grad(p.up_proj);
  if (ffn == f) {
    const Tensor dw(gg.data, gg.dtype, gg.device, {2 * f, gg.cols()});
    backend_.matmul(dw, a.dgate_up, true, la.ln2, false, 1.0f, 1.0f);  // d[Wg; Wu] += dgu^T ln2
  } else {
    backend_.matmul(a.dw_gate_up, a.dgate_up, true, la.ln2, false, 1.0f, 0.0f);
    backend_.add_inplace(gg, a.dw_gate_up.slice(0, f));
    backend_.add_inplace(gu, a.dw_gate_up.slice(ffn, ffn + f));
  }
  backend_.matmul(one_product_dln(), a.dgate_up, false, gate_up_weights(p), false, 1.0f, 0.0f);
}

}  // namespace hessgpt
