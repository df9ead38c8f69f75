// BF16 as a storage type (backend.h): a matmul may write a BF16 output (the
// F32 product, rounded once) and SwiGLU may read BF16 gate/up. The CPU
// kernels do exactly the F32 arithmetic on the rounded values, so they are
// compared bit for bit with the F32 path on pre-rounded inputs.
#include <gtest/gtest.h>

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
  // No accumulation into a BF16 output, and F32 operands only.
  EXPECT_THROW(be.matmul(host16(c16, {m, n}), host(a, {m, k}), false, host(b, {n, k}), true, 1.0f, 1.0f),
               Error);
  std::vector<uint16_t> a16 = rounded(a);
  EXPECT_THROW(be.matmul(host16(c16, {m, n}), host16(a16, {m, k}), false, host(b, {n, k}), true, 1.0f, 0.0f),
               Error);
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

}  // namespace
}  // namespace hessgpt
