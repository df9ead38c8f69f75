// Sampling statistics with fixed seeds, and the streaming detokeniser's
// handling of characters split across byte pieces.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/error.h"
#include "infer/sampler.h"
#include "infer/text_stream.h"

namespace hessgpt::infer {
namespace {

std::vector<double> softmax(const std::vector<float>& z, double t) {
  std::vector<double> p(z.size());
  double s = 0.0;
  for (size_t i = 0; i < z.size(); ++i) s += p[i] = std::exp(z[i] / t);
  for (auto& x : p) x /= s;
  return p;
}

std::vector<double> frequencies(Sampler& s, const std::vector<float>& z, int n,
                                const std::vector<int32_t>& history = {}) {
  std::vector<double> f(z.size(), 0.0);
  for (int i = 0; i < n; ++i) f[static_cast<size_t>(s.sample(z, history))] += 1.0 / n;
  return f;
}

const std::vector<float> kLogits = {2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -3.0f};

TEST(Sampler, GreedyTakesTheArgmax) {
  SamplingOptions o;
  o.temperature = 0.0;
  Sampler s(o);
  EXPECT_EQ(s.sample(kLogits, {}), 0);
  // A repetition penalty can move the argmax: 2.0 / 1.5 < 1.5.
  o.repetition_penalty = 1.5;
  Sampler p(o);
  EXPECT_EQ(p.sample(kLogits, std::vector<int32_t>{0, 0}), 1);
}

TEST(Sampler, TemperatureMatchesSoftmax) {
  SamplingOptions o;
  o.temperature = 0.8;
  o.seed = 42;
  Sampler s(o);
  const std::vector<double> f = frequencies(s, kLogits, 40000);
  const std::vector<double> p = softmax(kLogits, 0.8);
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(f[i], p[i], 0.01) << i;
}

TEST(Sampler, TopKDrawsOnlyTheKBestInSoftmaxProportion) {
  SamplingOptions o;
  o.temperature = 1.0;
  o.top_k = 3;
  o.seed = 7;
  Sampler s(o);
  const std::vector<double> f = frequencies(s, kLogits, 40000);
  const std::vector<float> top(kLogits.begin(), kLogits.begin() + 3);
  const std::vector<double> p = softmax(top, 1.0);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(f[i], p[i], 0.01) << i;
  for (size_t i = 3; i < f.size(); ++i) EXPECT_EQ(f[i], 0.0) << i;
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  // Probabilities 0.5, 0.3, 0.15, 0.05: top-p 0.7 keeps ids 0 and 1 (0.8 >= 0.7).
  const std::vector<float> z = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingOptions o;
  o.temperature = 1.0;
  o.top_p = 0.7;
  o.seed = 3;
  Sampler s(o);
  const std::vector<double> f = frequencies(s, z, 40000);
  EXPECT_NEAR(f[0], 0.5 / 0.8, 0.01);
  EXPECT_NEAR(f[1], 0.3 / 0.8, 0.01);
  EXPECT_EQ(f[2], 0.0);
  EXPECT_EQ(f[3], 0.0);
}

// A nucleus of hundreds of ids, in a shuffled vocabulary: the sampler sorts
// its candidates 64, then 256, then 1024 at a time, and must keep exactly the
// ids a full sort keeps, in softmax proportion; top-k over a nucleus too.
TEST(Sampler, LargeNucleiAndTopKMatchAFullSort) {
  const int64_t v = 2000;
  std::vector<float> z(static_cast<size_t>(v));
  for (int64_t i = 0; i < v; ++i) z[static_cast<size_t>((i * 7919) % v)] = -0.004f * i;
  std::vector<int32_t> best(static_cast<size_t>(v));
  for (int32_t i = 0; i < v; ++i)
    best[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919) % v);  // z falls with i
  const std::vector<double> p = softmax(z, 1.0);
  for (const int64_t top_k : {int64_t{0}, int64_t{300}}) {
    // The reference nucleus: best ids by a full sort, renormalised over top-k.
    const int64_t pool = top_k > 0 ? top_k : v;
    double pool_mass = 0.0;
    for (int64_t r = 0; r < pool; ++r)
      pool_mass += p[static_cast<size_t>(best[static_cast<size_t>(r)])];
    int64_t nucleus = 0;
    double mass = 0.0;
    while (nucleus < pool && mass / pool_mass < 0.8)
      mass += p[static_cast<size_t>(best[static_cast<size_t>(nucleus++)])];
    if (top_k == 0) {
      ASSERT_GT(nucleus, 256) << "the test needs a nucleus past the second sort";
    }
    SamplingOptions o;
    o.temperature = 1.0;
    o.top_p = 0.8;
    o.top_k = top_k;
    o.seed = 11;
    Sampler s(o);
    const std::vector<double> f = frequencies(s, z, 40000);
    double outside = 0.0, first = 0.0, want_first = 0.0;
    for (int64_t r = 0; r < v; ++r) {
      const auto id = static_cast<size_t>(best[static_cast<size_t>(r)]);
      if (r >= nucleus) outside += f[id];
      if (r < 50) {
        first += f[id];
        want_first += p[id] / mass;
      }
    }
    EXPECT_EQ(outside, 0.0) << "top-k " << top_k << ": drew outside the nucleus of " << nucleus;
    EXPECT_GT(f[static_cast<size_t>(best[static_cast<size_t>(nucleus - 1)])] +
                  f[static_cast<size_t>(best[static_cast<size_t>(nucleus - 2)])], 0.0)
        << "the nucleus' last ids are never drawn";
    EXPECT_NEAR(first, want_first, 0.01) << "top-k " << top_k;
  }
}

TEST(Sampler, SameSeedSameDraws) {
  SamplingOptions o;
  o.temperature = 1.0;
  o.seed = 99;
  Sampler a(o), b(o);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(a.sample(kLogits, {}), b.sample(kLogits, {}));
}

TEST(Sampler, BannedIdsAreNeverDrawn) {
  SamplingOptions o;
  o.temperature = 0.0;
  o.banned = {0, 2, 999};  // ids beyond the vocabulary are ignored
  Sampler greedy(o);
  EXPECT_EQ(greedy.sample(kLogits, {}), 1);
  o.temperature = 1.0;
  Sampler s(o);
  const auto f = frequencies(s, kLogits, 20000);
  EXPECT_EQ(f[0], 0.0);
  EXPECT_EQ(f[2], 0.0);
  // The rest keep their softmax proportions among themselves.
  const auto p = softmax(kLogits, 1.0);
  const double kept = 1.0 - p[0] - p[2];
  EXPECT_NEAR(f[1], p[1] / kept, 0.015);
  EXPECT_NEAR(f[3], p[3] / kept, 0.015);
}

TEST(Sampler, RejectsBadOptions) {
  SamplingOptions o;
  o.top_p = 0.0;
  EXPECT_THROW(Sampler{o}, Error);
  o = {};
  o.temperature = -1.0;
  EXPECT_THROW(Sampler{o}, Error);
  o = {};
  o.top_k = -2;
  EXPECT_THROW(Sampler{o}, Error);
  o = {};
  o.repetition_penalty = 0.0;
  EXPECT_THROW(Sampler{o}, Error);
  o = {};
  o.banned = {-1};
  EXPECT_THROW(Sampler{o}, Error);
}

TEST(TextStream, UnfinishedUtf8IsHeldBack) {
  EXPECT_EQ(unfinished_utf8_tail("abc"), 0u);
  EXPECT_EQ(unfinished_utf8_tail("ab\xE2\x82"), 2u);        // first two bytes of €
  EXPECT_EQ(unfinished_utf8_tail("ab\xE2\x82\xAC"), 0u);    // complete €
  EXPECT_EQ(unfinished_utf8_tail("ab\xF0\x9F"), 2u);        // half an emoji
  EXPECT_EQ(unfinished_utf8_tail("ab\xEF\xBF\xBD"), 3u);    // a replacement character
  EXPECT_EQ(unfinished_utf8_tail("\xC3"), 1u);
}

}  // namespace
}  // namespace hessgpt::infer
