// End-to-end prepare runs on tiny corpora with the byte-level encoder
// (id = byte + 3, <s> = 1, </s> = 2), so expected tokens are easy to compute.
#include "data/pipeline.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/error.h"
#include "data/chunk_writer.h"
#include "data/manifest.h"
#include "data_test_util.h"
#include "io/npy.h"

namespace hessgpt::data {

using testing::prose;
using testing::TempDir;
using testing::write_file;

namespace {

std::vector<int32_t> doc_tokens(const std::string& text) {
  std::vector<int32_t> ids{1};
  for (unsigned char c : text) ids.push_back(c + 3);
  ids.push_back(2);
  return ids;
}

PrepareOptions options(const nlohmann::json& mix, const std::string& base, const std::string& out) {
  PrepareOptions o;
  o.mix = parse_mix(mix, "test mix", base, "");
  o.out_dir = out;
  o.seq_len = 63;
  o.chunk_tokens = 64 * 40;
  o.val_fraction = 0.1;
  o.seed = 42;
  o.threads = 2;
  o.batch_bytes = 4096;
  return o;
}

std::vector<std::vector<uint16_t>> read_rows(const std::string& path) {
  MappedNpy npy(path);
  std::vector<std::vector<uint16_t>> rows;
  const auto* p = npy.as<uint16_t>();
  for (int64_t r = 0; r < npy.shape()[0]; ++r)
    rows.emplace_back(p + r * npy.shape()[1], p + (r + 1) * npy.shape()[1]);
  return rows;
}

}  // namespace

TEST(Pipeline, MixesSourcesWithinOnePercentOfTheirShares) {
  TempDir dir;
  // Three sources of different document sizes; "b" is the scarce one.
  std::string a, b, c;
  for (int i = 0; i < 800; ++i) a += nlohmann::json({{"text", prose(i, 20 + i % 50)}}).dump() + "\n";
  for (int i = 0; i < 150; ++i) b += nlohmann::json({{"text", prose(1000 + i, 40 + i % 80)}}).dump() + "\n";
  for (int i = 0; i < 400; ++i) c += nlohmann::json({{"text", prose(2000 + i, 10 + i % 30)}}).dump() + "\n";
  write_file(dir / "a.jsonl", a);
  write_file(dir / "b.jsonl", b);
  write_file(dir / "c.jsonl", c);
  const nlohmann::json mix = {{"name", "three"},
                              {"sources", {{{"name", "a"}, {"share", 5}, {"paths", {"a.jsonl"}}, {"format", "jsonl"}},
                                           {{"name", "b"}, {"share", 3}, {"paths", {"b.jsonl"}}, {"format", "jsonl"}},
                                           {{"name", "c"}, {"share", 2}, {"paths", {"c.jsonl"}}, {"format", "jsonl"}}}}};
  PrepareOptions o = options(mix, dir.str(), dir / "out");
  for (auto& s : o.mix.sources) s.filter = FilterConfig::from_profile("none");
  const PrepareResult r = run_prepare(o, *make_byte_encoder());
  const auto& m = r.manifest;
  EXPECT_EQ(m["stop_reason"], "source_exhausted:b");
  EXPECT_TRUE(m["shares_within_tolerance"].get<bool>());
  const double want[] = {0.5, 0.3, 0.2};
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(m["sources"][i]["achieved_share"].get<double>(), want[i], 0.01) << m["sources"][i].dump();
    EXPECT_NEAR(m["sources"][i]["target_share"].get<double>(), want[i], 1e-12);
  }
  EXPECT_EQ(m["sources"][1]["documents_used"], 150);
  EXPECT_TRUE(m["sources"][1]["exhausted"].get<bool>());
}

TEST(Pipeline, DedupFilterAndUtf8DropsAreCountedByReason) {
  TempDir dir;
  std::string corpus;
  corpus += prose(1) + "\n\n";
  corpus += prose(1) + "\n\n";                          // exact duplicate
  std::string variant = prose(1);                        // whitespace/case variant
  for (auto& ch : variant) if (ch == ' ') ch = '\t';
  variant[0] = 'd';
  corpus += "   " + variant + "  \n\n";
  corpus += prose(2) + " broken \xC3 byte\n\n";          // invalid UTF-8 (dropped by policy)
  corpus += "tiny\n\n";                                  // too short
  corpus += prose(3) + "\n\n";
  write_file(dir / "c/corpus.txt", corpus);
  write_file(dir / "c/bad.jsonl", "{\"text\": \"" + prose(4) + "\"}\n{oops\n{\"text\": \"" + prose(5) + " \xFF\"}\n");
  const nlohmann::json mix = {
      {"sources",
       {{{"name", "t"}, {"share", 1}, {"paths", {"c/corpus.txt"}}, {"documents", "blank-line"}, {"utf8", "drop"}},
        {{"name", "j"}, {"share", 1}, {"paths", {"c/bad.jsonl"}}, {"format", "jsonl"}}}}};
  PrepareOptions o = options(mix, dir.str(), dir / "out");
  o.seq_len = 15;
  o.val_fraction = 0;
  const auto m = run_prepare(o, *make_byte_encoder()).manifest;
  EXPECT_EQ(m["drops"]["exact_duplicate"], 2);
  EXPECT_EQ(m["drops"]["invalid_utf8"], 1);
  EXPECT_EQ(m["drops"]["too_short"], 1);
  EXPECT_EQ(m["drops"]["malformed_json"], 1);
  EXPECT_EQ(m["sources"][0]["documents_kept"], 2);  // prose(1), prose(3)
  EXPECT_EQ(m["sources"][0]["drops"]["exact_duplicate"], 2);
  EXPECT_EQ(m["sources"][1]["utf8_repaired_documents"], 1);  // "repair" policy: kept, counted
  EXPECT_EQ(m["sources"][1]["utf8_invalid_sequences"], 1);
  EXPECT_EQ(m["sources"][1]["documents_kept"], 2);
}

TEST(Pipeline, SplitsRowsIntoDisjointTrainAndValidationThatCoverTheStream) {
  TempDir dir;
  std::string corpus;
  std::vector<int32_t> stream;
  for (int i = 0; i < 120; ++i) {
    const std::string text = prose(i, 30);
    corpus += nlohmann::json({{"text", text}}).dump() + "\n";
    const auto ids = doc_tokens(text);
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  write_file(dir / "one.jsonl", corpus);
  const nlohmann::json mix = {{"sources", {{{"name", "one"}, {"share", 1}, {"paths", {"one.jsonl"}}, {"format", "jsonl"}}}}};
  PrepareOptions o = options(mix, dir.str(), dir / "out");
  o.mix.sources[0].filter = FilterConfig::from_profile("none");
  const auto m = run_prepare(o, *make_byte_encoder()).manifest;

  const int64_t row_len = 64, rows_total = static_cast<int64_t>(stream.size()) / row_len;
  std::map<std::vector<uint16_t>, int> expected;  // every row of the stream, once
  for (int64_t r = 0; r < rows_total; ++r)
    expected[std::vector<uint16_t>(stream.begin() + r * row_len, stream.begin() + (r + 1) * row_len)]++;
  ASSERT_EQ(static_cast<int64_t>(expected.size()), rows_total);

  std::set<std::vector<uint16_t>> seen_train, seen_val;
  int64_t rows_written = 0;
  ASSERT_EQ(m["chunks"].size(), static_cast<size_t>((rows_total + 39) / 40));
  for (const auto& c : m["chunks"]) {
    const auto train = read_rows(dir / ("out/" + c["train"]["file"].get<std::string>()));
    const auto val = read_rows(dir / ("out/" + c["val"]["file"].get<std::string>()));
    const int64_t rows = static_cast<int64_t>(train.size() + val.size());
    EXPECT_EQ(static_cast<int64_t>(val.size()), validation_rows(rows, 0.1));
    EXPECT_EQ(c["val"]["rows"], val.size());
    for (const auto& row : train) seen_train.insert(row);
    for (const auto& row : val) seen_val.insert(row);
    rows_written += rows;
  }
  EXPECT_EQ(rows_written, rows_total);
  EXPECT_EQ(static_cast<int64_t>(seen_train.size() + seen_val.size()), rows_total);
  for (const auto& row : seen_val) EXPECT_EQ(seen_train.count(row), 0u) << "a row is in both splits";
  for (const auto& [row, n] : expected) EXPECT_EQ(seen_train.count(row) + seen_val.count(row), 1u);
  EXPECT_EQ(m["tokens"]["tail_dropped"], static_cast<int64_t>(stream.size()) - rows_total * row_len);
}

TEST(Pipeline, ManifestRecordsEverythingAndOutputIgnoresThreadCount) {
  TempDir dir;
  std::string corpus;
  for (int i = 0; i < 80; ++i) corpus += prose(i, 40) + "\n\n";
  write_file(dir / "p.txt", corpus);
  const nlohmann::json mix = {{"name", "m"},
                              {"dedup", {{"near", true}}},
                              {"sources", {{{"name", "p"}, {"share", 1}, {"paths", {"p.txt"}}, {"documents", "blank-line"}}}}};
  PrepareOptions o = options(mix, dir.str(), dir / "out1");
  o.threads = 1;
  const auto m = run_prepare(o, *make_byte_encoder()).manifest;
  o.out_dir = dir / "out2";
  o.threads = 2;
  const auto m2 = run_prepare(o, *make_byte_encoder()).manifest;
  EXPECT_EQ(m, m2);
  EXPECT_EQ(testing::read_file(dir / "out1/chunk_0000_train.npy"), testing::read_file(dir / "out2/chunk_0000_train.npy"));

  const nlohmann::json on_disk = read_manifest(dir / "out1");
  EXPECT_EQ(on_disk, m);
  EXPECT_EQ(m["format"], kManifestFormat);
  EXPECT_EQ(m["seed"], 42);
  EXPECT_EQ(m["seq_len"], 63);
  EXPECT_EQ(m["val_fraction"], 0.1);
  EXPECT_EQ(m["tokenizer"]["checksum"], "byte-encoder-v1");
  EXPECT_EQ(m["tokenizer"]["vocab_size"], 259);
  EXPECT_TRUE(m["dedup"]["near"].get<bool>());
  EXPECT_EQ(m["sources"][0]["name"], "p");
  EXPECT_EQ(m["sources"][0]["documents_read"], 80);
  EXPECT_EQ(m["documents"]["used"], 80);
  EXPECT_TRUE(m["drops"].contains("near_duplicate"));
  EXPECT_EQ(m["tokens"]["written"].get<int64_t>(),
            m["tokens"]["train"].get<int64_t>() + m["tokens"]["val"].get<int64_t>());
  EXPECT_EQ(m["tokens"]["total"].get<int64_t>(),
            m["tokens"]["written"].get<int64_t>() + m["tokens"]["tail_dropped"].get<int64_t>());
  EXPECT_EQ(m["mix"]["name"], "m");
  // Only finished files remain: no temporaries.
  for (const auto& e : std::filesystem::directory_iterator(dir / "out1"))
    EXPECT_FALSE(e.path().string().ends_with(".tmp")) << e.path();
}

TEST(Pipeline, MaxTokensStopsEarlyAndBadMixesAreClearErrors) {
  TempDir dir;
  std::string corpus;
  for (int i = 0; i < 200; ++i) corpus += prose(i, 40) + "\n\n";
  write_file(dir / "p.txt", corpus);
  nlohmann::json mix = {{"sources", {{{"name", "p"}, {"share", 1}, {"paths", {"p.txt"}}, {"documents", "blank-line"}}}}};
  PrepareOptions o = options(mix, dir.str(), dir / "out");
  o.max_tokens = 3000;
  const auto m = run_prepare(o, *make_byte_encoder()).manifest;
  EXPECT_EQ(m["stop_reason"], "max_tokens");
  EXPECT_GE(m["tokens"]["total"].get<int64_t>(), 3000);
  EXPECT_LT(m["tokens"]["total"].get<int64_t>(), 3400);

  const auto expect_error = [&](nlohmann::json bad, const std::string& needle) {
    try {
      parse_mix(bad, "bad.json", dir.str(), "");
      ADD_FAILURE() << "no error for " << bad.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error({{"sources", {{{"name", "p"}, {"paths", {"p.txt"}}}}}}, "missing 'share'");
  expect_error({{"sources", {{{"name", "p"}, {"share", 1}, {"paths", {"p.txt"}}, {"format", "xml"}}}}}, "'format'");
  expect_error({{"sources", {{{"name", "p"}, {"share", 1}, {"paths", {"p.txt"}}, {"shar", 1}}}}}, "unknown field 'shar'");
  expect_error({{"sources", {{{"name", "p"}, {"share", 1}, {"paths", {"p.txt"}}, {"filter", {{"max_digit_ratio", "x"}}}}}}},
               "max_digit_ratio");
}

}  // namespace hessgpt::data

namespace hessgpt::data {

TEST(Mix, ExampleMixFilesParse) {
  for (const char* name : {"model1-full.example.json", "model2-full.example.json"}) {
    const MixConfig mix = load_mix_file(std::string(HESSGPT_SOURCE_DIR) + "/src/data/mixes/" + name, "");
    double sum = 0;
    for (const auto& s : mix.sources) sum += s.share;
    EXPECT_NEAR(sum, 1.0, 1e-12) << name;
  }
  const MixConfig m1 = load_mix_file(std::string(HESSGPT_SOURCE_DIR) + "/src/data/mixes/model1-full.example.json", "");
  ASSERT_EQ(m1.sources.size(), 6u);
  EXPECT_DOUBLE_EQ(m1.sources[2].share, 0.20);
  EXPECT_EQ(m1.sources[2].filter.min_words, 150);
  EXPECT_EQ(m1.sources[1].text_field, "content");
}

}  // namespace hessgpt::data
