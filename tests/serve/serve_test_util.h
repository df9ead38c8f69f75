// Shared by the serve tests: a scripted TurnRunner and two tiny trained
// models. (HTTP helpers: http_test_util.h.)
#pragma once

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "core/error.h"
#include "serve/engine.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::serve_test {

using nlohmann::json;

inline const Tokenizer& tok() {
  static const std::unique_ptr<Tokenizer> t = Tokenizer::load_default();
  return *t;
}

inline std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") + 1 - b);
}

// Answers "echo: <last user message>" one token at a time, like a model
// would through the router's hooks. A user message "boom" throws; "slow"
// answers 300 tokens with a pause before each. Records what it was asked.
class FakeRunner final : public serve::TurnRunner {
 public:
  int64_t context_tokens = 512;
  std::chrono::milliseconds slow_pause{10};

  const Tokenizer& tokenizer() const override { return tok(); }
  int64_t context() const override { return context_tokens; }
  std::vector<int32_t> render(const chat::Conversation& c) const override {
    return chat::encode_generation_prompt(tok(), c);
  }
  route::TurnResult run(const serve::TurnSpec& spec, const serve::TurnHooks& hooks) override {
    if (running_.fetch_add(1) != 0) overlapped = true;
    struct Leave {
      std::atomic<int>& n;
      ~Leave() { --n; }
    } leave{running_};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      specs_.push_back(spec);
    }
    const std::string& user = spec.conversation.messages.back().content;
    if (user == "boom") throw std::runtime_error("boom");
    const bool slow = user == "slow";
    std::vector<int32_t> ids = tok().encode(slow ? "" : "echo: " + user);
    if (slow)
      for (int i = 0; i < 300; ++i) ids.push_back(tok().encode(" a").back());
    route::TurnResult r;
    std::vector<int32_t> used;
    for (int32_t id : ids) {
      if (r.model1_tokens >= spec.max_tokens) break;
      if (hooks.should_stop && hooks.should_stop()) {
        tokens_when_cancelled = r.model1_tokens;
        throw serve::Cancelled();
      }
      if (slow) std::this_thread::sleep_for(slow_pause);
      ++r.model1_tokens;
      used.push_back(id);
      if (hooks.on_answer_token) hooks.on_answer_token(id);
    }
    r.end = used.size() < ids.size() ? route::TurnEnd::kBudget : route::TurnEnd::kEnd;
    r.answer = trim(tok().decode(used));
    return r;
  }

  std::vector<serve::TurnSpec> specs() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return specs_;
  }
  bool running() const { return running_ > 0; }

  std::atomic<bool> overlapped{false};
  std::atomic<int64_t> tokens_when_cancelled{-1};

 private:
  mutable std::mutex mutex_;
  std::vector<serve::TurnSpec> specs_;
  std::atomic<int> running_{0};
};

// Polls `done` for up to `seconds`.
template <typename F>
bool eventually(F done, double seconds = 10) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

// Two tiny models (d 64, 2 layers, the real 32,008-id vocabulary, context
// 256) fine-tuned for a few steps so that greedy decoding says something:
// Model 1 learnt to route "What is 37 times 41?" (<|math|> Calculate 37*41)
// and to answer "Hello there"; Model 2 learnt to answer the request with
// print(37*41), which the sandbox runs. Made once per test binary.
struct TinyAssistant {
  testing::TempDir dir;
  std::string model1, model2;
  std::string chat_command() const {  // the chat the server must agree with
    return testing::hessgpt_binary() + " chat --model1 " + model1 + " --model2 " + model2 +
           " --max-tokens 32 --max-route-tokens 16 --threads 1 --device cpu";
  }
};

inline const TinyAssistant& tiny_assistant() {
  static const std::unique_ptr<TinyAssistant> a = [] {
    auto t = std::make_unique<TinyAssistant>();
    const std::string bin = testing::hessgpt_binary();
    std::ofstream(t->dir / "m.json")
        << R"({"vocab_size": 32008, "hidden_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
               "intermediate_size": 176, "max_position_embeddings": 256})";
    std::ofstream(t->dir / "m1.jsonl")
        << R"({"messages": [{"role": "user", "content": "What is 37 times 41?"},)"
        << R"( {"role": "assistant", "content": "37 times 41 is 1517.", "routes":)"
        << R"( [{"kind": "math", "request": "Calculate 37*41", "result": "1517"}]}]})"
        << "\n"
        << R"({"messages": [{"role": "user", "content": "Hello there"},)"
        << R"( {"role": "assistant", "content": "Hello! How can I help?"}]})"
        << "\n";
    std::ofstream(t->dir / "m2.jsonl")
        << R"({"messages": [{"role": "user", "content": "Calculate 37*41"},)"
        << R"j( {"role": "assistant", "content": "print(37*41)"}]})j"
        << "\n";
    // One thread: on a busy 2-core machine OpenMP's spinning makes two far slower.
    const std::string loop =
        " --full --batch 2 --lr 3e-3 --eval-every 1000 --save-every 1000 --log-every 1000"
        " --threads 1 --device cpu";
    for (const auto& [name, seed, steps] :
         {std::tuple{"m1", "1", "60"}, std::tuple{"m2", "2", "30"}}) {
      const std::string base = t->dir / (std::string(name) + "-base");
      const std::string data = t->dir / (std::string(name) + ".jsonl");
      auto r = testing::run_command(bin + " init --model " + (t->dir / "m.json") + " --seed " +
                                    seed + " --out " + base);
      if (r.exit_code != 0) throw std::runtime_error("init failed: " + r.out);
      r = testing::run_command(bin + " sft --base " + base + " --data " + data + " --eval-data " +
                               data + " --out " + (t->dir / name) + " --steps " + steps + loop);
      if (r.exit_code != 0) throw std::runtime_error("sft failed: " + r.out);
    }
    t->model1 = t->dir / "m1/final";
    t->model2 = t->dir / "m2/final";
    return t;
  }();
  return *a;
}

}  // namespace hessgpt::serve_test
