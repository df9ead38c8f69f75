// Backend::decode_attention's checks and its default: the step as the ops a
// KV-cache session would otherwise call, at the position read back first.
#include <cstdint>

#include "backend/backend.h"
#include "core/error.h"

namespace hessgpt {

DecodeShape check_decode_attention(const Backend::DecodeAttention& s) {
  const DType f = s.q_raw.dtype;
  HG_CHECK(f == DType::F32 || f == DType::F64, "decode attention computes in F32 or F64, not ",
           dtype_name(f));
  const auto same = [&](const Tensor& t, const char* what) {
    HG_CHECK(t.data != nullptr, "decode attention: ", what, " is missing");
    HG_CHECK(t.dtype == f, "decode attention: ", what, " is ", dtype_name(t.dtype), ", q_raw ",
             dtype_name(f));
  };
  for (const auto& [t, what] : {std::pair{&s.out, "out"}, {&s.q_out, "q_out"},
                                {&s.k_raw, "k_raw"}, {&s.v_raw, "v_raw"},
                                {&s.k_cache, "k_cache"}, {&s.v_cache, "v_cache"},
                                {&s.cos, "cos"}, {&s.sin, "sin"}})
    same(*t, what);
  HG_CHECK(s.k_cache.ndim == 3, "decode attention: k_cache must be [P, KV, D], got ",
           s.k_cache.shape_string());
  HG_CHECK(s.v_cache.ndim == 3 && s.v_cache.dim(0) == s.k_cache.dim(0) &&
               s.v_cache.dim(1) == s.k_cache.dim(1) && s.v_cache.dim(2) == s.k_cache.dim(2),
           "decode attention: v_cache ", s.v_cache.shape_string(), " for k_cache ",
           s.k_cache.shape_string());
  DecodeShape d;
  d.positions = s.k_cache.dim(0);
  d.kv_heads = s.k_cache.dim(1);
  d.head_dim = s.k_cache.dim(2);
  HG_CHECK(d.positions > 0 && d.kv_heads > 0 && d.head_dim > 0 && d.head_dim % 2 == 0,
           "decode attention: cache ", s.k_cache.shape_string(), " (D must be even)");
  HG_CHECK(s.q_raw.numel() % d.head_dim == 0, "decode attention: q_raw ",
           s.q_raw.shape_string(), " is not whole heads of ", d.head_dim);
  d.heads = s.q_raw.numel() / d.head_dim;
  HG_CHECK(d.heads > 0 && d.heads % d.kv_heads == 0, "decode attention: ", d.heads,
           " query heads for ", d.kv_heads, " key/value heads");
  const int64_t kvd = d.kv_heads * d.head_dim;
  HG_CHECK(s.q_out.numel() == s.q_raw.numel() && s.out.numel() == s.q_raw.numel(),
           "decode attention: out ", s.out.shape_string(), " and q_out ", s.q_out.shape_string(),
           " for q_raw ", s.q_raw.shape_string());
  HG_CHECK(s.k_raw.numel() == kvd && s.v_raw.numel() == kvd, "decode attention: k_raw ",
           s.k_raw.shape_string(), " and v_raw ", s.v_raw.shape_string(), " for ", d.kv_heads,
           " heads of ", d.head_dim);
  const bool norms = s.q_norm.data != nullptr;
  HG_CHECK(norms == (s.k_norm.data != nullptr), "decode attention: q_norm and k_norm go together");
  if (norms) {
    same(s.q_norm, "q_norm");
    same(s.k_norm, "k_norm");
    HG_CHECK(s.q_norm.numel() == d.head_dim && s.k_norm.numel() == d.head_dim,
             "decode attention: norm weights must have ", d.head_dim, " values");
  }
  for (const Tensor* t : {&s.cos, &s.sin})
    HG_CHECK(t->ndim == 2 && t->dim(0) >= d.positions && t->dim(1) == d.head_dim / 2,
             "decode attention: RoPE table ", t->shape_string(), " for ", d.positions,
             " positions of ", d.head_dim / 2, " pairs");
  HG_CHECK(s.pos.dtype == DType::I32 && s.pos.numel() == 1 && s.pos.data != nullptr,
           "decode attention: pos must be one I32");
  return d;
}

void Backend::decode_attention(const DecodeAttention& s) {
  const DecodeShape d = check_decode_attention(s);
  int32_t p = 0;
  copy_to_host(&p, s.pos);
  HG_CHECK(p >= 0 && p < d.positions, "decode attention: position ", p, " outside the cache's ",
           d.positions, " rows");
  const int64_t h = d.heads, kv = d.kv_heads, hd = d.head_dim;
  const DType f = s.q_raw.dtype;
  const Buffer scratch(this, static_cast<size_t>(2 * h + kv) * dtype_size(f));
  const Tensor rstd_q = scratch.tensor(f, {h}), lse = scratch.tensor(f, {1, h, 1}, rstd_q.bytes());
  const Tensor rstd_k = scratch.tensor(f, {kv}, 2 * rstd_q.bytes());
  const Tensor q = s.q_out.view({1, 1, h, hd});
  const Tensor k_row = s.k_cache.slice(p, p + 1).view({1, 1, kv, hd});
  if (s.q_norm.data) {
    qk_norm_rope_forward(q, rstd_q, s.q_raw.view({1, 1, h, hd}), s.q_norm, s.eps, s.cos, s.sin, p);
    qk_norm_rope_forward(k_row, rstd_k, s.k_raw.view({1, 1, kv, hd}), s.k_norm, s.eps, s.cos,
                         s.sin, p);
  } else {
    copy(q, s.q_raw.view({1, 1, h, hd}));
    copy(k_row, s.k_raw.view({1, 1, kv, hd}));
    rope_forward(q, s.cos, s.sin, p);
    rope_forward(k_row, s.cos, s.sin, p);
  }
  copy(s.v_cache.slice(p, p + 1).view({1, 1, kv, hd}), s.v_raw.view({1, 1, kv, hd}));
  const int64_t keys = p + 1;
  attention_forward(s.out.view({1, 1, h, hd}), lse, q,
                    s.k_cache.slice(0, keys).view({1, keys, kv, hd}),
                    s.v_cache.slice(0, keys).view({1, keys, kv, hd}), s.scale, p);
}

}  // namespace hessgpt
