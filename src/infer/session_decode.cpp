// One decode step (a single token) in one OpenMP parallel region; see
// session.h. What sets the design is the cost of a synchronisation on a
// loaded 2-core machine: a woken thread waits for a time slice, so one
// barrier (or fork/join) costs 0.1-0.3 ms at nice 19 under load, against
// 0.5-1 ms of weight streaming per layer. The per-op path has ~17 fork/joins per
// layer; this one has 4 barriers:
//
//   own heads: q/k/v rows, QK-Norm, RoPE, K/V into the cache, attention
//   -- barrier --  o_proj rows (each thread its share)
//   -- barrier --  gate/up rows, SwiGLU of the same rows
//   -- barrier --  down_proj rows
//   -- barrier --  (next layer)
//
// Every thread keeps its own copy of the residual stream and its own
// prepared matrix input: after a barrier each one adds the shared output,
// normalises and quantises the next input redundantly (a few microseconds)
// instead of waiting for one thread to do it. Attention is split by KV head
// group, so a thread only needs the q/k/v rows it computed itself.
//
// Each thread streams one contiguous run of each shared matrix's rows (a
// static split): the hardware prefetchers ramp up once per run. On this
// 2-core machine that decoded 20-30 % faster than handing out 32-512 KB
// blocks from a counter or OpenMP's guided schedule (model1 INT4 ~72 against
// ~60 and ~55 tokens/s), at the price that a preempted thread now stalls the
// barrier instead of giving its rows away. Every value is computed the same
// way whichever thread computes it, so results are bit-identical for any
// thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/vec_math.h"
#include "infer/session.h"

namespace hessgpt::infer {
namespace {

Tensor host(const float* p, std::initializer_list<int64_t> dims) {
  return Tensor(const_cast<float*>(p), DType::F32, Device::CPU, dims);
}

struct RowRange {
  int64_t r0, r1;
};

// This thread's share of the rows [0, rows): one contiguous run of whole
// 4-row kernel blocks per thread.
RowRange thread_share(int64_t rows) {
  const int64_t nth = omp_get_num_threads(), tid = omp_get_thread_num();
  const int64_t units = (rows + 3) / 4;
  return {std::min(rows, 4 * (units * tid / nth)), std::min(rows, 4 * (units * (tid + 1) / nth))};
}

// fn(r0, r1) over this thread's share of the rows, then a barrier. Called by
// every thread.
template <typename Fn>
void team_rows(int64_t rows, Fn&& fn) {
  const RowRange r = thread_share(rows);
  if (r.r1 > r.r0) fn(r.r0, r.r1);
#pragma omp barrier
}

// One query row against cache rows 0..n-1 of one KV head (row stride
// `stride`): softmax(q K^T * scale) V into out[d]. p: n floats of scratch.
void attend_one(float* out, const float* q, const float* k, const float* v, int64_t n,
                int64_t stride, int64_t d, float scale, float* p) {
  float m = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    const float* kj = k + j * stride;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t e = 0; e < d; ++e) s += q[e] * kj[e];
    p[j] = scale * s;
    m = std::max(m, p[j]);
  }
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    p[j] = cpu::vexp(p[j] - m);
    sum += p[j];
  }
  std::fill(out, out + d, 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const float* vj = v + j * stride;
    const float pj = p[j];
#pragma omp simd
    for (int64_t e = 0; e < d; ++e) out[e] += pj * vj[e];
  }
  const float inv = 1.0f / sum;
  for (int64_t e = 0; e < d; ++e) out[e] *= inv;
}

}  // namespace

void DecoderSession::decode_one(int32_t id) {
  const ModelConfig& c = w_.config;
  const int64_t d = c.hidden_size, f = c.intermediate_size, v = c.vocab_size;
  const int64_t h = c.num_attention_heads, kv = c.num_key_value_heads, hd = c.head_dim;
  const int64_t group = h / kv, kvd = kv * hd, n_layers = c.num_hidden_layers;
  const int64_t pos = pos_, half = hd / 2;
  const double eps = c.rms_norm_eps;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  const Tensor cos = host(rope_cos_.data(), {capacity_, half});
  const Tensor sin = host(rope_sin_.data(), {capacity_, half});
  const int max_threads = std::max(1, omp_get_max_threads());
  if (static_cast<int>(lanes_.size()) < max_threads) lanes_.resize(static_cast<size_t>(max_threads));
  for (DecodeLane& lane : lanes_) {
    lane.x.resize(static_cast<size_t>(d));
    lane.ln.resize(static_cast<size_t>(d));
    lane.rstd.resize(static_cast<size_t>(h));
    lane.p.resize(static_cast<size_t>(capacity_));
  }
  w_.embed.dequantize_rows(id, id + 1, x_.data());

#pragma omp parallel
  {
    DecodeLane& me = lanes_[static_cast<size_t>(omp_get_thread_num())];
    const int nth = omp_get_num_threads(), tid = omp_get_thread_num();
    const Tensor x = host(me.x.data(), {1, d});
    const Tensor ln = host(me.ln.data(), {1, d});
    const Tensor rstd = host(me.rstd.data(), {1});
    std::memcpy(me.x.data(), x_.data(), static_cast<size_t>(d) * sizeof(float));
    // This thread's KV head groups.
    const int64_t g0 = kv * tid / nth, g1 = kv * (tid + 1) / nth;
    // Its q/k/v rows: those of its groups, or, where the groups do not split
    // evenly (model1: 5 over 2 threads, 3/5 of the rows on one), an even share
    // of each matrix, at the cost of one more barrier before the attention.
    const bool even_groups = kv % nth == 0;
    const RowRange rq = even_groups ? RowRange{g0 * group * hd, g1 * group * hd} : thread_share(h * hd);
    const RowRange rk = even_groups ? RowRange{g0 * hd, g1 * hd} : thread_share(kvd);
    for (int64_t l = 0; l < n_layers; ++l) {
      const InferLayer& L = w_.layers[static_cast<size_t>(l)];
      float* kc = k_cache(l);
      float* vc = v_cache(l);
      if (l > 0) be_.add_inplace(x, host(tmp_.data(), {1, d}));  // the previous MLP output
      be_.rmsnorm_forward(ln, rstd, x, host(L.input_norm.data(), {d}), eps);
      me.in.prepare(me.ln.data(), L.q_proj);
      L.q_proj.matvec_rows(me.in, rq.r0, rq.r1, q_.data());
      L.k_proj.matvec_rows(me.in, rk.r0, rk.r1, k_.data());
      L.v_proj.matvec_rows(me.in, rk.r0, rk.r1, vc + pos * kvd);
      if (!even_groups) {
#pragma omp barrier
      }
      if (g1 > g0) {
        const int64_t nq = (g1 - g0) * group, nk = g1 - g0;
        float* q = q_.data() + g0 * group * hd;
        float* qn = qn_.data() + g0 * group * hd;
        float* k = k_.data() + g0 * hd;
        float* kpos = kc + pos * kvd + g0 * hd;  // this token's K row of the cache
        if (c.qk_norm) {
          be_.rmsnorm_forward(host(qn, {nq, hd}), host(me.rstd.data(), {nq}), host(q, {nq, hd}),
                              host(L.q_norm.data(), {hd}), eps);
          be_.rmsnorm_forward(host(kpos, {nk, hd}), host(me.rstd.data(), {nk}), host(k, {nk, hd}),
                              host(L.k_norm.data(), {hd}), eps);
        } else {
          std::memcpy(qn, q, static_cast<size_t>(nq * hd) * sizeof(float));
          std::memcpy(kpos, k, static_cast<size_t>(nk * hd) * sizeof(float));
        }
        be_.rope_forward(host(qn, {1, 1, nq, hd}), cos, sin, pos);
        be_.rope_forward(host(kpos, {1, 1, nk, hd}), cos, sin, pos);
        for (int64_t head = g0 * group; head < g1 * group; ++head) {
          const int64_t g = head / group;
          attend_one(att_.data() + head * hd, qn_.data() + head * hd, kc + g * hd, vc + g * hd,
                     pos + 1, kvd, hd, scale, me.p.data());
        }
      }
#pragma omp barrier
      me.in.prepare(att_.data(), L.o_proj);
      team_rows(d, [&](int64_t r0, int64_t r1) {
        L.o_proj.matvec_rows(me.in, r0, r1, tmp_.data());
      });
      be_.add_inplace(x, host(tmp_.data(), {1, d}));
      be_.rmsnorm_forward(ln, rstd, x, host(L.post_norm.data(), {d}), eps);
      me.in.prepare(me.ln.data(), L.gate_proj);
      team_rows(f, [&](int64_t r0, int64_t r1) {
        L.gate_proj.matvec_rows(me.in, r0, r1, gate_.data());
        L.up_proj.matvec_rows(me.in, r0, r1, up_.data());
        be_.swiglu_forward(host(act_.data() + r0, {1, r1 - r0}), host(gate_.data() + r0, {1, r1 - r0}),
                           host(up_.data() + r0, {1, r1 - r0}));
      });
      me.in.prepare(act_.data(), L.down_proj);
      team_rows(d, [&](int64_t r0, int64_t r1) {
        L.down_proj.matvec_rows(me.in, r0, r1, tmp_.data());
      });
    }
    be_.add_inplace(x, host(tmp_.data(), {1, d}));
    be_.rmsnorm_forward(ln, rstd, x, host(w_.final_norm.data(), {d}), eps);
    me.in.prepare(me.ln.data(), w_.embed);
    team_rows(v, [&](int64_t r0, int64_t r1) {
      w_.embed.matvec_rows(me.in, r0, r1, logits_.data());
    });
  }
  be_.softcap_forward(host(logits_.data(), {1, v}), c.logit_softcap);
  ++pos_;
}

}  // namespace hessgpt::infer
