// Products of a few rows (decoding: one token) on the GEMV kernel (gemv.cu),
// each against the product of the operands as the product reads them
// (BF16-rounded under BF16 products; BF16 weights as stored) summed in double,
// alone and added to C, at widths that take its 16-byte loads and at ones
// that do not; beta 0 never reads C (NaN poison). HESSGPT_GEMV=0 (cuBLASLt)
// agrees to FP32 summation order.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "cuda_ops_fixture.h"

namespace hessgpt::cuda_test {
namespace {

// beta c0 + sum over l of x(i, l) w(j, l), in double.
template <typename X, typename W>
Vec reference_product(int64_t m, int64_t n, int64_t k, float beta, const Vec& c0, X x, W w) {
  Vec want(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double sum = beta * c0[static_cast<size_t>(i * n + j)];
      for (int64_t l = 0; l < k; ++l) sum += static_cast<double>(x(i, l)) * w(j, l);
      want[static_cast<size_t>(i * n + j)] = static_cast<float>(sum);
    }
  return want;
}

float bf16_rounded(float x) { return bf16_to_float(float_to_bf16(x)); }

std::string shape_name(int64_t m, int64_t n, int64_t k, bool bf16, float beta) {
  return std::to_string(m) + " x " + std::to_string(n) + " over " + std::to_string(k) +
         (bf16 ? ", bf16" : ", fp32") + (beta == 0.0f ? "" : ", added to C");
}

TEST_F(CudaOps, MatmulOfAFewRowsMatchesTheReference) {
  struct Case {
    int64_t m, n, k;
  };
  for (const Case cs : {Case{1, 37, 19}, Case{1, 1920, 1280}, Case{3, 131, 3413}, Case{8, 64, 256},
                        Case{5, 1000, 36}}) {
    const int64_t m = cs.m, n = cs.n, k = cs.k;
    const Vec a = random_floats(m * k, 11), b = random_floats(n * k, 12),
              c0 = random_floats(m * n, 13);
    for (const bool bf16 : {false, true}) {
      if (bf16 && !gpu_->supports_matmul_precision(MatmulPrecision::BF16)) continue;
      const auto r = [&](float x) { return bf16 ? bf16_rounded(x) : x; };
      for (const float beta : {0.0f, 1.0f}) {
        const Vec want = reference_product(
            m, n, k, beta, c0,
            [&](int64_t i, int64_t l) { return r(a[static_cast<size_t>(i * k + l)]); },
            [&](int64_t j, int64_t l) { return r(b[static_cast<size_t>(j * k + l)]); });
        const Tensor tb = on(*gpu_, b, {n, k});
        const std::string what = shape_name(m, n, k, bf16, beta);
        expect_close(few_rows_product(a, tb, c0, m, n, k, beta, bf16, "1"), want, 1e-5, what);
        expect_close(few_rows_product(a, tb, c0, m, n, k, beta, bf16, "0"), want, 1e-5,
                     what + " (cuBLASLt)");
      }
    }
  }
  if (gpu_->name() != "cuda") return;
  const testing::ScopedEnv bad("HESSGPT_GEMV", "yes");
  const Tensor c = on(*gpu_, Vec(4), {1, 4});
  EXPECT_THROW(gpu_->matmul(c, on(*gpu_, Vec(8), {1, 8}), false, on(*gpu_, Vec(32), {4, 8}), true,
                            1.0f, 0.0f),
               Error);
}

// The same with the weights b stored in BF16 (a BF16 decoding session's),
// their rows exact or padded with zeros to a multiple of 8 (the down
// projection's 3413 -> 3416): the product of the stored values, under FP32
// and under BF16 products (a rounded too).
TEST_F(CudaOps, MatmulOfAFewRowsWithBf16Weights) {
  struct Case {
    int64_t m, n, k;
    bool padded;
  };
  for (const Case cs : {Case{1, 1920, 1280, false}, Case{1, 1280, 3413, true},
                        Case{1, 37, 3413, false}, Case{3, 131, 19, true},
                        Case{8, 64, 256, false}}) {
    const int64_t m = cs.m, n = cs.n, k = cs.k, ldb = cs.padded ? padded_width(k) : k;
    const Vec a = random_floats(m * k, 31), c0 = random_floats(m * n, 33);
    const std::vector<uint16_t> b16 = [&] {
      const std::vector<uint16_t> exact = rounded(random_floats(n * k, 32));
      std::vector<uint16_t> rows(static_cast<size_t>(n * ldb), 0);
      for (int64_t j = 0; j < n; ++j)
        std::copy_n(exact.begin() + j * k, k, rows.begin() + j * ldb);
      return rows;
    }();
    for (const bool bf16 : {false, true}) {
      if (bf16 && !gpu_->supports_matmul_precision(MatmulPrecision::BF16)) continue;
      for (const float beta : {0.0f, 1.0f}) {
        const Vec want = reference_product(
            m, n, k, beta, c0,
            [&](int64_t i, int64_t l) {
              const float x = a[static_cast<size_t>(i * k + l)];
              return bf16 ? bf16_rounded(x) : x;
            },
            [&](int64_t j, int64_t l) {
              return bf16_to_float(b16[static_cast<size_t>(j * ldb + l)]);
            });
        const Tensor tb = on16(*gpu_, b16, {n, ldb});
        const std::string what =
            shape_name(m, n, k, bf16, beta) + (cs.padded ? ", weight rows padded" : "");
        expect_close(few_rows_product(a, tb, c0, m, n, k, beta, bf16, "1"), want, 1e-5, what);
        expect_close(few_rows_product(a, tb, c0, m, n, k, beta, bf16, "0"), want, 1e-5,
                     what + " (cuBLASLt)");
      }
    }
  }
}

}  // namespace
}  // namespace hessgpt::cuda_test
