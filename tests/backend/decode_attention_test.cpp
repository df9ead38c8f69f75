// Backend::decode_attention on the CPU (its default: the session's ops at the
// position read back) against a double-precision reference written here from
// the definitions: RMSNorm, rotate-half RoPE, causal GQA softmax attention.
// The CUDA kernels are compared against this CPU op (cuda_decode_test.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "common/test_util.h"
#include "core/error.h"
#include "decode_attention_case.h"

namespace hessgpt {
namespace {

using testing::DecodeCase;
using testing::DecodeInputs;

// The step by hand, in double: q_out, the cache rows written, out.
struct Expected {
  std::vector<double> q_out, k_row, v_row, out;
};

Expected reference(const DecodeCase& c, const DecodeInputs& in, int64_t pos) {
  const int64_t half = c.d / 2;
  const auto rotate = [&](const std::vector<float>& x, int64_t head, const std::vector<float>& w) {
    const float* xr = x.data() + head * c.d;
    double s = 1.0;
    if (c.norms) {
      double ss = 0;
      for (int64_t j = 0; j < c.d; ++j) ss += static_cast<double>(xr[j]) * xr[j];
      s = 1.0 / std::sqrt(ss / static_cast<double>(c.d) + c.eps);
    }
    std::vector<double> o(static_cast<size_t>(c.d));
    for (int64_t j = 0; j < half; ++j) {
      double a = xr[j], b = xr[j + half];
      if (c.norms) {
        a *= s * w[static_cast<size_t>(j)];
        b *= s * w[static_cast<size_t>(j + half)];
      }
      const double cs = in.cos[static_cast<size_t>(pos * half + j)];
      const double sn = in.sin[static_cast<size_t>(pos * half + j)];
      o[static_cast<size_t>(j)] = a * cs - b * sn;
      o[static_cast<size_t>(j + half)] = b * cs + a * sn;
    }
    return o;
  };
  Expected e;
  for (int64_t h = 0; h < c.h; ++h) {
    const std::vector<double> o = rotate(in.q_raw, h, in.q_norm);
    e.q_out.insert(e.q_out.end(), o.begin(), o.end());
  }
  for (int64_t g = 0; g < c.kv; ++g) {
    const std::vector<double> o = rotate(in.k_raw, g, in.k_norm);
    e.k_row.insert(e.k_row.end(), o.begin(), o.end());
  }
  e.v_row.assign(in.v_raw.begin(), in.v_raw.end());
  // Keys 0 .. pos: the cache's earlier rows, then this step's.
  const auto key = [&](int64_t j, int64_t g, int64_t i, bool value) {
    const size_t at = static_cast<size_t>((j * c.kv + g) * c.d + i);
    const auto own = static_cast<size_t>(g * c.d + i);
    if (j == pos) return value ? e.v_row[own] : e.k_row[own];
    return static_cast<double>(value ? in.v_cache[at] : in.k_cache[at]);
  };
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
  for (int64_t h = 0; h < c.h; ++h) {
    const int64_t g = h / (c.h / c.kv);
    std::vector<double> scores(static_cast<size_t>(pos + 1));
    double mx = -INFINITY;
    for (int64_t j = 0; j <= pos; ++j) {
      double dot = 0;
      for (int64_t i = 0; i < c.d; ++i)
        dot += e.q_out[static_cast<size_t>(h * c.d + i)] * key(j, g, i, false);
      scores[static_cast<size_t>(j)] = dot * scale;
      mx = std::max(mx, dot * scale);
    }
    double sum = 0;
    for (double& s : scores) sum += (s = std::exp(s - mx));
    for (int64_t i = 0; i < c.d; ++i) {
      double o = 0;
      for (int64_t j = 0; j <= pos; ++j) o += scores[static_cast<size_t>(j)] * key(j, g, i, true);
      e.out.push_back(o / sum);
    }
  }
  return e;
}

// The largest error over the largest value; infinite for a non-finite value
// or a size mismatch (a NaN must not slip through a max).
double worst_rel(const std::vector<float>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return INFINITY;
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff = std::max(diff, std::abs(got[i] - want[i]));
    norm = std::max(norm, std::abs(want[i]));
  }
  return diff / std::max(norm, 1e-30);
}

TEST(DecodeAttention, MatchesTheDefinitionsOnTheCpu) {
  CpuBackend cpu(2);
  for (const DecodeCase& c : {DecodeCase{4, 2, 8, 40, true}, DecodeCase{6, 3, 6, 40, false},
                              DecodeCase{4, 1, 16, 70, true}}) {
    for (int64_t pos : {int64_t{0}, int64_t{1}, int64_t{33}, c.positions - 1}) {
      const std::string what = c.name() + " at " + std::to_string(pos);
      const DecodeInputs in = testing::decode_inputs(c, 11 + static_cast<uint64_t>(pos));
      testing::DecodeTensors t(cpu, c, in, pos);
      cpu.decode_attention(t.step);
      const Expected e = reference(c, in, pos);
      EXPECT_LT(worst_rel(t.host(t.step.q_out), e.q_out), 1e-5) << what << " q_out";
      EXPECT_LT(worst_rel(t.cache_row(t.step.k_cache, pos), e.k_row), 1e-5) << what << " k row";
      EXPECT_LT(worst_rel(t.cache_row(t.step.v_cache, pos), e.v_row), 1e-7) << what << " v row";
      EXPECT_LT(worst_rel(t.host(t.step.out), e.out), 1e-5) << what << " out";
      // The other rows of the caches are left as they were.
      EXPECT_TRUE(t.other_rows_unchanged(in, pos)) << what;
    }
  }
}

TEST(DecodeAttention, RejectsWhatDoesNotFit) {
  CpuBackend cpu(2);
  const DecodeCase c{4, 2, 8, 16, true};
  const DecodeInputs in = testing::decode_inputs(c, 3);
  const auto expect_error = [&](const std::string& message, auto&& change) {
    testing::DecodeTensors t(cpu, c, in, 5);
    change(t);
    try {
      cpu.decode_attention(t.step);
      FAIL() << "accepted: " << message;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  expect_error("position 16 outside the cache's 16 rows", [&](testing::DecodeTensors& t) {
    const int32_t p = 16;
    cpu.copy_from_host(t.step.pos, &p);
  });
  expect_error("position -1", [&](testing::DecodeTensors& t) {
    const int32_t p = -1;
    cpu.copy_from_host(t.step.pos, &p);
  });
  expect_error("q_norm and k_norm go together",
               [](testing::DecodeTensors& t) { t.step.k_norm = Tensor(); });
  expect_error("k_raw",
               [](testing::DecodeTensors& t) { t.step.k_raw = t.step.k_raw.view({16}).slice(0, 8); });
  expect_error("pos must be one I32",
               [](testing::DecodeTensors& t) { t.step.pos = t.step.out.view({32}).slice(0, 1); });
  expect_error("RoPE table",
               [](testing::DecodeTensors& t) { t.step.cos = t.step.cos.slice(0, 8); });
}

}  // namespace
}  // namespace hessgpt
