// A Backend that runs another and times every op: where a training step's
// time goes, measured in the step itself (hessgpt bench train --profile), not
// inferred from ops timed alone. Each call is bracketed by two of the inner
// backend's timing marks (backend.h): on a GPU, events in its stream, read
// back in batches, so the host still runs ahead of the device and an op's
// time is the device's time for it alone (as PyTorch's profiler counts its
// kernels); the step's wall time less the ops' sum is then the device idling
// between ops. On the CPU a mark is the host clock. Calls are grouped by op
// and operand shapes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"

namespace hessgpt {

class TimedBackend final : public Backend {
 public:
  // Starts with inner's matrix-product precision; inner must outlive this.
  explicit TimedBackend(Backend& inner);

  struct Entry {
    std::string op, shape;
    int64_t calls = 0;
    double ms = 0;
  };
  // Every (op, shape) seen since the last reset, the largest total time first
  // (waits for the ops still timed on the device).
  std::vector<Entry> entries();
  // The part of a step an op belongs to, in the categories that
  // bench/torch_train_step.py --profile sorts PyTorch's kernels into, so that
  // the two profiles line up: "products", "attention", "optimizer",
  // "elementwise" (norms, RoPE, SwiGLU, the loss, conversions: what Inductor
  // fuses into its own kernels) and "other" (copies to and from the host,
  // allocation).
  static const char* category(const std::string& op);
  // Milliseconds per category over `entries`, the largest first.
  static std::vector<std::pair<std::string, double>> by_category(const std::vector<Entry>& entries);
  void reset();

  Device device() const override { return inner_.device(); }
  std::string name() const override { return inner_.name(); }
  bool supports(DType dtype) const override { return inner_.supports(dtype); }
  size_t free_memory_bytes() const override { return inner_.free_memory_bytes(); }
  void set_threads(int threads) override { inner_.set_threads(threads); }
  bool supports_matmul_precision(MatmulPrecision p) const override {
    return inner_.supports_matmul_precision(p);
  }
  void set_matmul_precision(MatmulPrecision p) override;
  void synchronize() override { inner_.synchronize(); }

  void* allocate(size_t bytes) override;
  void release(void* ptr) override;
  void copy_from_host(const Tensor& dst, const void* src) override;
  void copy_to_host(void* dst, const Tensor& src) override;
  void copy(const Tensor& dst, const Tensor& src) override;
  void convert(const Tensor& dst, const Tensor& src) override;
  void concat_columns(const Tensor& dst, const Tensor& a, const Tensor& b) override;
  void copy_columns(const Tensor& dst, int64_t col0, const Tensor& src) override;
  void fill(const Tensor& x, double value) override;

  void matmul(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
              float alpha, float beta) override;
  void matmul_add(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                  const Tensor& d) override;
  void add_inplace(const Tensor& y, const Tensor& x) override;
  void scale_inplace(const Tensor& x, double s) override;
  double sum_squares(const Tensor& x) override;

  void embedding_forward(const Tensor& out, const Tensor& ids, const Tensor& table) override;
  void embedding_forward_prechecked(const Tensor& out, const Tensor& ids,
                                    const Tensor& table) override;
  void embedding_backward(const Tensor& dtable, const Tensor& ids, const Tensor& dout) override;
  void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& w,
                       double eps) override;
  void rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout, const Tensor& x,
                        const Tensor& w, const Tensor& rstd, bool accumulate_dx) override;
  void rmsnorm_backward_copy(const Tensor& dx, const Tensor& dx16, const Tensor& dw,
                             const Tensor& dout, const Tensor& x, const Tensor& w,
                             const Tensor& rstd, bool accumulate_dx) override;
  void rope_forward(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0) override;
  void rope_backward(const Tensor& dx, const Tensor& cos, const Tensor& sin,
                     int64_t pos0) override;
  void qk_norm_rope_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                            const Tensor& w, double eps, const Tensor& cos, const Tensor& sin,
                            int64_t pos0) override;
  void qk_norm_rope_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                             const Tensor& x, const Tensor& w, const Tensor& rstd,
                             const Tensor& cos, const Tensor& sin, int64_t pos0,
                             int64_t dx_head0) override;
  void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                         const Tensor& v, double scale, int64_t q_pos0) override;
  void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                          const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                          const Tensor& out, const Tensor& lse, double scale) override;
  void decode_attention(const DecodeAttention& step) override;
  void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) override;
  void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                       const Tensor& gate, const Tensor& up) override;
  void rmsnorm_matmul(const Tensor& c, const Tensor& x, const Tensor& norm_w, double eps,
                      const Tensor& w, const Tensor& ln, const Tensor& rstd) override;
  void swiglu_matmul_add(const Tensor& c, const Tensor& gate, const Tensor& up, const Tensor& w,
                         const Tensor& act) override;
  void swiglu_forward_joined(const Tensor& out, const Tensor& gate_up) override;
  void swiglu_backward_joined(const Tensor& dgate_up, const Tensor& dout,
                              const Tensor& gate_up) override;
  void softcap_forward(const Tensor& logits, double cap) override;
  void softcap_cross_entropy(const Tensor& logits, const Tensor& losses, const Tensor& targets,
                             double cap, double dlogits_scale) override;
  void softcap_cross_entropy_into(const Tensor& dlogits, const Tensor& logits,
                                  const Tensor& losses, const Tensor& targets, double cap,
                                  double dlogits_scale) override;
  void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                  const AdamWParams& hp) override;
  void adamw_step_groups(const Tensor& params, const Tensor& grads, const Tensor& m,
                         const Tensor& v, const std::vector<AdamWGroup>& groups,
                         const AdamWParams& hp) override;

 private:
  // Runs fn between two timing marks and counts the call under (op, shape);
  // its time is added once read back (flush).
  template <typename Fn>
  auto timed(const char* op, const std::string& shape, Fn&& fn) -> decltype(fn());
  // Reads the pending calls' times into their entries and frees their marks.
  void flush();

  struct Pending {
    Entry* entry;  // a node of table_: stable while the map lives
    int64_t from, to;
  };
  Backend& inner_;
  std::map<std::pair<std::string, std::string>, Entry> table_;
  std::vector<Pending> pending_;
};

}  // namespace hessgpt
