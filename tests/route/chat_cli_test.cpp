// `hessgpt chat` end to end on two small random models: the JSON contract of
// one-shot mode and the interactive commands. (Answer quality is the demo's
// business; here the plumbing: tokenizer -> router -> sessions -> output.)
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "common/test_util.h"

namespace hessgpt {
namespace {

using hessgpt::testing::run_command;
using hessgpt::testing::TempDir;

class ChatCli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_ / "m.json") << R"({"vocab_size": 32008, "hidden_size": 64, "num_hidden_layers": 2,
      "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 176})";
    for (const char* m : {"m1", "m2"})
      ASSERT_EQ(run_command(bin_ + " init --model " + dir_ / "m.json" + " --out " + dir_ / m).exit_code, 0);
  }
  std::string chat() const {
    return bin_ + " chat --model1 " + dir_ / "m1" + " --model2 " + dir_ / "m2" +
           " --max-tokens 12 --max-route-tokens 8 --threads 1";
  }
  TempDir dir_;
  std::string bin_ = hessgpt::testing::hessgpt_binary();
};

TEST_F(ChatCli, OneShotJsonCarriesAnswerAndTrace) {
  const auto r = run_command(chat() + " --prompt 'What is 37 times 41?' --json 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["answer"].is_string());
  EXPECT_TRUE(j["trace"].is_array());
  EXPECT_TRUE(j["end"].is_string());
  EXPECT_LE(j["model1_tokens"].get<int64_t>(), 12);
  // Greedy decoding is deterministic.
  EXPECT_EQ(run_command(chat() + " --prompt 'What is 37 times 41?' --json 2>/dev/null").out, r.out);
}

TEST_F(ChatCli, InteractiveCommandsAndErrors) {
  const auto r = run_command("printf 'Hello\\n/trace\\nWhat is 2+2?\\n/reset\\n/quit\\n' | " + chat());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("(traces on)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(history cleared)"), std::string::npos) << r.out;
  const auto bad = run_command(bin_ + " chat --model1 " + dir_ / "nope" + " --model2 " + dir_ / "m2" + " --prompt hi");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("nope"), std::string::npos) << bad.out;
  EXPECT_NE(run_command(chat() + " --json").exit_code, 0);  // --json needs --prompt
}

}  // namespace
}  // namespace hessgpt
