#include "data/dedup.h"

#include <gtest/gtest.h>

#include "data_test_util.h"

namespace hessgpt::data {

TEST(Dedup, NormalisationCollapsesCaseAndWhitespace) {
  EXPECT_EQ(normalize_for_dedup("  Hello,\t\tWorld \n\n again  "), "hello, world again");
  EXPECT_EQ(dedup_hash("Hello world"), dedup_hash("hello   WORLD\n"));
  EXPECT_FALSE(dedup_hash("Hello world") == dedup_hash("Hello, world"));
}

TEST(Dedup, ExactKeepsFirstCopyOnly) {
  ExactDedup d;
  EXPECT_TRUE(d.insert(dedup_hash("a b c")));
  EXPECT_FALSE(d.insert(dedup_hash("a  b\nc")));
  EXPECT_TRUE(d.insert(dedup_hash("a b d")));
  EXPECT_EQ(d.size(), 2u);
}

TEST(Dedup, MinHashFindsNearDuplicatesOnly) {
  DedupConfig cfg;
  cfg.near = true;
  const std::string base = testing::prose(7, 300);
  std::string edited = base;
  edited.replace(edited.size() / 2, 20, "a small edit here ok");  // a few shingles differ
  const std::string other = testing::prose(8, 300);
  const auto sa = minhash_signature(base, cfg), sb = minhash_signature(edited, cfg),
             sc = minhash_signature(other, cfg);
  EXPECT_GT(estimated_jaccard(sa, sb), 0.8);
  EXPECT_LT(estimated_jaccard(sa, sc), 0.3);
  NearDedup near(cfg);
  EXPECT_TRUE(near.insert(sa));
  EXPECT_FALSE(near.insert(sb));
  EXPECT_TRUE(near.insert(sc));
}

}  // namespace hessgpt::data
