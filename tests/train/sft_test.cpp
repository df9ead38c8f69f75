// Chat fine-tuning: dynamic padding is loss-neutral, LoRA SFT learns while the
// base stays untouched, resume is exact, YaRN matches the PyTorch oracle's
// frequencies, and long conversations follow the overflow rule.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "common/test_util.h"
#include "core/rng.h"
#include "io/adapter_dir.h"
#include "io/model_dir.h"
#include "io/npy.h"
#include "model/model.h"
#include "model/rope_tables.h"
#include "train/chat_dataset.h"
#include "train/metrics_log.h"
#include "train/sft.h"

namespace hessgpt {
namespace {

namespace fs = std::filesystem;
using hessgpt::testing::run_command;
using hessgpt::testing::TempDir;

using hessgpt::testing::read_bytes;

// tiny's shape with the tokenizer's 32,008 ids.
const char* kTinyChat = R"({"vocab_size": 32008, "hidden_size": 64, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 176,
  "max_position_embeddings": 256})";

void write_chat(const std::string& path, int n) {
  std::ofstream f(path);
  Rng rng(4);
  for (int i = 0; i < n; ++i) {
    const int a = 2 + static_cast<int>(rng.below(90)), b = 2 + static_cast<int>(rng.below(90));
    nlohmann::json routed = {{"messages",
                              {{{"role", "user"}, {"content", "What is " + std::to_string(a) + " times " + std::to_string(b) + "?"}},
                               {{"role", "assistant"},
                                {"routes", {{{"kind", "math"}, {"request", "Calculate " + std::to_string(a) + "*" + std::to_string(b)},
                                             {"result", std::to_string(a * b)}}}},
                                {"content", std::to_string(a) + " x " + std::to_string(b) + " = " + std::to_string(a * b) + "."}}}}};
    f << routed.dump() << "\n";
    f << R"({"messages": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello there!"}]})" << "\n";
  }
  f << "{ this line is not JSON\n";
}

class Sft : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_ / "model.json") << kTinyChat;
    ASSERT_EQ(run_command(hessgpt::testing::hessgpt_binary() + " init --model " + dir_ / "model.json" +
                          " --seed 5 --out " + dir_ / "base").exit_code, 0);
    write_chat(dir_ / "chat.jsonl", 60);
  }
  SftConfig base(const std::string& run) const {
    SftConfig c;
    c.base_dir = dir_ / "base";
    c.data_path = dir_ / "chat.jsonl";
    c.run_dir = dir_ / run;
    c.lora_rank = 4;
    c.steps = 12;
    c.batch = 4;
    c.lr = 1e-2;
    c.eval_every = 6;
    c.eval_batches = 2;
    c.save_every = 4;
    c.log_every = 0;
    return c;
  }
  TempDir dir_;
  CpuBackend be_{2};
};

TEST(ChatBatches, DynamicPaddingGivesTheSameLossAsSingleSequences) {
  CpuBackend be(2);
  Model model(preset_config("tiny"), be);
  model.init_random(1);
  Rng rng(2);
  std::vector<ChatExample> ex(3);
  const int lengths[] = {7, 19, 12};
  for (int e = 0; e < 3; ++e)
    for (int i = 0; i < lengths[e]; ++i) {
      ex[e].ids.push_back(static_cast<int32_t>(rng.below(512)));
      ex[e].targets.push_back(i % 3 == 0 ? -100 : static_cast<int32_t>(rng.below(512)));
    }
  double single = 0;
  int64_t count = 0;
  for (const auto& e : ex) {
    const LossSum l = model.evaluate(e.ids.data(), e.targets.data(), 1, static_cast<int64_t>(e.ids.size()));
    single += l.sum;
    count += l.count;
  }
  const PaddedBatch pb = pad_batch({&ex[0], &ex[1], &ex[2]});
  EXPECT_EQ(pb.seq, 19);
  const LossSum padded = model.evaluate(pb.ids.data(), pb.targets.data(), pb.batch, pb.seq);
  EXPECT_EQ(padded.count, count);
  EXPECT_NEAR(padded.sum, single, 1e-4 * single);
}

TEST_F(Sft, LoraRunLearnsResumesExactlyAndLeavesTheBaseUntouched) {
  const std::string base_bytes = read_bytes(dir_ / "base/model.safetensors");
  const SftResult straight = run_sft(base("straight"), be_);
  ASSERT_TRUE(straight.completed);
  EXPECT_LT(straight.trainable_parameters, 20000);
  const auto m = read_metrics(dir_ / "straight/metrics.jsonl");
  ASSERT_EQ(m.size(), 12u);
  // Adapters on a random base learn slowly, but the held-out loss must fall.
  ASSERT_TRUE(m[5].contains("val_loss"));
  EXPECT_LT(m[11]["val_loss"].get<double>(), m[5]["val_loss"].get<double>());
  EXPECT_EQ(read_bytes(dir_ / "base/model.safetensors"), base_bytes) << "the base was modified";
  EXPECT_TRUE(fs::exists(dir_ / "straight/adapter/adapter_model.safetensors"));
  EXPECT_TRUE(fs::exists(dir_ / "straight/final/model.safetensors"));

  SftConfig part = base("resumed");
  part.stop_after = 4;
  run_sft(part, be_);
  part.stop_after = 0;
  EXPECT_EQ(run_sft(part, be_).resumed_from, 4);
  EXPECT_EQ(read_bytes(dir_ / "straight/adapter/adapter_model.safetensors"),
            read_bytes(dir_ / "resumed/adapter/adapter_model.safetensors"));

  // `hessgpt merge` of the saved adapter gives the run's merged model.
  const auto merge = run_command(hessgpt::testing::hessgpt_binary() + " merge --base " + dir_ / "base" +
                                 " --adapter " + dir_ / "straight/adapter" + " --out " + dir_ / "merged");
  ASSERT_EQ(merge.exit_code, 0) << merge.out;
  EXPECT_EQ(read_bytes(dir_ / "merged/model.safetensors"), read_bytes(dir_ / "straight/final/model.safetensors"));
}

// Dropout masks follow the step counter, which the checkpoint restores: with
// p > 0 and accumulation, a resumed run still equals the uninterrupted one.
TEST_F(Sft, LoraDropoutRunResumesExactlyAndRecordsItsRate) {
  SftConfig c = base("drop_straight");
  c.lora_dropout = 0.1;
  c.accum = 2;
  c.steps = 8;
  ASSERT_TRUE(run_sft(c, be_).completed);
  EXPECT_EQ(load_adapter_config(dir_ / "drop_straight/adapter").dropout, 0.1);

  SftConfig part = c;
  part.run_dir = dir_ / "drop_resumed";
  part.stop_after = 4;
  run_sft(part, be_);
  part.stop_after = 0;
  EXPECT_EQ(run_sft(part, be_).resumed_from, 4);
  EXPECT_EQ(read_bytes(dir_ / "drop_straight/adapter/adapter_model.safetensors"),
            read_bytes(dir_ / "drop_resumed/adapter/adapter_model.safetensors"));

  SftConfig plain = c;
  plain.run_dir = dir_ / "drop_none";
  plain.lora_dropout = 0;
  run_sft(plain, be_);
  EXPECT_NE(read_bytes(dir_ / "drop_straight/adapter/adapter_model.safetensors"),
            read_bytes(dir_ / "drop_none/adapter/adapter_model.safetensors"))
      << "dropout had no effect on training";
  EXPECT_EQ(load_adapter_config(dir_ / "drop_none/adapter").dropout, 0.0);

  // The rate is part of the run's identity: resuming with another one is refused.
  plain.run_dir = dir_ / "drop_straight";
  EXPECT_THROW(run_sft(plain, be_), Error);
}

TEST_F(Sft, CliRefusesBadLoraDropout) {
  const std::string cmd = hessgpt::testing::hessgpt_binary() + " sft --base " + dir_ / "base" + " --data " +
                          dir_ / "chat.jsonl" + " --out " + dir_ / "bad" + " --steps 1 --batch 2";
  for (const std::string flags : {"--lora-dropout 1", "--lora-dropout=-0.5", "--lora-dropout 2.5",
                                  "--full --lora-dropout 0.1"}) {
    const auto r = run_command(cmd + " " + flags);
    EXPECT_NE(r.exit_code, 0) << flags;
    EXPECT_NE(r.out.find("--lora-dropout"), std::string::npos) << flags << ": " << r.out;
  }
  EXPECT_FALSE(fs::exists(dir_ / "bad/final")) << "a refused run must not train";
}

TEST_F(Sft, YarnRunRecordsTheExtendedContext) {
  SftConfig c = base("yarn");
  c.yarn = 4;
  c.seq = 64;
  c.steps = 2;
  run_sft(c, be_);
  const ModelConfig out = load_config_file(dir_ / "yarn/final/config.json");
  ASSERT_TRUE(out.rope_scaling.has_value());
  EXPECT_EQ(out.rope_scaling->factor, 4.0);
  EXPECT_EQ(out.rope_scaling->original_max_position_embeddings, 256);
  EXPECT_EQ(out.max_position_embeddings, 1024);
}

TEST(ChatData, OverflowRuleTruncatesOrDrops) {
  TempDir dir;
  write_chat(dir / "chat.jsonl", 5);
  auto tok = Tokenizer::load_default();
  ChatLoadReport t, d;
  const auto truncated = load_chat_examples(dir / "chat.jsonl", *tok, 24, OverflowRule::Truncate, t);
  const auto dropped = load_chat_examples(dir / "chat.jsonl", *tok, 24, OverflowRule::Drop, d);
  EXPECT_EQ(t.conversations, 11);
  EXPECT_EQ(t.dropped_invalid, 1);
  EXPECT_GT(t.truncated, 0);
  for (const auto& e : truncated) EXPECT_LE(e.ids.size(), 24u);
  EXPECT_EQ(d.dropped_too_long, t.truncated);  // the same conversations, the other rule
  EXPECT_EQ(d.kept + d.dropped_too_long + d.dropped_invalid + d.dropped_no_target, d.conversations);
  EXPECT_EQ(static_cast<int64_t>(dropped.size()), d.kept);
}

TEST(ChatData, Model2LinesGetTheirRouteToken) {
  TempDir dir;
  std::ofstream(dir / "m2.jsonl") << R"json({"kind": "math", "messages": [{"role": "user", "content": "Calculate 2*3"}, {"role": "assistant", "content": "print(2*3)"}], "result": "6"})json" << "\n";
  auto tok = Tokenizer::load_default();
  ChatLoadReport r;
  const auto ex = load_chat_examples(dir / "m2.jsonl", *tok, 256, OverflowRule::Truncate, r);
  ASSERT_EQ(ex.size(), 1u);
  ASSERT_GE(ex[0].ids.size(), 4u);
  EXPECT_EQ(ex[0].ids[0], token::kBos);
  EXPECT_EQ(ex[0].ids[1], token::kUser);
  EXPECT_EQ(ex[0].ids[2], token::kMath);
  EXPECT_EQ(ex[0].targets.back(), -100);
  EXPECT_EQ(ex[0].targets[ex[0].targets.size() - 2], token::kEnd);  // trained to close its answer
}

// YaRN inverse frequencies and attention factor against the PyTorch oracle,
// and a forward pass at positions beyond 1024 matching it.
TEST(Yarn, MatchesTheOracleBeyond1024) {
  if (run_command("/usr/bin/python3 -c 'import torch'").exit_code != 0) GTEST_SKIP() << "no torch";
  TempDir dir;
  const ModelConfig base = config_from_json(nlohmann::json::parse(
      R"({"vocab_size": 300, "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
          "num_key_value_heads": 1, "head_dim": 16, "intermediate_size": 96, "max_position_embeddings": 1024})"));
  const ModelConfig c = with_yarn(base, 4.0);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  std::ofstream(dir / "config.json") << config_to_json(c).dump();
  const std::string oracle = std::string(HESSGPT_SOURCE_DIR) + "/tests/oracle/hessgpt_torch.py";
  ASSERT_EQ(run_command("/usr/bin/python3 " + oracle + " --init-random --config " + dir / "config.json" +
                        " --seed 3 --out-checkpoint " + dir / "ck").exit_code, 0);
  const int64_t t = 1200;
  std::vector<int32_t> ids(t);
  Rng rng(1);
  for (auto& x : ids) x = static_cast<int32_t>(rng.below(300));
  std::vector<int64_t> ids64(ids.begin(), ids.end());
  write_npy(dir / "x.npy", "<i8", {1, t}, ids64.data(), ids64.size() * 8);
  const auto ref = run_command("OMP_NUM_THREADS=2 /usr/bin/python3 " + oracle + " --checkpoint " + dir / "ck" +
                               " --inputs " + dir / "x.npy" + " --out " + dir / "ref --no-grads");
  ASSERT_EQ(ref.exit_code, 0) << ref.out;
  nlohmann::json rope;
  std::ifstream(dir / "ref/rope.json") >> rope;
  const std::vector<double> inv = rope_inv_freq(c);
  ASSERT_EQ(rope["inv_freq"].size(), inv.size());
  for (size_t i = 0; i < inv.size(); ++i) EXPECT_NEAR(rope["inv_freq"][i].get<double>(), inv[i], 1e-12 * inv[0]);
  EXPECT_NEAR(rope["attention_factor"].get<double>(), rope_attention_factor(c), 1e-12);

  CpuBackend be(2);
  auto model = load_model_dir(dir / "ck", be);
  std::vector<float> logits(static_cast<size_t>(t * 300));
  model->evaluate(ids.data(), nullptr, 1, t, logits.data());
  MappedNpy want(dir / "ref/logits.npy");
  double diff = 0, scale = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(logits[i]) - want.as<float>()[i]));
    scale = std::max(scale, std::abs(static_cast<double>(want.as<float>()[i])));
  }
  EXPECT_LT(diff / scale, 1e-4);
}

}  // namespace
}  // namespace hessgpt
