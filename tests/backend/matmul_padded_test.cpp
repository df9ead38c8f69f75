// Products over padded widths (backend.h): a dimension of c, op(a) or op(b)
// may be its partner's padded_width. The result must be the product of the
// zero-padded operands: a double-precision reference over the shorter K, with
// c's rows or columns beyond op(a)'s or op(b)'s left at beta * c. The K
// padding holds random finite values, which must contribute nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "common/test_util.h"
#include "core/bf16.h"
#include "matmul_padded_cases.h"

namespace hessgpt {
namespace {

using testing::PaddedCase;

std::vector<float> random_floats(size_t n, uint64_t seed) {
  const auto d = hessgpt::testing::random_vector(n, seed, 1.0);
  return std::vector<float>(d.begin(), d.end());
}

// The reference of c = alpha op(a) op(b) + beta c0 over the shared part.
std::vector<double> reference(const PaddedCase& p, const std::vector<float>& a, const std::vector<float>& b,
                              const std::vector<float>& c0, float alpha, float beta, bool round_operands) {
  const auto value = [&](float x) {
    return round_operands ? static_cast<double>(bf16_to_float(float_to_bf16(x))) : static_cast<double>(x);
  };
  const int64_t lda = p.ta ? p.ma : p.ka, ldb = p.tb ? p.kb : p.nb;
  std::vector<double> c(c0.begin(), c0.end());
  for (int64_t i = 0; i < p.rows; ++i) {
    for (int64_t j = 0; j < p.cols; ++j) {
      double sum = 0;
      if (i < p.ma && j < p.nb) {
        for (int64_t k = 0; k < std::min(p.ka, p.kb); ++k) {
          const float x = p.ta ? a[k * lda + i] : a[i * lda + k];
          const float y = p.tb ? b[j * ldb + k] : b[k * ldb + j];
          sum += value(x) * value(y);
        }
      }
      c[i * p.cols + j] = alpha * sum + beta * c0[i * p.cols + j];
    }
  }
  return c;
}

TEST(MatmulPadded, ProductOfTheZeroPaddedOperands) {
  CpuBackend be(2);
  std::vector<MatmulPrecision> precisions{MatmulPrecision::FP32};
  if (be.supports_matmul_precision(MatmulPrecision::BF16)) precisions.push_back(MatmulPrecision::BF16);
  for (const MatmulPrecision precision : precisions) {
    be.set_matmul_precision(precision);
    const bool bf16 = precision == MatmulPrecision::BF16;
    for (const PaddedCase& p : testing::padded_cases()) {
      for (const float beta : {0.0f, 1.0f}) {
        auto a = random_floats(static_cast<size_t>(p.ma * p.ka), 1);
        auto b = random_floats(static_cast<size_t>(p.kb * p.nb), 2);
        std::vector<float> c = random_floats(static_cast<size_t>(p.rows * p.cols), 3);
        const std::vector<double> want = reference(p, a, b, c, 1.0f, beta, bf16);
        const Tensor ta = p.ta ? Tensor(a.data(), DType::F32, Device::CPU, {p.ka, p.ma})
                               : Tensor(a.data(), DType::F32, Device::CPU, {p.ma, p.ka});
        const Tensor tb = p.tb ? Tensor(b.data(), DType::F32, Device::CPU, {p.nb, p.kb})
                               : Tensor(b.data(), DType::F32, Device::CPU, {p.kb, p.nb});
        be.matmul(Tensor(c.data(), DType::F32, Device::CPU, {p.rows, p.cols}), ta, p.ta, tb, p.tb, 1.0f, beta);
        double err = 0, norm = 0;
        for (size_t i = 0; i < c.size(); ++i) {
          err = std::max(err, std::abs(c[i] - want[i]));
          norm = std::max(norm, std::abs(want[i]));
        }
        EXPECT_LT(err, 1e-5 * norm) << p.name() << " beta " << beta << (bf16 ? " bf16" : " fp32");
      }
    }
  }
}

// Only a padding may differ: other mismatches are the errors they were.
TEST(MatmulPadded, OtherMismatchesAreErrors) {
  CpuBackend be(1);
  std::vector<float> a(37 * 48), b(48 * 5), c(37 * 48);
  const auto t = [](std::vector<float>& v, int64_t r, int64_t cc) {
    return Tensor(v.data(), DType::F32, Device::CPU, {r, cc});
  };
  EXPECT_THROW(be.matmul(t(c, 37, 5), t(a, 37, 37), false, t(b, 48, 5), false, 1.0f, 0.0f), Error);
  EXPECT_THROW(be.matmul(t(c, 37, 16), t(a, 37, 40), false, t(b, 40, 5), false, 1.0f, 0.0f), Error);
  EXPECT_THROW(be.matmul(t(c, 16, 5), t(a, 37, 40), false, t(b, 40, 5), false, 1.0f, 0.0f), Error);
  be.matmul(t(c, 37, 8), t(a, 37, 40), false, t(b, 37, 5), false, 1.0f, 0.0f);  // K 40 | 37, N 8 | 5
}

}  // namespace
}  // namespace hessgpt
