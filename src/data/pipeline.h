// `hessgpt prepare` as a library call: read → clean → dedup → filter →
// tokenize → mix → chunk writer → manifest.
//
// Mixing is by tokens: the next document always comes from the source that is
// furthest below its share (emitted_tokens / share smallest), so every prefix
// of the output honours the shares to within one document; the run stops when
// a source runs out (or at max_tokens), keeping the shares. Work is done in
// batches of documents of one source: cleaning, filtering, hashing and
// tokenising run on all threads, dedup decisions are taken in document order,
// so the output is the same for any thread count. Memory is bounded by one
// batch per source plus the dedup tables (16 bytes per kept document).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "data/encoder.h"
#include "data/mix.h"

namespace hessgpt::data {

struct PrepareOptions {
  MixConfig mix;
  std::string out_dir;
  int64_t chunk_tokens = 1'000'000'000;
  int64_t seq_len = 1024;
  double val_fraction = 0.015;
  uint64_t seed = 1234;
  int threads = 1;
  int64_t max_tokens = 0;     // stop once this many tokens are written (0: when a source runs out)
  int64_t batch_bytes = 0;    // text per work batch (0: 1 MiB per thread)
  int fault_chunk = -1;       // test hook, see ChunkWriterOptions
  double share_tolerance = 0.01;
};

struct PrepareResult {
  nlohmann::json manifest;   // as written to out_dir/manifest.json
  double seconds = 0;
  int64_t bytes_read = 0;    // raw input bytes
  double mb_per_s = 0;       // bytes_read / seconds / 1e6
  // The tokenizer's own speed on the same text: bytes encoded ÷ time inside
  // encode(), summed over threads (so: per thread).
  int64_t tokenizer_bytes = 0;
  double tokenizer_seconds = 0;
  double tokenizer_mb_per_s_per_thread = 0;
};

// Throws Error (naming the source, file or field) on bad configuration;
// bad documents are dropped and counted, never fatal.
PrepareResult run_prepare(const PrepareOptions& options, const Encoder& encoder);

}  // namespace hessgpt::data
