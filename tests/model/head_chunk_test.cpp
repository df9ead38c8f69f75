// The head works on row chunks of the logits (activations.h): however the
// rows are cut (HESSGPT_HEAD_CHUNK_ROWS, for GPU timings), the loss and every
// gradient are those of one chunk; a bad setting is a clear error.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "common/test_util.h"
#include "core/error.h"
#include "core/rng.h"
#include "model/activations.h"
#include "model/model.h"

namespace hessgpt {
namespace {

struct Pass {
  double loss = 0;
  std::vector<float> grads;
};

Pass train_pass() {
  const ModelConfig c = preset_config("tiny");
  CpuBackend be(2);
  Model model(c, be);
  model.init_random(7);
  Rng rng(13);
  const int64_t b = 3, t = 20;
  std::vector<int32_t> ids(b * t), targets(b * t);
  for (auto& x : ids) x = static_cast<int32_t>(rng.below(512));
  for (size_t i = 0; i < targets.size(); ++i)
    targets[i] = i % 5 == 1 ? -100 : static_cast<int32_t>(rng.below(512));
  model.zero_grads();
  const LossSum l = model.forward_backward(ids.data(), targets.data(), b, t, 1.0 / (b * t));
  return {l.sum, model.grads_host()};
}

TEST(HeadChunks, AnyCutOfTheRowsGivesTheSameLossAndGradients) {
  EXPECT_EQ(head_chunk_rows(60, 512), 60) << "tiny's 60 rows fit one chunk";
  EXPECT_EQ(head_chunk_rows(32768, 32008), 2096) << "model1's F32 logits: 256 MiB";
  EXPECT_EQ(head_chunk_rows(32768, 32008, 2), 4193) << "BF16 logits: twice the rows";
  const Pass whole = train_pass();
  for (const char* rows : {"1", "7", "59"}) {
    const testing::ScopedEnv cut("HESSGPT_HEAD_CHUNK_ROWS", rows);
    EXPECT_EQ(head_chunk_rows(60, 512), std::min(60, std::atoi(rows)));
    const Pass chunked = train_pass();
    EXPECT_NEAR(chunked.loss, whole.loss, 1e-6 * whole.loss) << rows << " rows a chunk";
    ASSERT_EQ(chunked.grads.size(), whole.grads.size());
    double worst = 0, scale = 0;
    for (size_t i = 0; i < whole.grads.size(); ++i) {
      worst = std::max(worst, std::abs(static_cast<double>(chunked.grads[i]) - whole.grads[i]));
      scale = std::max(scale, std::abs(static_cast<double>(whole.grads[i])));
    }
    EXPECT_LT(worst, 1e-5 * scale) << rows << " rows a chunk";
  }
  for (const char* bad : {"0", "-3", "12x"}) {
    const testing::ScopedEnv cut("HESSGPT_HEAD_CHUNK_ROWS", bad);
    EXPECT_THROW(head_chunk_rows(60, 512), Error) << bad;
  }
}

}  // namespace
}  // namespace hessgpt
