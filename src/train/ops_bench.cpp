#include "train/ops_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <regex>
#include <vector>

#include "model/activations.h"
#include "model/param_layout.h"
#include "train/optimizer.h"

namespace hessgpt {
namespace {

std::string dims(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (int64_t x : d) s += (s.size() > 1 ? ", " : "") + std::to_string(x);
  return s + "]";
}

class Bench {
 public:
  Bench(Backend& be, int repeat, uint64_t seed, const std::string& only)
      : be_(be), repeat_(repeat), gen_(seed) {
    if (only.empty()) return;
    try {
      only_.emplace(only, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      HG_FAIL("ops bench: '", only, "' is not a regular expression: ", e.what());
    }
  }

  // Uniform in [-scale, scale] from xorshift64*: model1's shapes need about
  // a billion values, and speed does not depend on the distribution.
  Tensor random(std::initializer_list<int64_t> d, float scale = 1.0f) {
    Tensor t = alloc(DType::F32, d);
    std::vector<float> v(static_cast<size_t>(t.numel()));
    uint64_t x = gen_() | 1;
    for (auto& out : v) {
      x ^= x >> 12;
      x ^= x << 25;
      x ^= x >> 27;
      const uint32_t bits = static_cast<uint32_t>((x * 0x2545F4914F6CDD1DULL) >> 40);  // 24 bits
      out = scale * (static_cast<float>(bits) * (2.0f / 16777216.0f) - 1.0f);
    }
    be_.copy_from_host(t, v.data());
    return t;
  }
  // An output or state tensor: a non-zero constant (never time on zeros).
  Tensor constant(std::initializer_list<int64_t> d, double value) {
    Tensor t = alloc(DType::F32, d);
    be_.fill(t, value);
    return t;
  }
  // BF16 storage holding small values (a product's output in the benchmark's
  // own first run overwrites it anyway).
  Tensor bf16(std::initializer_list<int64_t> d) {
    Tensor t = alloc(DType::BF16, d);
    const std::vector<uint16_t> v(static_cast<size_t>(t.numel()), 0x3c00);  // 2^-7
    be_.copy_from_host(t, v.data());
    return t;
  }
  Tensor ids(int64_t n, int64_t below) {
    Tensor t = alloc(DType::I32, {n});
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = static_cast<int32_t>(gen_() % static_cast<uint64_t>(below));
    be_.copy_from_host(t, v.data());
    return t;
  }

  void time(const std::string& name, const std::string& shape, double flops, double bytes,
            const std::function<void()>& op) {
    if (only_ && !std::regex_search(name, *only_)) return;
    op();  // warm-up: plans, scratch, first-launch costs
    be_.synchronize();
    std::vector<double> ms;
    for (int i = 0; i < repeat_; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      op();
      be_.synchronize();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    results_.push_back({name, shape, ms[ms.size() / 2], flops, bytes});
  }

  std::vector<OpTiming> results() const { return results_; }

 private:
  Tensor alloc(DType dtype, std::initializer_list<int64_t> d) {
    int64_t n = 1;
    for (int64_t x : d) n *= x;
    buffers_.emplace_back(&be_, static_cast<size_t>(n) * dtype_size(dtype));
    return buffers_.back().tensor(dtype, d);
  }

  Backend& be_;
  int repeat_;
  std::mt19937_64 gen_;
  std::optional<std::regex> only_;
  std::deque<Buffer> buffers_;
  std::vector<OpTiming> results_;
};

}  // namespace

std::vector<OpTiming> run_ops_bench(const ModelConfig& c, Backend& be, int64_t batch, int64_t seq,
                                    int repeat, uint64_t seed, const std::string& only) {
  HG_CHECK(batch > 0 && seq > 0 && repeat > 0, "ops bench needs a positive batch, seq and repeat");
  Bench b(be, repeat, seed, only);
  const int64_t n = batch * seq, d = c.hidden_size, h = c.num_attention_heads;
  const int64_t kv = c.num_key_value_heads, hd = c.head_dim, ffn = c.intermediate_size;
  const int64_t v = c.vocab_size, qkv = c.q_dim() + 2 * c.kv_dim();
  const double f4 = 4.0;  // bytes per F32

  // Products at the shapes of one layer's forward and the head (backward runs
  // the same shapes transposed, twice).
  auto product = [&](const std::string& name, int64_t m, int64_t k, int64_t cols) {
    const Tensor x = b.random({m, k}), w = b.random({cols, k}, 0.02f), y = b.constant({m, cols}, 1.0);
    b.time(name, dims({m, k}) + " x " + dims({cols, k}) + "^T", 2.0 * m * k * cols,
           f4 * (m * k + cols * k + m * cols), [&, x, w, y] { be.matmul(y, x, false, w, true, 1.0f, 0.0f); });
  };
  product("matmul qkv", n, d, qkv);
  product("matmul o", n, c.q_dim(), d);
  product("matmul gate/up", n, d, ffn);
  if (be.supports(DType::BF16)) {
    // --bf16-ffn: the same product written as BF16 (the F32 result rounded once).
    const Tensor x = b.random({n, d}), w = b.random({ffn, d}, 0.02f), y = b.bf16({n, ffn});
    b.time("matmul gate/up (bf16 out)", dims({n, d}) + " x " + dims({ffn, d}) + "^T",
           2.0 * n * d * ffn, f4 * (n * d + ffn * d) + 2.0 * n * ffn,
           [&, x, w, y] { be.matmul(y, x, false, w, true, 1.0f, 0.0f); });
  }
  product("matmul down", n, ffn, d);
  const int64_t chunk = head_chunk_rows(n, v);
  product("matmul head chunk", chunk, d, v);
  if (be.supports(DType::BF16)) {
    // --bf16-activations: BF16 inputs read in place, and the FFN's tensors at
    // the padded width (backend.h) so that gate/up are written in place too.
    const int64_t ffnp = padded_width(ffn);
    auto product16 = [&](const std::string& name, int64_t m, int64_t k, int64_t kx, int64_t cols,
                         int64_t cols_out, bool out16) {
      const Tensor x = b.bf16({m, kx}), w = b.random({cols, k}, 0.02f);
      const Tensor y = out16 ? b.bf16({m, cols_out}) : b.constant({m, cols_out}, 1.0);
      b.time(name, dims({m, kx}) + " x " + dims({cols, k}) + "^T", 2.0 * m * k * cols,
             2.0 * m * kx + f4 * cols * k + (out16 ? 2.0 : f4) * m * cols_out,
             [&, x, w, y] { be.matmul(y, x, false, w, true, 1.0f, 0.0f); });
    };
    product16("matmul qkv (bf16 ln1)", n, d, d, qkv, qkv, false);
    product16("matmul o (bf16 att)", n, c.q_dim(), c.q_dim(), d, d, false);
    product16("matmul gate/up (bf16, padded)", n, d, d, ffn, ffnp, true);
    product16("matmul down (bf16 act, padded)", n, ffn, ffnp, d, d, false);
    // k's and v's projection backward (Model::kv_projections_backward): the
    // input and weight gradients as two products each, against dk_raw and dv
    // side by side and one product each (the concatenation included).
    const int64_t kvd = c.kv_dim();
    const Tensor dk16 = b.bf16({n, kvd}), dvf = b.random({n, kvd}), dkv = b.bf16({n, 2 * kvd});
    const Tensor ln = b.bf16({n, d}), wkv = b.random({2 * kvd, d}, 0.02f);
    const Tensor gkv = b.constant({2 * kvd, d}, 0.0), dln = b.constant({n, d}, 0.0);
    const Tensor wk = wkv.slice(0, kvd), wv = wkv.slice(kvd, 2 * kvd);
    const Tensor gk = gkv.slice(0, kvd), gv = gkv.slice(kvd, 2 * kvd);
    const double kv_flops = 2.0 * 2.0 * n * kvd * d;
    // Bytes: dk_raw (BF16) and dv (F32) in, the weights, and dln read and
    // written in F32 per product; the fused form also writes and reads dkv.
    const double w_bytes = f4 * 2 * kvd * d, dln_rw = 2 * f4 * n * d;
    const double dkv_bytes = 2.0 * n * 2 * kvd, grads_in = (2.0 + f4) * n * kvd;
    b.time("k+v dx (two products)", dims({n, kvd}) + " x2", kv_flops,
           grads_in + w_bytes + 2 * dln_rw,
           [&, dk16, dvf, wk, wv, dln] {
             be.matmul(dln, dk16, false, wk, false, 1.0f, 1.0f);
             be.matmul(dln, dvf, false, wv, false, 1.0f, 1.0f);
           });
    b.time("k+v dx (fused)", dims({n, 2 * kvd}), kv_flops,
           grads_in + 2 * dkv_bytes + w_bytes + dln_rw, [&, dk16, dvf, dkv, wkv, dln] {
             be.concat_columns(dkv, dk16, dvf);
             be.matmul(dln, dkv, false, wkv, false, 1.0f, 1.0f);
           });
    b.time("k+v dW (two products)", dims({kvd, d}) + " x2", kv_flops,
           grads_in + 2 * 2.0 * n * d + 2 * w_bytes,
           [&, dk16, dvf, ln, gk, gv] {
             be.matmul(gk, dk16, true, ln, false, 1.0f, 1.0f);
             be.matmul(gv, dvf, true, ln, false, 1.0f, 1.0f);
           });
    b.time("k+v dW (fused)", dims({2 * kvd, d}), kv_flops, dkv_bytes + 2.0 * n * d + 2 * w_bytes,
           [&, dkv, ln, gkv] { be.matmul(gkv, dkv, true, ln, false, 1.0f, 1.0f); });
    // The fused k/v backward's operand, dk_raw | dv (Model::kv_projections_backward),
    // and the fused q/k/v one's dv beside dq_raw and dk_raw, which QK-Norm's
    // backward wrote in place (qkv_projections_backward); BF16, bytes read and written.
    const Tensor dk16b = b.bf16({n, kvd}), dv16 = b.bf16({n, kvd}), dqkv = b.bf16({n, qkv});
    b.time("concat k | v (bf16)", dims({n, 2 * kvd}), 0, 2.0 * 2 * n * 2 * kvd,
           [&, dkv, dk16b, dv16] { be.concat_columns(dkv, dk16b, dv16); });
    b.time("copy v into q|k|v (bf16)", dims({n, kvd}), 0, 2.0 * 2 * n * kvd,
           [&, dqkv, dv16] { be.copy_columns(dqkv, qkv - kvd, dv16); });
  }
  {
    const Tensor x = b.random({n, d}), w = b.random({d}), out = b.random({n, d}), rstd = b.random({n});
    const Tensor dout = b.random({n, d}), dx = b.random({n, d}), dw = b.random({d});
    b.time("rmsnorm fwd", dims({n, d}), 0, f4 * 2 * n * d,
           [&, x, w, out, rstd] { be.rmsnorm_forward(out, rstd, x, w, c.rms_norm_eps); });
    b.time("rmsnorm bwd", dims({n, d}), 0, f4 * 3 * n * d,
           [&, x, w, rstd, dout, dx, dw] { be.rmsnorm_backward(dx, dw, dout, x, w, rstd, false); });
    const Tensor q = b.random({n * h, hd}), wq = b.random({hd}), qo = b.random({n * h, hd});
    const Tensor rq = b.random({n * h});
    b.time("qk-norm fwd (q)", dims({n * h, hd}), 0, f4 * 2 * n * h * hd,
           [&, q, wq, qo, rq] { be.rmsnorm_forward(qo, rq, q, wq, c.rms_norm_eps); });
    const Tensor dq = b.random({n * h, hd}), dqr = b.random({n * h, hd}), dwq = b.random({hd});
    b.time("qk-norm bwd (q)", dims({n * h, hd}), 0, f4 * 3 * n * h * hd,
           [&, q, wq, rq, dq, dqr, dwq] { be.rmsnorm_backward(dqr, dwq, dq, q, wq, rq, false); });
    if (be.supports(DType::BF16)) {
      const Tensor out16 = b.bf16({n, d});
      b.time("rmsnorm fwd (bf16 out)", dims({n, d}), 0, (f4 + 2.0) * n * d,
             [&, x, w, out16, rstd] { be.rmsnorm_forward(out16, rstd, x, w, c.rms_norm_eps); });
      // The residual's form: dx += and its BF16 copy (the products' operand).
      const Tensor dx16 = b.bf16({n, d});
      b.time("rmsnorm bwd (+= dres, bf16 copy)", dims({n, d}), 0, (4 * f4 + 2.0) * n * d,
             [&, x, w, rstd, dout, dx, dx16, dw] {
               be.rmsnorm_backward_copy(dx, dx16, dw, dout, x, w, rstd, true);
             });
    }
  }
  {
    const Tensor x = b.random({batch, seq, h, hd});
    const Tensor cs = b.random({seq, hd / 2}), sn = b.random({seq, hd / 2});
    b.time("rope fwd (q)", dims({batch, seq, h, hd}), 0, f4 * 2 * n * h * hd,
           [&, x, cs, sn] { be.rope_forward(x, cs, sn, 0); });
    // What the model runs: QK-Norm and RoPE as one op (fused where the backend can).
    const Tensor q = b.random({batch, seq, h, hd}), out = b.random({batch, seq, h, hd});
    const Tensor wq = b.random({hd}), rq = b.random({n * h});
    const Tensor dout = b.random({batch, seq, h, hd}), dq = b.random({batch, seq, h, hd}), dwq = b.random({hd});
    b.time("qk-norm + rope fwd (q)", dims({batch, seq, h, hd}), 0, f4 * 2 * n * h * hd,
           [&, q, out, wq, rq, cs, sn] { be.qk_norm_rope_forward(out, rq, q, wq, c.rms_norm_eps, cs, sn, 0); });
    b.time("qk-norm + rope bwd (q)", dims({batch, seq, h, hd}), 0, f4 * 3 * n * h * hd,
           [&, q, wq, rq, cs, sn, dout, dq, dwq] {
             be.qk_norm_rope_backward(dq, dwq, dout, q, wq, rq, cs, sn, 0, 0);
           });
    if (be.supports(DType::BF16)) {
      // --bf16-activations: BF16 gradients in, q's written into its heads of
      // the fused q/k/v operand (Model::backward).
      const Tensor dout16 = b.bf16({batch, seq, h, hd}), dqkv = b.bf16({batch, seq, h + 2 * kv, hd});
      b.time("qk-norm+rope bwd (q into qkv, bf16)", dims({batch, seq, h, hd}), 0,
             (f4 + 2.0 + 2.0) * n * h * hd, [&, q, wq, rq, cs, sn, dout16, dqkv, dwq] {
               be.qk_norm_rope_backward(dqkv, dwq, dout16, q, wq, rq, cs, sn, 0, 0);
             });
      // The default under --bf16-activations: q before the norm in BF16 too.
      const Tensor q16 = b.bf16({batch, seq, h, hd}), out16 = b.bf16({batch, seq, h, hd});
      b.time("qk-norm+rope fwd (q, all bf16)", dims({batch, seq, h, hd}), 0, 2.0 * 2 * n * h * hd,
             [&, q16, out16, wq, rq, cs, sn] {
               be.qk_norm_rope_forward(out16, rq, q16, wq, c.rms_norm_eps, cs, sn, 0);
             });
      b.time("qk-norm+rope bwd (q into qkv, all bf16)", dims({batch, seq, h, hd}), 0,
             2.0 * 3 * n * h * hd, [&, q16, wq, rq, cs, sn, dout16, dqkv, dwq] {
               be.qk_norm_rope_backward(dqkv, dwq, dout16, q16, wq, rq, cs, sn, 0, 0);
             });
    }
  }
  {
    const Tensor q = b.random({batch, seq, h, hd}), k = b.random({batch, seq, kv, hd});
    const Tensor val = b.random({batch, seq, kv, hd}), out = b.random({batch, seq, h, hd});
    const Tensor lse = b.random({batch, h, seq}), dout = b.random({batch, seq, h, hd});
    const Tensor dq = b.random({batch, seq, h, hd}), dk = b.random({batch, seq, kv, hd});
    const Tensor dv = b.random({batch, seq, kv, hd});
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    // Causal: half of the T x T scores; QK^T and PV are 2 FLOPs per multiply-add each.
    const double fwd = 4.0 * batch * h * hd * (seq * (seq + 1) / 2.0);
    const std::string shape = "q " + dims({batch, seq, h, hd}) + ", kv " + std::to_string(kv);
    b.time("attention fwd", shape, fwd, f4 * (2 * n * h * hd + 2 * n * kv * hd),
           [&, q, k, val, out, lse] { be.attention_forward(out, lse, q, k, val, scale, 0); });
    if (be.supports(DType::BF16)) {
      const Tensor out16 = b.bf16({batch, seq, h, hd});
      b.time("attention fwd (bf16 out)", shape, fwd, (f4 + 2.0) * n * h * hd + f4 * 2 * n * kv * hd,
             [&, q, k, val, out16, lse] { be.attention_forward(out16, lse, q, k, val, scale, 0); });
    }
    // Backward: recomputed scores plus four products (dV, dP, dS K, dS^T Q): 2.5x forward.
    b.time("attention bwd", shape, 2.5 * fwd, f4 * (4 * n * h * hd + 4 * n * kv * hd),
           [&, q, k, val, out, lse, dout, dq, dk, dv] {
             be.attention_backward(dq, dk, dv, dout, q, k, val, out, lse, scale);
           });
    if (be.supports(DType::BF16)) {
      // --bf16-activations: q, k, v and out stored in BF16.
      const Tensor q16 = b.bf16({batch, seq, h, hd}), k16 = b.bf16({batch, seq, kv, hd});
      const Tensor v16 = b.bf16({batch, seq, kv, hd}), out16 = b.bf16({batch, seq, h, hd});
      be.convert(q16, q);
      be.convert(k16, k);
      be.convert(v16, val);
      b.time("attention fwd (all bf16)", shape, fwd, 2.0 * (2 * n * h * hd + 2 * n * kv * hd),
             [&, q16, k16, v16, out16, lse] {
               be.attention_forward(out16, lse, q16, k16, v16, scale, 0);
             });
      b.time("attention bwd (bf16 inputs)", shape, 2.5 * fwd,
             2.0 * (2 * n * h * hd + 2 * n * kv * hd) + f4 * (2 * n * h * hd + 2 * n * kv * hd),
             [&, q16, k16, v16, out16, lse, dout, dq, dk, dv] {
               be.attention_backward(dq, dk, dv, dout, q16, k16, v16, out16, lse, scale);
             });
      // HESSGPT_BF16_ATTENTION_GRADS: the gradients stored in BF16 too.
      const Tensor dout16 = b.bf16({batch, seq, h, hd}), dq16 = b.bf16({batch, seq, h, hd});
      const Tensor dk16 = b.bf16({batch, seq, kv, hd}), dv16 = b.bf16({batch, seq, kv, hd});
      be.convert(dout16, dout);
      b.time("attention bwd (all bf16)", shape, 2.5 * fwd, 2.0 * (4 * n * h * hd + 4 * n * kv * hd),
             [&, q16, k16, v16, out16, lse, dout16, dq16, dk16, dv16] {
               be.attention_backward(dq16, dk16, dv16, dout16, q16, k16, v16, out16, lse, scale);
             });
    }
  }
  {
    const Tensor g = b.random({n, ffn}), u = b.random({n, ffn}), o = b.random({n, ffn});
    const Tensor dout = b.random({n, ffn}), dg = b.random({n, ffn}), du = b.random({n, ffn});
    b.time("swiglu fwd", dims({n, ffn}), 0, f4 * 3 * n * ffn,
           [&, g, u, o] { be.swiglu_forward(o, g, u); });
    b.time("swiglu bwd", dims({n, ffn}), 0, f4 * 5 * n * ffn,
           [&, g, u, dout, dg, du] { be.swiglu_backward(dg, du, dout, g, u); });
    if (be.supports(DType::BF16)) {
      const Tensor g16 = b.bf16({n, ffn}), u16 = b.bf16({n, ffn});
      b.time("swiglu fwd (bf16 gate/up)", dims({n, ffn}), 0, (2.0 * 2 + f4) * n * ffn,
             [&, g16, u16, o] { be.swiglu_forward(o, g16, u16); });
      b.time("swiglu bwd (bf16 gate/up)", dims({n, ffn}), 0, (2.0 * 2 + f4 * 3) * n * ffn,
             [&, g16, u16, dout, dg, du] { be.swiglu_backward(dg, du, dout, g16, u16); });
      const Tensor o16 = b.bf16({n, ffn});
      b.time("swiglu fwd (bf16 in and out)", dims({n, ffn}), 0, 2.0 * 3 * n * ffn,
             [&, g16, u16, o16] { be.swiglu_forward(o16, g16, u16); });
      // --bf16-activations: dact, gate/up in, dgate/dup out, all BF16.
      const Tensor d16 = b.bf16({n, ffn}), dg16 = b.bf16({n, ffn}), du16 = b.bf16({n, ffn});
      b.time("swiglu bwd (all bf16)", dims({n, ffn}), 0, 2.0 * 5 * n * ffn,
             [&, g16, u16, d16, dg16, du16] { be.swiglu_backward(dg16, du16, d16, g16, u16); });
      // Gate and up side by side (Activations::joined_gate_up, the default).
      const Tensor gu16 = b.bf16({n, 2 * ffn}), dgu16 = b.bf16({n, 2 * ffn});
      b.time("swiglu fwd (joined, bf16)", dims({n, ffn}), 0, 2.0 * 3 * n * ffn,
             [&, gu16, o16] { be.swiglu_forward_joined(o16, gu16); });
      b.time("swiglu bwd (joined, bf16)", dims({n, ffn}), 0, 2.0 * 5 * n * ffn,
             [&, gu16, d16, dgu16] { be.swiglu_backward_joined(dgu16, d16, gu16); });
    }
  }
  {
    const Tensor logits = b.random({chunk, v}, 3.0f), losses = b.random({chunk});
    const Tensor targets = b.ids(chunk, v);
    // Overwrites its input with the gradient; later repeats see gradients as
    // logits, which costs the same.
    b.time("softcap cross-entropy", dims({chunk, v}), 0, f4 * 2 * chunk * v,
           [&, logits, losses, targets] {
             be.softcap_cross_entropy(logits, losses, targets, c.logit_softcap, 1.0 / n);
           });
    // The head under --bf16-activations: the gradient into BF16, logits kept.
    if (be.supports(DType::BF16)) {
      const Tensor dlogits16 = b.bf16({chunk, v});
      b.time("softcap cross-entropy (into bf16)", dims({chunk, v}), 0, (f4 + 2.0) * chunk * v,
             [&, logits, losses, targets, dlogits16] {
               be.softcap_cross_entropy_into(dlogits16, logits, losses, targets, c.logit_softcap,
                                             1.0 / n);
             });
    }
  }
  if (be.supports(DType::BF16)) {
    // The training head's default under --bf16-activations: its product writes
    // BF16 logits (twice the rows a chunk for the same bytes) and the
    // cross-entropy writes their gradient over them. Per row, against the rows above.
    const int64_t chunk16 = head_chunk_rows(n, v, 2);
    const Tensor x = b.random({chunk16, d}), e = b.bf16({v, d}), z16 = b.bf16({chunk16, v});
    b.time("matmul head chunk (bf16 logits)", dims({chunk16, d}) + " x " + dims({v, d}) + "^T",
           2.0 * chunk16 * d * v, f4 * chunk16 * d + 2.0 * (v * d + chunk16 * v),
           [&, x, e, z16] { be.matmul(z16, x, false, e, true, 1.0f, 0.0f); });
    const Tensor losses = b.random({chunk16}), targets = b.ids(chunk16, v);
    b.time("softcap cross-entropy (bf16 logits, in place)", dims({chunk16, v}), 0,
           2.0 * 2 * chunk16 * v, [&, z16, losses, targets] {
             be.softcap_cross_entropy_into(z16, z16, losses, targets, c.logit_softcap, 1.0 / n);
           });
  }
  if (be.supports(DType::BF16)) {
    // The head's weight gradient, dE += dlogits^T x into the F32 embedding
    // gradient, a call per chunk: the seventh GPU session's profile had it at
    // 0.94 ms a 4193-row chunk (367 TFLOP/s, 6.6 ms a model1 step) where
    // PyTorch's one call over all 32768 rows took 3.4 ms. The same product over
    // a chunk, two chunks and the whole batch, and over a chunk with x in BF16
    // (the model's x is the final norm's F32 output, staged per call), tell
    // what a chunk's call costs beyond its share.
    const int64_t chunk16 = head_chunk_rows(n, v, 2);
    const Tensor de = b.constant({v, d}, 0.0);
    auto head_dw = [&](const std::string& name, int64_t rows, bool x16) {
      const Tensor g16 = b.bf16({rows, v});
      const Tensor x = x16 ? b.bf16({rows, d}) : b.random({rows, d});
      b.time(name, dims({rows, v}) + "^T x " + dims({rows, d}), 2.0 * rows * v * d,
             2.0 * rows * v + (x16 ? 2.0 : f4) * rows * d + 2 * f4 * v * d,
             [&, g16, x, de] { be.matmul(de, g16, true, x, false, 1.0f, 1.0f); });
    };
    head_dw("matmul head dW chunk", chunk16, false);
    head_dw("matmul head dW chunk (bf16 x)", chunk16, true);
    if (2 * chunk16 < n) head_dw("matmul head dW two chunks", 2 * chunk16, false);
    if (chunk16 < n) head_dw("matmul head dW whole batch", n, false);
  }
  {
    const Tensor table = b.random({v, d}, 0.02f), out = b.random({n, d});
    const Tensor tok = b.ids(n, v);
    b.time("embedding fwd", dims({n, d}), 0, f4 * 2 * n * d,
           [&, table, out, tok] { be.embedding_forward(out, tok, table); });
  }
  {
    const int64_t params = c.parameter_count();
    const Tensor p = b.constant({params}, 0.02), g = b.constant({params}, 1e-3);
    const Tensor m = b.constant({params}, 1e-4), s = b.constant({params}, 1e-6);
    AdamWParams hp;
    hp.weight_decay = 0.1;
    b.time("adamw (all parameters)", dims({params}), 0, f4 * 7 * params,
           [&, p, g, m, s, hp] { be.adamw_step(p, g, m, s, hp); });
    // The optimizer's call: every decay group of the model in one (one launch
    // on the GPU), against one adamw_step per group as before
    // (HESSGPT_ADAMW_CHUNKED=0 in a training run).
    const std::vector<AdamWGroup> groups = decay_groups(make_param_layout(c));
    b.time("adamw (model's groups, one call)", dims({params}), 0, f4 * 7 * params,
           [&, p, g, m, s, hp, groups] { be.adamw_step_groups(p, g, m, s, groups, hp); });
    b.time("adamw (model's groups, a call each)", dims({params}), 0, f4 * 7 * params,
           [&, p, g, m, s, hp, groups] { be.Backend::adamw_step_groups(p, g, m, s, groups, hp); });
    b.time("sum_squares (all gradients)", dims({params}), 0, f4 * params,
           [&, g] { (void)be.sum_squares(g); });
  }
  return b.results();
}

}  // namespace hessgpt
