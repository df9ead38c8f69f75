// Every CUDA op, forward and backward, against the CPU backend on the same
// random inputs (odd shapes, so tails and padding are exercised). Skipped
// where no CUDA device is available.
//
// Tolerances: both backends compute in FP32 but sum in different orders
// (tiles, warps, tree reductions), so results agree to a few ulps of the
// largest terms: a relative error (L2 norm of the difference over the L2 norm
// of the reference) of 1e-5 for element-wise ops and 1e-4 where long sums or
// exp/log are involved (attention, cross-entropy, matrix products).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "common/gpu_test_backend.h"
#include "common/test_util.h"
#include "core/bf16.h"
#include "core/model_config.h"
#include "matmul_padded_cases.h"
#include "model/rope_tables.h"

namespace hessgpt {
namespace {

using Vec = std::vector<float>;

Vec random_floats(size_t n, uint64_t seed, double scale = 1.0) {
  const std::vector<double> d = testing::random_vector(n, seed, scale);
  return Vec(d.begin(), d.end());
}

// ||got - want|| / ||want|| (0 when both are zero).
double rel_error(const Vec& got, const Vec& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    diff += d * d;
    norm += static_cast<double>(want[i]) * want[i];
  }
  if (norm == 0) return std::sqrt(diff);
  return std::sqrt(diff / norm);
}

void expect_close(const Vec& got, const Vec& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_TRUE(std::isfinite(got[i])) << what << ": non-finite value at " << i;
  EXPECT_LT(rel_error(got, want), tol) << what;
}

// Each output compared on its own, so a small one (a weight gradient, a
// second moment) is not hidden behind a large one.
using Outputs = std::vector<std::pair<std::string, Vec>>;
void expect_outputs_close(const Outputs& got, const Outputs& want, double tol,
                          const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    expect_close(got[i].second, want[i].second, tol, what + " " + got[i].first);
}

class CudaOps : public ::testing::Test {
 protected:
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
      ASSERT_LE(std::abs(diff), 1) << what << ", element " << i;
      off += diff != 0;
    }
    EXPECT_LE(off, got.size() / 50) << what << ": " << off << " elements one BF16 step off";
  }
  // Fresh poison, so that an element the kernel never writes shows up.
  Vec poison(size_t n) { return Vec(n, std::numeric_limits<float>::quiet_NaN()); }

  CpuBackend cpu_{2};
  std::unique_ptr<Backend> gpu_;
  std::deque<Buffer> buffers_;
};

TEST_F(CudaOps, MatmulFp32AllTransposes) {
  const int64_t m = 37, n = 53, k = 29;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const Vec a = random_floats(m * k, 1), b = random_floats(k * n, 2), c0 = random_floats(m * n, 3);
      auto run = [&](Backend& be) {
        const Tensor ta_t = ta ? on(be, a, {k, m}) : on(be, a, {m, k});
        const Tensor tb_t = tb ? on(be, b, {n, k}) : on(be, b, {k, n});
        const Tensor c = on(be, c0, {m, n});
        be.matmul(c, ta_t, ta, tb_t, tb, 0.5f, 0.75f);
        return host(be, c);
      };
      expect_close(run(*gpu_), run(cpu_), 1e-5,
                   "matmul trans_a=" + std::to_string(ta) + " trans_b=" + std::to_string(tb));
    }
  }
}

// BF16 products: both operands are rounded to BF16 (nearest even) exactly as
// core/bf16.h does; a product of two BF16 values (8-bit significands) is exact
// in FP32, so the only difference from a reference that multiplies the rounded
// operands in double is FP32 accumulation: about sqrt(k) * 2^-24 relative,
// far under 1e-5 here. The same product in FP32 differs by ~2^-9 per operand,
// which the second check uses to prove BF16 was really applied.
TEST_F(CudaOps, MatmulBf16RoundsOperandsAndAccumulatesInFp32) {
  const int64_t m = 33, n = 3413 % 97, k = 171;  // odd widths: padded BF16 leading dims
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const Vec a = random_floats(m * k, 4), b = random_floats(k * n, 5);
      Vec want(static_cast<size_t>(m * n));
      auto a_at = [&](int64_t i, int64_t l) { return ta ? a[l * m + i] : a[i * k + l]; };
      auto b_at = [&](int64_t l, int64_t j) { return tb ? b[j * k + l] : b[l * n + j]; };
      Vec fp32(want.size());
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double s = 0, s32 = 0;
          for (int64_t l = 0; l < k; ++l) {
            s += static_cast<double>(bf16_to_float(float_to_bf16(a_at(i, l)))) *
                 bf16_to_float(float_to_bf16(b_at(l, j)));
            s32 += static_cast<double>(a_at(i, l)) * b_at(l, j);
          }
          want[i * n + j] = static_cast<float>(s);
          fp32[i * n + j] = static_cast<float>(s32);
        }
      gpu_->set_matmul_precision(MatmulPrecision::BF16);
      const Tensor at = ta ? on(*gpu_, a, {k, m}) : on(*gpu_, a, {m, k});
      const Tensor bt = tb ? on(*gpu_, b, {n, k}) : on(*gpu_, b, {k, n});
      const Tensor c = on(*gpu_, poison(m * n), {m, n});
      gpu_->matmul(c, at, ta, bt, tb, 1.0f, 0.0f);
      gpu_->set_matmul_precision(MatmulPrecision::FP32);
      const Vec got = host(*gpu_, c);
      expect_close(got, want, 1e-5, "bf16 matmul");
      EXPECT_GT(rel_error(got, fp32), 1e-4) << "the product looks like FP32, not BF16";
    }
  }
}

// Gradient accumulation (beta = 1) in BF16 with an odd K (zero-padded to a
// multiple of 8 in the BF16 copies) and an odd output width, all transposes:
// C0 plus the product of the BF16-rounded operands, summed in double here
// (the CPU backend's BF16 path needs oneDNN, which GPU machines may lack).
TEST_F(CudaOps, MatmulBf16AccumulatesWithOddInnerDimension) {
  const int64_t m = 40, n = 3413 % 101, k = 3413 % 89;  // n = 80 + 13, k = 31
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const Vec a = random_floats(m * k, 8), b = random_floats(k * n, 9), c0 = random_floats(m * n, 10);
      auto a_at = [&](int64_t i, int64_t l) { return ta ? a[l * m + i] : a[i * k + l]; };
      auto b_at = [&](int64_t l, int64_t j) { return tb ? b[j * k + l] : b[l * n + j]; };
      Vec want(c0);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double s = c0[i * n + j];
          for (int64_t l = 0; l < k; ++l)
            s += static_cast<double>(bf16_to_float(float_to_bf16(a_at(i, l)))) *
                 bf16_to_float(float_to_bf16(b_at(l, j)));
          want[i * n + j] = static_cast<float>(s);
        }
      gpu_->set_matmul_precision(MatmulPrecision::BF16);
      const Tensor at = ta ? on(*gpu_, a, {k, m}) : on(*gpu_, a, {m, k});
      const Tensor bt = tb ? on(*gpu_, b, {n, k}) : on(*gpu_, b, {k, n});
      const Tensor c = on(*gpu_, c0, {m, n});
      gpu_->matmul(c, at, ta, bt, tb, 1.0f, 1.0f);
      gpu_->set_matmul_precision(MatmulPrecision::FP32);
      expect_close(host(*gpu_, c), want, 1e-5,
                   "bf16 accumulate trans_a=" + std::to_string(ta) + " trans_b=" + std::to_string(tb));
    }
  }
}

TEST_F(CudaOps, ElementwiseAddScaleFillSumSquares) {
  const int64_t n = 100003;
  const Vec x = random_floats(n, 6), y = random_floats(n, 7);
  auto run = [&](Backend& be) {
    const Tensor tx = on(be, x, {n}), ty = on(be, y, {n});
    be.add_inplace(ty, tx);
    be.scale_inplace(ty, -0.37);
    const double ss = be.sum_squares(ty);
    const Tensor tf = on(be, x, {n});
    be.fill(tf, 2.5);
    return Outputs{{"y", host(be, ty)}, {"fill", host(be, tf)},
                   {"sum_squares", Vec{static_cast<float>(ss)}}};
  };
  expect_outputs_close(run(*gpu_), run(cpu_), 1e-6, "elementwise");
  const Tensor t = on(*gpu_, x, {n});
  EXPECT_EQ(gpu_->sum_squares(t), gpu_->sum_squares(t)) << "sum_squares must be deterministic";
}

TEST_F(CudaOps, EmbeddingForwardAndBackward) {
  const int64_t v = 29, c = 70, n = 300;
  std::vector<int32_t> ids(static_cast<size_t>(n));
  std::mt19937 gen(8);
  for (auto& id : ids) id = static_cast<int32_t>(gen() % 7 == 0 ? 3 : gen() % v);  // a frequent id
  const Vec table = random_floats(v * c, 9), dout = random_floats(n * c, 10);
  const Vec dtable0 = random_floats(v * c, 11);
  auto run = [&](Backend& be) {
    const Tensor tid = ids_on(be, ids);
    const Tensor out = on(be, poison(n * c), {n, c});
    be.embedding_forward(out, tid, on(be, table, {v, c}));
    const Tensor dt = on(be, dtable0, {v, c});
    be.embedding_backward(dt, tid, on(be, dout, {n, c}));  // += into dtable
    return Outputs{{"out", host(be, out)}, {"dtable", host(be, dt)}};
  };
  expect_outputs_close(run(*gpu_), run(cpu_), 1e-6, "embedding");
}

TEST_F(CudaOps, EmbeddingRejectsOutOfRangeIds) {
  const Tensor table = on(*gpu_, random_floats(14, 1), {7, 2});
  const Tensor out = on(*gpu_, Vec(6), {3, 2});
  for (int32_t bad : {7, -1}) {
    const Tensor ids = ids_on(*gpu_, {0, bad, 2});
    try {
      gpu_->embedding_forward(out, ids, table);
      FAIL() << "id " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("token id " + std::to_string(bad) + " at position 1"),
                std::string::npos)
          << e.what();
    }
    const Tensor dt = on(*gpu_, Vec(14), {7, 2});
    EXPECT_THROW(gpu_->embedding_backward(dt, ids, out), Error);
  }
}

TEST_F(CudaOps, RmsNormForwardAndBackward) {
  for (int64_t d : {int64_t{16}, int64_t{37}, int64_t{64}, int64_t{1280}}) {
    for (bool accumulate : {false, true}) {
      const int64_t r = d >= 1280 ? 150 : 1000;  // several dw partitions
      const Vec x = random_floats(r * d, 12, 2.0), w = random_floats(d, 13);
      const Vec dout = random_floats(r * d, 14), dx0 = random_floats(r * d, 15);
      const Vec dw0 = random_floats(d, 16);
      auto run = [&](Backend& be) {
        const Tensor tx = on(be, x, {r, d}), tw = on(be, w, {d});
        const Tensor out = on(be, poison(r * d), {r, d}), rstd = on(be, poison(r), {r});
        be.rmsnorm_forward(out, rstd, tx, tw, 1e-6);
        const Tensor dx = on(be, accumulate ? dx0 : poison(r * d), {r, d});
        const Tensor dw = on(be, dw0, {d});
        be.rmsnorm_backward(dx, dw, on(be, dout, {r, d}), tx, tw, rstd, accumulate);
        return Outputs{{"out", host(be, out)}, {"rstd", host(be, rstd)}, {"dx", host(be, dx)},
                       {"dw", host(be, dw)}};
      };
      expect_outputs_close(run(*gpu_), run(cpu_), 2e-5, "rmsnorm d=" + std::to_string(d));
    }
  }
}

TEST_F(CudaOps, RmsNormWeightGradientIsDeterministic) {
  const int64_t r = 5000, d = 64;
  const Vec x = random_floats(r * d, 17), w = random_floats(d, 18), g = random_floats(r * d, 19);
  auto dw_once = [&] {
    const Tensor tx = on(*gpu_, x, {r, d}), tw = on(*gpu_, w, {d});
    const Tensor out = on(*gpu_, Vec(r * d), {r, d}), rstd = on(*gpu_, Vec(r), {r});
    gpu_->rmsnorm_forward(out, rstd, tx, tw, 1e-6);
    const Tensor dx = on(*gpu_, Vec(r * d), {r, d}), dw = on(*gpu_, Vec(d), {d});
    gpu_->rmsnorm_backward(dx, dw, on(*gpu_, g, {r, d}), tx, tw, rstd, false);
    return host(*gpu_, dw);
  };
  EXPECT_EQ(dw_once(), dw_once());
}

TEST_F(CudaOps, RopeForwardAndBackwardWithYarn) {
  for (bool yarn : {false, true}) {
    ModelConfig cfg = preset_config("small");
    if (yarn) cfg.rope_scaling = YarnConfig{};
    const int64_t b = 2, t = 19, heads = 3, d = cfg.head_dim, positions = 64, pos0 = 7;
    const RopeTables tables = make_rope_tables(cfg, positions);
    const Vec cs(tables.cos.begin(), tables.cos.end()), sn(tables.sin.begin(), tables.sin.end());
    const Vec x = random_floats(b * t * heads * d, 20);
    auto run = [&](Backend& be, bool inverse) {
      const Tensor tx = on(be, x, {b, t, heads, d});
      const Tensor c = on(be, cs, {positions, d / 2}), s = on(be, sn, {positions, d / 2});
      if (inverse) be.rope_backward(tx, c, s, pos0);
      else be.rope_forward(tx, c, s, pos0);
      return host(be, tx);
    };
    expect_close(run(*gpu_, false), run(cpu_, false), 1e-6, "rope forward");
    expect_close(run(*gpu_, true), run(cpu_, true), 1e-6, "rope backward");
  }
}

// QK-Norm and RoPE fused into the RMSNorm kernels on the GPU, against the
// CPU backend's two ops (the Backend default): outputs, rstd, dx and dw, at a
// start position, with YaRN tables, for head dims 16, 64 and 40 (pairs that
// straddle lanes), and a BF16 dx (the model's dq_raw under --bf16-activations).
TEST_F(CudaOps, QkNormRopeFusedMatchesTheTwoOps) {
  for (const int64_t d : {int64_t{16}, int64_t{64}, int64_t{40}}) {
    ModelConfig cfg = preset_config("small");
    cfg.head_dim = d;
    cfg.rope_scaling = YarnConfig{};
    const int64_t b = 2, t = 23, heads = 5, positions = 64, pos0 = 9, rows = b * t * heads;
    const RopeTables tables = make_rope_tables(cfg, positions);
    const Vec cs(tables.cos.begin(), tables.cos.end()), sn(tables.sin.begin(), tables.sin.end());
    const Vec x = random_floats(rows * d, 70, 2.0), w = random_floats(d, 71), dout = random_floats(rows * d, 72);
    const Vec dw0 = random_floats(d, 73);
    auto run = [&](Backend& be) {
      const Tensor tx = on(be, x, {b, t, heads, d}), tw = on(be, w, {d});
      const Tensor c = on(be, cs, {positions, d / 2}), s = on(be, sn, {positions, d / 2});
      const Tensor out = on(be, poison(rows * d), {b, t, heads, d}), rstd = on(be, poison(rows), {rows});
      be.qk_norm_rope_forward(out, rstd, tx, tw, 1e-6, c, s, pos0);
      const Tensor dx = on(be, poison(rows * d), {b, t, heads, d}), dw = on(be, dw0, {d});
      be.qk_norm_rope_backward(dx, dw, on(be, dout, {b, t, heads, d}), tx, tw, rstd, c, s, pos0);
      return Outputs{{"out", host(be, out)}, {"rstd", host(be, rstd)}, {"dx", host(be, dx)}, {"dw", host(be, dw)}};
    };
    expect_outputs_close(run(*gpu_), run(cpu_), 2e-5, "qk-norm + rope d=" + std::to_string(d));
    // A BF16 dx: the F32 dx of the same kernel, rounded.
    const Tensor tx = on(*gpu_, x, {b, t, heads, d}), tw = on(*gpu_, w, {d});
    const Tensor c = on(*gpu_, cs, {positions, d / 2}), s = on(*gpu_, sn, {positions, d / 2});
    const Tensor out = on(*gpu_, poison(rows * d), {b, t, heads, d}), rstd = on(*gpu_, poison(rows), {rows});
    gpu_->qk_norm_rope_forward(out, rstd, tx, tw, 1e-6, c, s, pos0);
    const Tensor dx32 = on(*gpu_, poison(rows * d), {b, t, heads, d}), dw32 = on(*gpu_, dw0, {d});
    const Tensor dx16 = on16(*gpu_, std::vector<uint16_t>(rows * d, 0xffff), {b, t, heads, d});
    const Tensor dw16 = on(*gpu_, dw0, {d});
    gpu_->qk_norm_rope_backward(dx32, dw32, on(*gpu_, dout, {b, t, heads, d}), tx, tw, rstd, c, s, pos0);
    gpu_->qk_norm_rope_backward(dx16, dw16, on(*gpu_, dout, {b, t, heads, d}), tx, tw, rstd, c, s, pos0);
    const Vec f32 = host(*gpu_, dx32);
    std::vector<uint16_t> want(f32.size());
    for (size_t i = 0; i < f32.size(); ++i) want[i] = float_to_bf16(f32[i]);
    EXPECT_EQ(bits_of(*gpu_, dx16), want) << "bf16 dx, d=" << d;
    EXPECT_EQ(host(*gpu_, dw16), host(*gpu_, dw32)) << "d=" << d;
  }
}

struct AttnCase {
  int64_t b, t, h, kv, d;
};

// Head dims of the presets (16, 64), odd widths padded inside the kernels
// (40, 100), the widest (128); T not a multiple of the 32- or 64-row tiles;
// T = 300 puts whole tiles below the diagonal for 128-row blocks too (the
// unmasked path of the tensor-core kernels).
const AttnCase kAttnCases[] = {{2, 33, 4, 2, 16}, {1, 100, 4, 1, 64}, {2, 45, 6, 3, 40},
                               {1, 70, 2, 2, 128}, {1, 1, 4, 2, 64},  {1, 64, 4, 4, 100},
                               {2, 130, 4, 2, 64}, {1, 300, 4, 2, 64}};

// out, lse, dq, dk, dv of one attention forward and backward on `be`.
class CudaAttention : public CudaOps {
 protected:
  std::vector<Vec> run_attention(Backend& be, const AttnCase& c) {
    const Vec q = random_floats(c.b * c.t * c.h * c.d, 21, 1.5);
    const Vec k = random_floats(c.b * c.t * c.kv * c.d, 22, 1.5);
    const Vec v = random_floats(c.b * c.t * c.kv * c.d, 23);
    const Vec dout = random_floats(q.size(), 24);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
    const Tensor tq = on(be, q, {c.b, c.t, c.h, c.d});
    const Tensor tk = on(be, k, {c.b, c.t, c.kv, c.d});
    const Tensor tv = on(be, v, {c.b, c.t, c.kv, c.d});
    const Tensor out = on(be, poison(q.size()), {c.b, c.t, c.h, c.d});
    const Tensor lse = on(be, poison(c.b * c.h * c.t), {c.b, c.h, c.t});
    be.attention_forward(out, lse, tq, tk, tv, scale, 0);
    const Tensor dq = on(be, poison(q.size()), {c.b, c.t, c.h, c.d});
    const Tensor dk = on(be, poison(k.size()), {c.b, c.t, c.kv, c.d});
    const Tensor dv = on(be, poison(v.size()), {c.b, c.t, c.kv, c.d});
    be.attention_backward(dq, dk, dv, on(be, dout, {c.b, c.t, c.h, c.d}), tq, tk, tv, out, lse,
                          scale);
    std::vector<Vec> r;
    for (const Tensor* x : {&out, &lse, &dq, &dk, &dv}) r.push_back(host(be, *x));
    return r;
  }

  // tol: relative error of out, dq, dk, dv; lse_tol of lse. zero_bound: one
  // query sees one key with probability 1, so dS = P (dP - delta) is zero in
  // exact arithmetic and dq, dk are rounding noise on both sides, where a
  // relative error means nothing: they are checked to be that small instead.
  void check_attention(const AttnCase& c, double tol, double lse_tol, float zero_bound) {
    const std::string what = "attention b=" + std::to_string(c.b) + " t=" + std::to_string(c.t) +
                             " h=" + std::to_string(c.h) + " kv=" + std::to_string(c.kv) +
                             " d=" + std::to_string(c.d);
    const auto g = run_attention(*gpu_, c), want = run_attention(cpu_, c);
    const char* names[] = {"out", "lse", "dq", "dk", "dv"};
    for (size_t i = 0; i < g.size(); ++i) {
      if (c.t == 1 && (i == 2 || i == 3)) {
        for (float x : g[i]) ASSERT_LT(std::abs(x), zero_bound) << what << " " << names[i];
        continue;
      }
      expect_close(g[i], want[i], i == 1 ? lse_tol : tol, what + " " + names[i]);
    }
  }
};

TEST_F(CudaAttention, ForwardAndBackward) {
  for (const AttnCase& c : kAttnCases) check_attention(c, 1e-4, 1e-4, 1e-5f);
}

// Under BF16 precision attention runs on the tensor cores (attention_mma.cu).
// Tolerances: q, k, v, dout, P and dS are rounded to BF16 (2^-9 relative) as
// operands; an FP64 model of exactly those roundings (torch, 2026-11-26) puts
// the relative error against exact attention at 0.26-0.27 % for out,
// 0.37-0.44 % for dq/dk, 0.25-0.28 % for dv and 1-3e-4 for lse on these
// cases. One query and one key is the exception for lse: it is then the one
// scaled score itself, a dot product of rounded operands (2.6e-3 on an H200),
// not an average over many keys. The bounds leave a 3-5x margin; a wrong
// fragment or mask gives O(1).
TEST_F(CudaAttention, TensorCoresUnderBf16) {
  gpu_->set_matmul_precision(MatmulPrecision::BF16);
  for (const AttnCase& c : kAttnCases) check_attention(c, 1.5e-2, c.t == 1 ? 1e-2 : 2e-3, 5e-2f);
}

// The BF16 results really come from another kernel: they differ from the
// FP32 kernel's by about the BF16 rounding, not by FP32 noise.
TEST_F(CudaAttention, Bf16PrecisionSelectsTheTensorCoreKernels) {
  if (gpu_->name() == "cpu") GTEST_SKIP() << "the CPU stand-in has one attention kernel";
  const AttnCase c{1, 100, 4, 1, 64};
  const auto fp32 = run_attention(*gpu_, c);
  gpu_->set_matmul_precision(MatmulPrecision::BF16);
  const auto bf16 = run_attention(*gpu_, c);
  EXPECT_GT(rel_error(bf16[0], fp32[0]), 5e-4);
}

// Decoding shape: fewer queries than keys, starting at q_pos0; both kernels
// (BF16 tolerances as in TensorCoresUnderBf16).
TEST_F(CudaOps, AttentionForwardWithQueryOffset) {
  const int64_t b = 2, tk = 77, h = 4, kv = 2, d = 64;
  for (const bool bf16 : {false, true}) {
    gpu_->set_matmul_precision(bf16 ? MatmulPrecision::BF16 : MatmulPrecision::FP32);
    for (int64_t tq : {int64_t{1}, int64_t{5}, int64_t{40}, int64_t{70}}) {
      const int64_t pos0 = tk - tq;
      const Vec q = random_floats(b * tq * h * d, 25), k = random_floats(b * tk * kv * d, 26);
      const Vec v = random_floats(b * tk * kv * d, 27);
      auto run = [&](Backend& be) {
        const Tensor out = on(be, poison(q.size()), {b, tq, h, d});
        const Tensor lse = on(be, poison(b * h * tq), {b, h, tq});
        be.attention_forward(out, lse, on(be, q, {b, tq, h, d}), on(be, k, {b, tk, kv, d}),
                             on(be, v, {b, tk, kv, d}), 0.125, pos0);
        return std::make_pair(host(be, out), host(be, lse));
      };
      const auto g = run(*gpu_), want = run(cpu_);
      const std::string what = std::string(bf16 ? "bf16" : "fp32") +
                               " attention with q_pos0, tq=" + std::to_string(tq);
      expect_close(g.first, want.first, bf16 ? 1.5e-2 : 1e-4, what + " out");
      expect_close(g.second, want.second, bf16 ? 2e-3 : 1e-4, what + " lse");
    }
  }
}

TEST_F(CudaOps, AttentionRejectsTooWideHeads) {
  if (gpu_->name() == "cpu") GTEST_SKIP() << "the CPU kernels take any head width";
  const Vec x(1 * 4 * 1 * 130, 0.5f);
  const Tensor q = on(*gpu_, x, {1, 4, 1, 130});
  const Tensor lse = on(*gpu_, Vec(4), {1, 1, 4});
  const Tensor out = on(*gpu_, x, {1, 4, 1, 130});
  EXPECT_THROW(gpu_->attention_forward(out, lse, q, q, q, 0.1, 0), Error);
}

TEST_F(CudaOps, SwiGluForwardAndBackward) {
  const int64_t n = 4097;
  const Vec gate = random_floats(n, 28, 3.0), up = random_floats(n, 29), dout = random_floats(n, 30);
  auto run = [&](Backend& be) {
    const Tensor g = on(be, gate, {n}), u = on(be, up, {n});
    const Tensor out = on(be, poison(n), {n});
    be.swiglu_forward(out, g, u);
    const Tensor dg = on(be, poison(n), {n}), du = on(be, poison(n), {n});
    be.swiglu_backward(dg, du, on(be, dout, {n}), g, u);
    return Outputs{{"out", host(be, out)}, {"dgate", host(be, dg)}, {"dup", host(be, du)}};
  };
  expect_outputs_close(run(*gpu_), run(cpu_), 1e-6, "swiglu");
}

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
  const auto rounded = [](const Vec& x) {
    std::vector<uint16_t> r(x.size());
    for (size_t i = 0; i < x.size(); ++i) r[i] = float_to_bf16(x[i]);
    return r;
  };
  const auto widened = [](const std::vector<uint16_t>& x) {
    Vec r(x.size());
    for (size_t i = 0; i < x.size(); ++i) r[i] = bf16_to_float(x[i]);
    return r;
  };
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

// c = op(a) op(b) + d: cuBLASLt reads the residual d as its C (C != D) on
// 8-aligned shapes; odd widths (staged outputs) and d == c take the default.
// Against the CPU's copy-then-accumulate, with d left as it was.
TEST_F(CudaOps, MatmulAddReadsTheResidual) {
  for (const MatmulPrecision precision : {MatmulPrecision::FP32, MatmulPrecision::BF16}) {
    gpu_->set_matmul_precision(precision);
    for (const int64_t n : {int64_t{64}, int64_t{37}}) {
      const int64_t m = 48, k = 80;
      Vec a = random_floats(m * k, 80), b = random_floats(n * k, 81);
      for (float& x : a) x = bf16_to_float(float_to_bf16(x));  // BF16 values: one reference
      for (float& x : b) x = bf16_to_float(float_to_bf16(x));
      const Vec d0 = random_floats(m * n, 82);
      for (const bool in_place : {false, true}) {
        auto run = [&](Backend& be) {
          const Tensor c = on(be, in_place ? d0 : poison(m * n), {m, n}), d = on(be, d0, {m, n});
          be.matmul_add(c, on(be, a, {m, k}), false, on(be, b, {n, k}), true, in_place ? c : d);
          return Outputs{{"c", host(be, c)}, {"d", host(be, d)}};
        };
        expect_outputs_close(run(*gpu_), run(cpu_), 1e-5,
                             "matmul_add n=" + std::to_string(n) + (in_place ? " in place" : "") +
                                 (precision == MatmulPrecision::BF16 ? " bf16" : " fp32"));
      }
    }
  }
  gpu_->set_matmul_precision(MatmulPrecision::FP32);
}

TEST_F(CudaOps, SoftcapAndFusedCrossEntropy) {
  const int64_t r = 9, v = 32008 % 1001;  // odd vocabulary width
  std::vector<int32_t> targets = {3, -100, static_cast<int32_t>(v - 1), 0, 5, -100, 17, 200, 1};
  for (double cap : {30.0, 2.0, 0.0}) {
    for (double dscale : {0.0, 1.0 / 7.0}) {
      const Vec z = random_floats(r * v, 31, 4.0);
      auto run = [&](Backend& be) {
        const Tensor logits = on(be, z, {r, v});
        const Tensor losses = on(be, poison(r), {r});
        be.softcap_cross_entropy(logits, losses, ids_on(be, targets), cap, dscale);
        Outputs out{{"losses", host(be, losses)}};
        if (dscale != 0.0) out.emplace_back("dlogits", host(be, logits));
        const Tensor capped = on(be, z, {r, v});
        be.softcap_forward(capped, cap);
        out.emplace_back("softcap", host(be, capped));
        return out;
      };
      expect_outputs_close(run(*gpu_), run(cpu_), 1e-5,
                           "cross-entropy cap=" + std::to_string(cap) +
                               " dscale=" + std::to_string(dscale));
    }
  }
}

// The gradient into BF16 (the head under --bf16-activations): the GPU's
// losses against the CPU's, its BF16 gradient within one BF16 step of the CPU's
// F32 gradient; and convert both ways.
TEST_F(CudaOps, CrossEntropyIntoBf16AndConvert) {
  const int64_t r = 9, v = 32008 % 1001;
  std::vector<int32_t> targets = {3, -100, static_cast<int32_t>(v - 1), 0, 5, -100, 17, 200, 1};
  const Vec z = random_floats(r * v, 90, 4.0);
  const Tensor lc = on(cpu_, z, {r, v}), lossc = on(cpu_, poison(r), {r});
  cpu_.softcap_cross_entropy(lc, lossc, ids_on(cpu_, targets), 30.0, 1.0 / 7.0);
  const Tensor lg = on(*gpu_, z, {r, v}), lossg = on(*gpu_, poison(r), {r});
  const Tensor g16 = on16(*gpu_, std::vector<uint16_t>(r * v, 0xffff), {r, v});
  gpu_->softcap_cross_entropy_into(g16, lg, lossg, ids_on(*gpu_, targets), 30.0, 1.0 / 7.0);
  expect_close(host(*gpu_, lossg), host(cpu_, lossc), 1e-5, "cross-entropy into bf16: losses");
  expect_within_one_bf16_step(bits_of(*gpu_, g16), host(cpu_, lc), "cross-entropy into bf16: dlogits");

  const Vec x = random_floats(1001, 91, 3.0);
  const Tensor x16 = on16(*gpu_, std::vector<uint16_t>(1001, 0xffff), {7, 143});
  gpu_->convert(x16, on(*gpu_, x, {7, 143}));
  std::vector<uint16_t> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = float_to_bf16(x[i]);
  EXPECT_EQ(bits_of(*gpu_, x16), want);
  const Tensor back = on(*gpu_, poison(1001), {1001});
  gpu_->convert(back, x16.view({1001}));
  const Vec wide = host(*gpu_, back);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(wide[i], bf16_to_float(want[i])) << i;
}

TEST_F(CudaOps, CrossEntropyRejectsOutOfRangeTargets) {
  const Tensor logits = on(*gpu_, random_floats(3 * 11, 32), {3, 11});
  const Tensor losses = on(*gpu_, Vec(3), {3});
  try {
    gpu_->softcap_cross_entropy(logits, losses, ids_on(*gpu_, {1, -100, 11}), 30.0, 1.0);
    FAIL() << "target 11 accepted with a vocabulary of 11";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target id 11 at position 2"), std::string::npos)
        << e.what();
  }
}

TEST_F(CudaOps, AdamWStep) {
  const int64_t n = 10007;
  const Vec p = random_floats(n, 33), g = random_floats(n, 34), m = random_floats(n, 35, 0.1);
  Vec v = random_floats(n, 36, 0.1);
  for (auto& x : v) x = x * x;
  AdamWParams hp;
  hp.lr = 3e-3;
  hp.weight_decay = 0.1;
  hp.step = 7;
  hp.grad_scale = 0.5;
  auto run = [&](Backend& be) {
    const Tensor tp = on(be, p, {n}), tm = on(be, m, {n}), tv = on(be, v, {n});
    be.adamw_step(tp, on(be, g, {n}), tm, tv, hp);
    return Outputs{{"param", host(be, tp)}, {"m", host(be, tm)}, {"v", host(be, tv)}};
  };
  expect_outputs_close(run(*gpu_), run(cpu_), 1e-6, "adamw");
}

TEST_F(CudaOps, CopiesRoundTrip) {
  const Vec x = random_floats(1001, 37);
  const Tensor a = on(*gpu_, x, {1001});
  const Tensor b = on(*gpu_, poison(1001), {1001});
  gpu_->copy(b, a);
  EXPECT_EQ(host(*gpu_, b), x);
  gpu_->fill(b, 0.0);
  EXPECT_EQ(host(*gpu_, b), Vec(1001, 0.0f));
}

}  // namespace
}  // namespace hessgpt
