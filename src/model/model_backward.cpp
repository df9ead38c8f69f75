// The backward pass, block by block in reverse. dres carries the gradient of
// the residual stream; each sub-block adds its contribution to it (the
// residual connection passes it through unchanged). Parameter gradients +=.
#include <cmath>

#include "model/model.h"

namespace hessgpt {

namespace {
// For y = x W^T: dW += dy^T x, and dx = dy W (beta 0) or dx += dy W (beta 1).
void linear_backward(Backend& be, const Tensor& dx, const Tensor& dw, const Tensor& dy,
                     const Tensor& x, const Tensor& w, float dx_beta) {
  be.matmul(dw, dy, true, x, false, 1.0f, 1.0f);
  be.matmul(dx, dy, false, w, false, 1.0f, dx_beta);
}
}  // namespace

void Model::backward_blocks() {
  Backend& be = backend_;
  const ModelConfig& c = config_;
  Activations& a = acts_;
  const int64_t n = a.batch * a.seq;
  const int64_t h = c.num_attention_heads, kv = c.num_key_value_heads, hd = c.head_dim;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));

  // Final norm: dln holds dloss/dlnf from the head.
  be.rmsnorm_backward(a.dres, grad(layout_.final_norm), a.dln, a.output,
                      param(layout_.final_norm), a.rstdf, false);

  for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l) {
    const LayerParamIndex& p = layout_.layers[static_cast<size_t>(l)];
    LayerActivations& la = a.layers[static_cast<size_t>(l)];
    // MLP: out = mid + act Wdown^T
    be.matmul(grad(p.down_proj), a.dres, true, la.act, false, 1.0f, 1.0f);
    be.matmul(a.dact, a.dres, false, param(p.down_proj), false, 1.0f, 0.0f);
    be.swiglu_backward(a.dgate, a.dup, a.dact, la.gate, la.up);
    linear_backward(be, a.dln, grad(p.gate_proj), a.dgate, la.ln2, param(p.gate_proj), 0.0f);
    linear_backward(be, a.dln, grad(p.up_proj), a.dup, la.ln2, param(p.up_proj), 1.0f);
    be.rmsnorm_backward(a.dres, grad(p.post_norm), a.dln, la.mid, param(p.post_norm), la.rstd2,
                        true);
    // Attention: mid = input + att Wo^T
    const Tensor att2d = la.att.view({n, h * hd});
    be.matmul(grad(p.o_proj), a.dres, true, att2d, false, 1.0f, 1.0f);
    be.matmul(a.datt.view({n, h * hd}), a.dres, false, param(p.o_proj), false, 1.0f, 0.0f);
    be.attention_backward(a.dq, a.dk, a.dv, a.datt, la.q, la.k, la.v, la.att, la.lse, scale);
    be.rope_backward(a.dq, rope_cos_, rope_sin_, 0);
    be.rope_backward(a.dk, rope_cos_, rope_sin_, 0);
    if (c.qk_norm) {
      be.rmsnorm_backward(a.dq_raw.view({n * h, hd}), grad(p.q_norm), a.dq.view({n * h, hd}),
                          la.q_raw.view({n * h, hd}), param(p.q_norm), la.rstd_q, false);
      be.rmsnorm_backward(a.dk_raw.view({n * kv, hd}), grad(p.k_norm), a.dk.view({n * kv, hd}),
                          la.k_raw.view({n * kv, hd}), param(p.k_norm), la.rstd_k, false);
    } else {
      be.copy(a.dq_raw, a.dq.view({n, h * hd}));
      be.copy(a.dk_raw, a.dk.view({n, kv * hd}));
    }
    linear_backward(be, a.dln, grad(p.q_proj), a.dq_raw, la.ln1, param(p.q_proj), 0.0f);
    linear_backward(be, a.dln, grad(p.k_proj), a.dk_raw, la.ln1, param(p.k_proj), 1.0f);
    linear_backward(be, a.dln, grad(p.v_proj), a.dv.view({n, kv * hd}), la.ln1,
                    param(p.v_proj), 1.0f);
    be.rmsnorm_backward(a.dres, grad(p.input_norm), a.dln, la.input, param(p.input_norm),
                        la.rstd1, true);
  }
  be.embedding_backward(grad(layout_.embed), a.ids, a.dres);
}

}  // namespace hessgpt
