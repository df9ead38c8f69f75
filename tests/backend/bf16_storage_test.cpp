// BF16 as a storage type (backend.h): matmul operands and outputs, the
// outputs of RMSNorm, attention and SwiGLU, SwiGLU's inputs, attention's
// backward reading its BF16 output. The CPU kernels do exactly the F32
// arithmetic on the rounded values, so they are compared bit for bit with the
// F32 path on pre-rounded inputs (an output: the F32 result, rounded once).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "common/test_util.h"
#include "core/bf16.h"

namespace hessgpt {
namespace {

std::vector<float> random_floats(size_t n, uint64_t seed, double scale = 1.0) {
  const auto d = hessgpt::testing::random_vector(n, seed, scale);
  return std::vector<float>(d.begin(), d.end());
}

Tensor host(std::vector<float>& v, std::initializer_list<int64_t> dims) {
  return Tensor(v.data(), DType::F32, Device::CPU, dims);
}
Tensor host16(std::vector<uint16_t>& v, std::initializer_list<int64_t> dims) {
  return Tensor(v.data(), DType::BF16, Device::CPU, dims);
}
std::vector<uint16_t> rounded(const std::vector<float>& x) {
  std::vector<uint16_t> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = float_to_bf16(x[i]);
  return r;
}
std::vector<float> widened(const std::vector<uint16_t>& x) {
  std::vector<float> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = bf16_to_float(x[i]);
  return r;
}

TEST(Bf16Storage, MatmulOutputIsTheRoundedF32Product) {
  CpuBackend be(2);
  const int64_t m = 19, n = 37, k = 45;
  auto a = random_floats(m * k, 1), b = random_floats(n * k, 2);
  std::vector<float> c32(static_cast<size_t>(m * n));
  std::vector<uint16_t> c16(c32.size(), 0xffff);
  be.matmul(host(c32, {m, n}), host(a, {m, k}), false, host(b, {n, k}), true, 0.5f, 0.0f);
  be.matmul(host16(c16, {m, n}), host(a, {m, k}), false, host(b, {n, k}), true, 0.5f, 0.0f);
  EXPECT_EQ(c16, rounded(c32));
  // No accumulation into a BF16 output.
  EXPECT_THROW(be.matmul(host16(c16, {m, n}), host(a, {m, k}), false, host(b, {n, k}), true, 1.0f, 1.0f),
               Error);
}

// A BF16 operand is read as float: the product equals the F32 product of the
// widened values, under FP32 and BF16 products, with every transpose, into an
// F32 (accumulating) or a BF16 output.
TEST(Bf16Storage, MatmulReadsBf16Operands) {
  CpuBackend be(2);
  std::vector<MatmulPrecision> precisions{MatmulPrecision::FP32};
  if (be.supports_matmul_precision(MatmulPrecision::BF16)) precisions.push_back(MatmulPrecision::BF16);
  const int64_t m = 13, n = 21, k = 35;
  std::vector<uint16_t> a16 = rounded(random_floats(m * k, 6)), b16 = rounded(random_floats(n * k, 7));
  std::vector<float> a = widened(a16), b = widened(b16);
  const std::vector<float> c0 = random_floats(m * n, 8);
  for (MatmulPrecision p : precisions) {
    be.set_matmul_precision(p);
    for (int which = 1; which <= 3; ++which) {  // a, b or both in BF16
      for (int t = 0; t < 4; ++t) {
        const bool ta = t & 1, tb = t & 2;
        const Tensor ta32 = ta ? host(a, {k, m}) : host(a, {m, k});
        const Tensor tb32 = tb ? host(b, {n, k}) : host(b, {k, n});
        const Tensor ta16 = ta ? host16(a16, {k, m}) : host16(a16, {m, k});
        const Tensor tb16 = tb ? host16(b16, {n, k}) : host16(b16, {k, n});
        std::vector<float> want = c0, got = c0;
        be.matmul(host(want, {m, n}), ta32, ta, tb32, tb, 1.0f, 1.0f);
        be.matmul(host(got, {m, n}), which & 1 ? ta16 : ta32, ta, which & 2 ? tb16 : tb32, tb, 1.0f, 1.0f);
        EXPECT_EQ(got, want) << "precision " << static_cast<int>(p) << " operands " << which << " transposes " << t;
        std::vector<uint16_t> out16(static_cast<size_t>(m * n));
        be.matmul(host16(out16, {m, n}), which & 1 ? ta16 : ta32, ta, which & 2 ? tb16 : tb32, tb, 1.0f, 0.0f);
        std::vector<float> plain(static_cast<size_t>(m * n));
        be.matmul(host(plain, {m, n}), ta32, ta, tb32, tb, 1.0f, 0.0f);
        EXPECT_EQ(out16, rounded(plain));
      }
    }
  }
}

// RMSNorm, attention and SwiGLU with BF16 outputs: the F32 results, rounded
// once; their other outputs (rstd, lse) untouched. Attention's backward reads
// a BF16 output as its widened values.
TEST(Bf16Storage, NormAttentionAndSwigluWriteBf16) {
  CpuBackend be(2);
  const int64_t rows = 7, d = 40;
  auto x = random_floats(rows * d, 9, 2.0), w = random_floats(d, 10);
  std::vector<float> out32(rows * d), rstd32(rows), rstd16(rows);
  std::vector<uint16_t> out16(rows * d);
  be.rmsnorm_forward(host(out32, {rows, d}), host(rstd32, {rows}), host(x, {rows, d}), host(w, {d}), 1e-6);
  be.rmsnorm_forward(host16(out16, {rows, d}), host(rstd16, {rows}), host(x, {rows, d}), host(w, {d}), 1e-6);
  EXPECT_EQ(out16, rounded(out32));
  EXPECT_EQ(rstd16, rstd32);
  auto dout_n = random_floats(rows * d, 17);
  std::vector<float> dx32(rows * d), dw32(d, 0.5f), dw16(d, 0.5f);
  std::vector<uint16_t> dx16(rows * d);
  be.rmsnorm_backward(host(dx32, {rows, d}), host(dw32, {d}), host(dout_n, {rows, d}), host(x, {rows, d}),
                      host(w, {d}), host(rstd32, {rows}), false);
  be.rmsnorm_backward(host16(dx16, {rows, d}), host(dw16, {d}), host(dout_n, {rows, d}), host(x, {rows, d}),
                      host(w, {d}), host(rstd32, {rows}), false);
  EXPECT_EQ(dx16, rounded(dx32));
  EXPECT_EQ(dw16, dw32);
  EXPECT_THROW(be.rmsnorm_backward(host16(dx16, {rows, d}), host(dw16, {d}), host(dout_n, {rows, d}),
                                   host(x, {rows, d}), host(w, {d}), host(rstd32, {rows}), true),
               Error);  // no accumulation into BF16
  // The residual's form: dx accumulated in F32 as rmsnorm_backward does it,
  // and its BF16 copy, the final values rounded once.
  for (const bool accumulate : {false, true}) {
    std::vector<float> dres = random_floats(rows * d, 18), dres_plain = dres;
    std::vector<float> dwc(d, 0.5f), dwp(d, 0.5f);
    std::vector<uint16_t> copy(rows * d);
    be.rmsnorm_backward(host(dres_plain, {rows, d}), host(dwp, {d}), host(dout_n, {rows, d}),
                        host(x, {rows, d}), host(w, {d}), host(rstd32, {rows}), accumulate);
    be.rmsnorm_backward_copy(host(dres, {rows, d}), host16(copy, {rows, d}), host(dwc, {d}),
                             host(dout_n, {rows, d}), host(x, {rows, d}), host(w, {d}),
                             host(rstd32, {rows}), accumulate);
    EXPECT_EQ(dres, dres_plain);
    EXPECT_EQ(dwc, dwp);
    EXPECT_EQ(copy, rounded(dres));
  }
  EXPECT_THROW(be.rmsnorm_backward_copy(host(dx32, {rows, d}), host(dx32, {rows, d}),
                                        host(dw32, {d}), host(dout_n, {rows, d}),
                                        host(x, {rows, d}), host(w, {d}), host(rstd32, {rows}), true),
               Error);  // the copy must be BF16

  const int64_t n = 517;
  auto gate = random_floats(n, 11, 3.0), up = random_floats(n, 12);
  std::vector<float> act32(n);
  std::vector<uint16_t> act16(n);
  be.swiglu_forward(host(act32, {n}), host(gate, {n}), host(up, {n}));
  be.swiglu_forward(host16(act16, {n}), host(gate, {n}), host(up, {n}));
  EXPECT_EQ(act16, rounded(act32));
  std::vector<uint16_t> g16 = rounded(gate), u16 = rounded(up);
  std::vector<float> g = widened(g16), u = widened(u16);
  be.swiglu_forward(host(act32, {n}), host(g, {n}), host(u, {n}));
  be.swiglu_forward(host16(act16, {n}), host16(g16, {n}), host16(u16, {n}));
  EXPECT_EQ(act16, rounded(act32));
  auto dact = random_floats(n, 18);
  std::vector<float> dg32(n), du32(n);
  std::vector<uint16_t> dg16(n), du16(n);
  be.swiglu_backward(host(dg32, {n}), host(du32, {n}), host(dact, {n}), host16(g16, {n}), host16(u16, {n}));
  be.swiglu_backward(host16(dg16, {n}), host16(du16, {n}), host(dact, {n}), host16(g16, {n}), host16(u16, {n}));
  EXPECT_EQ(dg16, rounded(dg32));
  EXPECT_EQ(du16, rounded(du32));
  // A BF16 dout (dact under --bf16-activations) reads as its widened values.
  const std::vector<uint16_t> dact16 = rounded(dact);
  std::vector<float> dact_wide = widened(dact16);
  be.swiglu_backward(host(dg32, {n}), host(du32, {n}), host(dact_wide, {n}), host16(g16, {n}), host16(u16, {n}));
  std::vector<uint16_t> dact16_in = dact16;
  be.swiglu_backward(host16(dg16, {n}), host16(du16, {n}), host16(dact16_in, {n}), host16(g16, {n}), host16(u16, {n}));
  EXPECT_EQ(dg16, rounded(dg32));
  EXPECT_EQ(du16, rounded(du32));
  EXPECT_THROW(be.swiglu_backward(host(dg32, {n}), host(du32, {n}), host16(dact16_in, {n}),
                                  host(g, {n}), host(u, {n})),
               Error);  // a BF16 dout only with BF16 gate/up

  const int64_t b = 2, t = 9, h = 4, kv = 2, hd = 8;
  auto q = random_floats(b * t * h * hd, 13), k = random_floats(b * t * kv * hd, 14),
       v = random_floats(b * t * kv * hd, 15), dout = random_floats(b * t * h * hd, 16);
  std::vector<float> att32(q.size()), lse32(b * h * t), lse16(b * h * t);
  std::vector<uint16_t> att16(q.size());
  const auto q4 = [&](std::vector<float>& x4) { return host(x4, {b, t, h, hd}); };
  const auto kv4 = [&](std::vector<float>& x4) { return host(x4, {b, t, kv, hd}); };
  be.attention_forward(q4(att32), host(lse32, {b, h, t}), q4(q), kv4(k), kv4(v), 0.35, 0);
  be.attention_forward(host16(att16, {b, t, h, hd}), host(lse16, {b, h, t}), q4(q), kv4(k), kv4(v), 0.35, 0);
  EXPECT_EQ(att16, rounded(att32));
  EXPECT_EQ(lse16, lse32);
  std::vector<float> att_wide = widened(att16);
  std::vector<float> dq32(q.size()), dk32(k.size()), dv32(v.size()), dq16(q.size()), dk16(k.size()), dv16(v.size());
  be.attention_backward(q4(dq32), kv4(dk32), kv4(dv32), q4(dout), q4(q), kv4(k), kv4(v), q4(att_wide),
                        host(lse32, {b, h, t}), 0.35);
  be.attention_backward(q4(dq16), kv4(dk16), kv4(dv16), q4(dout), q4(q), kv4(k), kv4(v),
                        host16(att16, {b, t, h, hd}), host(lse32, {b, h, t}), 0.35);
  EXPECT_EQ(dq16, dq32);
  EXPECT_EQ(dk16, dk32);
  EXPECT_EQ(dv16, dv32);
}

// Attention's inputs in BF16 storage (--bf16-activations: q and k out of
// QK-Norm + RoPE, v out of its product) read as their widened values; under
// BF16 products attention rounds F32 inputs the same way (the tensor-core
// kernels' operands), so both storages give the same bits. QK-Norm + RoPE
// with a BF16 output rounds once, after the rotation.
TEST(Bf16Storage, AttentionInputsInBf16) {
  CpuBackend be(2);
  const int64_t b = 2, t = 11, h = 4, kv = 2, hd = 8;
  auto q = random_floats(b * t * h * hd, 23), k = random_floats(b * t * kv * hd, 24),
       v = random_floats(b * t * kv * hd, 25), dout = random_floats(b * t * h * hd, 26);
  std::vector<uint16_t> q16 = rounded(q), k16 = rounded(k), v16 = rounded(v);
  std::vector<float> qw = widened(q16), kw = widened(k16), vw = widened(v16);
  const auto q4 = [&](std::vector<float>& x) { return host(x, {b, t, h, hd}); };
  const auto kv4 = [&](std::vector<float>& x) { return host(x, {b, t, kv, hd}); };
  const auto q4h = [&](std::vector<uint16_t>& x) { return host16(x, {b, t, h, hd}); };
  const auto kv4h = [&](std::vector<uint16_t>& x) { return host16(x, {b, t, kv, hd}); };
  struct Pass {
    std::vector<float> out, lse, dq, dk, dv;
  };
  const auto pass = [&](const Tensor& tq, const Tensor& tk, const Tensor& tv) {
    Pass p{std::vector<float>(q.size()), std::vector<float>(b * h * t),
           std::vector<float>(q.size()), std::vector<float>(k.size()), std::vector<float>(v.size())};
    be.attention_forward(q4(p.out), host(p.lse, {b, h, t}), tq, tk, tv, 0.35, 0);
    be.attention_backward(q4(p.dq), kv4(p.dk), kv4(p.dv), q4(dout), tq, tk, tv, q4(p.out),
                          host(p.lse, {b, h, t}), 0.35);
    return p;
  };
  const auto same = [](const Pass& a, const Pass& c, const char* what) {
    EXPECT_EQ(a.out, c.out) << what;
    EXPECT_EQ(a.lse, c.lse) << what;
    EXPECT_EQ(a.dq, c.dq) << what;
    EXPECT_EQ(a.dk, c.dk) << what;
    EXPECT_EQ(a.dv, c.dv) << what;
  };
  // FP32 products: BF16 storage is its widened values.
  same(pass(q4h(q16), kv4h(k16), kv4h(v16)), pass(q4(qw), kv4(kw), kv4(vw)), "fp32 products");
  if (!be.supports_matmul_precision(MatmulPrecision::BF16)) return;
  be.set_matmul_precision(MatmulPrecision::BF16);
  const Pass rounded_f32 = pass(q4(q), kv4(k), kv4(v));
  same(pass(q4h(q16), kv4h(k16), kv4h(v16)), rounded_f32, "bf16 products");
  same(pass(q4(qw), kv4(kw), kv4(vw)), rounded_f32, "bf16 products, pre-rounded F32");
  std::vector<float> out(q.size()), lse(b * h * t);
  EXPECT_THROW(be.attention_forward(q4(out), host(lse, {b, h, t}), q4(q), kv4h(k16), kv4(v), 0.35, 0),
               Error);  // q, k, v of different types

  // QK-Norm + RoPE into BF16: the F32 result, rounded once.
  const int64_t positions = 16;
  const auto cs = random_floats(positions * hd / 2, 27), sn = random_floats(positions * hd / 2, 28);
  std::vector<float> cosv = cs, sinv = sn, w = random_floats(hd, 29);
  std::vector<float> out32(q.size()), rstd32(b * t * h), rstd16(b * t * h);
  std::vector<uint16_t> out16(q.size());
  be.qk_norm_rope_forward(q4(out32), host(rstd32, {b * t * h}), q4(q), host(w, {hd}), 1e-6,
                          host(cosv, {positions, hd / 2}), host(sinv, {positions, hd / 2}), 3);
  be.qk_norm_rope_forward(q4h(out16), host(rstd16, {b * t * h}), q4(q), host(w, {hd}), 1e-6,
                          host(cosv, {positions, hd / 2}), host(sinv, {positions, hd / 2}), 3);
  EXPECT_EQ(out16, rounded(out32));
  EXPECT_EQ(rstd16, rstd32);
}

// Attention's gradients in BF16 storage (HESSGPT_BF16_ATTENTION_GRADS): dq,
// dk, dv are the F32 gradients from dout widened, each rounded once; QK-Norm
// + RoPE's backward reads a BF16 dout as its widened values.
TEST(Bf16Storage, AttentionGradientsInBf16) {
  CpuBackend be(2);
  const int64_t b = 2, t = 9, h = 4, kv = 2, hd = 8;
  auto q = random_floats(b * t * h * hd, 31), k = random_floats(b * t * kv * hd, 32),
       v = random_floats(b * t * kv * hd, 33);
  std::vector<uint16_t> dout16 = rounded(random_floats(q.size(), 34));
  std::vector<float> dout = widened(dout16), out(q.size()), lse(b * h * t);
  const auto q4 = [&](std::vector<float>& x) { return host(x, {b, t, h, hd}); };
  const auto kv4 = [&](std::vector<float>& x) { return host(x, {b, t, kv, hd}); };
  be.attention_forward(q4(out), host(lse, {b, h, t}), q4(q), kv4(k), kv4(v), 0.35, 0);
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  be.attention_backward(q4(dq), kv4(dk), kv4(dv), q4(dout), q4(q), kv4(k), kv4(v), q4(out),
                        host(lse, {b, h, t}), 0.35);
  std::vector<uint16_t> dq16(q.size()), dk16(k.size()), dv16(v.size());
  be.attention_backward(host16(dq16, {b, t, h, hd}), host16(dk16, {b, t, kv, hd}),
                        host16(dv16, {b, t, kv, hd}), host16(dout16, {b, t, h, hd}), q4(q), kv4(k),
                        kv4(v), q4(out), host(lse, {b, h, t}), 0.35);
  EXPECT_EQ(dq16, rounded(dq));
  EXPECT_EQ(dk16, rounded(dk));
  EXPECT_EQ(dv16, rounded(dv));
  EXPECT_THROW(be.attention_backward(q4(dq), kv4(dk), kv4(dv), host16(dout16, {b, t, h, hd}),
                                     q4(q), kv4(k), kv4(v), q4(out), host(lse, {b, h, t}), 0.35),
               Error);  // BF16 dout into F32 gradients

  const int64_t positions = 12;
  std::vector<float> cosv = random_floats(positions * hd / 2, 35),
                     sinv = random_floats(positions * hd / 2, 36), w = random_floats(hd, 37);
  std::vector<float> rstd(b * t * h), normed(q.size());
  be.qk_norm_rope_forward(q4(normed), host(rstd, {b * t * h}), q4(q), host(w, {hd}), 1e-6,
                          host(cosv, {positions, hd / 2}), host(sinv, {positions, hd / 2}), 2);
  const auto backward = [&](const Tensor& g) {
    std::vector<float> dx(q.size()), dw(hd, 0.0f);
    be.qk_norm_rope_backward(q4(dx), host(dw, {hd}), g, q4(q), host(w, {hd}),
                             host(rstd, {b * t * h}), host(cosv, {positions, hd / 2}),
                             host(sinv, {positions, hd / 2}), 2, 0);
    return std::make_pair(dx, dw);
  };
  std::vector<uint16_t> g16 = dq16;
  std::vector<float> g32 = widened(dq16);
  EXPECT_EQ(backward(host16(g16, {b, t, h, hd})), backward(q4(g32)));
  EXPECT_EQ(g16, dq16) << "a BF16 dout is read, not rotated in place";
}

TEST(Bf16Storage, SwigluReadsBf16GateAndUp) {
  CpuBackend be(2);
  const int64_t n = 1003;
  const auto gate = random_floats(n, 3, 3.0), up = random_floats(n, 4);
  auto dout = random_floats(n, 5);
  std::vector<uint16_t> g16 = rounded(gate), u16 = rounded(up);
  std::vector<float> g = widened(g16), u = widened(u16);  // the same values in F32
  std::vector<float> out32(n), out16(n), dg32(n), du32(n), dg16(n), du16(n);
  be.swiglu_forward(host(out32, {n}), host(g, {n}), host(u, {n}));
  be.swiglu_forward(host(out16, {n}), host16(g16, {n}), host16(u16, {n}));
  EXPECT_EQ(out16, out32);
  be.swiglu_backward(host(dg32, {n}), host(du32, {n}), host(dout, {n}), host(g, {n}), host(u, {n}));
  be.swiglu_backward(host(dg16, {n}), host(du16, {n}), host(dout, {n}), host16(g16, {n}), host16(u16, {n}));
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_FLOAT_EQ(dg16[i], dg32[i]) << i;
    EXPECT_FLOAT_EQ(du16[i], du32[i]) << i;
  }
  std::vector<float> wrong(n - 1);
  EXPECT_THROW(be.swiglu_forward(host(wrong, {n - 1}), host16(g16, {n}), host16(u16, {n})), Error);
}

// convert: F32 -> BF16 rounds, BF16 -> F32 widens exactly, equal dtypes copy;
// other pairs are errors naming them.
TEST(Bf16Storage, ConvertRoundsAndWidens) {
  CpuBackend be(2);
  auto x = random_floats(77, 19, 5.0);
  std::vector<uint16_t> x16(77);
  be.convert(host16(x16, {7, 11}), host(x, {7, 11}));
  EXPECT_EQ(x16, rounded(x));
  std::vector<float> back(77);
  be.convert(host(back, {77}), host16(x16, {77}));
  EXPECT_EQ(back, widened(x16));
  std::vector<double> d(77);
  EXPECT_THROW(be.convert(Tensor(d.data(), DType::F64, Device::CPU, {77}), host16(x16, {77})), Error);
  EXPECT_THROW(be.convert(host16(x16, {76}), host(x, {77})), Error);  // sizes differ
}

// The cross-entropy's gradient into a BF16 tensor: the in-place F32 gradient,
// rounded; the losses the same.
// Two tensors' rows side by side, each value converted to the destination's
// dtype exactly as convert() does, in every mix of F32 and BF16.
TEST(Bf16Storage, ConcatColumnsPutsRowsSideBySide) {
  CpuBackend be(2);
  const int64_t rows = 5, ca = 3, cb = 7;
  std::vector<float> a = random_floats(rows * ca, 1, 3.0), b = random_floats(rows * cb, 2, 3.0);
  std::vector<uint16_t> a16 = rounded(a), b16 = rounded(b);
  for (const bool a_bf16 : {false, true})
    for (const bool b_bf16 : {false, true}) {
      const std::vector<float> av = a_bf16 ? widened(a16) : a, bv = b_bf16 ? widened(b16) : b;
      std::vector<float> want(rows * (ca + cb));
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < ca; ++c) want[r * (ca + cb) + c] = av[r * ca + c];
        for (int64_t c = 0; c < cb; ++c) want[r * (ca + cb) + ca + c] = bv[r * cb + c];
      }
      const Tensor ta = a_bf16 ? host16(a16, {rows, ca}) : host(a, {rows, ca});
      const Tensor tb = b_bf16 ? host16(b16, {rows, cb}) : host(b, {rows, cb});
      std::vector<float> out(want.size(), -1.0f);
      be.concat_columns(host(out, {rows, ca + cb}), ta, tb);
      EXPECT_EQ(out, want) << "F32 out, a " << (a_bf16 ? "BF16" : "F32") << ", b "
                           << (b_bf16 ? "BF16" : "F32");
      std::vector<uint16_t> out16(want.size(), 0xffff);
      be.concat_columns(host16(out16, {rows, ca + cb}), ta, tb);
      EXPECT_EQ(out16, rounded(want)) << "BF16 out";
    }
  std::vector<float> wrong(rows * (ca + cb + 1));
  EXPECT_THROW(be.concat_columns(host(wrong, {rows, ca + cb + 1}), host(a, {rows, ca}),
                                 host(b, {rows, cb})),
               Error);
}

// One tensor's rows into a column range of wider rows, converted as
// convert() does; the other columns untouched; a range past the row refused.
TEST(Bf16Storage, CopyColumnsWritesItsColumnsOnly) {
  CpuBackend be(2);
  const int64_t rows = 4, width = 11, col0 = 3, cols = 5;
  std::vector<float> src = random_floats(rows * cols, 3, 3.0);
  std::vector<uint16_t> src16 = rounded(src);
  for (const bool src_bf16 : {false, true}) {
    const std::vector<float> sv = src_bf16 ? widened(src16) : src;
    const Tensor ts = src_bf16 ? host16(src16, {rows, cols}) : host(src, {rows, cols});
    std::vector<float> want(rows * width, -1.0f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) want[r * width + col0 + c] = sv[r * cols + c];
    std::vector<float> out(want.size(), -1.0f);
    be.copy_columns(host(out, {rows, width}), col0, ts);
    EXPECT_EQ(out, want) << "F32 out, src " << (src_bf16 ? "BF16" : "F32");
    std::vector<uint16_t> out16(want.size(), float_to_bf16(-1.0f));
    be.copy_columns(host16(out16, {rows, width}), col0, ts);
    EXPECT_EQ(out16, rounded(want)) << "BF16 out, src " << (src_bf16 ? "BF16" : "F32");
  }
  std::vector<float> out(rows * width);
  for (const int64_t bad : {int64_t{-1}, width - cols + 1})
    EXPECT_THROW(be.copy_columns(host(out, {rows, width}), bad, host(src, {rows, cols})), Error)
        << bad;
}

// QK-Norm + RoPE's gradient into some heads of wider rows (the fused q/k/v
// operand): the contiguous gradient, in place, rounded once where dx is BF16;
// the other heads untouched; heads past the row refused.
TEST(Bf16Storage, QkNormRopeBackwardIntoHeadsOfWiderRows) {
  CpuBackend be(2);
  const int64_t b = 2, t = 5, h = 3, hx = 7, head0 = 2, hd = 8, positions = 8;
  std::vector<float> q = random_floats(b * t * h * hd, 41, 2.0), w = random_floats(hd, 42);
  const std::vector<float> g = random_floats(q.size(), 43);
  std::vector<float> cosv(positions * hd / 2), sinv(cosv.size());
  for (size_t i = 0; i < cosv.size(); ++i) {
    cosv[i] = std::cos(0.1f * static_cast<float>(i));
    sinv[i] = std::sin(0.1f * static_cast<float>(i));
  }
  std::vector<float> out(q.size()), rstd(b * t * h);
  const auto q4 = [&](std::vector<float>& v) { return host(v, {b, t, h, hd}); };
  std::vector<float> qc = q;
  be.qk_norm_rope_forward(q4(out), host(rstd, {b * t * h}), q4(qc), host(w, {hd}), 1e-6,
                          host(cosv, {positions, hd / 2}), host(sinv, {positions, hd / 2}), 1);
  const auto backward = [&](const Tensor& dx, int64_t dx_head0) {
    std::vector<float> dout = g, dw(hd, 0.0f);
    be.qk_norm_rope_backward(dx, host(dw, {hd}), q4(dout), q4(qc), host(w, {hd}),
                             host(rstd, {b * t * h}), host(cosv, {positions, hd / 2}),
                             host(sinv, {positions, hd / 2}), 1, dx_head0);
    return dw;
  };
  std::vector<float> whole(q.size());
  const std::vector<float> dw_whole = backward(q4(whole), 0);
  std::vector<float> want(b * t * hx * hd, -1.0f);
  for (int64_t token = 0; token < b * t; ++token)
    for (int64_t i = 0; i < h * hd; ++i)
      want[(token * hx + head0) * hd + i] = whole[token * h * hd + i];
  std::vector<float> wide(want.size(), -1.0f);
  EXPECT_EQ(backward(host(wide, {b, t, hx, hd}), head0), dw_whole);
  EXPECT_EQ(wide, want);
  std::vector<uint16_t> wide16(want.size(), float_to_bf16(-1.0f));
  backward(host16(wide16, {b, t, hx, hd}), head0);
  EXPECT_EQ(wide16, rounded(want));
  EXPECT_THROW(backward(host(wide, {b, t, hx, hd}), hx - h + 1), Error);
  EXPECT_THROW(backward(host(wide, {b, t, hx, hd + 1}), 0), Error);
}

TEST(Bf16Storage, CrossEntropyGradientIntoBf16) {
  CpuBackend be(2);
  const int64_t r = 5, v = 97;
  const auto z = random_floats(r * v, 20, 6.0);
  std::vector<int32_t> targets = {3, -100, 96, 0, 50};
  const Tensor t(targets.data(), DType::I32, Device::CPU, {r});
  std::vector<float> in_place = z, work = z, l32(r), l16(r);
  std::vector<uint16_t> g16(r * v, 0xffff);
  be.softcap_cross_entropy(host(in_place, {r, v}), host(l32, {r}), t, 30.0, 0.25);
  be.softcap_cross_entropy_into(host16(g16, {r, v}), host(work, {r, v}), host(l16, {r}), t, 30.0, 0.25);
  EXPECT_EQ(g16, rounded(in_place));
  EXPECT_EQ(l16, l32);
  std::vector<float> wrong(r * v);
  EXPECT_THROW(be.softcap_cross_entropy_into(host(wrong, {r, v}), host(work, {r, v}), host(l16, {r}), t, 30.0, 0.25),
               Error);
}

// BF16 logits (the head's product output under --bf16-activations): scored
// as their widened values are by the F32 kernel, bit for bit: the same losses,
// the F32 gradient rounded once, written over the logits or into another
// tensor. A zero scale scores them and writes nothing.
TEST(Bf16Storage, CrossEntropyOverBf16Logits) {
  CpuBackend be(2);
  const int64_t r = 5, v = 97;
  const std::vector<uint16_t> z16 = rounded(random_floats(r * v, 21, 6.0));
  std::vector<int32_t> targets = {3, -100, 96, 0, 50};
  const Tensor t(targets.data(), DType::I32, Device::CPU, {r});
  std::vector<float> wide(r * v), l32(r);
  for (size_t i = 0; i < wide.size(); ++i) wide[i] = bf16_to_float(z16[i]);
  be.softcap_cross_entropy(host(wide, {r, v}), host(l32, {r}), t, 30.0, 0.25);
  std::vector<uint16_t> in_place = z16, logits = z16, into(r * v, 0xffff);
  std::vector<float> l_in_place(r), l_into(r);
  be.softcap_cross_entropy_into(host16(in_place, {r, v}), host16(in_place, {r, v}),
                                host(l_in_place, {r}), t, 30.0, 0.25);
  be.softcap_cross_entropy_into(host16(into, {r, v}), host16(logits, {r, v}), host(l_into, {r}), t,
                                30.0, 0.25);
  EXPECT_EQ(l_in_place, l32);
  EXPECT_EQ(l_into, l32);
  EXPECT_EQ(in_place, rounded(wide));
  EXPECT_EQ(into, rounded(wide));
  EXPECT_EQ(logits, z16) << "read only when the gradient goes elsewhere";
  std::vector<uint16_t> untouched = z16;
  std::vector<float> l_scored(r);
  be.softcap_cross_entropy_into(host16(untouched, {r, v}), host16(untouched, {r, v}),
                                host(l_scored, {r}), t, 30.0, 0.0);
  EXPECT_EQ(l_scored, l32);
  EXPECT_EQ(untouched, z16);
  std::vector<float> f32_grad(r * v);
  EXPECT_THROW(be.softcap_cross_entropy_into(host(f32_grad, {r, v}), host16(logits, {r, v}),
                                             host(l_into, {r}), t, 30.0, 0.25),
               Error);
  targets[1] = static_cast<int32_t>(v);
  EXPECT_THROW(be.softcap_cross_entropy_into(host16(into, {r, v}), host16(logits, {r, v}),
                                             host(l_into, {r}), t, 30.0, 0.25),
               Error);
}

}  // namespace
}  // namespace hessgpt
