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

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "core/bf16.h"
#include "core/model_config.h"
#include "cuda_ops_fixture.h"
#include "model/rope_tables.h"

namespace hessgpt {
namespace {

using namespace cuda_test;


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
// HESSGPT_CUBLASLT_TUNE: whichever candidate wins, the product is the one the
// heuristic's choice gives (up to the order of the sums), accumulated into the
// caller's C (the timing runs write a scratch output), on the tuning call and
// on the next, which reuses the plan. A weight-gradient shape: A^T B, K = 3413.
TEST_F(CudaOps, MatmulTunedMatchesTheHeuristicChoice) {
  if (gpu_->name() == "cpu") GTEST_SKIP() << "tuning picks among cuBLASLt's kernels";
  const int64_t m = 1280, n = 512, k = 3413;
  const Vec a = random_floats(k * m, 95), b = random_floats(k * n, 96), c0 = random_floats(m * n, 97);
  const auto run = [&](Backend& be) {
    be.set_matmul_precision(MatmulPrecision::BF16);
    const Tensor c = on(be, c0, {m, n});
    be.matmul(c, on(be, a, {k, m}), true, on(be, b, {k, n}), false, 1.0f, 1.0f);
    be.set_matmul_precision(MatmulPrecision::FP32);
    return host(be, c);
  };
  const Vec want = run(*gpu_);
  {
    const testing::ScopedEnv tune("HESSGPT_CUBLASLT_TUNE", "1");
    const std::unique_ptr<Backend> tuned = testing::gpu_test_backend();
    expect_close(run(*tuned), want, 1e-5, "tuned vs the heuristic's choice");
    expect_close(run(*tuned), want, 1e-5, "tuned, the plan's second call");
    buffers_.clear();  // before `tuned` goes
  }
  const testing::ScopedEnv bad("HESSGPT_CUBLASLT_TUNE", "yes");
  EXPECT_THROW(testing::gpu_test_backend(), Error);
}

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

// The backward groups positions by id on the device (a stable sort, then runs):
// a frequent id (a run of ~1/7, then ~1/3 of the rows, as "the" in real text),
// ids never seen, and vocabularies of 5 to 15 key bits.
TEST_F(CudaOps, EmbeddingForwardAndBackward) {
  struct Shape {
    int64_t v, c, n;
    unsigned frequent_one_in;
  };
  for (const Shape& sh : {Shape{29, 70, 300, 7}, Shape{20000, 300, 3000, 3}}) {
    const int64_t v = sh.v, c = sh.c, n = sh.n;
    std::vector<int32_t> ids(static_cast<size_t>(n));
    std::mt19937 gen(8);
    for (auto& id : ids)
      id = static_cast<int32_t>(gen() % sh.frequent_one_in == 0 ? 3 : gen() % v);
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
    expect_outputs_close(run(*gpu_), run(cpu_), 1e-5, "embedding v=" + std::to_string(v));
  }
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
  // 37: the generic kernels; 16 to 1280: rows held in registers, 1000 with lanes
  // past the row's end; 2560: too wide to hold, the generic kernels again.
  for (int64_t d : {int64_t{16}, int64_t{37}, int64_t{64}, int64_t{1000}, int64_t{1280}, int64_t{2560}}) {
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

// The kernels that hold rows in registers (rmsnorm_held.cuh) against the
// generic ones on the same GPU: per element the same arithmetic; only the
// order in which the lanes add their double partial sums differs. Plain norms
// with a BF16 output, an accumulated dx and its BF16 copy; QK-Norm + RoPE with
// a BF16 output; 3000 rows (47 dw partitions).
TEST_F(CudaOps, NormKernelsHeldAndGenericAgree) {
  if (gpu_->name() == "cpu") GTEST_SKIP() << "the CPU stand-in has one RMSNorm kernel";
  const int64_t b = 2, t = 50, heads = 30, rows = b * t * heads, positions = 64, pos0 = 9;
  struct Run {
    Outputs f32;  // out, rstd, dx, dw
    std::vector<uint16_t> out16, dx16;
  };
  const auto run = [&](int64_t d, bool rope) {
    ModelConfig cfg = preset_config("small");
    cfg.head_dim = d;
    const RopeTables tables = make_rope_tables(cfg, positions);
    const Vec cs(tables.cos.begin(), tables.cos.end()), sn(tables.sin.begin(), tables.sin.end());
    const Vec x = random_floats(rows * d, 80, 2.0), w = random_floats(d, 81);
    const Vec dout = random_floats(rows * d, 82), dx0 = random_floats(rows * d, 83);
    const std::initializer_list<int64_t> dims = {rows, d};
    const auto shaped = [&](const Vec& v) {
      return rope ? on(*gpu_, v, {b, t, heads, d}) : on(*gpu_, v, dims);
    };
    const Tensor tx = shaped(x), tw = on(*gpu_, w, {d}), out = shaped(poison(rows * d));
    const Tensor out16 = on16(*gpu_, std::vector<uint16_t>(rows * d, 0xffff), dims);
    const Tensor rstd = on(*gpu_, poison(rows), {rows}), dw = on(*gpu_, Vec(d, 0.5f), {d});
    const Tensor dx = shaped(dx0);
    const Tensor dx16 = on16(*gpu_, std::vector<uint16_t>(rows * d, 0xffff), dims);
    const Tensor c = on(*gpu_, cs, {positions, d / 2}), s = on(*gpu_, sn, {positions, d / 2});
    if (rope) {
      gpu_->qk_norm_rope_forward(out16.view({b, t, heads, d}), rstd, tx, tw, 1e-6, c, s, pos0);
      gpu_->qk_norm_rope_forward(out, rstd, tx, tw, 1e-6, c, s, pos0);
      gpu_->qk_norm_rope_backward(dx, dw, shaped(dout), tx, tw, rstd, c, s, pos0, 0);
      gpu_->qk_norm_rope_backward(dx16.view({b, t, heads, d}), dw, shaped(dout), tx, tw, rstd, c, s,
                                  pos0, 0);
    } else {
      gpu_->rmsnorm_forward(out16, rstd, tx, tw, 1e-6);
      gpu_->rmsnorm_forward(out, rstd, tx, tw, 1e-6);
      gpu_->rmsnorm_backward_copy(dx, dx16, dw, shaped(dout), tx, tw, rstd, true);
    }
    return Run{Outputs{{"out", host(*gpu_, out)}, {"rstd", host(*gpu_, rstd)},
                       {"dx", host(*gpu_, dx)}, {"dw", host(*gpu_, dw)}},
               bits_of(*gpu_, out16), bits_of(*gpu_, dx16)};
  };
  // QK-Norm + RoPE's held kernels with a warp per row and in lane groups
  // (HESSGPT_QK_NORM_ROWS; 2 to 32 lanes per row at these head dims).
  for (const auto& [d, rope, qk_rows] :
       {std::tuple<int64_t, bool, const char*>{64, false, "1"}, {1000, false, "1"},
        {1280, false, "1"}, {64, true, "1"}, {64, true, "lanes"}, {128, true, "1"},
        {128, true, "lanes"}, {16, true, "lanes"}, {256, true, "lanes"}}) {
    const testing::ScopedEnv rows_per_warp("HESSGPT_QK_NORM_ROWS", qk_rows);
    const Run generic = [&] {
      const testing::ScopedEnv kernels("HESSGPT_NORM_KERNELS", "generic");
      return run(d, rope);
    }();
    const Run held = run(d, rope);
    const std::string what = std::string(rope ? "qk-norm + rope" : "rmsnorm") +
                             " held vs generic, d=" + std::to_string(d) + ", rows per warp " + qk_rows;
    // The BF16 outputs are each F32 output rounded (exactly); between the two
    // kernels a rounding may flip where the F32 values differ in the last bits.
    for (const Run* r : {&held, &generic}) {
      EXPECT_EQ(r->out16, rounded(r->f32[0].second)) << what << ": out16 is not out rounded";
      EXPECT_EQ(r->dx16, rounded(r->f32[2].second)) << what << ": dx16 is not dx rounded";
    }
    expect_outputs_close(held.f32, generic.f32, 1e-6, what);
    if (std::string_view(qk_rows) == "lanes") {
      // The lane-group backward's L2 prefetch is a hint: the same values.
      const testing::ScopedEnv no_prefetch("HESSGPT_QK_NORM_PREFETCH", "0");
      const Run plain = run(d, rope);
      for (size_t i = 0; i < plain.f32.size(); ++i)
        EXPECT_EQ(plain.f32[i].second, held.f32[i].second) << what << ", no prefetch: "
                                                            << plain.f32[i].first;
      EXPECT_EQ(plain.dx16, held.dx16) << what << ", no prefetch";
    }
  }
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
// start position, with YaRN tables, for head dims 16, 64, 40 (pairs that
// straddle lanes), 128 and 256 (two and four pairs per lane), and a BF16 dx
// (the model's dq_raw under --bf16-activations).
TEST_F(CudaOps, QkNormRopeFusedMatchesTheTwoOps) {
  for (const int64_t d : {int64_t{16}, int64_t{64}, int64_t{40}, int64_t{128}, int64_t{256}}) {
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
      be.qk_norm_rope_backward(dx, dw, on(be, dout, {b, t, heads, d}), tx, tw, rstd, c, s, pos0, 0);
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
    gpu_->qk_norm_rope_backward(dx32, dw32, on(*gpu_, dout, {b, t, heads, d}), tx, tw, rstd, c, s,
                                pos0, 0);
    gpu_->qk_norm_rope_backward(dx16, dw16, on(*gpu_, dout, {b, t, heads, d}), tx, tw, rstd, c, s,
                                pos0, 0);
    EXPECT_EQ(bits_of(*gpu_, dx16), rounded(host(*gpu_, dx32))) << "bf16 dx, d=" << d;
    EXPECT_EQ(host(*gpu_, dw16), host(*gpu_, dw32)) << "d=" << d;
    // A BF16 x (q_raw, k_raw under --bf16-activations), read widened: bit for
    // bit the F32 x of its widened values, forward and backward.
    const std::vector<uint16_t> x16 = rounded(x);
    const auto with_x = [&](const Tensor& tx_) {
      const Tensor o = on(*gpu_, poison(rows * d), {b, t, heads, d});
      const Tensor r = on(*gpu_, poison(rows), {rows});
      gpu_->qk_norm_rope_forward(o, r, tx_, tw, 1e-6, c, s, pos0);
      const Tensor g = on(*gpu_, poison(rows * d), {b, t, heads, d}), gw = on(*gpu_, dw0, {d});
      gpu_->qk_norm_rope_backward(g, gw, on(*gpu_, dout, {b, t, heads, d}), tx_, tw, r, c, s,
                                  pos0, 0);
      return Outputs{{"out", host(*gpu_, o)}, {"rstd", host(*gpu_, r)}, {"dx", host(*gpu_, g)},
                     {"dw", host(*gpu_, gw)}};
    };
    const Outputs half = with_x(on16(*gpu_, x16, {b, t, heads, d}));
    const Outputs wide = with_x(on(*gpu_, widened(x16), {b, t, heads, d}));
    for (size_t i = 0; i < wide.size(); ++i)
      EXPECT_EQ(half[i].second, wide[i].second) << "bf16 x, " << wide[i].first << ", d=" << d;
  }
}

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
    std::vector<Vec> r{host(be, out), host(be, lse)};
    for (Vec& g : attention_grads(be, c, dout, tq, tk, tv, out, lse, scale))
      r.push_back(std::move(g));
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

// The forward's 32-row warps (two m16 tiles sharing every K and V fragment
// they load) compute each row as 16-row warps do: the same products and the
// same softmax steps in the same order. A block's early rows also step
// through its late rows' key tiles, which are wholly masked for them and add
// exact zeros (the rescale is 2^0). So the variants agree to rounding noise
// at most, and the backward, fed the same out and lse, with them; a wrong
// fragment, row or mask index gives O(1). Decoding's query offset as well.
TEST_F(CudaAttention, ForwardRowsPerWarpVariantsAgree) {
  if (gpu_->name() == "cpu") GTEST_SKIP() << "the CPU stand-in has one attention kernel";
  gpu_->set_matmul_precision(MatmulPrecision::BF16);
  const char* names[] = {"out", "lse", "dq", "dk", "dv"};
  for (const AttnCase& c : kAttnCases) {
    std::vector<Vec> by_rows[2];
    for (int i = 0; i < 2; ++i) {
      const testing::ScopedEnv rows("HESSGPT_ATTN_ROWS", i == 0 ? "16" : "32");
      by_rows[i] = run_attention(*gpu_, c);
    }
    for (size_t i = 0; i < by_rows[0].size(); ++i)
      expect_close(by_rows[1][i], by_rows[0][i], 1e-6,
                   "32 vs 16 rows per warp, t=" + std::to_string(c.t) + " d=" +
                       std::to_string(c.d) + " " + names[i]);
  }
  const int64_t b = 2, tq = 70, tk = 200, h = 4, kv = 2, d = 64;
  const Vec q = random_floats(b * tq * h * d, 31), k = random_floats(b * tk * kv * d, 32);
  const Vec v = random_floats(b * tk * kv * d, 33);
  Vec out[2], lse[2];
  for (int i = 0; i < 2; ++i) {
    const testing::ScopedEnv rows("HESSGPT_ATTN_ROWS", i == 0 ? "16" : "32");
    const Tensor o = on(*gpu_, poison(q.size()), {b, tq, h, d});
    const Tensor l = on(*gpu_, poison(b * h * tq), {b, h, tq});
    gpu_->attention_forward(o, l, on(*gpu_, q, {b, tq, h, d}), on(*gpu_, k, {b, tk, kv, d}),
                            on(*gpu_, v, {b, tk, kv, d}), 0.125, tk - tq);
    out[i] = host(*gpu_, o);
    lse[i] = host(*gpu_, l);
  }
  expect_close(out[1], out[0], 1e-6, "32 vs 16 rows per warp with q_pos0: out");
  expect_close(lse[1], lse[0], 1e-6, "32 vs 16 rows per warp with q_pos0: lse");
}

TEST_F(CudaOps, AttentionRejectsAnUnknownBlockShape) {
  if (gpu_->name() == "cpu") GTEST_SKIP() << "the CPU kernels have no block shape";
  expect_attention_rejects("HESSGPT_ATTN_ROWS", "24", "HESSGPT_ATTN_ROWS must be 16 or 32");
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

// Random AdamW state (second moments squared: not negative), decay 0.1.
struct AdamWState {
  Vec p, g, m, v;
  AdamWParams hp;
};
AdamWState random_adamw_state(int64_t n, uint64_t seed, double lr, int64_t step,
                              double grad_scale) {
  AdamWState s{random_floats(n, seed), random_floats(n, seed + 1),
               random_floats(n, seed + 2, 0.1), random_floats(n, seed + 3, 0.1), {}};
  for (float& x : s.v) x = x * x;
  s.hp.lr = lr;
  s.hp.weight_decay = 0.1;
  s.hp.step = step;
  s.hp.grad_scale = grad_scale;
  return s;
}

TEST_F(CudaOps, AdamWStep) {
  const int64_t n = 10007;
  const AdamWState s = random_adamw_state(n, 33, 3e-3, 7, 0.5);
  const Vec &p = s.p, &g = s.g, &m = s.m, &v = s.v;
  const AdamWParams& hp = s.hp;
  auto run = [&](Backend& be) {
    const Tensor tp = on(be, p, {n}), tm = on(be, m, {n}), tv = on(be, v, {n});
    be.adamw_step(tp, on(be, g, {n}), tm, tv, hp);
    return Outputs{{"param", host(be, tp)}, {"m", host(be, tm)}, {"v", host(be, tv)}};
  };
  expect_outputs_close(run(*gpu_), run(cpu_), 1e-6, "adamw");
}

// All of a model's AdamW groups in one launch: each group as adamw_step
// updates it (bit for bit on the GPU; against the CPU as AdamWStep), a group
// longer than one block's chunk, ragged ends around the 16-byte accesses, an
// empty group, and elements in no group left alone.
TEST_F(CudaOps, AdamWGroupsInOneLaunch) {
  const int64_t n = 71400;
  const std::vector<AdamWGroup> groups = {{0, 70001, true}, {70001, 3, false}, {70004, 0, true},
                                          {70010, 1290, true}};  // 70004..70009 in no group
  const AdamWState s = random_adamw_state(n, 41, 1e-2, 5, 0.7);
  const Vec &p0 = s.p, &g = s.g, &m0 = s.m, &v0 = s.v;
  const AdamWParams& hp = s.hp;
  const auto run = [&](Backend& be, bool one_call) {
    const Tensor tp = on(be, p0, {n}), tg = on(be, g, {n});
    const Tensor tm = on(be, m0, {n}), tv = on(be, v0, {n});
    if (one_call) {
      be.adamw_step_groups(tp, tg, tm, tv, groups, hp);
    } else {
      for (const AdamWGroup& gr : groups) {
        if (gr.count == 0) continue;
        AdamWParams own = hp;
        own.weight_decay = gr.decays ? hp.weight_decay : 0.0;
        const auto part = [&](const Tensor& t) {
          return Tensor(t.as<float>() + gr.offset, DType::F32, t.device, {gr.count});
        };
        be.adamw_step(part(tp), part(tg), part(tm), part(tv), own);
      }
    }
    return Outputs{{"param", host(be, tp)}, {"m", host(be, tm)}, {"v", host(be, tv)}};
  };
  const Outputs gpu = run(*gpu_, true), gpu_separate = run(*gpu_, false);
  Outputs gpu_per_group;
  {
    const testing::ScopedEnv per_group("HESSGPT_ADAMW_CHUNKED", "0");
    gpu_per_group = run(*gpu_, true);
  }
  for (size_t i = 0; i < gpu.size(); ++i) {
    EXPECT_EQ(gpu[i].second, gpu_separate[i].second) << gpu[i].first;
    EXPECT_EQ(gpu_per_group[i].second, gpu_separate[i].second) << gpu[i].first;
  }
  expect_outputs_close(gpu, run(cpu_, true), 1e-6, "adamw groups");
  for (int64_t i = 70004; i < 70010; ++i)
    EXPECT_EQ(gpu[0].second[static_cast<size_t>(i)], p0[static_cast<size_t>(i)]) << i;
  // A second step with the same groups reuses the chunk table.
  const Tensor tp = on(*gpu_, p0, {n}), tg = on(*gpu_, g, {n});
  const Tensor tm = on(*gpu_, m0, {n}), tv = on(*gpu_, v0, {n});
  gpu_->adamw_step_groups(tp, tg, tm, tv, groups, hp);
  gpu_->adamw_step_groups(tp, tg, tm, tv, groups, hp);
  const Tensor cp = on(cpu_, p0, {n}), cg = on(cpu_, g, {n}), cm = on(cpu_, m0, {n}), cv = on(cpu_, v0, {n});
  cpu_.adamw_step_groups(cp, cg, cm, cv, groups, hp);
  cpu_.adamw_step_groups(cp, cg, cm, cv, groups, hp);
  expect_close(host(*gpu_, tp), host(cpu_, cp), 1e-6, "adamw groups, second step");
}

// Timing marks are events in the stream (bench train --profile): numbered
// from 0 after a clear, the time between two is the device's and not
// negative, and marks not recorded are an error.
TEST_F(CudaOps, TimingMarksTimeTheStream) {
  const int64_t n = int64_t{1} << 24;
  Buffer buffer(gpu_.get(), static_cast<size_t>(n) * sizeof(float));
  const Tensor x = buffer.tensor(DType::F32, {n});
  gpu_->clear_timing_marks();
  const int64_t before = gpu_->timing_mark();
  for (int i = 0; i < 8; ++i) gpu_->fill(x, 1.0 + i);
  const int64_t after = gpu_->timing_mark();
  EXPECT_EQ(before, 0);
  EXPECT_EQ(after, 1);
  EXPECT_GT(gpu_->ms_between(before, after), 0.0) << "eight fills of 64 MiB take time";
  EXPECT_EQ(gpu_->ms_between(after, after), 0.0);
  EXPECT_THROW(gpu_->ms_between(after, after + 1), Error);
  gpu_->clear_timing_marks();
  EXPECT_EQ(gpu_->timing_mark(), 0);
  EXPECT_THROW(gpu_->ms_between(0, 1), Error);
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
