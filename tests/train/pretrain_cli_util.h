// Shared by the pretrain CLI tests: a small prepared corpus and a model
// config with tiny's shape and the tokenizer's vocabulary, in a folder.
#pragma once

#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/test_util.h"

namespace hessgpt::pretrain_test {

// Writes dir/model.json and prepares dir/data (sequences of 64 tokens).
inline void prepare_tiny_run(const hessgpt::testing::TempDir& dir) {
  std::ofstream corpus(dir / "c.jsonl");
  for (int i = 0; i < 300; ++i)
    corpus << nlohmann::json({{"text", "Sentence " + std::to_string(i) + " about rivers, " +
                                          std::to_string(i * 37 % 101) + " boats and the sea."}})
                  .dump()
           << "\n";
  corpus.close();
  std::ofstream(dir / "mix.json") << nlohmann::json(
      {{"sources", {{{"name", "c"}, {"share", 1}, {"paths", {dir / "c.jsonl"}}, {"format", "jsonl"},
                     {"filter", {{"profile", "none"}}}}}}});
  // tiny's shape with the tokenizer's vocabulary (prepared ids go up to 32007).
  std::ofstream(dir / "model.json") << R"({"vocab_size": 32008, "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 176})";
  const auto prep = hessgpt::testing::run_command(hessgpt::testing::hessgpt_binary() + " prepare --mix " +
                                                  dir / "mix.json" + " --out " + dir / "data" +
                                                  " --seq-len 64 --val-fraction 0.1 --threads 1");
  ASSERT_EQ(prep.exit_code, 0) << prep.out;
}

}  // namespace hessgpt::pretrain_test
