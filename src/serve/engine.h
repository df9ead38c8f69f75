// The models behind the server: what one chat turn needs, apart from HTTP.
//
// TurnRunner is the seam between the server and the models: the scheduler
// and the HTTP layer see only it, so their tests can run on a scripted
// runner, and Engine is the real one: Model 1 and Model 2 with one KV-cache
// session each and the sandbox, as route::Assistant assembles them, but with
// the sampling chosen per turn (a request's temperature, seed, ...) where an
// Assistant fixes it once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "infer/sampler.h"
#include "infer/session_interface.h"
#include "route/router.h"
#include "route/sandbox.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::serve {

// One turn, fully resolved (defaults applied, budget fitted to the context).
struct TurnSpec {
  chat::Conversation conversation;  // ends with the user's message
  infer::SamplingOptions sampling;  // both models; seed included
  int64_t max_tokens = 512;         // Model 1's sampled tokens this turn
  bool routing = true;              // false: Model 1 alone, route tokens banned
};

struct TurnHooks {
  std::function<void(int32_t)> on_answer_token;  // each answer id as sampled
  // Polled before every token of either model; true abandons the turn by
  // throwing Cancelled.
  std::function<bool()> should_stop;
};

// The turn was abandoned because should_stop said so (a client went away,
// the server is stopping).
class Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("cancelled") {}
};

class TurnRunner {
 public:
  virtual ~TurnRunner() = default;
  virtual const Tokenizer& tokenizer() const = 0;
  virtual int64_t context() const = 0;  // Model 1's positions
  // The ids Model 1 is given for the conversation (the chat template plus
  // <|assistant|>). Safe to call from any thread, during run().
  virtual std::vector<int32_t> render(const chat::Conversation& conversation) const = 0;
  // Generates one assistant turn. One call at a time: the sessions are shared.
  // Throws Cancelled, or Error when the turn cannot run.
  virtual route::TurnResult run(const TurnSpec& spec, const TurnHooks& hooks) = 0;
};

struct EngineOptions {
  std::string model1_dir, model2_dir;
  int bits = -1;                   // 32/16/8/4, or -1: as stored
  int64_t max_route_tokens = 512;  // Model 2's tokens per route
  route::SandboxLimits sandbox;
};

class Engine final : public TurnRunner {
 public:
  // tokenizer and backend must outlive the engine. Throws Error naming the
  // checkpoint when a model cannot be opened or cannot read the tokenizer's ids.
  Engine(const Tokenizer& tokenizer, Backend& backend, const EngineOptions& options);
  ~Engine() override;

  const Tokenizer& tokenizer() const override { return tokenizer_; }
  int64_t context() const override;
  std::vector<int32_t> render(const chat::Conversation& conversation) const override;
  route::TurnResult run(const TurnSpec& spec, const TurnHooks& hooks) override;

 private:
  const Tokenizer& tokenizer_;
  EngineOptions options_;
  std::unique_ptr<infer::Session> model1_, model2_;
  std::unique_ptr<route::ProgramRunner> sandbox_;
};

}  // namespace hessgpt::serve
