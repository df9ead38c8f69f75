// Cached decoding against the full forward pass, quantised weights against
// FP32, the quantised file format, and the error paths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/test_util.h"
#include "core/error.h"
#include "infer/generate.h"
#include "infer/quant_file.h"
#include "infer/session.h"
#include "infer_test_util.h"
#include "io/model_dir.h"

namespace hessgpt::infer {
namespace {

using testing::full_logits;
using testing::random_ids;
using testing::rel_err;
using testing::random_model;
using testing::tiny_config;

// Prefill `prefill` tokens, then decode the rest one by one; every position's
// logits must match the full forward pass.
void expect_cached_matches_full(const ModelConfig& c, int64_t n, int64_t prefill, double tol) {
  auto be = make_backend("cpu", 2);
  auto model = random_model(c, *be, 7);
  const std::vector<int32_t> ids = random_ids(n, c.vocab_size, 11);
  const std::vector<float> ref = full_logits(*model, ids);
  const InferWeights w = weights_from_model(std::move(model), WeightFormat::F32);
  DecoderSession s(w, *be);
  const int64_t v = c.vocab_size;
  std::vector<float> got(static_cast<size_t>(prefill * v));
  s.feed(std::span<const int32_t>(ids.data(), static_cast<size_t>(prefill)), got.data());
  for (int64_t t = 0; t < prefill; ++t)
    ASSERT_LT(rel_err(got.data() + t * v, ref.data() + t * v, v), tol) << "prefill position " << t;
  for (int64_t t = prefill; t < n; ++t) {
    const std::span<const float> logits = s.feed(std::span<const int32_t>(&ids[static_cast<size_t>(t)], 1));
    ASSERT_LT(rel_err(logits.data(), ref.data() + t * v, v), tol) << "decode position " << t;
  }
  EXPECT_EQ(s.position(), n);
}

TEST(DecoderSession, CachedDecodeMatchesFullForwardAtEveryPosition) {
  expect_cached_matches_full(tiny_config(64), 48, 5, 1e-5);
}

TEST(DecoderSession, DecodeFromTheFirstToken) {
  expect_cached_matches_full(tiny_config(64), 20, 1, 1e-5);
}

TEST(DecoderSession, WithoutQkNormAndWithAnOddFfnWidth) {
  ModelConfig c = tiny_config(64);
  c.qk_norm = false;
  c.intermediate_size = 177;
  expect_cached_matches_full(c, 40, 9, 1e-5);
}

TEST(DecoderSession, YarnPositionsBeyondTheOriginalContext) {
  ModelConfig c = tiny_config(160);
  c.rope_scaling = YarnConfig{4.0, 40, 32.0, 1.0};
  c.validate();
  // 150 positions: well past the original 40, prefill crossing it.
  expect_cached_matches_full(c, 150, 60, 1e-5);
}

// The one-region decode path (own attention per KV group, shared inputs,
// rows split per thread; at 3 threads the 2 KV groups do not split evenly,
// so q/k/v rows are shared out on their own) against the per-op path, and
// against itself at other thread counts, for every format; the FFN width (177) pads the last INT4
// group and gives gate/up row counts that are not a multiple of the 4-row
// kernel. Across thread counts: bit for bit. Against the per-op path: only the
// attention's summation order differs (one pass here, key tiles there), which
// INT8/INT4 can amplify by flipping the rounding of an int8 activation.
TEST(DecoderSession, FusedDecodeMatchesPerOpDecodeAndIgnoresThreadCount) {
  ModelConfig c = tiny_config(64);
  c.intermediate_size = 177;
  const std::vector<int32_t> ids = random_ids(40, c.vocab_size, 13);
  const int64_t v = c.vocab_size;
  for (int bits : {32, 16, 8, 4}) {
    std::vector<std::vector<float>> fused_runs, per_op;
    for (int threads : {2, 1, 3}) {
      auto be = make_backend("cpu", threads);
      const InferWeights w = weights_from_model(random_model(c, *be, 17), weight_format_from_bits(bits), 32);
      for (bool fused : {true, false}) {
        if (!fused && threads != 2) continue;
        DecoderSession s(w, *be);
        s.set_fused_decode(fused);
        std::vector<float> all;
        s.feed(std::span<const int32_t>(ids.data(), 3));  // a prefill, then decode
        for (size_t i = 3; i < ids.size(); ++i) {
          const std::span<const float> l = s.feed(std::span<const int32_t>(&ids[i], 1));
          all.insert(all.end(), l.begin(), l.end());
        }
        (fused ? fused_runs : per_op).push_back(std::move(all));
      }
    }
    const std::vector<float>& ref = fused_runs[0];
    for (size_t r = 1; r < fused_runs.size(); ++r)
      for (size_t i = 0; i < ref.size(); ++i)
        ASSERT_EQ(fused_runs[r][i], ref[i]) << bits << " bits, thread run " << r << ", logit " << i;
    double worst = 0.0;
    for (size_t t = 0; t < ref.size() / static_cast<size_t>(v); ++t)
      worst = std::max(worst, rel_err(ref.data() + t * v, per_op[0].data() + t * v, v));
    std::printf("%d bits: fused vs per-op decode, worst relative logit difference %.2e\n", bits, worst);
    EXPECT_LT(worst, bits >= 16 ? 1e-5 : 2e-3) << bits << " bits";
  }
}

TEST(DecoderSession, ChunkedPrefillMatchesOnePass) {
  const ModelConfig c = tiny_config(64);
  auto be = make_backend("cpu", 2);
  const std::vector<int32_t> ids = random_ids(30, c.vocab_size, 3);
  const InferWeights w = weights_from_model(random_model(c, *be, 5), WeightFormat::F32);
  DecoderSession one(w, *be), chunks(w, *be);
  const std::span<const float> la = one.feed(ids);
  const std::vector<float> ref(la.begin(), la.end());
  chunks.feed(std::span<const int32_t>(ids.data(), 10));
  chunks.feed(std::span<const int32_t>(ids.data() + 10, 13));
  const std::span<const float> lb = chunks.feed(std::span<const int32_t>(ids.data() + 23, 7));
  EXPECT_LT(rel_err(lb.data(), ref.data(), c.vocab_size), 1e-5);
}

TEST(DecoderSession, ContextAndVocabularyErrors) {
  const ModelConfig c = tiny_config(16);
  auto be = make_backend("cpu", 1);
  const InferWeights w = weights_from_model(random_model(c, *be, 5), WeightFormat::F32);
  DecoderSession s(w, *be);
  EXPECT_THROW(s.feed({}), Error);
  const std::vector<int32_t> bad = {1, 512};
  EXPECT_THROW(s.feed(bad), Error);
  const std::vector<int32_t> too_long = random_ids(17, c.vocab_size, 1);
  GenerateOptions o;
  try {
    generate(s, too_long, o);
    FAIL() << "a prompt longer than the context was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than the model's context"), std::string::npos) << e.what();
  }
  try {
    generate(s, std::vector<int32_t>{}, o);
    FAIL() << "an empty prompt was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_infer_weights("/nonexistent/checkpoint", *be), Error);
}

TEST(Generate, GreedyIsDeterministicAndFollowsTheFullForwardArgmax) {
  const ModelConfig c = tiny_config(64);
  auto be = make_backend("cpu", 2);
  auto model = random_model(c, *be, 9);
  const std::vector<int32_t> prompt = random_ids(6, c.vocab_size, 2);
  GenerateOptions o;
  o.max_new = 20;
  o.sampling.temperature = 0.0;
  o.stop_ids = {};
  // Reference: grow the sequence with the full forward pass.
  std::vector<int32_t> seq = prompt;
  for (int i = 0; i < 20; ++i) {
    const std::vector<float> l = full_logits(*model, seq);
    const float* last = l.data() + (seq.size() - 1) * static_cast<size_t>(c.vocab_size);
    seq.push_back(static_cast<int32_t>(std::max_element(last, last + c.vocab_size) - last));
  }
  const InferWeights w = weights_from_model(std::move(model), WeightFormat::F32);
  DecoderSession s1(w, *be), s2(w, *be);
  std::vector<int32_t> streamed;
  const GenerateResult a = generate(s1, prompt, o, [&](int32_t id) { streamed.push_back(id); });
  const GenerateResult b = generate(s2, prompt, o);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.ids, streamed);
  EXPECT_EQ(a.ids, std::vector<int32_t>(seq.begin() + 6, seq.end()));
  EXPECT_EQ(a.finish_reason, "length");
  EXPECT_EQ(a.decode_steps, 19);
}

TEST(Generate, StopsOnAStopIdWithoutEmittingIt) {
  const ModelConfig c = tiny_config(64);
  auto be = make_backend("cpu", 1);
  const InferWeights w = weights_from_model(random_model(c, *be, 9), WeightFormat::F32);
  const std::vector<int32_t> prompt = random_ids(4, c.vocab_size, 2);
  GenerateOptions o;
  o.max_new = 10;
  o.sampling.temperature = 0.0;
  o.stop_ids = {};
  DecoderSession s(w, *be);
  const GenerateResult all = generate(s, prompt, o);
  ASSERT_GE(all.ids.size(), 4u);
  o.stop_ids = {all.ids[3]};
  DecoderSession s2(w, *be);
  const GenerateResult r = generate(s2, prompt, o);
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.stop_id, all.ids[3]);
  const auto first = std::find(all.ids.begin(), all.ids.end(), all.ids[3]);
  EXPECT_EQ(r.ids, std::vector<int32_t>(all.ids.begin(), first));
}

TEST(Generate, StopsAtTheEndOfTheContext) {
  const ModelConfig c = tiny_config(12);
  auto be = make_backend("cpu", 1);
  const InferWeights w = weights_from_model(random_model(c, *be, 9), WeightFormat::F32);
  GenerateOptions o;
  o.max_new = 100;
  o.stop_ids = {};
  DecoderSession s(w, *be);
  const GenerateResult r = generate(s, random_ids(5, c.vocab_size, 2), o);
  EXPECT_EQ(r.finish_reason, "context");
  EXPECT_EQ(r.ids.size(), 8u);  // 7 decoded to fill the cache, then one last sampled
}

}  // namespace
}  // namespace hessgpt::infer
