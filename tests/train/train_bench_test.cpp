// The model FLOPs behind bench train's MFU: ours, and PaLM's formula, worked
// out by hand for model1 at context 1024.
#include <gtest/gtest.h>

#include "core/model_config.h"
#include "train/train_bench.h"

namespace hessgpt {
namespace {

TEST(TrainBench, FlopsPerTokenByBothConventions) {
  const ModelConfig c = preset_config("model1");
  const int64_t seq = 1024;
  // 6 per weight a token sees (the tied head once), and attention's two products
  // (QK^T, PV: 2 FLOPs per multiply-add over q_dim values) forward and twice
  // backward: over the causal half of the keys for ours, over all for PaLM's.
  const double dense = 6.0 * static_cast<double>(c.parameter_count());
  const double attention_full = 3.0 * 2.0 * 2.0 * 22 * 1280 * 1024;
  EXPECT_DOUBLE_EQ(training_flops_per_token(c, seq), dense + attention_full / 2);
  EXPECT_DOUBLE_EQ(palm_flops_per_token(c, seq), dense + attention_full);
  // PaLM's appendix B: 6N + 12 L H Q T.
  EXPECT_DOUBLE_EQ(palm_flops_per_token(c, seq),
                   dense + 12.0 * c.num_hidden_layers * c.num_attention_heads * c.head_dim * seq);
}

}  // namespace
}  // namespace hessgpt
