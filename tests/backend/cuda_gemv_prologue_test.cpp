// Decoding's products with the op before them folded in (Backend::rmsnorm_matmul,
// swiglu_matmul_add: gemv_prologue.cu on the GPU) against the two ops they
// replace, on the GPU and on the CPU: F32 and BF16 weights, FP32 and BF16
// products, q|k|v's and gate|up's widths, the down projection's 3413 values
// read from rows padded to 3416, the head's 32008 columns (more than the
// grid's warps: each takes several), and an odd small shape. Skipped where no
// CUDA device is available.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cuda_ops_fixture.h"

namespace hessgpt {
namespace {

using namespace cuda_test;

struct Shape {
  int64_t n, k, ldb;  // c [1, n], x [1, k], w [n, ldb] (ldb = k or padded)
};
const Shape kShapes[] = {{1920, 1280, 1280}, {6826, 1280, 1280}, {1280, 3413, 3416},
                         {32008, 1280, 1280}, {40, 13, 13}};

class CudaGemvPrologue : public CudaOps {
 protected:
  // w as stored: F32, or BF16 (the rounded values), rows of ldb, zeros past k.
  Tensor weights(Backend& be, const Shape& s, bool bf16) {
    Vec w = random_floats(static_cast<size_t>(s.n * s.ldb), 81, 0.05);
    for (int64_t r = 0; r < s.n; ++r)
      for (int64_t i = s.k; i < s.ldb; ++i) w[static_cast<size_t>(r * s.ldb + i)] = 0.0f;
    return bf16 ? on16(be, rounded(w), {s.n, s.ldb}) : on(be, w, {s.n, s.ldb});
  }

  // c of the fused op (fused) or of the two ops, on `be`.
  Vec norm_product(Backend& be, const Shape& s, bool bf16_weights, bool fused) {
    const Tensor x = on(be, random_floats(static_cast<size_t>(s.k), 82, 2.0), {1, s.k});
    const Tensor nw = on(be, random_floats(static_cast<size_t>(s.k), 83), {s.k});
    const Tensor w = weights(be, s, bf16_weights), c = on(be, poison(s.n), {1, s.n});
    const Tensor ln = on(be, poison(s.k), {1, s.k}), rstd = on(be, poison(1), {1});
    if (fused) {
      be.rmsnorm_matmul(c, x, nw, 1e-5, w, ln, rstd);
    } else {
      be.rmsnorm_forward(ln, rstd, x, nw, 1e-5);
      be.matmul(c, ln, false, w, true, 1.0f, 0.0f);
    }
    return host(be, c);
  }

  Vec swiglu_product(Backend& be, const Shape& s, bool bf16_weights, bool fused) {
    const Tensor gate = on(be, random_floats(static_cast<size_t>(s.k), 84, 3.0), {1, s.k});
    const Tensor up = on(be, random_floats(static_cast<size_t>(s.k), 85), {1, s.k});
    const Tensor w = weights(be, s, bf16_weights);
    const Tensor c = on(be, random_floats(static_cast<size_t>(s.n), 86), {1, s.n});  // residual
    const Tensor act = on(be, poison(s.k), {1, s.k});
    if (fused) {
      be.swiglu_matmul_add(c, gate, up, w, act);
    } else {
      be.swiglu_forward(act, gate, up);
      be.matmul(c, act, false, w, true, 1.0f, 1.0f);
    }
    return host(be, c);
  }
};

// The operand is built with the two ops' arithmetic value for value (the
// norm's sum of squares in double, in another order: the same float nearly
// always), so against the GPU's own two ops the results agree to F32
// rounding; against the CPU to its summation order, where an operand a hair
// away may round to the neighbouring BF16 value (1e-4).
TEST_F(CudaGemvPrologue, MatchesTheTwoOps) {
  for (const MatmulPrecision p : {MatmulPrecision::FP32, MatmulPrecision::BF16}) {
    if (!gpu_->supports_matmul_precision(p)) continue;
    gpu_->set_matmul_precision(p);
    // (The device machine's CPU backend has no BF16 products: no oneDNN there.)
    const bool on_cpu = cpu_.supports_matmul_precision(p);
    if (on_cpu) cpu_.set_matmul_precision(p);
    for (const Shape& s : kShapes) {
      for (const bool bf16_weights : {false, true}) {
        const std::string what = std::string(p == MatmulPrecision::BF16 ? "bf16" : "fp32") +
                                 " products, " + (bf16_weights ? "bf16" : "f32") + " weights, [" +
                                 std::to_string(s.n) + ", " + std::to_string(s.k) + "]";
        const Vec fused = norm_product(*gpu_, s, bf16_weights, true);
        expect_close(fused, norm_product(*gpu_, s, bf16_weights, false), 1e-6, "norm, " + what);
        if (on_cpu)
          expect_close(fused, norm_product(cpu_, s, bf16_weights, true), 1e-4, "norm cpu, " + what);
        const Vec fused_glu = swiglu_product(*gpu_, s, bf16_weights, true);
        expect_close(fused_glu, swiglu_product(*gpu_, s, bf16_weights, false), 1e-6,
                     "swiglu, " + what);
        if (on_cpu)
          expect_close(fused_glu, swiglu_product(cpu_, s, bf16_weights, true), 1e-4,
                       "swiglu cpu, " + what);
      }
    }
  }
  cpu_.set_matmul_precision(MatmulPrecision::FP32);
}

}  // namespace
}  // namespace hessgpt
