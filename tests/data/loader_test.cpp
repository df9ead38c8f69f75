#include "data/loader.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/error.h"
#include "data/manifest.h"
#include "data/pipeline.h"
#include "data_test_util.h"

namespace hessgpt::data {

using testing::prose;
using testing::TempDir;
using testing::write_file;

namespace {

// Prepares a one-source corpus with the byte encoder; returns the token stream.
std::vector<int32_t> prepare_small(const TempDir& dir, int64_t seq_len, double val_fraction = 0.1) {
  std::string corpus;
  std::vector<int32_t> stream;
  for (int i = 0; i < 60; ++i) {
    const std::string text = prose(i, 30);
    corpus += nlohmann::json({{"text", text}}).dump() + "\n";
    stream.push_back(1);
    for (unsigned char c : text) stream.push_back(c + 3);
    stream.push_back(2);
  }
  write_file(dir / "c.jsonl", corpus);
  PrepareOptions o;
  o.mix = parse_mix({{"sources", {{{"name", "c"}, {"share", 1}, {"paths", {"c.jsonl"}}, {"format", "jsonl"},
                                   {"filter", {{"profile", "none"}}}}}}},
                    "mix", dir.str(), "");
  o.out_dir = dir / "out";
  o.seq_len = seq_len;
  o.chunk_tokens = 1 << 20;
  o.val_fraction = val_fraction;
  o.threads = 1;
  run_prepare(o, *make_byte_encoder());
  return stream;
}

// Every window of seq+1 tokens that a loader may serve, with how often it occurs.
std::map<std::vector<int32_t>, int64_t> windows(const std::vector<int32_t>& stream, int64_t row_len, int64_t seq) {
  std::map<std::vector<int32_t>, int64_t> out;
  for (int64_t r = 0; (r + 1) * row_len <= static_cast<int64_t>(stream.size()); ++r)
    for (int64_t w = 0; (w + 1) * seq <= row_len - 1; ++w) {
      const auto* p = stream.data() + r * row_len + w * seq;
      out[std::vector<int32_t>(p, p + seq + 1)]++;
    }
  return out;
}

}  // namespace

TEST(Loader, SequentialBatchesEqualTheSourceTokens) {
  TempDir dir;
  const auto stream = prepare_small(dir, 31);
  const Dataset data = Dataset::open(dir / "out");
  ASSERT_EQ(data.num_chunks(), 1);
  EXPECT_EQ(data.seq_len(), 31);
  for (const int64_t seq : {31, 10}) {  // full rows, and 3 windows per row
    const auto valid = windows(stream, 32, seq);
    BatchLoader loader(data, 0, Split::kTrain, 4, seq, Order::kSequential, 0, 259);
    EXPECT_EQ(loader.examples_per_epoch(), data.rows(0, Split::kTrain) * (31 / seq));
    std::vector<int32_t> in(4 * seq), tg(4 * seq);
    std::map<std::vector<int32_t>, int64_t> served;
    for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
      loader.next(in, tg);
      for (int64_t i = 0; i < 4; ++i) {
        std::vector<int32_t> window(in.begin() + i * seq, in.begin() + (i + 1) * seq);
        window.push_back(tg[(i + 1) * seq - 1]);
        for (int64_t t = 0; t + 1 < seq; ++t) ASSERT_EQ(tg[i * seq + t], in[i * seq + t + 1]);  // shifted by one
        const auto it = valid.find(window);
        ASSERT_NE(it, valid.end()) << "batch " << b << " row " << i << " is not a window of the source stream";
        EXPECT_LE(++served[window], it->second) << "window served more often than it occurs in one epoch";
      }
    }
  }
}

TEST(Loader, RandomOrderCoversEachExampleOncePerEpochAndDependsOnSeed) {
  TempDir dir;
  prepare_small(dir, 15);
  const Dataset data = Dataset::open(dir / "out");
  BatchLoader a(data, 0, Split::kTrain, 1, 15, Order::kRandom, 7, 259);
  BatchLoader seq(data, 0, Split::kTrain, 1, 15, Order::kSequential, 7, 259);
  const int64_t n = a.examples_per_epoch();
  std::vector<int32_t> in(15), tg(15);
  std::set<std::vector<int32_t>> all, random_seen;
  std::vector<std::vector<int32_t>> random_order, seq_order;
  for (int64_t i = 0; i < n; ++i) {
    seq.next(in, tg);
    all.insert(in);
    seq_order.push_back(in);
    a.next(in, tg);
    random_seen.insert(in);
    random_order.push_back(in);
  }
  EXPECT_EQ(random_seen, all);
  EXPECT_NE(random_order, seq_order);
  EXPECT_EQ(a.epoch(), 1);
  BatchLoader b(data, 0, Split::kTrain, 1, 15, Order::kRandom, 8, 259);
  b.next(in, tg);
  std::vector<int32_t> first_b = in;
  BatchLoader c(data, 0, Split::kTrain, 1, 15, Order::kRandom, 7, 259);
  c.next(in, tg);
  EXPECT_EQ(in, random_order[0]);  // same seed, same order
  for (uint64_t size : {1ull, 2ull, 5ull, 17ull, 1000ull}) {
    FeistelPermutation p(size, 99);
    std::set<uint64_t> image;
    for (uint64_t i = 0; i < size; ++i) image.insert(p(i));
    EXPECT_EQ(image.size(), size);
    EXPECT_LT(*image.rbegin(), size);
  }
}

TEST(Loader, SavedStateResumesBitExactly) {
  TempDir dir;
  prepare_small(dir, 15);
  const Dataset data = Dataset::open(dir / "out");
  BatchLoader a(data, 0, Split::kTrain, 3, 15, Order::kRandom, 5, 259);
  std::vector<int32_t> in(45), tg(45);
  for (int i = 0; i < 40; ++i) a.next(in, tg);  // crosses epochs
  const LoaderState saved = LoaderState::from_json(a.state().to_json());
  std::vector<std::vector<int32_t>> expected;
  for (int i = 0; i < 5; ++i) {
    a.next(in, tg);
    expected.push_back(in);
    expected.push_back(tg);
  }
  BatchLoader b(data, 0, Split::kTrain, 3, 15, Order::kRandom, 5, 259);
  b.set_state(saved);
  for (int i = 0; i < 5; ++i) {
    b.next(in, tg);
    EXPECT_EQ(in, expected[2 * i]);
    EXPECT_EQ(tg, expected[2 * i + 1]);
  }
  BatchLoader other(data, 0, Split::kTrain, 2, 15, Order::kRandom, 5, 259);
  EXPECT_THROW(other.set_state(saved), Error);
}

TEST(Loader, ValidatesIdsAgainstTheVocabulary) {
  TempDir dir;
  prepare_small(dir, 15);
  // The model's vocabulary is smaller than the data's: refused up front.
  const Dataset data = Dataset::open(dir / "out");
  EXPECT_THROW(BatchLoader(data, 0, Split::kTrain, 1, 15, Order::kSequential, 0, 100), Error);
  // A manifest that understates the vocabulary: the ids themselves are caught.
  nlohmann::json m = read_manifest(dir / "out");
  m["tokenizer"]["vocab_size"] = 50;
  write_manifest(dir / "out", m);
  const Dataset lying = Dataset::open(dir / "out");
  BatchLoader loader(lying, 0, Split::kTrain, 1, 15, Order::kSequential, 0, 50);
  std::vector<int32_t> in(15), tg(15);
  try {
    loader.next(in, tg);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("chunk_0000_train.npy"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not below the vocabulary size 50"), std::string::npos) << msg;
  }
  EXPECT_THROW(loader.validate_all(), Error);
}

TEST(Loader, ClearErrorsForIncompleteFoldersAndBadRequests) {
  TempDir dir;
  try {
    Dataset::open(dir.str());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has no manifest.json"), std::string::npos) << e.what();
  }
  prepare_small(dir, 15, 0.0);
  const Dataset data = Dataset::open(dir / "out");
  EXPECT_THROW(BatchLoader(data, 0, Split::kTrain, 1, 16, Order::kSequential, 0, 259), Error);  // T > stored
  EXPECT_THROW(BatchLoader(data, 0, Split::kVal, 1, 15, Order::kSequential, 0, 259), Error);    // no val rows
  EXPECT_THROW(BatchLoader(data, 1, Split::kTrain, 1, 15, Order::kSequential, 0, 259), Error);  // no chunk 1
  std::filesystem::remove(dir / "out/chunk_0000_train.npy");
  EXPECT_THROW(Dataset::open(dir / "out"), Error);
}

}  // namespace hessgpt::data
