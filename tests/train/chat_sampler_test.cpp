// ChatSampler: every example once per epoch, exact restore, and length
// grouping that cuts padding.
#include <algorithm>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "core/rng.h"
#include "train/chat_dataset.h"

namespace hessgpt {
namespace {

std::vector<int64_t> random_lengths(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int64_t> l(static_cast<size_t>(n));
  for (auto& x : l) x = 10 + static_cast<int64_t>(rng.below(300));
  return l;
}

// Sum over batches of the longest example: the padded tokens a run computes.
int64_t padded_tokens(ChatSampler& s, const std::vector<int64_t>& lengths, int64_t batch, int64_t batches) {
  int64_t total = 0;
  for (int64_t b = 0; b < batches; ++b) {
    int64_t longest = 0;
    for (int64_t i = 0; i < batch; ++i) longest = std::max(longest, lengths[static_cast<size_t>(s.next())]);
    total += longest * batch;
  }
  return total;
}

TEST(ChatSampler, EveryExampleOncePerEpochWithAndWithoutGrouping) {
  const int64_t n = 1000;
  const auto lengths = random_lengths(n, 7);
  for (int64_t group : {0, 16}) {
    ChatSampler s(n, 42, group ? lengths : std::vector<int64_t>{}, group);
    for (int epoch = 0; epoch < 3; ++epoch) {
      std::set<int64_t> seen;
      for (int64_t i = 0; i < n; ++i) seen.insert(s.next());
      EXPECT_EQ(static_cast<int64_t>(seen.size()), n) << "group " << group << " epoch " << epoch;
    }
  }
}

TEST(ChatSampler, RestoreContinuesTheSameStream) {
  const int64_t n = 300;
  const auto lengths = random_lengths(n, 3);
  ChatSampler a(n, 9, lengths, 8);
  for (int i = 0; i < 450; ++i) a.next();  // into the second epoch
  ChatSampler b(n, 9, lengths, 8);
  b.restore(a.epoch(), a.position());
  for (int i = 0; i < 500; ++i) ASSERT_EQ(a.next(), b.next()) << i;
}

TEST(ChatSampler, GroupingByLengthCutsPadding) {
  const int64_t n = 4096, batch = 16;
  const auto lengths = random_lengths(n, 11);
  ChatSampler plain(n, 5), grouped(n, 5, lengths, batch);
  const int64_t p = padded_tokens(plain, lengths, batch, n / batch);
  const int64_t g = padded_tokens(grouped, lengths, batch, n / batch);
  int64_t real = 0;
  for (int64_t x : lengths) real += x;
  EXPECT_LT(g, p * 7 / 10) << "plain " << p << " grouped " << g;
  EXPECT_LT(g, real * 11 / 10);  // within 10 % of no padding at all
  // The batches are not simply sorted: the first batches are not all the longest.
  ChatSampler again(n, 5, lengths, batch);
  int64_t first_longest = 0;
  for (int64_t i = 0; i < batch; ++i) first_longest = std::max(first_longest, lengths[static_cast<size_t>(again.next())]);
  EXPECT_LT(first_longest, 300);
}

}  // namespace
}  // namespace hessgpt
