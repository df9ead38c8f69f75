// Every CPU backward against central finite differences, in double precision
// (the kernels are templated; F64 tensors run the double instantiation), so
// the tolerance can be tight: FD truncation error ~h^2 = 1e-10.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/vec_math.h"
#include "common/fd_check.h"
#include "common/test_util.h"
#include "core/model_config.h"
#include "model/rope_tables.h"

namespace hessgpt {
namespace {

using hessgpt::testing::random_vector;
using Vec = std::vector<double>;

Tensor t64(Vec& v, std::initializer_list<int64_t> dims) {
  return Tensor(v.data(), DType::F64, Device::CPU, dims);
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

void expect_fd_match(Vec& x, const Vec& analytic, const std::function<double()>& loss,
                     const char* what, size_t max_checks = 200) {
  ASSERT_EQ(x.size(), analytic.size());
  hessgpt::testing::expect_fd_match(x.data(), x.size(), analytic.data(), loss, what, max_checks);
}

class OpsGrad : public ::testing::Test {
 protected:
  CpuBackend be{2};
};

TEST_F(OpsGrad, RmsNorm) {
  const int64_t r = 6, d = 10;
  Vec x = random_vector(r * d, 1), w = random_vector(d, 2), g = random_vector(r * d, 3);
  Vec out(r * d), rstd(r), dx(r * d, 0.5), dw(d, 0.25);
  auto loss = [&] {
    be.rmsnorm_forward(t64(out, {r, d}), t64(rstd, {r}), t64(x, {r, d}), t64(w, {d}), 1e-6);
    return dot(out, g);
  };
  loss();
  const Vec dx0 = dx, dw0 = dw;
  be.rmsnorm_backward(t64(dx, {r, d}), t64(dw, {d}), t64(g, {r, d}), t64(x, {r, d}), t64(w, {d}),
                      t64(rstd, {r}), /*accumulate_dx=*/true);
  Vec dx_only(r * d), dw_only(d);
  for (size_t i = 0; i < dx.size(); ++i) dx_only[i] = dx[i] - dx0[i];  // += semantics
  for (size_t i = 0; i < dw.size(); ++i) dw_only[i] = dw[i] - dw0[i];
  expect_fd_match(x, dx_only, loss, "rmsnorm dx");
  expect_fd_match(w, dw_only, loss, "rmsnorm dw");
}

TEST_F(OpsGrad, SwiGlu) {
  const int64_t n = 50;
  Vec gate = random_vector(n, 4, 2.0), up = random_vector(n, 5), g = random_vector(n, 6);
  Vec out(n), dgate(n), dup(n);
  auto loss = [&] {
    be.swiglu_forward(t64(out, {n}), t64(gate, {n}), t64(up, {n}));
    return dot(out, g);
  };
  be.swiglu_backward(t64(dgate, {n}), t64(dup, {n}), t64(g, {n}), t64(gate, {n}), t64(up, {n}));
  expect_fd_match(gate, dgate, loss, "swiglu dgate");
  expect_fd_match(up, dup, loss, "swiglu dup");
}

TEST_F(OpsGrad, Embedding) {
  const int64_t v = 7, c = 5, n = 9;
  std::vector<int32_t> ids = {0, 3, 3, 6, 1, 3, 0, 2, 6};
  Vec table = random_vector(v * c, 7), g = random_vector(n * c, 8), out(n * c), dtable(v * c, 0);
  Tensor tids(ids.data(), DType::I32, Device::CPU, {n});
  auto loss = [&] {
    be.embedding_forward(t64(out, {n, c}), tids, t64(table, {v, c}));
    return dot(out, g);
  };
  be.embedding_backward(t64(dtable, {v, c}), tids, t64(g, {n, c}));
  expect_fd_match(table, dtable, loss, "embedding dtable");
}

TEST_F(OpsGrad, EmbeddingRejectsOutOfRangeIds) {
  std::vector<int32_t> ids = {0, 7};
  Vec table(7 * 2), out(2 * 2);
  EXPECT_THROW(be.embedding_forward(t64(out, {2, 2}), Tensor(ids.data(), DType::I32, Device::CPU, {2}),
                                    t64(table, {7, 2})),
               Error);
}

TEST_F(OpsGrad, SoftcapCrossEntropyWithIgnoreIndex) {
  const int64_t r = 5, v = 11;
  for (double cap : {30.0, 2.0, 0.0}) {
    Vec z = random_vector(r * v, 9, 3.0), losses(r);
    std::vector<int32_t> targets = {3, -100, 10, 0, 5};
    Tensor tt(targets.data(), DType::I32, Device::CPU, {r});
    auto loss = [&] {
      Vec work = z;
      be.softcap_cross_entropy(t64(work, {r, v}), t64(losses, {r}), tt, cap, 0.0);
      double s = 0;
      for (double l : losses) s += l;
      return s;
    };
    Vec dz = z;
    be.softcap_cross_entropy(t64(dz, {r, v}), t64(losses, {r}), tt, cap, 1.0);
    EXPECT_EQ(losses[1], 0.0);
    for (int64_t j = 0; j < v; ++j) EXPECT_EQ(dz[v + j], 0.0);  // ignored row has no gradient
    expect_fd_match(z, dz, loss, "softcap cross-entropy dz");
  }
}

TEST_F(OpsGrad, SoftcapForwardMatchesFormula) {
  Vec z = {-100.0, -1.0, 0.0, 2.5, 75.0}, expect(5);
  for (size_t i = 0; i < z.size(); ++i) expect[i] = 30.0 * std::tanh(z[i] / 30.0);
  be.softcap_forward(t64(z, {1, 5}), 30.0);
  for (size_t i = 0; i < z.size(); ++i) EXPECT_NEAR(z[i], expect[i], 1e-12);
}

// RoPE is linear: backward must be its exact transpose, with and without YaRN.
TEST_F(OpsGrad, RopeAndYarn) {
  for (bool yarn : {false, true}) {
    ModelConfig c = preset_config("tiny");
    if (yarn) c.rope_scaling = YarnConfig{};
    const int64_t b = 2, t = 9, heads = 3, d = c.head_dim;
    const RopeTables tables = make_rope_tables(c, 32);
    Vec cs = tables.cos, sn = tables.sin;
    Vec x = random_vector(b * t * heads * d, 10), g = random_vector(x.size(), 11);
    const int64_t pos0 = 5;
    auto loss = [&] {
      Vec y = x;
      be.rope_forward(t64(y, {b, t, heads, d}), t64(cs, {32, d / 2}), t64(sn, {32, d / 2}), pos0);
      return dot(y, g);
    };
    Vec dx = g;
    be.rope_backward(t64(dx, {b, t, heads, d}), t64(cs, {32, d / 2}), t64(sn, {32, d / 2}), pos0);
    expect_fd_match(x, dx, loss, yarn ? "rope+yarn dx" : "rope dx");
  }
}

// Reference: materialised causal softmax attention, straight from the definition.
Vec naive_attention(const Vec& q, const Vec& k, const Vec& v, int64_t b, int64_t tq, int64_t tk,
                    int64_t h, int64_t kv, int64_t d, double scale, int64_t pos0) {
  Vec out(q.size(), 0.0);
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t head = 0; head < h; ++head) {
      const int64_t g = head / (h / kv);
      for (int64_t i = 0; i < tq; ++i) {
        Vec s(tk, -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= pos0 + i; ++j) {
          double acc = 0;
          for (int64_t e = 0; e < d; ++e)
            acc += q[((bi * tq + i) * h + head) * d + e] * k[((bi * tk + j) * kv + g) * d + e];
          s[j] = acc * scale;
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (int64_t j = 0; j <= pos0 + i; ++j) z += std::exp(s[j] - mx);
        for (int64_t j = 0; j <= pos0 + i; ++j) {
          const double p = std::exp(s[j] - mx) / z;
          for (int64_t e = 0; e < d; ++e)
            out[((bi * tq + i) * h + head) * d + e] += p * v[((bi * tk + j) * kv + g) * d + e];
        }
      }
    }
  return out;
}

TEST_F(OpsGrad, AttentionForwardMatchesNaiveIncludingOffsetQueries) {
  // T spans several query (32) and key (64) tiles; GQA 4:2.
  const int64_t b = 2, tk = 150, h = 4, kv = 2, d = 8;
  const double scale = 0.35;
  for (int64_t pos0 : {int64_t{0}, int64_t{140}}) {
    const int64_t tq = tk - pos0;
    Vec q = random_vector(b * tq * h * d, 12), k = random_vector(b * tk * kv * d, 13),
        v = random_vector(b * tk * kv * d, 14), out(q.size()), lse(b * h * tq);
    be.attention_forward(t64(out, {b, tq, h, d}), t64(lse, {b, h, tq}), t64(q, {b, tq, h, d}),
                         t64(k, {b, tk, kv, d}), t64(v, {b, tk, kv, d}), scale, pos0);
    const Vec ref = naive_attention(q, k, v, b, tq, tk, h, kv, d, scale, pos0);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-12) << i;
  }
}

TEST_F(OpsGrad, AttentionBackward) {
  const int64_t b = 2, t = 70, h = 4, kv = 2, d = 8;
  const double scale = 0.4;
  Vec q = random_vector(b * t * h * d, 15), k = random_vector(b * t * kv * d, 16),
      v = random_vector(b * t * kv * d, 17), g = random_vector(q.size(), 18);
  Vec out(q.size()), lse(b * h * t);
  auto forward = [&] {
    be.attention_forward(t64(out, {b, t, h, d}), t64(lse, {b, h, t}), t64(q, {b, t, h, d}),
                         t64(k, {b, t, kv, d}), t64(v, {b, t, kv, d}), scale, 0);
  };
  auto loss = [&] {
    forward();
    return dot(out, g);
  };
  forward();
  Vec dq(q.size()), dk(k.size()), dv(v.size());
  be.attention_backward(t64(dq, {b, t, h, d}), t64(dk, {b, t, kv, d}), t64(dv, {b, t, kv, d}),
                        t64(g, {b, t, h, d}), t64(q, {b, t, h, d}), t64(k, {b, t, kv, d}),
                        t64(v, {b, t, kv, d}), t64(out, {b, t, h, d}), t64(lse, {b, h, t}), scale);
  expect_fd_match(q, dq, loss, "attention dq", 60);
  expect_fd_match(k, dk, loss, "attention dk", 60);
  expect_fd_match(v, dv, loss, "attention dv", 60);
}

TEST_F(OpsGrad, MatmulTransposeFlags) {
  const int64_t m = 3, n = 4, k = 5;
  Vec a = random_vector(m * k, 19), bt = random_vector(n * k, 20), c(m * n, 1.0);
  // c = 2 * a b^T + 1 * c
  be.matmul(t64(c, {m, n}), t64(a, {m, k}), false, t64(bt, {n, k}), true, 2.0f, 1.0f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t e = 0; e < k; ++e) s += a[i * k + e] * bt[j * k + e];
      EXPECT_NEAR(c[i * n + j], 2 * s + 1, 1e-12);
    }
}

// AdamW's first step moves each weight by ~lr * sign(g) after decoupled decay.
TEST_F(OpsGrad, AdamWFirstStepAndDecay) {
  Vec p = {1.0, -2.0, 0.5}, g = {0.3, -0.1, 0.0}, m(3, 0.0), v(3, 0.0);
  AdamWParams hp;
  hp.lr = 0.01;
  hp.weight_decay = 0.1;
  hp.eps = 1e-8;
  hp.step = 1;
  const Vec p0 = p;
  be.adamw_step(t64(p, {3}), t64(g, {3}), t64(m, {3}), t64(v, {3}), hp);
  for (int i = 0; i < 3; ++i) {
    const double expect = p0[i] * (1 - 0.01 * 0.1) - 0.01 * g[i] / (std::abs(g[i]) + 1e-8);
    EXPECT_NEAR(p[i], expect, 1e-12);
  }
}

}  // namespace
}  // namespace hessgpt

namespace hessgpt {
namespace {

// The float kernels' vectorised exp/tanh against libm over their working range.
TEST(VecMath, ExpAndTanhWithinAFewUlp) {
  double worst_exp = 0, worst_tanh = 0;
  for (float x = -80.0f; x < 80.0f; x += 0.01337f) {
    const double e = std::exp(static_cast<double>(x));
    worst_exp = std::max(worst_exp, std::abs(cpu::exp_f32(x) - e) / e);
  }
  for (float y = -20.0f; y < 20.0f; y += 0.000917f) {
    const double t = std::tanh(static_cast<double>(y));
    worst_tanh = std::max(worst_tanh, std::abs(cpu::tanh_f32(y) - t) / std::max(std::abs(t), 1e-30));
  }
  EXPECT_LT(worst_exp, 5e-7);
  EXPECT_LT(worst_tanh, 1e-6);
}

}  // namespace
}  // namespace hessgpt
