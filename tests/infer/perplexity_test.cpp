// Perplexity through the decoder session against the training model's own
// loss (Model::evaluate), and what INT8/INT4 weights change.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend.h"
#include "infer/perplexity.h"
#include "infer/session.h"
#include "infer_test_util.h"

namespace hessgpt::infer {
namespace {

using testing::random_ids;
using testing::random_model;
using testing::tiny_config;

TEST(Perplexity, Fp32MatchesTheTrainingLoss) {
  const ModelConfig c = tiny_config(64);
  auto be = make_backend("cpu", 2);
  const int64_t window = 24, windows = 3;
  const std::vector<int32_t> ids = random_ids(windows * window, c.vocab_size, 7);
  std::vector<int32_t> targets = random_ids(windows * window, c.vocab_size, 8);
  targets[5] = -100;  // not scored, as in training
  auto model = random_model(c, *be, 9);
  const LossSum want = model->evaluate(ids.data(), targets.data(), windows, window, nullptr);
  const InferWeights w = weights_from_model(std::move(model), WeightFormat::F32);
  DecoderSession s(w, *be, window);
  const PerplexityResult got = evaluate_perplexity(s, ids, targets, window);
  EXPECT_EQ(got.tokens, want.count);
  EXPECT_NEAR(got.mean_nll(), want.mean(), 1e-5 * want.mean());
}

TEST(Perplexity, QuantisedWeightsCostLittleAndInt4MoreThanInt8) {
  const ModelConfig c = tiny_config(64);
  auto be = make_backend("cpu", 2);
  const int64_t window = 32, windows = 4;
  const std::vector<int32_t> ids = random_ids(windows * window + 1, c.vocab_size, 11);
  const std::vector<int32_t> in(ids.begin(), ids.end() - 1), tg(ids.begin() + 1, ids.end());
  double nll[3];
  int k = 0;
  for (WeightFormat f : {WeightFormat::F32, WeightFormat::Q8, WeightFormat::Q4}) {
    const InferWeights w = weights_from_model(random_model(c, *be, 12), f, 32);
    DecoderSession s(w, *be, window);
    nll[k++] = evaluate_perplexity(s, in, tg, window).mean_nll();
  }
  EXPECT_NE(nll[1], nll[0]) << "INT8 weights changed nothing: were they quantised?";
  EXPECT_LT(std::abs(nll[1] - nll[0]), 0.01 * nll[0]);
  EXPECT_LT(std::abs(nll[2] - nll[0]), 0.05 * nll[0]);
  EXPECT_GT(std::abs(nll[2] - nll[0]), std::abs(nll[1] - nll[0]));
}

TEST(Perplexity, RejectsPartialWindows) {
  const ModelConfig c = tiny_config(64);
  auto be = make_backend("cpu", 1);
  const InferWeights w = weights_from_model(random_model(c, *be, 1), WeightFormat::F32);
  DecoderSession s(w, *be, 8);
  const std::vector<int32_t> ids(10, 1);
  EXPECT_THROW(evaluate_perplexity(s, ids, ids, 8), Error);
}

}  // namespace
}  // namespace hessgpt::infer
