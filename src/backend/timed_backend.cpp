#include "backend/timed_backend.h"

#include <algorithm>
#include <type_traits>

namespace hessgpt {
namespace {

// A tensor's shape, and its dtype where it is not F32.
std::string sig(const Tensor& t) {
  std::string s = t.shape_string();
  if (t.dtype != DType::F32) s += std::string(" ") + dtype_name(t.dtype);
  return s;
}

// A norm's backward reading a BF16 gradient (Activations::dln16) says so.
std::string dout_note(const Tensor& dout) {
  return dout.dtype == DType::BF16 ? " (bf16 dout)" : "";
}

std::string product(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b,
                    bool trans_b) {
  return sig(a) + (trans_a ? "^T" : "") + " x " + sig(b) + (trans_b ? "^T" : "") + " -> " + sig(c);
}

}  // namespace

const char* TimedBackend::category(const std::string& op) {
  const auto starts = [&](const char* prefix) { return op.rfind(prefix, 0) == 0; };
  if (starts("matmul")) return "products";
  if (starts("attention")) return "attention";
  if (starts("adamw") || op == "sum_squares" || op == "scale_inplace") return "optimizer";
  if (starts("copy") || op == "allocate" || op == "release") return "other";
  return "elementwise";
}

std::vector<std::pair<std::string, double>> TimedBackend::by_category(
    const std::vector<Entry>& entries) {
  std::map<std::string, double> ms;
  for (const Entry& e : entries) ms[category(e.op)] += e.ms;
  std::vector<std::pair<std::string, double>> out(ms.begin(), ms.end());
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

TimedBackend::TimedBackend(Backend& inner) : inner_(inner) {
  if (inner.matmul_precision() != MatmulPrecision::FP32)
    Backend::set_matmul_precision(inner.matmul_precision());
}

void TimedBackend::set_matmul_precision(MatmulPrecision p) {
  inner_.set_matmul_precision(p);
  Backend::set_matmul_precision(p);
}

// Calls timed before their marks are read back: a read waits for the device,
// so it is done rarely (a model1 step makes ~1500 calls).
constexpr size_t kMaxPendingCalls = 4096;

template <typename Fn>
auto TimedBackend::timed(const char* op, const std::string& shape, Fn&& fn) -> decltype(fn()) {
  const int64_t from = inner_.timing_mark();
  const auto record = [&] {
    const int64_t to = inner_.timing_mark();
    Entry& e = table_[{op, shape}];
    e.op = op;
    e.shape = shape;
    ++e.calls;
    pending_.push_back({&e, from, to});
    if (pending_.size() >= kMaxPendingCalls) flush();
  };
  if constexpr (std::is_void_v<decltype(fn())>) {
    fn();
    record();
  } else {
    auto result = fn();
    record();
    return result;
  }
}

void TimedBackend::flush() {
  for (const Pending& p : pending_) p.entry->ms += inner_.ms_between(p.from, p.to);
  pending_.clear();
  inner_.clear_timing_marks();
}

void TimedBackend::reset() {
  pending_.clear();
  table_.clear();
  inner_.clear_timing_marks();
}

std::vector<TimedBackend::Entry> TimedBackend::entries() {
  flush();
  std::vector<Entry> out;
  for (const auto& [key, e] : table_) out.push_back(e);
  std::stable_sort(out.begin(), out.end(),
                   [](const Entry& x, const Entry& y) { return x.ms > y.ms; });
  return out;
}

void* TimedBackend::allocate(size_t bytes) {
  return timed("allocate", std::to_string(bytes) + " bytes",
               [&] { return inner_.allocate(bytes); });
}
void TimedBackend::release(void* ptr) {
  timed("release", "", [&] { inner_.release(ptr); });
}
void TimedBackend::copy_from_host(const Tensor& dst, const void* src) {
  timed("copy_from_host", sig(dst), [&] { inner_.copy_from_host(dst, src); });
}
void TimedBackend::copy_to_host(void* dst, const Tensor& src) {
  timed("copy_to_host", sig(src), [&] { inner_.copy_to_host(dst, src); });
}
void TimedBackend::copy(const Tensor& dst, const Tensor& src) {
  timed("copy", sig(dst), [&] { inner_.copy(dst, src); });
}
void TimedBackend::convert(const Tensor& dst, const Tensor& src) {
  timed("convert", sig(src) + " -> " + sig(dst), [&] { inner_.convert(dst, src); });
}

void TimedBackend::concat_columns(const Tensor& dst, const Tensor& a, const Tensor& b) {
  timed("concat_columns", sig(a) + " | " + sig(b) + " -> " + sig(dst),
        [&] { inner_.concat_columns(dst, a, b); });
}
void TimedBackend::copy_columns(const Tensor& dst, int64_t col0, const Tensor& src) {
  timed("copy_columns", sig(src) + " -> " + sig(dst) + " from column " + std::to_string(col0),
        [&] { inner_.copy_columns(dst, col0, src); });
}
void TimedBackend::fill(const Tensor& x, double value) {
  timed("fill", sig(x), [&] { inner_.fill(x, value); });
}

void TimedBackend::matmul(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b,
                          bool trans_b, float alpha, float beta) {
  timed(beta != 0.0f ? "matmul (accumulate)" : "matmul", product(c, a, trans_a, b, trans_b),
        [&] { inner_.matmul(c, a, trans_a, b, trans_b, alpha, beta); });
}
void TimedBackend::matmul_add(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b,
                              bool trans_b, const Tensor& d) {
  timed("matmul_add", product(c, a, trans_a, b, trans_b),
        [&] { inner_.matmul_add(c, a, trans_a, b, trans_b, d); });
}
void TimedBackend::add_inplace(const Tensor& y, const Tensor& x) {
  timed("add_inplace", sig(y), [&] { inner_.add_inplace(y, x); });
}
void TimedBackend::scale_inplace(const Tensor& x, double s) {
  timed("scale_inplace", sig(x), [&] { inner_.scale_inplace(x, s); });
}
double TimedBackend::sum_squares(const Tensor& x) {
  return timed("sum_squares", sig(x), [&] { return inner_.sum_squares(x); });
}

void TimedBackend::embedding_forward(const Tensor& out, const Tensor& ids, const Tensor& table) {
  timed("embedding_forward", sig(out), [&] { inner_.embedding_forward(out, ids, table); });
}
void TimedBackend::embedding_forward_prechecked(const Tensor& out, const Tensor& ids,
                                               const Tensor& table) {
  timed("embedding_forward_prechecked", sig(out),
        [&] { inner_.embedding_forward_prechecked(out, ids, table); });
}
void TimedBackend::embedding_backward(const Tensor& dtable, const Tensor& ids,
                                      const Tensor& dout) {
  timed("embedding_backward", sig(dout), [&] { inner_.embedding_backward(dtable, ids, dout); });
}
void TimedBackend::rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                                   const Tensor& w, double eps) {
  timed("rmsnorm_forward", sig(x) + " -> " + sig(out),
        [&] { inner_.rmsnorm_forward(out, rstd, x, w, eps); });
}
void TimedBackend::rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                                    const Tensor& x, const Tensor& w, const Tensor& rstd,
                                    bool accumulate_dx) {
  timed("rmsnorm_backward", sig(x) + " -> " + sig(dx) + dout_note(dout),
        [&] { inner_.rmsnorm_backward(dx, dw, dout, x, w, rstd, accumulate_dx); });
}
void TimedBackend::rmsnorm_backward_copy(const Tensor& dx, const Tensor& dx16, const Tensor& dw,
                                         const Tensor& dout, const Tensor& x, const Tensor& w,
                                         const Tensor& rstd, bool accumulate_dx) {
  timed("rmsnorm_backward_copy",
        sig(x) + " -> " + sig(dx) + " + " + sig(dx16) + dout_note(dout),
        [&] { inner_.rmsnorm_backward_copy(dx, dx16, dw, dout, x, w, rstd, accumulate_dx); });
}
void TimedBackend::rope_forward(const Tensor& x, const Tensor& cos, const Tensor& sin,
                                int64_t pos0) {
  timed("rope_forward", sig(x), [&] { inner_.rope_forward(x, cos, sin, pos0); });
}
void TimedBackend::rope_backward(const Tensor& dx, const Tensor& cos, const Tensor& sin,
                                 int64_t pos0) {
  timed("rope_backward", sig(dx), [&] { inner_.rope_backward(dx, cos, sin, pos0); });
}
void TimedBackend::qk_norm_rope_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                                        const Tensor& w, double eps, const Tensor& cos,
                                        const Tensor& sin, int64_t pos0) {
  timed("qk_norm_rope_forward", sig(x),
        [&] { inner_.qk_norm_rope_forward(out, rstd, x, w, eps, cos, sin, pos0); });
}
void TimedBackend::qk_norm_rope_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                                         const Tensor& x, const Tensor& w, const Tensor& rstd,
                                         const Tensor& cos, const Tensor& sin, int64_t pos0,
                                         int64_t dx_head0) {
  timed("qk_norm_rope_backward",
        sig(x) + " -> " + sig(dx) + (dx_head0 > 0 ? " from head " + std::to_string(dx_head0) : ""),
        [&] { inner_.qk_norm_rope_backward(dx, dw, dout, x, w, rstd, cos, sin, pos0, dx_head0); });
}
void TimedBackend::attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q,
                                     const Tensor& k, const Tensor& v, double scale,
                                     int64_t q_pos0) {
  timed("attention_forward", "q " + sig(q) + ", kv " + sig(k) + " -> " + sig(out),
        [&] { inner_.attention_forward(out, lse, q, k, v, scale, q_pos0); });
}
void TimedBackend::attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                      const Tensor& dout, const Tensor& q, const Tensor& k,
                                      const Tensor& v, const Tensor& out, const Tensor& lse,
                                      double scale) {
  timed("attention_backward", "q " + sig(q) + ", kv " + sig(k) + ", out " + sig(out),
        [&] { inner_.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, scale); });
}
void TimedBackend::swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) {
  timed("swiglu_forward", sig(gate) + " -> " + sig(out),
        [&] { inner_.swiglu_forward(out, gate, up); });
}
void TimedBackend::swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                                   const Tensor& gate, const Tensor& up) {
  timed("swiglu_backward", sig(gate) + " -> " + sig(dgate),
        [&] { inner_.swiglu_backward(dgate, dup, dout, gate, up); });
}
// "attention_decode": the attention category, as the training's attention.
void TimedBackend::decode_attention(const DecodeAttention& step) {
  timed("attention_decode", "q " + sig(step.q_raw) + ", cache " + sig(step.k_cache),
        [&] { inner_.decode_attention(step); });
}
// (Decoding's fused products: "matmul" in their names puts them with the products.)
void TimedBackend::rmsnorm_matmul(const Tensor& c, const Tensor& x, const Tensor& norm_w,
                                  double eps, const Tensor& w, const Tensor& ln,
                                  const Tensor& rstd) {
  timed("matmul_rmsnorm", product(c, x, false, w, true),
        [&] { inner_.rmsnorm_matmul(c, x, norm_w, eps, w, ln, rstd); });
}
void TimedBackend::swiglu_matmul_add(const Tensor& c, const Tensor& gate, const Tensor& up,
                                     const Tensor& w, const Tensor& act) {
  timed("matmul_swiglu_add", product(c, gate, false, w, true),
        [&] { inner_.swiglu_matmul_add(c, gate, up, w, act); });
}
void TimedBackend::swiglu_forward_joined(const Tensor& out, const Tensor& gate_up) {
  timed("swiglu_forward_joined", sig(gate_up) + " -> " + sig(out),
        [&] { inner_.swiglu_forward_joined(out, gate_up); });
}
void TimedBackend::swiglu_backward_joined(const Tensor& dgate_up, const Tensor& dout,
                                          const Tensor& gate_up) {
  timed("swiglu_backward_joined", sig(gate_up) + " -> " + sig(dgate_up),
        [&] { inner_.swiglu_backward_joined(dgate_up, dout, gate_up); });
}
void TimedBackend::softcap_forward(const Tensor& logits, double cap) {
  timed("softcap_forward", sig(logits), [&] { inner_.softcap_forward(logits, cap); });
}
void TimedBackend::softcap_cross_entropy(const Tensor& logits, const Tensor& losses,
                                         const Tensor& targets, double cap,
                                         double dlogits_scale) {
  timed("softcap_cross_entropy", sig(logits),
        [&] { inner_.softcap_cross_entropy(logits, losses, targets, cap, dlogits_scale); });
}
void TimedBackend::softcap_cross_entropy_into(const Tensor& dlogits, const Tensor& logits,
                                              const Tensor& losses, const Tensor& targets,
                                              double cap, double dlogits_scale) {
  timed("softcap_cross_entropy_into", sig(logits) + " -> " + sig(dlogits), [&] {
    inner_.softcap_cross_entropy_into(dlogits, logits, losses, targets, cap, dlogits_scale);
  });
}
void TimedBackend::adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m,
                              const Tensor& v, const AdamWParams& hp) {
  timed("adamw_step", sig(param), [&] { inner_.adamw_step(param, grad, m, v, hp); });
}
void TimedBackend::adamw_step_groups(const Tensor& params, const Tensor& grads, const Tensor& m,
                                     const Tensor& v, const std::vector<AdamWGroup>& groups,
                                     const AdamWParams& hp) {
  timed("adamw_step_groups", sig(params) + ", " + std::to_string(groups.size()) + " groups",
        [&] { inner_.adamw_step_groups(params, grads, m, v, groups, hp); });
}

}  // namespace hessgpt
