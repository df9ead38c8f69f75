// A small prepared dataset for training tests: byte-level ids (no
// tokenizer), several chunks of 64-token sequences, a validation split.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "data/pipeline.h"

namespace hessgpt::testing {

// Writes DIR/c.jsonl and prepares it into DIR/data.
inline void prepare_bytes(const std::string& dir) {
  std::string corpus;
  for (int i = 0; i < 400; ++i) {
    std::string text = "Line " + std::to_string(i) + ": the quick brown fox " +
                       std::to_string(i * 7919 % 1000) + " jumps over the lazy dog near river " +
                       std::to_string(i % 13) + ".";
    corpus += nlohmann::json({{"text", text}}).dump() + "\n";
  }
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/c.jsonl") << corpus;
  data::PrepareOptions o;
  o.mix = data::parse_mix({{"sources", {{{"name", "c"}, {"share", 1}, {"paths", {"c.jsonl"}},
                                         {"format", "jsonl"}, {"filter", {{"profile", "none"}}}}}}},
                          "mix", dir, "");
  o.out_dir = dir + "/data";
  o.seq_len = 64;
  o.chunk_tokens = 12000;  // several chunks
  o.val_fraction = 0.1;
  o.threads = 1;
  data::run_prepare(o, *data::make_byte_encoder());
}

}  // namespace hessgpt::testing
