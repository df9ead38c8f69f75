// BF16 storage on the GPU (backend.h), against the CPU backend or against
// the GPU's own F32 path rounded: matmul operands and outputs, padded widths,
// the outputs of RMSNorm, SwiGLU and attention, the cross-entropy's BF16
// gradient and convert. Skipped where no CUDA device is available.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cuda_ops_fixture.h"
#include "matmul_padded_cases.h"

namespace hessgpt {
namespace {

using namespace cuda_test;

// BF16 as storage (backend.h): SwiGLU reading BF16 gate/up, and a matmul
// writing a BF16 output, against the CPU backend's same ops. The matmul's F32
// products differ by summation order (~1e-6), which can move a rounding by one
// BF16 step (2^-8) on rare elements: 1e-3 in L2 still catches any real error.
TEST_F(CudaOps, Bf16StorageSwigluAndMatmulOutput) {
  const int64_t n = 4097;
  std::vector<uint16_t> g16(n), u16(n);
  const Vec gate = random_floats(n, 28, 3.0), up = random_floats(n, 29), dout = random_floats(n, 30);
  for (int64_t i = 0; i < n; ++i) {
    g16[i] = float_to_bf16(gate[i]);
    u16[i] = float_to_bf16(up[i]);
  }
  auto swiglu = [&](Backend& be) {
    const Tensor g = on16(be, g16, {n}), u = on16(be, u16, {n});
    const Tensor out = on(be, poison(n), {n});
    be.swiglu_forward(out, g, u);
    const Tensor dg = on(be, poison(n), {n}), du = on(be, poison(n), {n});
    be.swiglu_backward(dg, du, on(be, dout, {n}), g, u);
    return Outputs{{"out", host(be, out)}, {"dgate", host(be, dg)}, {"dup", host(be, du)}};
  };
  expect_outputs_close(swiglu(*gpu_), swiglu(cpu_), 1e-6, "swiglu with bf16 gate/up");

  const int64_t m = 33, cols = 3413 % 97, k = 171;  // an odd width: the staged path
  const Vec a = random_floats(m * k, 4), b = random_floats(cols * k, 5);
  auto product = [&](Backend& be) {
    const Tensor c = on16(be, std::vector<uint16_t>(m * cols, 0xffff), {m, cols});
    be.matmul(c, on(be, a, {m, k}), false, on(be, b, {cols, k}), true, 1.0f, 0.0f);
    std::vector<uint16_t> r(m * cols);
    be.copy_to_host(r.data(), c);
    Vec f(r.size());
    for (size_t i = 0; i < r.size(); ++i) f[i] = bf16_to_float(r[i]);
    return f;
  };
  expect_close(product(*gpu_), product(cpu_), 1e-3, "matmul with a bf16 output");
  // Under BF16 products cuBLASLt writes the BF16 output itself (staged and
  // compacted for this odd width): the F32 output of the same product,
  // rounded, up to one BF16 step where its kernel sums in another order.
  if (!gpu_->supports_matmul_precision(MatmulPrecision::BF16)) return;
  gpu_->set_matmul_precision(MatmulPrecision::BF16);
  for (const int64_t width : {cols, int64_t{96}}) {  // staged, and written in place
    const Vec bw = random_floats(width * k, 5);
    const Tensor c32 = on(*gpu_, poison(m * width), {m, width});
    gpu_->matmul(c32, on(*gpu_, a, {m, k}), false, on(*gpu_, bw, {width, k}), true, 1.0f, 0.0f);
    const Tensor c16 = on16(*gpu_, std::vector<uint16_t>(m * width, 0xffff), {m, width});
    gpu_->matmul(c16, on(*gpu_, a, {m, k}), false, on(*gpu_, bw, {width, k}), true, 1.0f, 0.0f);
    expect_within_one_bf16_step(bits_of(*gpu_, c16), host(*gpu_, c32), "bf16 output, width " + std::to_string(width));
  }
  gpu_->set_matmul_precision(MatmulPrecision::FP32);
}

// BF16 storage of op outputs and matmul operands (backend.h), as the model's
// --bf16-activations uses them. RMSNorm, SwiGLU and attention with a BF16
// output are the F32 kernels with a rounding store: on the same backend they
// must give exactly the rounded F32 output, and attention's backward reading
// that BF16 output exactly what it gives for its widened values. Products
// reading a BF16 operand (in place when its layout serves, else copied) must
// match the products of the widened values.
TEST_F(CudaOps, Bf16StorageOfOutputsAndOperands) {
  for (const int64_t d : {int64_t{37}, int64_t{1280}}) {
    const int64_t r = 150;
    const Vec x = random_floats(r * d, 40, 2.0), w = random_floats(d, 41);
    const Tensor tx = on(*gpu_, x, {r, d}), tw = on(*gpu_, w, {d});
    const Tensor o32 = on(*gpu_, poison(r * d), {r, d}), rstd32 = on(*gpu_, poison(r), {r});
    const Tensor o16 = on16(*gpu_, std::vector<uint16_t>(r * d, 0xffff), {r, d});
    const Tensor rstd16 = on(*gpu_, poison(r), {r});
    gpu_->rmsnorm_forward(o32, rstd32, tx, tw, 1e-6);
    gpu_->rmsnorm_forward(o16, rstd16, tx, tw, 1e-6);
    EXPECT_EQ(bits_of(*gpu_, o16), rounded(host(*gpu_, o32))) << "rmsnorm d=" << d;
    EXPECT_EQ(host(*gpu_, rstd16), host(*gpu_, rstd32)) << "rmsnorm d=" << d;
    const Tensor dout = on(*gpu_, random_floats(r * d, 51), {r, d});
    const Tensor dx32 = on(*gpu_, poison(r * d), {r, d}), dw32 = on(*gpu_, Vec(d, 0.5f), {d});
    const Tensor dx16 = on16(*gpu_, std::vector<uint16_t>(r * d, 0xffff), {r, d});
    const Tensor dw16 = on(*gpu_, Vec(d, 0.5f), {d});
    gpu_->rmsnorm_backward(dx32, dw32, dout, tx, tw, rstd32, false);
    gpu_->rmsnorm_backward(dx16, dw16, dout, tx, tw, rstd32, false);
    EXPECT_EQ(bits_of(*gpu_, dx16), rounded(host(*gpu_, dx32))) << "rmsnorm backward d=" << d;
    EXPECT_EQ(host(*gpu_, dw16), host(*gpu_, dw32)) << "rmsnorm backward d=" << d;
    // Accumulating into an F32 residual gradient with its BF16 copy written
    // in the same pass: dres as without the copy, the copy its rounding.
    const Vec dres0 = random_floats(r * d, 52);
    const Tensor dres = on(*gpu_, dres0, {r, d}), dres_plain = on(*gpu_, dres0, {r, d});
    const Tensor dres16 = on16(*gpu_, std::vector<uint16_t>(r * d, 0xffff), {r, d});
    const Tensor dwc = on(*gpu_, Vec(d, 0.5f), {d}), dwp = on(*gpu_, Vec(d, 0.5f), {d});
    gpu_->rmsnorm_backward(dres_plain, dwp, dout, tx, tw, rstd32, true);
    gpu_->rmsnorm_backward_copy(dres, dres16, dwc, dout, tx, tw, rstd32, true);
    EXPECT_EQ(host(*gpu_, dres), host(*gpu_, dres_plain)) << "rmsnorm backward copy d=" << d;
    EXPECT_EQ(host(*gpu_, dwc), host(*gpu_, dwp)) << "rmsnorm backward copy d=" << d;
    EXPECT_EQ(bits_of(*gpu_, dres16), rounded(host(*gpu_, dres))) << "rmsnorm backward copy d=" << d;
    // A BF16 dout (Activations::dln16) reads as its widened values, in the
    // held kernel (1280) and the generic one (37): bit for bit those of the
    // F32 dout widened, and the CPU's to F32 summation order.
    const std::vector<uint16_t> dout16 = rounded(host(*gpu_, dout));
    const Vec dout_wide = widened(dout16);
    const Tensor dx_wide = on(*gpu_, dres0, {r, d}), dx_half = on(*gpu_, dres0, {r, d});
    const Tensor dw_wide = on(*gpu_, Vec(d, 0.5f), {d}), dw_half = on(*gpu_, Vec(d, 0.5f), {d});
    gpu_->rmsnorm_backward(dx_wide, dw_wide, on(*gpu_, dout_wide, {r, d}), tx, tw, rstd32, true);
    gpu_->rmsnorm_backward(dx_half, dw_half, on16(*gpu_, dout16, {r, d}), tx, tw, rstd32, true);
    EXPECT_EQ(host(*gpu_, dx_half), host(*gpu_, dx_wide)) << "rmsnorm backward, bf16 dout d=" << d;
    EXPECT_EQ(host(*gpu_, dw_half), host(*gpu_, dw_wide)) << "rmsnorm backward, bf16 dout d=" << d;
    const Tensor cx = on(cpu_, x, {r, d}), cw = on(cpu_, w, {d}), crstd = on(cpu_, Vec(r), {r});
    cpu_.rmsnorm_forward(on(cpu_, Vec(r * d), {r, d}), crstd, cx, cw, 1e-6);
    const Tensor cdx = on(cpu_, dres0, {r, d}), cdw = on(cpu_, Vec(d, 0.5f), {d});
    cpu_.rmsnorm_backward(cdx, cdw, on16(cpu_, dout16, {r, d}), cx, cw, crstd, true);
    expect_close(host(*gpu_, dx_half), host(cpu_, cdx), 1e-5, "rmsnorm backward, bf16 dout dx");
    expect_close(host(*gpu_, dw_half), host(cpu_, cdw), 1e-5, "rmsnorm backward, bf16 dout dw");
  }
  {
    const int64_t n = 4097;
    const Vec gate = random_floats(n, 42, 3.0), up = random_floats(n, 43);
    const Tensor g = on(*gpu_, gate, {n}), u = on(*gpu_, up, {n});
    const Tensor g16 = on16(*gpu_, rounded(gate), {n}), u16 = on16(*gpu_, rounded(up), {n});
    for (const bool inputs16 : {false, true}) {
      const Tensor o32 = on(*gpu_, poison(n), {n});
      const Tensor o16 = on16(*gpu_, std::vector<uint16_t>(n, 0xffff), {n});
      gpu_->swiglu_forward(o32, inputs16 ? g16 : g, inputs16 ? u16 : u);
      gpu_->swiglu_forward(o16, inputs16 ? g16 : g, inputs16 ? u16 : u);
      EXPECT_EQ(bits_of(*gpu_, o16), rounded(host(*gpu_, o32))) << "swiglu, bf16 gate/up " << inputs16;
      const Tensor dact = on(*gpu_, random_floats(n, 52), {n});
      const Tensor dg32 = on(*gpu_, poison(n), {n}), du32 = on(*gpu_, poison(n), {n});
      const Tensor dg16 = on16(*gpu_, std::vector<uint16_t>(n, 0xffff), {n});
      const Tensor du16 = on16(*gpu_, std::vector<uint16_t>(n, 0xffff), {n});
      gpu_->swiglu_backward(dg32, du32, dact, inputs16 ? g16 : g, inputs16 ? u16 : u);
      gpu_->swiglu_backward(dg16, du16, dact, inputs16 ? g16 : g, inputs16 ? u16 : u);
      EXPECT_EQ(bits_of(*gpu_, dg16), rounded(host(*gpu_, dg32))) << "swiglu backward " << inputs16;
      EXPECT_EQ(bits_of(*gpu_, du16), rounded(host(*gpu_, du32))) << "swiglu backward " << inputs16;
      if (!inputs16) continue;
      // A BF16 dout (dact under --bf16-activations) reads as its widened values.
      const std::vector<uint16_t> dact16 = rounded(host(*gpu_, dact));
      std::vector<float> wide(dact16.size());
      for (size_t i = 0; i < wide.size(); ++i) wide[i] = bf16_to_float(dact16[i]);
      gpu_->swiglu_backward(dg32, du32, on(*gpu_, wide, {n}), g16, u16);
      gpu_->swiglu_backward(dg16, du16, on16(*gpu_, dact16, {n}), g16, u16);
      EXPECT_EQ(bits_of(*gpu_, dg16), rounded(host(*gpu_, dg32))) << "swiglu backward, bf16 dout";
      EXPECT_EQ(bits_of(*gpu_, du16), rounded(host(*gpu_, du32))) << "swiglu backward, bf16 dout";
    }
  }
  for (const MatmulPrecision p : {MatmulPrecision::FP32, MatmulPrecision::BF16}) {
    gpu_->set_matmul_precision(p);
    const std::string mode = p == MatmulPrecision::BF16 ? "tensor-core" : "fp32";
    for (const AttnCase& c : {AttnCase{2, 45, 6, 3, 40}, AttnCase{1, 130, 4, 2, 64}}) {
      const Vec q = random_floats(c.b * c.t * c.h * c.d, 44, 1.5);
      const Vec k = random_floats(c.b * c.t * c.kv * c.d, 45, 1.5);
      const Vec v = random_floats(c.b * c.t * c.kv * c.d, 46), dout = random_floats(q.size(), 47);
      const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
      const Tensor tq = on(*gpu_, q, {c.b, c.t, c.h, c.d}), tk = on(*gpu_, k, {c.b, c.t, c.kv, c.d});
      const Tensor tv = on(*gpu_, v, {c.b, c.t, c.kv, c.d}), tdo = on(*gpu_, dout, {c.b, c.t, c.h, c.d});
      const Tensor o32 = on(*gpu_, poison(q.size()), {c.b, c.t, c.h, c.d});
      const Tensor o16 = on16(*gpu_, std::vector<uint16_t>(q.size(), 0xffff), {c.b, c.t, c.h, c.d});
      const Tensor lse32 = on(*gpu_, poison(c.b * c.h * c.t), {c.b, c.h, c.t});
      const Tensor lse16 = on(*gpu_, poison(c.b * c.h * c.t), {c.b, c.h, c.t});
      gpu_->attention_forward(o32, lse32, tq, tk, tv, scale, 0);
      gpu_->attention_forward(o16, lse16, tq, tk, tv, scale, 0);
      const std::vector<uint16_t> out16 = bits_of(*gpu_, o16);
      ASSERT_EQ(out16, rounded(host(*gpu_, o32))) << mode << " attention t=" << c.t;
      EXPECT_EQ(host(*gpu_, lse16), host(*gpu_, lse32)) << mode << " attention t=" << c.t;
      std::vector<Vec> grads[2];
      for (int stored = 0; stored < 2; ++stored) {
        const Tensor out = stored ? o16 : on(*gpu_, widened(out16), {c.b, c.t, c.h, c.d});
        const Tensor dq = on(*gpu_, poison(q.size()), {c.b, c.t, c.h, c.d});
        const Tensor dk = on(*gpu_, poison(k.size()), {c.b, c.t, c.kv, c.d});
        const Tensor dv = on(*gpu_, poison(v.size()), {c.b, c.t, c.kv, c.d});
        gpu_->attention_backward(dq, dk, dv, tdo, tq, tk, tv, out, lse32, scale);
        grads[stored] = {host(*gpu_, dq), host(*gpu_, dk), host(*gpu_, dv)};
      }
      EXPECT_EQ(grads[1], grads[0]) << mode << " attention backward reading a bf16 out, t=" << c.t;
    }
  }
  // Products: 8-aligned shapes read BF16 operands in place, odd ones copy them.
  struct Shape { int64_t m, n, k; };
  for (const Shape sh : {Shape{64, 96, 128}, Shape{33, 41, 171}}) {
    for (const MatmulPrecision p : {MatmulPrecision::FP32, MatmulPrecision::BF16}) {
      gpu_->set_matmul_precision(p);
      for (int t = 0; t < 4; ++t) {
        const bool ta = t & 1, tb = t & 2;
        const std::vector<uint16_t> a16 = rounded(random_floats(sh.m * sh.k, 48));
        const std::vector<uint16_t> b16 = rounded(random_floats(sh.n * sh.k, 49));
        const Vec a = widened(a16), b = widened(b16), c0 = random_floats(sh.m * sh.n, 50);
        const Tensor a32t = ta ? on(*gpu_, a, {sh.k, sh.m}) : on(*gpu_, a, {sh.m, sh.k});
        const Tensor b32t = tb ? on(*gpu_, b, {sh.n, sh.k}) : on(*gpu_, b, {sh.k, sh.n});
        const Tensor a16t = ta ? on16(*gpu_, a16, {sh.k, sh.m}) : on16(*gpu_, a16, {sh.m, sh.k});
        const Tensor b16t = tb ? on16(*gpu_, b16, {sh.n, sh.k}) : on16(*gpu_, b16, {sh.k, sh.n});
        const Tensor want = on(*gpu_, c0, {sh.m, sh.n});
        gpu_->matmul(want, a32t, ta, b32t, tb, 1.0f, 1.0f);
        const Vec expected = host(*gpu_, want);
        for (int which = 1; which <= 3; ++which) {
          const Tensor got = on(*gpu_, c0, {sh.m, sh.n});
          gpu_->matmul(got, which & 1 ? a16t : a32t, ta, which & 2 ? b16t : b32t, tb, 1.0f, 1.0f);
          expect_close(host(*gpu_, got), expected, 1e-6,
                       "bf16 operands " + std::to_string(which) + " m=" + std::to_string(sh.m) +
                           " transposes " + std::to_string(t) +
                           (p == MatmulPrecision::BF16 ? " (bf16 products)" : " (fp32 products)"));
        }
      }
    }
  }
  gpu_->set_matmul_precision(MatmulPrecision::FP32);
}

// Padded widths (backend.h, matmul_padded_test.cpp for the CPU against a
// double reference): every padded_cases() shape on the GPU against the CPU,
// F32 tensors under both precisions, and under BF16 products also BF16
// operands (read in place where 8-aligned) and a BF16 output. Operands hold
// BF16 values, so the CPU's FP32 product is the BF16 product's reference.
TEST_F(CudaOps, MatmulPaddedWidthsMatchCpu) {
  for (const testing::PaddedCase& p : testing::padded_cases()) {
    Vec a = random_floats(p.ma * p.ka, 60), b = random_floats(p.kb * p.nb, 61);
    for (float& x : a) x = bf16_to_float(float_to_bf16(x));
    for (float& x : b) x = bf16_to_float(float_to_bf16(x));
    std::vector<uint16_t> a16(a.size()), b16(b.size());
    for (size_t i = 0; i < a.size(); ++i) a16[i] = float_to_bf16(a[i]);
    for (size_t i = 0; i < b.size(); ++i) b16[i] = float_to_bf16(b[i]);
    const Vec c0 = random_floats(p.rows * p.cols, 62);
    const auto a_dims = [&] { return p.ta ? std::vector<int64_t>{p.ka, p.ma} : std::vector<int64_t>{p.ma, p.ka}; };
    const auto b_dims = [&] { return p.tb ? std::vector<int64_t>{p.nb, p.kb} : std::vector<int64_t>{p.kb, p.nb}; };
    auto run = [&](Backend& be, float beta, bool operands16) {
      const auto ad = a_dims(), bd = b_dims();
      const Tensor ta = operands16 ? on16(be, a16, {ad[0], ad[1]}) : on(be, a, {ad[0], ad[1]});
      const Tensor tb = operands16 ? on16(be, b16, {bd[0], bd[1]}) : on(be, b, {bd[0], bd[1]});
      const Tensor c = on(be, c0, {p.rows, p.cols});
      be.matmul(c, ta, p.ta, tb, p.tb, 1.0f, beta);
      return host(be, c);
    };
    for (const MatmulPrecision precision : {MatmulPrecision::FP32, MatmulPrecision::BF16}) {
      gpu_->set_matmul_precision(precision);
      const bool bf16 = precision == MatmulPrecision::BF16;
      for (const float beta : {0.0f, 1.0f}) {
        const Vec want = run(cpu_, beta, false);
        const std::string what = p.name() + " beta " + std::to_string(beta) + (bf16 ? " bf16" : " fp32");
        expect_close(run(*gpu_, beta, false), want, 1e-5, what);
        if (!bf16) continue;
        expect_close(run(*gpu_, beta, true), want, 1e-5, what + ", bf16 operands");
        if (beta != 0.0f) continue;
        const auto ad = a_dims(), bd = b_dims();
        const Tensor c16 = on16(*gpu_, std::vector<uint16_t>(p.rows * p.cols, 0xffff), {p.rows, p.cols});
        gpu_->matmul(c16, on16(*gpu_, a16, {ad[0], ad[1]}), p.ta, on16(*gpu_, b16, {bd[0], bd[1]}), p.tb,
                     1.0f, 0.0f);
        expect_within_one_bf16_step(bits_of(*gpu_, c16), want, what + ", bf16 output");
      }
    }
  }
  gpu_->set_matmul_precision(MatmulPrecision::FP32);
}

// Weight-gradient shapes with a row count that is not a multiple of 8 run as
// their transpose under BF16 products (matmul_lt.h, runs_transposed): against
// the CPU, and against the direct product (HESSGPT_CUBLASLT_TRANSPOSE=0), all
// four transposes, beta 0 and 1, F32 and BF16 operands.
TEST_F(CudaOps, MatmulWithOddRowsRunsTransposed) {
  struct Shape { int64_t m, n, k; };
  // One 32 x 32 tile of the transposed merge, then 3 x 3 with partial edges.
  for (const Shape sh : {Shape{27, 16, 1000}, Shape{83, 72, 1000}}) {
    const int64_t m = sh.m, n = sh.n, k = sh.k;  // k >= 8 max(m, n)
    const std::vector<uint16_t> a16 = rounded(random_floats(m * k, 100));
    const std::vector<uint16_t> b16 = rounded(random_floats(k * n, 101));
    const Vec a = widened(a16), b = widened(b16), c0 = random_floats(m * n, 102);
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      for (const float beta : {0.0f, 1.0f}) {
        const auto run = [&](Backend& be, bool operands16) {
          const Tensor ta_ = operands16 ? (ta ? on16(be, a16, {k, m}) : on16(be, a16, {m, k}))
                                        : (ta ? on(be, a, {k, m}) : on(be, a, {m, k}));
          const Tensor tb_ = operands16 ? (tb ? on16(be, b16, {n, k}) : on16(be, b16, {k, n}))
                                        : (tb ? on(be, b, {n, k}) : on(be, b, {k, n}));
          const Tensor c = on(be, beta == 0.0f ? poison(m * n) : c0, {m, n});
          be.matmul(c, ta_, ta, tb_, tb, 1.0f, beta);
          return host(be, c);
        };
        const Vec want = run(cpu_, false);
        const std::string what = "m=" + std::to_string(m) + " transposes " + std::to_string(t) +
                                 " beta " + std::to_string(beta);
        gpu_->set_matmul_precision(MatmulPrecision::BF16);
        expect_close(run(*gpu_, false), want, 1e-5, what);
        expect_close(run(*gpu_, true), want, 1e-5, what + ", bf16 operands");
        {
          const testing::ScopedEnv direct("HESSGPT_CUBLASLT_TRANSPOSE", "0");
          expect_close(run(*gpu_, false), want, 1e-5, what + ", direct");
        }
        gpu_->set_matmul_precision(MatmulPrecision::FP32);
      }
    }
  }
}

// The gradient into BF16 (the head under --bf16-activations): the GPU's
// losses against the CPU's, its BF16 gradient within one BF16 step of the CPU's
// F32 gradient, from F32 logits and from BF16 ones in place; and convert both
// ways.
TEST_F(CudaOps, CrossEntropyIntoBf16AndConvert) {
  // Every kernel (HESSGPT_CE_KERNEL), the warp, split and cluster ones at
  // both access widths.
  for (const char* kernel : {"rows", "warp", "split", "cluster"})
    for (const int64_t v : {int64_t{32008 % 1001}, int64_t{32008}}) {
      const testing::ScopedEnv choice("HESSGPT_CE_KERNEL", kernel);
      const int64_t r = 9;
      std::vector<int32_t> targets = {3, -100, static_cast<int32_t>(v - 1), 0, 5, -100, 17, 200, 1};
      const Vec z = random_floats(r * v, 90, 4.0);
      const Tensor lc = on(cpu_, z, {r, v}), lossc = on(cpu_, poison(r), {r});
      cpu_.softcap_cross_entropy(lc, lossc, ids_on(cpu_, targets), 30.0, 1.0 / 7.0);
      const Tensor lg = on(*gpu_, z, {r, v}), lossg = on(*gpu_, poison(r), {r});
      const Tensor g16 = on16(*gpu_, std::vector<uint16_t>(r * v, 0xffff), {r, v});
      gpu_->softcap_cross_entropy_into(g16, lg, lossg, ids_on(*gpu_, targets), 30.0, 1.0 / 7.0);
      const std::string what = std::string(kernel) + " cross-entropy into bf16, v=" + std::to_string(v);
      expect_close(host(*gpu_, lossg), host(cpu_, lossc), 1e-5, what + ": losses");
      expect_within_one_bf16_step(bits_of(*gpu_, g16), host(cpu_, lc), what + ": dlogits");

      // BF16 logits (the training head's), the gradient over them: against
      // the CPU's F32 kernel over the same widened values.
      std::vector<uint16_t> z16(z.size());
      Vec zw(z.size());
      for (size_t i = 0; i < z.size(); ++i) zw[i] = bf16_to_float(z16[i] = float_to_bf16(z[i]));
      const Tensor lw = on(cpu_, zw, {r, v}), losswc = on(cpu_, poison(r), {r});
      cpu_.softcap_cross_entropy(lw, losswc, ids_on(cpu_, targets), 30.0, 1.0 / 7.0);
      const Tensor l16 = on16(*gpu_, z16, {r, v}), loss16 = on(*gpu_, poison(r), {r});
      gpu_->softcap_cross_entropy_into(l16, l16, loss16, ids_on(*gpu_, targets), 30.0, 1.0 / 7.0);
      expect_close(host(*gpu_, loss16), host(cpu_, losswc), 1e-5, what + ", bf16 logits: losses");
      expect_within_one_bf16_step(bits_of(*gpu_, l16), host(cpu_, lw),
                                  what + ", bf16 logits: dlogits in place");
    }

  // 1001 values: one at a time; 1000: four at a time (the weight copies' path).
  for (const int64_t n : {int64_t{1001}, int64_t{1000}}) {
    const Vec x = random_floats(static_cast<size_t>(n), 91, 3.0);
    const Tensor x16 = on16(*gpu_, std::vector<uint16_t>(static_cast<size_t>(n), 0xffff), {n});
    gpu_->convert(x16, on(*gpu_, x, {n}));
    std::vector<uint16_t> want(x.size());
    for (size_t i = 0; i < x.size(); ++i) want[i] = float_to_bf16(x[i]);
    EXPECT_EQ(bits_of(*gpu_, x16), want) << n << " values";
    const Tensor copy16 = on16(*gpu_, std::vector<uint16_t>(static_cast<size_t>(n), 0xffff), {n});
    gpu_->convert(copy16, x16);  // BF16 to BF16: a copy
    EXPECT_EQ(bits_of(*gpu_, copy16), want) << n << " values";
    const Tensor back = on(*gpu_, poison(n), {n});
    gpu_->convert(back, x16);
    const Vec wide = host(*gpu_, back);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(wide[i], bf16_to_float(want[i])) << i;
  }
}

// concat_columns in every mix of F32 and BF16 against the CPU's, bit for bit
// (a copy or one rounding per value), at model1's k|v and q|kv widths (one
// storage type: the 16-byte chunk kernel), rows of whole chunks in both types
// (8 | 16) or in F32 only (4 | 12), and odd widths (the per-value kernel).
TEST_F(CudaOps, ConcatColumnsMatchesCpu) {
  for (const auto& [ca, cb] : {std::pair<int64_t, int64_t>{320, 320}, {1280, 640}, {8, 16},
                               {4, 12}, {37, 5}}) {
    const int64_t rows = 129;
    const Vec a = random_floats(rows * ca, 95, 3.0), b = random_floats(rows * cb, 96, 3.0);
    for (const bool a16 : {false, true})
      for (const bool b16 : {false, true})
        for (const bool out16 : {false, true}) {
          const auto run = [&](Backend& be) {
            const Tensor ta = a16 ? on16(be, rounded(a), {rows, ca}) : on(be, a, {rows, ca});
            const Tensor tb = b16 ? on16(be, rounded(b), {rows, cb}) : on(be, b, {rows, cb});
            if (out16) {
              const Tensor o = on16(be, std::vector<uint16_t>(rows * (ca + cb), 0xffff), {rows, ca + cb});
              be.concat_columns(o, ta, tb);
              return widened(bits_of(be, o));
            }
            const Tensor o = on(be, poison(rows * (ca + cb)), {rows, ca + cb});
            be.concat_columns(o, ta, tb);
            return host(be, o);
          };
          EXPECT_EQ(run(*gpu_), run(cpu_)) << "concat " << ca << " | " << cb << ", a16 " << a16
                                           << ", b16 " << b16 << ", out16 " << out16;
        }
  }
}

// Attention's inputs in BF16 storage: under BF16 products the tensor-core
// kernels read BF16 copies either way, so F32 inputs and their BF16 roundings
// give the same bits; under FP32 products BF16 inputs read as their widened
// values. QK-Norm + RoPE into BF16 rounds once, after the rotation.
TEST_F(CudaOps, AttentionInputsInBf16) {
  const AttnCase c{2, 130, 4, 2, 64};
  const Vec q = random_floats(c.b * c.t * c.h * c.d, 61, 1.5);
  const Vec k = random_floats(c.b * c.t * c.kv * c.d, 62, 1.5);
  const Vec v = random_floats(c.b * c.t * c.kv * c.d, 63);
  const Vec dout = random_floats(q.size(), 64);
  const std::vector<uint16_t> q16 = rounded(q), k16 = rounded(k), v16 = rounded(v);
  const auto run = [&](const Tensor& tq, const Tensor& tk, const Tensor& tv) {
    const Tensor out = on(*gpu_, poison(q.size()), {c.b, c.t, c.h, c.d});
    const Tensor lse = on(*gpu_, poison(c.b * c.h * c.t), {c.b, c.h, c.t});
    gpu_->attention_forward(out, lse, tq, tk, tv, 0.125, 0);
    std::vector<Vec> r{host(*gpu_, out), host(*gpu_, lse)};
    for (Vec& g : attention_grads(*gpu_, c, dout, tq, tk, tv, out, lse, 0.125))
      r.push_back(std::move(g));
    return r;
  };
  const auto inputs16 = [&] {
    return run(on16(*gpu_, q16, {c.b, c.t, c.h, c.d}), on16(*gpu_, k16, {c.b, c.t, c.kv, c.d}),
               on16(*gpu_, v16, {c.b, c.t, c.kv, c.d}));
  };
  const char* names[] = {"out", "lse", "dq", "dk", "dv"};
  const auto fp32 = run(on(*gpu_, widened(q16), {c.b, c.t, c.h, c.d}),
                        on(*gpu_, widened(k16), {c.b, c.t, c.kv, c.d}),
                        on(*gpu_, widened(v16), {c.b, c.t, c.kv, c.d}));
  const auto fp32_16 = inputs16();
  for (size_t i = 0; i < fp32.size(); ++i)
    EXPECT_EQ(fp32_16[i], fp32[i]) << "fp32 products, bf16 inputs: " << names[i];
  gpu_->set_matmul_precision(MatmulPrecision::BF16);
  const auto tc = run(on(*gpu_, q, {c.b, c.t, c.h, c.d}), on(*gpu_, k, {c.b, c.t, c.kv, c.d}),
                      on(*gpu_, v, {c.b, c.t, c.kv, c.d}));
  const auto tc16 = inputs16();
  for (size_t i = 0; i < tc.size(); ++i)
    EXPECT_EQ(tc16[i], tc[i]) << "tensor cores, bf16 inputs: " << names[i];

  const int64_t positions = 140, rows = c.b * c.t * c.h;
  const Tensor cs = on(*gpu_, random_floats(positions * c.d / 2, 65), {positions, c.d / 2});
  const Tensor sn = on(*gpu_, random_floats(positions * c.d / 2, 66), {positions, c.d / 2});
  const Tensor w = on(*gpu_, random_floats(c.d, 67), {c.d});
  const Tensor x = on(*gpu_, q, {c.b, c.t, c.h, c.d});
  const Tensor o32 = on(*gpu_, poison(q.size()), {c.b, c.t, c.h, c.d});
  const Tensor o16 = on16(*gpu_, std::vector<uint16_t>(q.size(), 0xffff), {c.b, c.t, c.h, c.d});
  const Tensor r32 = on(*gpu_, poison(rows), {rows}), r16 = on(*gpu_, poison(rows), {rows});
  gpu_->qk_norm_rope_forward(o32, r32, x, w, 1e-6, cs, sn, 5);
  gpu_->qk_norm_rope_forward(o16, r16, x, w, 1e-6, cs, sn, 5);
  EXPECT_EQ(bits_of(*gpu_, o16), rounded(host(*gpu_, o32)));
  EXPECT_EQ(host(*gpu_, r16), host(*gpu_, r32));
}

}  // namespace
}  // namespace hessgpt

namespace hessgpt {
namespace {

using namespace cuda_test;

// Attention's gradients in BF16 storage (HESSGPT_BF16_ATTENTION_GRADS): under
// either engine, dq, dk, dv are the bits of the F32-gradient path (from the
// same dout, widened) rounded once: cuDNN writes BF16 either way, and our
// kernels stage the BF16 call in F32. QK-Norm + RoPE's backward reads a BF16
// dout exactly as its widened F32 (both kernels).
TEST_F(CudaOps, AttentionGradientsInBf16) {
  gpu_->set_matmul_precision(MatmulPrecision::BF16);
  const AttnCase c{2, 128, 4, 2, 64};
  const std::vector<uint16_t> q = rounded(random_floats(c.b * c.t * c.h * c.d, 91, 1.5));
  const std::vector<uint16_t> k = rounded(random_floats(c.b * c.t * c.kv * c.d, 92, 1.5));
  const std::vector<uint16_t> v = rounded(random_floats(c.b * c.t * c.kv * c.d, 93));
  const std::vector<uint16_t> dout16 = rounded(random_floats(q.size(), 94));
  const Vec dout = widened(dout16);
  for (const char* engine : {"ours", "cudnn"}) {
    const testing::ScopedEnv choice("HESSGPT_ATTENTION", engine);
    const Tensor tq = on16(*gpu_, q, {c.b, c.t, c.h, c.d}), tk = on16(*gpu_, k, {c.b, c.t, c.kv, c.d});
    const Tensor tv = on16(*gpu_, v, {c.b, c.t, c.kv, c.d});
    const Tensor out = on16(*gpu_, std::vector<uint16_t>(q.size(), 0xffff), {c.b, c.t, c.h, c.d});
    const Tensor lse = on(*gpu_, poison(c.b * c.h * c.t), {c.b, c.h, c.t});
    gpu_->attention_forward(out, lse, tq, tk, tv, 0.125, 0);
    const std::vector<Vec> f32 = attention_grads(*gpu_, c, dout, tq, tk, tv, out, lse, 0.125);
    const auto nan16 = [&](size_t n, std::initializer_list<int64_t> dims) {
      return on16(*gpu_, std::vector<uint16_t>(n, 0xffff), dims);
    };
    const Tensor dq = nan16(q.size(), {c.b, c.t, c.h, c.d}), dk = nan16(k.size(), {c.b, c.t, c.kv, c.d});
    const Tensor dv = nan16(v.size(), {c.b, c.t, c.kv, c.d});
    gpu_->attention_backward(dq, dk, dv, on16(*gpu_, dout16, {c.b, c.t, c.h, c.d}), tq, tk, tv,
                             out, lse, 0.125);
    const std::string what = std::string("engine ") + engine;
    EXPECT_EQ(bits_of(*gpu_, dq), rounded(f32[0])) << what << ": dq";
    EXPECT_EQ(bits_of(*gpu_, dk), rounded(f32[1])) << what << ": dk";
    EXPECT_EQ(bits_of(*gpu_, dv), rounded(f32[2])) << what << ": dv";
  }
  const int64_t positions = c.t, rows = c.b * c.t * c.h;
  const Vec x = random_floats(q.size(), 95), w = random_floats(c.d, 96);
  const Vec cosv = random_floats(positions * c.d / 2, 97), sinv = random_floats(positions * c.d / 2, 98);
  const Tensor tx = on(*gpu_, x, {c.b, c.t, c.h, c.d}), tw = on(*gpu_, w, {c.d});
  const Tensor rstd = on(*gpu_, poison(rows), {rows}), normed = on(*gpu_, poison(q.size()), {c.b, c.t, c.h, c.d});
  const Tensor tcos = on(*gpu_, cosv, {positions, c.d / 2}), tsin = on(*gpu_, sinv, {positions, c.d / 2});
  gpu_->qk_norm_rope_forward(normed, rstd, tx, tw, 1e-6, tcos, tsin, 0);
  for (const char* kernels : {"held", "generic"}) {
    const testing::ScopedEnv choice("HESSGPT_NORM_KERNELS", kernels);
    const auto backward = [&](const Tensor& g) {
      const Tensor dx = on(*gpu_, poison(q.size()), {c.b, c.t, c.h, c.d});
      const Tensor dw = on(*gpu_, Vec(c.d, 0.0f), {c.d});
      gpu_->qk_norm_rope_backward(dx, dw, g, tx, tw, rstd, tcos, tsin, 0, 0);
      return std::make_pair(host(*gpu_, dx), host(*gpu_, dw));
    };
    EXPECT_EQ(backward(on16(*gpu_, dout16, {c.b, c.t, c.h, c.d})),
              backward(on(*gpu_, dout, {c.b, c.t, c.h, c.d})))
        << "qk-norm + rope backward, " << kernels << " kernels";
  }
}

// QK-Norm + RoPE's backward into heads of wider rows (the fused q/k/v
// operand), under each kernel (lane groups, a warp per row, generic) and dx
// type: the contiguous gradient of the same kernel, placed, bit for bit; the
// other heads untouched; and against the CPU's.
TEST_F(CudaOps, QkNormRopeBackwardIntoHeadsOfWiderRows) {
  const int64_t b = 2, t = 33, h = 4, hx = 10, head0 = 3, positions = 40, pos0 = 2;
  for (const int64_t d : {int64_t{64}, int64_t{128}}) {
    const int64_t rows = b * t * h, tokens = b * t;
    const Vec x = random_floats(rows * d, 60, 2.0), w = random_floats(d, 61);
    const Vec cosv = random_floats(positions * d / 2, 62), sinv = random_floats(positions * d / 2, 63);
    const std::vector<uint16_t> dout16 = rounded(random_floats(rows * d, 64));
    const auto run = [&](Backend& be, bool wide, bool dx16) {
      const Tensor tx = on(be, x, {b, t, h, d}), tw = on(be, w, {d});
      const Tensor tcos = on(be, cosv, {positions, d / 2}), tsin = on(be, sinv, {positions, d / 2});
      const Tensor rstd = on(be, poison(rows), {rows});
      be.qk_norm_rope_forward(on(be, poison(rows * d), {b, t, h, d}), rstd, tx, tw, 1e-6, tcos,
                              tsin, pos0);
      const int64_t heads = wide ? hx : h, n = tokens * heads * d;
      const Tensor dx = dx16 ? on16(be, std::vector<uint16_t>(n, 0x3f80), {b, t, heads, d})
                             : on(be, Vec(n, 1.0f), {b, t, heads, d});
      const Tensor dw = on(be, Vec(d, 0.0f), {d});
      be.qk_norm_rope_backward(dx, dw, on16(be, dout16, {b, t, h, d}), tx, tw, rstd, tcos, tsin,
                               pos0, wide ? head0 : 0);
      return std::make_pair(dx16 ? widened(bits_of(be, dx)) : host(be, dx), host(be, dw));
    };
    for (const auto& [kernels, lanes] : {std::pair<const char*, const char*>{"held", "lanes"},
                                         {"held", "1"}, {"generic", "lanes"}})
      for (const bool dx16 : {false, true}) {
        const testing::ScopedEnv choice("HESSGPT_NORM_KERNELS", kernels);
        const testing::ScopedEnv rows_per_warp("HESSGPT_QK_NORM_ROWS", lanes);
        const std::string what = std::string(kernels) + " kernels, rows " + lanes + ", d " +
                                 std::to_string(d) + (dx16 ? ", BF16 dx" : ", F32 dx");
        const auto [whole, dw_whole] = run(*gpu_, false, dx16);
        const auto [wide, dw_wide] = run(*gpu_, true, dx16);
        Vec want(tokens * hx * d, 1.0f);
        for (int64_t token = 0; token < tokens; ++token)
          for (int64_t i = 0; i < h * d; ++i)
            want[(token * hx + head0) * d + i] = whole[token * h * d + i];
        EXPECT_EQ(wide, want) << what;
        EXPECT_EQ(dw_wide, dw_whole) << what;
        const auto [cpu_wide, cpu_dw] = run(cpu_, true, dx16);
        expect_close(wide, cpu_wide, dx16 ? 1e-2 : 2e-5, what + ", against the CPU");
        expect_close(dw_wide, cpu_dw, 2e-5, what + ", dw against the CPU");
      }
  }
}

// copy_columns against the CPU's, bit for bit, in every mix of F32 and BF16:
// model1's dv into the q/k/v operand (the 16-byte chunk kernel where the types
// match), an F32 range of whole chunks, and odd widths (the per-value kernel).
TEST_F(CudaOps, CopyColumnsMatchesCpu) {
  for (const auto& [width, col0, cols] :
       {std::tuple<int64_t, int64_t, int64_t>{1920, 1600, 320}, {64, 16, 32}, {11, 3, 5}}) {
    const int64_t rows = 129;
    const Vec src = random_floats(rows * cols, 70, 3.0), dst0 = random_floats(rows * width, 71);
    for (const bool src16 : {false, true})
      for (const bool out16 : {false, true}) {
        const auto run = [&](Backend& be) {
          const Tensor ts = src16 ? on16(be, rounded(src), {rows, cols}) : on(be, src, {rows, cols});
          const Tensor o = out16 ? on16(be, rounded(dst0), {rows, width}) : on(be, dst0, {rows, width});
          be.copy_columns(o, col0, ts);
          return out16 ? widened(bits_of(be, o)) : host(be, o);
        };
        EXPECT_EQ(run(*gpu_), run(cpu_)) << "copy " << cols << " columns into " << width
                                         << " from " << col0 << ", src16 " << src16 << ", out16 "
                                         << out16;
      }
  }
}

}  // namespace
}  // namespace hessgpt
