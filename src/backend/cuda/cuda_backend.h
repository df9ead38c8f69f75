// The CUDA backend: tensors in device memory (F32 weights, gradients and
// AdamW state; F32 or BF16-storage activations), matrix products through
// cuBLASLt in FP32 or with BF16 operands and FP32 accumulation, and our
// kernels for every other op (kernels.h), all on one stream in order. Host
// copies synchronise; other ops return once enqueued, and errors inside
// kernels surface at the next synchronising call. CUDA headers stay out of
// this header so that host-only code can include it.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace hessgpt {
namespace cuda {
struct RopeRows;  // kernels.h
}

// Usable CUDA devices; 0 when the driver or the device is missing (never throws).
int cuda_device_count();
// Each of them described (backend.h: available_gpus); never throws.
std::vector<GpuInfo> cuda_gpus();

class CudaBackend final : public Backend {
 public:
  // Device 0; throws Error "no CUDA device available" when there is none.
  CudaBackend();
  ~CudaBackend() override;

  Device device() const override { return Device::CUDA; }
  std::string name() const override { return "cuda"; }
  bool supports(DType dtype) const override;
  bool supports_matmul_precision(MatmulPrecision p) const override;

  size_t free_memory_bytes() const override;
  void* allocate(size_t bytes) override;
  void release(void* ptr) override;
  void copy_from_host(const Tensor& dst, const void* src) override;
  void copy_to_host(void* dst, const Tensor& src) override;
  void copy(const Tensor& dst, const Tensor& src) override;
  void fill(const Tensor& x, double value) override;
  void synchronize() override;
  int64_t timing_mark() override;
  double ms_between(int64_t from, int64_t to) override;
  void clear_timing_marks() override;

  void matmul(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
              float alpha, float beta) override;
  void matmul_add(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                  const Tensor& d) override;
  void add_inplace(const Tensor& y, const Tensor& x) override;
  void convert(const Tensor& dst, const Tensor& src) override;
  void copy_columns(const Tensor& dst, int64_t col0, const Tensor& src) override;
  void softcap_cross_entropy_into(const Tensor& dlogits, const Tensor& logits,
                                  const Tensor& losses, const Tensor& targets, double cap,
                                  double dlogits_scale) override;
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

  // True when attention runs on the tensor cores (BF16 precision; see the .cpp).
  bool attention_on_tensor_cores() const;
  // cuDNN's fused attention (HESSGPT_ATTENTION): its version or why it
  // is unavailable, with the plans built so far; and how many forward and
  // backward calls it ran.
  std::string cudnn_attention_status();
  int64_t cudnn_attention_calls() const;
  std::string cudnn_device_properties_json();
  std::array<const float*, 3> attention_f32(const Tensor& q, const Tensor& k, const Tensor& v);
  // RMSNorm, with the rotation of QK-Norm + RoPE fused in when rope.cos is set.
  void norm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& w,
                    double eps, const cuda::RopeRows& rope);
  // dx16 (may be null): a BF16 copy of dx's final values.
  void norm_backward(const Tensor& dx, const Tensor* dx16, const Tensor& dw, const Tensor& dout,
                     const Tensor& x, const Tensor& w, const Tensor& rstd, bool accumulate_dx,
                     const cuda::RopeRows& rope);
  // softcap_cross_entropy, the gradient over the logits or into dlogits16.
  void cross_entropy(const Tensor& logits, const Tensor& losses, const Tensor& targets, double cap,
                     double dlogits_scale, const Tensor* dlogits16);
  void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                         const Tensor& v, double scale, int64_t q_pos0) override;
  void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                          const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                          const Tensor& out, const Tensor& lse, double scale) override;
  void decode_attention(const DecodeAttention& step) override;
  // A CUDA graph of the ops (stream capture); HESSGPT_CUDA_GRAPHS=0 declines
  // (A/B timings). The recording must not outlive this backend.
  std::unique_ptr<RecordedOps> record(const std::function<void()>& ops) override;

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

  void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                  const AdamWParams& hp) override;
  void adamw_step_groups(const Tensor& params, const Tensor& grads, const Tensor& m,
                         const Tensor& v, const std::vector<AdamWGroup>& groups,
                         const AdamWParams& hp) override;

 private:
  // The shapes cuDNN's fused attention takes, and its backward with the
  // BF16 roundings of dout and widenings of dq, dk, dv around it.
  bool cudnn_attention_fits(const Tensor& q, const Tensor& k, const Tensor& out,
                            int64_t q_pos0) const;
  bool cudnn_attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                const Tensor& dout, const Tensor& q, const Tensor& k,
                                const Tensor& v, const Tensor& out, const Tensor& lse,
                                double scale);
  // Whether decoding's fused products (rmsnorm_matmul, swiglu_matmul_add) run
  // as one GEMV with a prologue.
  bool prologue_gemv_fits(const Tensor& c, const Tensor& x, const Tensor& w) const;
  // SwiGLU's kernels over gate and up apart (joined_w 0) or side by side.
  void run_swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up,
                          int64_t joined_w);
  void run_swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                           const Tensor& gate, const Tensor& up, int64_t joined_w);
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace hessgpt
