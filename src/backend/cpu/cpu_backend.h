// The CPU backend: FP32 for real work and FP64 for exact reference runs
// (finite-difference tests); kernels in kernels.h, BLAS for matmul.
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/matmul_bf16.h"

namespace hessgpt {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads);
  ~CpuBackend() override;

  Device device() const override { return Device::CPU; }
  std::string name() const override { return "cpu"; }
  bool supports(DType dtype) const override;
  void set_threads(int threads) override;
  int threads() const { return threads_; }
  bool supports_matmul_precision(MatmulPrecision p) const override;

  size_t free_memory_bytes() const override;
  void* allocate(size_t bytes) override;
  void release(void* ptr) override;
  void copy_from_host(const Tensor& dst, const void* src) override;
  void copy_to_host(void* dst, const Tensor& src) override;
  void copy(const Tensor& dst, const Tensor& src) override;
  void fill(const Tensor& x, double value) override;
  void convert(const Tensor& dst, const Tensor& src) override;
  void copy_columns(const Tensor& dst, int64_t col0, const Tensor& src) override;

  void matmul(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
              float alpha, float beta) override;
  void add_inplace(const Tensor& y, const Tensor& x) override;
  void scale_inplace(const Tensor& x, double s) override;
  double sum_squares(const Tensor& x) override;

  void embedding_forward(const Tensor& out, const Tensor& ids, const Tensor& table) override;
  void embedding_backward(const Tensor& dtable, const Tensor& ids, const Tensor& dout) override;

  void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& w,
                       double eps) override;
  void rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout, const Tensor& x,
                        const Tensor& w, const Tensor& rstd, bool accumulate_dx) override;

  void rope_forward(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0) override;
  void rope_backward(const Tensor& dx, const Tensor& cos, const Tensor& sin,
                     int64_t pos0) override;

  void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                         const Tensor& v, double scale, int64_t q_pos0) override;
  void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                          const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                          const Tensor& out, const Tensor& lse, double scale) override;

  void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) override;
  void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                       const Tensor& gate, const Tensor& up) override;
  void swiglu_forward_joined(const Tensor& out, const Tensor& gate_up) override;
  void swiglu_backward_joined(const Tensor& dgate_up, const Tensor& dout,
                              const Tensor& gate_up) override;

  void qk_norm_rope_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                            const Tensor& w, double eps, const Tensor& cos, const Tensor& sin,
                            int64_t pos0) override;
  // dout may be BF16 (storage): rotated back in an F32 copy.
  void qk_norm_rope_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                             const Tensor& x, const Tensor& w, const Tensor& rstd,
                             const Tensor& cos, const Tensor& sin, int64_t pos0,
                             int64_t dx_head0) override;

  void softcap_forward(const Tensor& logits, double cap) override;
  void softcap_cross_entropy(const Tensor& logits, const Tensor& losses, const Tensor& targets,
                             double cap, double dlogits_scale) override;
  void softcap_cross_entropy_into(const Tensor& dlogits, const Tensor& logits,
                                  const Tensor& losses, const Tensor& targets, double cap,
                                  double dlogits_scale) override;

  void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                  const AdamWParams& hp) override;

 private:
  // BF16 storage (backend.h): an op with a BF16 output computes into F32
  // scratch and rounds once; a BF16 input is read through a widened F32 copy.
  Tensor staged_f32(const Tensor& like);
  // Whether a product runs with BF16 operands: BF16 precision, plain (alpha 1,
  // beta 0 or 1; others take FP32).
  bool bf16_products(float alpha, float beta) const {
    return matmul_precision_ == MatmulPrecision::BF16 && alpha == 1.0f &&
           (beta == 0.0f || beta == 1.0f);
  }
  Tensor widened(std::vector<float>& buffer, const Tensor& bf16);
  // An attention operand (q, k or v) as the F32 kernels read it: BF16 storage
  // widened; under BF16 products F32 rounded to BF16 first, the operands of
  // the CUDA tensor-core kernels, so that both storages give the same values.
  Tensor attention_operand(std::vector<float>& buffer, const Tensor& x);

  int threads_ = 1;
  std::unique_ptr<cpu::Bf16Matmul> bf16_;  // created on first BF16 product
  std::vector<float> staged_;              // F32 result of an op with a BF16 output
  std::vector<float> wide_a_, wide_b_;     // widened BF16 inputs
  std::vector<float> attn_grads_;          // attention's BF16 gradients, staged in F32
  std::vector<float> head_rows_;  // QK-Norm's gradient before it goes to a wider row's heads
  std::vector<float> attn_q_, attn_k_, attn_v_;  // attention's operands (attention_operand)
};

}  // namespace hessgpt
