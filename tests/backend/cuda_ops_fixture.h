// What the CUDA op tests share (cuda_ops_test.cpp, cuda_bf16_storage_test.cpp):
// random inputs, relative-error checks, and the CudaOps fixture that puts
// tensors on the GPU and on the CPU backend it is compared against. Outside
// an anonymous namespace: one fixture type for every file of the suite.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "common/gpu_test_backend.h"
#include "common/test_util.h"
#include "core/bf16.h"

namespace hessgpt::cuda_test {

using Vec = std::vector<float>;

inline Vec random_floats(size_t n, uint64_t seed, double scale = 1.0) {
  const std::vector<double> d = testing::random_vector(n, seed, scale);
  return Vec(d.begin(), d.end());
}

// BF16 bits of each value (round to nearest even), and back.
inline std::vector<uint16_t> rounded(const Vec& x) {
  std::vector<uint16_t> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = float_to_bf16(x[i]);
  return r;
}
inline Vec widened(const std::vector<uint16_t>& x) {
  Vec r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = bf16_to_float(x[i]);
  return r;
}

// ||got - want|| / ||want|| (0 when both are zero).
inline double rel_error(const Vec& got, const Vec& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    diff += d * d;
    norm += static_cast<double>(want[i]) * want[i];
  }
  if (norm == 0) return std::sqrt(diff);
  return std::sqrt(diff / norm);
}

inline void expect_close(const Vec& got, const Vec& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_TRUE(std::isfinite(got[i])) << what << ": non-finite value at " << i;
  EXPECT_LT(rel_error(got, want), tol) << what;
}

// Each output compared on its own, so a small one (a weight gradient, a
// second moment) is not hidden behind a large one.
using Outputs = std::vector<std::pair<std::string, Vec>>;
inline void expect_outputs_close(const Outputs& got, const Outputs& want, double tol,
                          const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    expect_close(got[i].second, want[i].second, tol, what + " " + got[i].first);
}

struct AttnCase {
  int64_t b, t, h, kv, d;
};

class CudaOps : public ::testing::Test {
 protected:
  // These tests are of our kernels: cuDNN's attention, the default where it
  // takes a shape, has its own (cuda_cudnn_attention_test.cpp).
  testing::ScopedEnv our_attention_{"HESSGPT_ATTENTION", "ours"};

  void SetUp() override {
    gpu_ = testing::gpu_test_backend();
    if (!gpu_) GTEST_SKIP() << "no CUDA device";
  }

  // A tensor on the given backend holding `values` (F32).
  Tensor on(Backend& be, const Vec& values, std::initializer_list<int64_t> dims) {
    buffers_.emplace_back(&be, values.size() * sizeof(float));
    Tensor t = buffers_.back().tensor(DType::F32, dims);
    be.copy_from_host(t, values.data());
    return t;
  }
  Tensor ids_on(Backend& be, const std::vector<int32_t>& ids) {
    buffers_.emplace_back(&be, ids.size() * sizeof(int32_t));
    Tensor t = buffers_.back().tensor(DType::I32, {static_cast<int64_t>(ids.size())});
    be.copy_from_host(t, ids.data());
    return t;
  }
  Vec host(Backend& be, const Tensor& t) {
    Vec v(static_cast<size_t>(t.numel()));
    be.copy_to_host(v.data(), t);
    return v;
  }
  // A BF16 (storage) tensor holding the bits `v`.
  Tensor on16(Backend& be, const std::vector<uint16_t>& v, std::initializer_list<int64_t> dims) {
    buffers_.emplace_back(&be, v.size() * sizeof(uint16_t));
    Tensor t = buffers_.back().tensor(DType::BF16, dims);
    be.copy_from_host(t, v.data());
    return t;
  }
  std::vector<uint16_t> bits_of(Backend& be, const Tensor& t) {
    std::vector<uint16_t> v(static_cast<size_t>(t.numel()));
    be.copy_to_host(v.data(), t);
    return v;
  }
  // got: BF16 bits; want: F32 values. Each element is want rounded, or one
  // BF16 step from it (another summation order crossing a rounding boundary),
  // and nearly all are exact.
  void expect_within_one_bf16_step(const std::vector<uint16_t>& got, const Vec& want,
                                   const std::string& what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    size_t off = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const int diff = static_cast<int>(got[i]) - static_cast<int>(float_to_bf16(want[i]));
      ASSERT_LE(std::abs(diff), 1) << what << ", element " << i << ": got " << bf16_to_float(got[i])
                                   << ", want " << want[i];
      off += diff != 0;
    }
    EXPECT_LE(off, got.size() / 50) << what << ": " << off << " elements one BF16 step off";
  }
  // An attention forward under BF16 products with the environment variable
  // `name` set to `value` must fail with an error containing `message`.
  void expect_attention_rejects(const char* name, const char* value, const std::string& message) {
    gpu_->set_matmul_precision(MatmulPrecision::BF16);
    const Vec x(1 * 4 * 1 * 64, 0.5f);
    const Tensor q = on(*gpu_, x, {1, 4, 1, 64});
    const Tensor lse = on(*gpu_, Vec(4), {1, 1, 4});
    const Tensor out = on(*gpu_, x, {1, 4, 1, 64});
    const testing::ScopedEnv env(name, value);
    try {
      gpu_->attention_forward(out, lse, q, q, q, 0.1, 0);
      FAIL() << name << "=" << value << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  }
  // dq, dk, dv of one attention backward on `be` for case c, from outputs
  // that start as poison (an element never written shows up).
  std::vector<Vec> attention_grads(Backend& be, const AttnCase& c, const Vec& dout,
                                   const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor& out, const Tensor& lse, double scale) {
    const Tensor dq = on(be, poison(q.numel()), {c.b, c.t, c.h, c.d});
    const Tensor dk = on(be, poison(k.numel()), {c.b, c.t, c.kv, c.d});
    const Tensor dv = on(be, poison(v.numel()), {c.b, c.t, c.kv, c.d});
    be.attention_backward(dq, dk, dv, on(be, dout, {c.b, c.t, c.h, c.d}), q, k, v, out, lse,
                          scale);
    return {host(be, dq), host(be, dk), host(be, dv)};
  }
  // c [m, n] = a [m, k] b^T + beta c0 (c starts as poison for beta 0) on the
  // GPU, under BF16 or FP32 products, with HESSGPT_GEMV=gemv ("1": the GEMV
  // kernel, "0": cuBLASLt); b is on the GPU already.
  Vec few_rows_product(const Vec& a, const Tensor& b, const Vec& c0, int64_t m, int64_t n,
                       int64_t k, float beta, bool bf16, const char* gemv) {
    const testing::ScopedEnv env("HESSGPT_GEMV", gemv);
    gpu_->set_matmul_precision(bf16 ? MatmulPrecision::BF16 : MatmulPrecision::FP32);
    const Tensor c = on(*gpu_, beta == 0.0f ? poison(static_cast<size_t>(m * n)) : c0, {m, n});
    gpu_->matmul(c, on(*gpu_, a, {m, k}), false, b, true, 1.0f, beta);
    gpu_->set_matmul_precision(MatmulPrecision::FP32);
    return host(*gpu_, c);
  }
  // Fresh poison, so that an element the kernel never writes shows up.
  Vec poison(size_t n) { return Vec(n, std::numeric_limits<float>::quiet_NaN()); }

  CpuBackend cpu_{2};
  std::unique_ptr<Backend> gpu_;
  std::deque<Buffer> buffers_;
};

}  // namespace hessgpt::cuda_test
