#include "backend/cuda/attention_cudnn_graphs.h"

#include <vector>

namespace hessgpt::cuda {
namespace {

using Dims = std::vector<int64_t>;

// [B, heads, T, D] over memory laid out [B, T, heads, D].
CudnnTensorSpec bshd(int64_t uid, const CudnnAttnShape& s, int64_t heads) {
  return {uid, CUDNN_DATA_BFLOAT16, {s.b, heads, s.t, s.d},
          {s.t * heads * s.d, s.d, heads * s.d, 1}};
}

// The same memory as [B, heads, D, T]: the last two dims and strides swapped.
CudnnTensorSpec transposed(CudnnTensorSpec spec) {
  std::swap(spec.dims[2], spec.dims[3]);
  std::swap(spec.strides[2], spec.strides[3]);
  return spec;
}

CudnnTensorSpec scalar(int64_t uid) {
  return {uid, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true};
}

// One F32 value per query row, [B, H, T, 1] packed: the statistics' layout.
Dims row_dims(const CudnnAttnShape& s) { return {s.b, s.h, s.t, 1}; }
Dims row_strides(const CudnnAttnShape& s) { return {s.h * s.t, s.t, 1, 1}; }

// Virtual tensors get uids from here on, in creation order.
class Virtuals {
 public:
  Virtuals(CudnnGraph& g, const CudnnAttnShape& s) : g_(g), s_(s) {}
  const CudnnDescriptor& make(cudnnDataType_t type, Dims dims, Dims strides) {
    return g_.tensor({next_++, type, std::move(dims), std::move(strides), true, false});
  }
  // [B, H, T, T] scores, packed.
  const CudnnDescriptor& scores(cudnnDataType_t type = CUDNN_DATA_FLOAT) {
    const Dims dims{s_.b, s_.h, s_.t, s_.t};
    return make(type, dims, packed_strides(dims));
  }
  // The scores' transpose as a view: [B, H, Tk, Tq] over the same layout.
  const CudnnDescriptor& scores_transposed(cudnnDataType_t type) {
    return make(type, {s_.b, s_.h, s_.t, s_.t}, {s_.h * s_.t * s_.t, s_.t * s_.t, 1, s_.t});
  }
  const CudnnDescriptor& rows() { return make(CUDNN_DATA_FLOAT, row_dims(s_), row_strides(s_)); }

 private:
  CudnnGraph& g_;
  const CudnnAttnShape& s_;
  int64_t next_ = 1000;
};

// keep = (row index >= column index) over x's [.., T, T] positions, and
// y = keep ? x : fill: the causal mask, queries and keys both from 0.
void causal_mask(CudnnGraph& g, Virtuals& v, const CudnnDescriptor& x, const CudnnDescriptor& fill,
                 const CudnnDescriptor& y, cudnnDataType_t index_precision) {
  const CudnnDescriptor& row = v.scores(CUDNN_DATA_INT32);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, x, row, {.axis = 2, .precision = index_precision});
  const CudnnDescriptor& col = v.scores(CUDNN_DATA_INT32);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, x, col, {.axis = 3, .precision = index_precision});
  const CudnnDescriptor& keep = v.scores(CUDNN_DATA_BOOLEAN);
  g.pointwise(CUDNN_POINTWISE_CMP_GE, row, keep, {.b = &col, .precision = CUDNN_DATA_BOOLEAN});
  g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, x, y, {.b = &fill, .t = &keep});
}

// scale (Q K^T): the scores both passes start from.
const CudnnDescriptor& scaled_scores(CudnnGraph& g, Virtuals& v, const CudnnDescriptor& q,
                                     const CudnnDescriptor& kt, const CudnnDescriptor& scale) {
  const CudnnDescriptor& raw = v.scores();
  g.matmul(q, kt, raw);
  const CudnnDescriptor& scaled = v.scores();
  g.pointwise(CUDNN_POINTWISE_MUL, raw, scaled, {.b = &scale});
  return scaled;
}

// out = a b for a KV-head gradient: with query heads grouped over fewer KV
// heads, per query head in BF16 and then summed over each group.
void kv_head_product(CudnnGraph& g, Virtuals& v, const CudnnAttnShape& s, const CudnnDescriptor& a,
                     const CudnnDescriptor& b, const CudnnDescriptor& out) {
  if (s.h == s.kv) {
    g.matmul(a, b, out);
    return;
  }
  const Dims heads{s.b, s.h, s.t, s.d};
  const CudnnDescriptor& per_head = v.make(CUDNN_DATA_BFLOAT16, heads, packed_strides(heads));
  g.matmul(a, b, per_head);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, per_head, out);
}

const CudnnDescriptor& row_tensor(CudnnGraph& g, int64_t uid, const CudnnAttnShape& s) {
  return g.tensor({uid, CUDNN_DATA_FLOAT, row_dims(s), row_strides(s)});
}

int64_t round_up_256(int64_t n) { return (n + 255) / 256 * 256; }

}  // namespace

std::string CudnnSdpaVariant::name() const {
  const auto type = [](cudnnDataType_t t) {
    return t == CUDNN_DATA_INT32 ? "int32" : t == CUDNN_DATA_BFLOAT16 ? "bf16" : "float";
  };
  return std::string("index precision ") + type(index_precision) + ", K view " +
         type(k_view_type);
}

std::vector<CudnnSdpaVariant> cudnn_sdpa_variants(bool backward) {
  std::vector<CudnnSdpaVariant> out;
  for (const cudnnDataType_t index : {CUDNN_DATA_FLOAT, CUDNN_DATA_INT32}) {
    // The K view only matters where the backward reads K untransposed.
    out.push_back({index, CUDNN_DATA_FLOAT});
    if (backward) out.push_back({index, CUDNN_DATA_BFLOAT16});
  }
  return out;
}

std::string cudnn_sdpa_unsupported(size_t version, const CudnnAttnShape& s) {
  if (version < 90000) return "cuDNN 9 or later is needed";
  if (version >= 91000 && version < 91002) return "cuDNN 9.10.0 and 9.10.1 have known SDPA bugs";
  if (s.d % 8 != 0 || s.d > 128) return "head dim must be a multiple of 8 up to 128";
  if (s.kv <= 0 || s.h % s.kv != 0) return "query heads must be a multiple of the KV heads";
  if (s.t < 2) return "one position has no backward";
  // Before 9.16 the backward needs a padding mask (extra inputs) unless the
  // sequence fills 128-row tiles; taken as a limit for both passes.
  if (version < 91600 && s.t % 128 != 0) return "before cuDNN 9.16 T must be a multiple of 128";
  return "";
}

void build_sdpa_forward(CudnnGraph& g, const CudnnAttnShape& s, const CudnnSdpaVariant& variant) {
  Virtuals v(g, s);
  const CudnnDescriptor& q = g.tensor(bshd(kSdpaQ, s, s.h));
  const CudnnDescriptor& kt = g.tensor(transposed(bshd(kSdpaK, s, s.kv)));
  const CudnnDescriptor& val = g.tensor(bshd(kSdpaV, s, s.kv));
  const CudnnDescriptor& o = g.tensor(bshd(kSdpaO, s, s.h));
  const CudnnDescriptor& stats = row_tensor(g, kSdpaStats, s);
  const CudnnDescriptor& scale = g.tensor(scalar(kSdpaScale));
  const CudnnDescriptor& fill = g.tensor(scalar(kSdpaFill));

  const CudnnDescriptor& scaled = scaled_scores(g, v, q, kt, scale);
  const CudnnDescriptor& masked = v.scores();
  causal_mask(g, v, scaled, fill, masked, variant.index_precision);
  // Softmax with its statistics: m = max, e = exp(x - m), z = sum e,
  // stats = m + log z (the natural-log logsumexp), P = e / z in BF16.
  const CudnnDescriptor& m = v.rows();
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, masked, m);
  const CudnnDescriptor& shifted = v.scores();
  g.pointwise(CUDNN_POINTWISE_SUB, masked, shifted, {.b = &m});
  const CudnnDescriptor& e = v.scores();
  g.pointwise(CUDNN_POINTWISE_EXP, shifted, e);
  const CudnnDescriptor& z = v.rows();
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, z);
  const CudnnDescriptor& log_z = v.rows();
  g.pointwise(CUDNN_POINTWISE_LOG, z, log_z);
  g.pointwise(CUDNN_POINTWISE_ADD, m, stats, {.b = &log_z});
  const CudnnDescriptor& p = v.scores(CUDNN_DATA_BFLOAT16);
  g.pointwise(CUDNN_POINTWISE_DIV, e, p, {.b = &z});
  g.matmul(p, val, o);
}

void build_sdpa_backward(CudnnGraph& g, const CudnnAttnShape& s, const CudnnSdpaVariant& variant) {
  Virtuals v(g, s);
  const CudnnDescriptor& q = g.tensor(bshd(kSdpaQ, s, s.h));
  const CudnnDescriptor& kt = g.tensor(transposed(bshd(kSdpaK, s, s.kv)));
  const CudnnDescriptor& vt = g.tensor(transposed(bshd(kSdpaV, s, s.kv)));
  const CudnnDescriptor& o = g.tensor(bshd(kSdpaO, s, s.h));
  const CudnnDescriptor& d_o = g.tensor(bshd(kSdpaDO, s, s.h));
  const CudnnDescriptor& stats = row_tensor(g, kSdpaStats, s);
  const CudnnDescriptor& dq = g.tensor(bshd(kSdpaDQ, s, s.h));
  const CudnnDescriptor& dk = g.tensor(bshd(kSdpaDK, s, s.kv));
  const CudnnDescriptor& dv = g.tensor(bshd(kSdpaDV, s, s.kv));
  const CudnnDescriptor& scale = g.tensor(scalar(kSdpaScale));
  const CudnnDescriptor& one = g.tensor(scalar(kSdpaOne));
  const CudnnDescriptor& fill = g.tensor(scalar(kSdpaFill));
  const CudnnDescriptor& softmax_sum = row_tensor(g, kSdpaSoftmaxSum, s);
  const Dims head_dims{s.b, s.h, s.t, s.d};
  const CudnnDescriptor& dq_accum =
      g.tensor({kSdpaDqAccum, CUDNN_DATA_FLOAT, head_dims, packed_strides(head_dims)});

  // delta = rowsum(dO * O), into its buffer.
  const CudnnDescriptor& do_o =
      v.make(CUDNN_DATA_FLOAT, head_dims, {s.h * s.t * s.d, s.t * s.d, s.h * s.d, 1});
  g.pointwise(CUDNN_POINTWISE_MUL, d_o, do_o, {.b = &o});
  const CudnnDescriptor& delta = v.rows();
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, do_o, delta);
  g.pointwise(CUDNN_POINTWISE_MUL, delta, softmax_sum, {.b = &one});
  // P = exp(scale Q K^T - stats), masked.
  const CudnnDescriptor& scaled = scaled_scores(g, v, q, kt, scale);
  const CudnnDescriptor& centred = v.scores();
  g.pointwise(CUDNN_POINTWISE_SUB, scaled, centred, {.b = &stats});
  const CudnnDescriptor& masked = v.scores();
  causal_mask(g, v, centred, fill, masked, variant.index_precision);
  const CudnnDescriptor& p = v.scores();
  g.pointwise(CUDNN_POINTWISE_EXP, masked, p);
  // dV = P^T dO (per query head, then summed over each KV head's group).
  const CudnnDescriptor& pt = v.scores_transposed(CUDNN_DATA_BFLOAT16);
  g.reshape(p, pt);
  kv_head_product(g, v, s, pt, d_o, dv);
  // dS = scale P (dO V^T - delta).
  const CudnnDescriptor& dp = v.scores();
  g.matmul(d_o, vt, dp);
  const CudnnDescriptor& dp_centred = v.scores();
  g.pointwise(CUDNN_POINTWISE_SUB, dp, dp_centred, {.b = &softmax_sum});
  const CudnnDescriptor& dp_p = v.scores();
  g.pointwise(CUDNN_POINTWISE_MUL, dp_centred, dp_p, {.b = &p});
  const CudnnDescriptor& ds = v.scores();
  g.pointwise(CUDNN_POINTWISE_MUL, dp_p, ds, {.b = &scale});
  // dK = dS^T Q (grouped as dV).
  const CudnnDescriptor& dst = v.scores_transposed(CUDNN_DATA_BFLOAT16);
  g.reshape(ds, dst);
  kv_head_product(g, v, s, dst, q, dk);
  // dQ = dS K, accumulated in F32, then written out in BF16.
  const CudnnDescriptor& k = v.make(variant.k_view_type, {s.b, s.kv, s.t, s.d},
                                    {s.t * s.kv * s.d, s.d, s.kv * s.d, 1});
  g.reshape(kt, k);
  g.matmul(ds, k, dq_accum);
  g.pointwise(CUDNN_POINTWISE_IDENTITY, dq_accum, dq);
}

std::unique_ptr<CudnnGraph> plan_sdpa(const CudnnApi& api, cudnnHandle_t handle,
                                      const CudnnDescriptor* device, bool backward,
                                      const CudnnAttnShape& s, CudnnSdpaVariant* variant,
                                      std::string* why, int64_t prefer_config) {
  for (const CudnnSdpaVariant& v : cudnn_sdpa_variants(backward)) {
    try {
      auto graph = std::make_unique<CudnnGraph>(api, handle, device);
      if (backward) build_sdpa_backward(*graph, s, v);
      else build_sdpa_forward(*graph, s, v);
      graph->finish(prefer_config);
      if (variant) *variant = v;
      return graph;
    } catch (const CudnnError& e) {
      if (why) *why += std::string(why->empty() ? "" : " | ") + v.name() + ": " + e.what();
    }
  }
  return nullptr;
}

SdpaBackwardBuffers sdpa_backward_buffers(const CudnnAttnShape& s) {
  SdpaBackwardBuffers b;
  b.dq_accum = 0;
  b.softmax_sum = round_up_256(s.b * s.h * s.t * s.d * 4);
  b.plan = b.softmax_sum + round_up_256(s.b * s.h * s.t * 4);
  b.bytes = b.plan;
  return b;
}

}  // namespace hessgpt::cuda
