// The router (SPEC §3): a state machine over Model 1's generated tokens that
// hands code, maths and logic requests to Model 2 and feeds the results back.
//
//   Model 1:  <|assistant|> <|math|> Calculate 37*41 <|end|>        ← the router stops Model 1 here
//   Model 2:  <s> <|user|> <|math|> Calculate 37*41 <|end|> <|assistant|> print(37*41) <|end|>
//   sandbox:  print(37*41) → "1517"
//   Model 1:  ... <|result|> 1517 <|end|> 37 × 41 = 1517. <|end|>   ← injected, then Model 1 resumes
//
// States while Model 1 generates one assistant turn:
//   kAnswer   ordinary tokens are the answer; <|end|> ends the turn;
//             <|code|>/<|math|>/<|logic|> opens a request (kRequest);
//             any other special token ends the turn as malformed.
//   kRequest  ordinary tokens are the request text; <|end|> closes it, the
//             router runs the route and injects <|result|> R <|end|>, back to
//             kAnswer; any other special token ends the turn as malformed.
// Rules:
//   - At most RouterOptions::max_routes (3) routes per turn. A further route
//     token is refused: the turn ends there (TurnEnd::kRouteLimit) with the
//     answer written so far, and the trace records the refused route. We do
//     not let Model 1 continue after a refused route because its context
//     would then hold a shape it was never trained on (4 routes, or a route
//     without a result), and the turn could not be stored as a valid
//     conversation (chat::validate allows 3).
//   - Model 1 may sample at most max_model1_tokens per turn (injected result
//     tokens do not count). Running out ends the turn (kBudget); a request
//     cut off by the budget (including a route token as the very last
//     token) is recorded in the trace as unfinished and not run.
//   - Model 2 gets a fresh context per route and at most max_model2_tokens;
//     if it does not close with <|end|> (or </s>) the route's result is
//     "error: model 2 did not finish …" and Model 1 continues with it.
//   - math/logic: Model 2's answer (a ``` fence is stripped) runs in the
//     ProgramRunner; its result, or "error: …", is R. code: the code is R
//     (cut to max_code_result_chars).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "route/sandbox.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::route {

// One model's generation, as the router needs it. The generation engine
// implements it over a KV cache; tests implement it with scripts.
class TokenGenerator {
 public:
  virtual ~TokenGenerator() = default;
  // Forgets the whole context.
  virtual void reset() = 0;
  // Extends the context with `ids` (prompt or injected tokens).
  virtual void append(std::span<const int32_t> ids) = 0;
  // Samples one token given the context and appends it to the context.
  virtual int32_t next() = 0;
};

// Runs Model 2's program for a math/logic route.
struct ProgramResult {
  bool ok = false;
  std::string output;  // trimmed, capped stdout when ok
  std::string error;   // short reason when !ok ("ZeroDivisionError: division by zero")
};

class ProgramRunner {
 public:
  virtual ~ProgramRunner() = default;
  // Must not throw for anything the program does.
  virtual ProgramResult run(std::string_view program) = 0;
};

// The real runner: the bubblewrap sandbox.
class SandboxRunner : public ProgramRunner {
 public:
  explicit SandboxRunner(SandboxLimits limits = {}, size_t max_result_chars = 200);
  ProgramResult run(std::string_view program) override;

 private:
  SandboxLimits limits_;
  size_t max_result_chars_;
};

struct RouterOptions {
  size_t max_routes = chat::kMaxRoutesPerTurn;  // per turn (SPEC §3: 3)
  int64_t max_model1_tokens = 512;              // sampled Model 1 tokens per turn
  int64_t max_model2_tokens = 512;              // per route
  size_t max_code_result_chars = 4000;          // a code route's result in Model 1's context
  // Called with each id Model 1 adds to its answer (not route tokens, requests
  // or injected results) as soon as it is sampled, so a server can stream the
  // answer; TurnResult::answer is the trimmed decode of exactly these ids.
  // May throw to abandon the turn (a client that went away).
  std::function<void(int32_t)> on_answer_token;
  void validate() const;
};

// One route as it happened. A refused or unfinished request has an error and
// no program.
struct TraceEntry {
  chat::RouteKind kind = chat::RouteKind::kMath;
  std::string request;
  std::string program;  // Model 2's answer: the program (math/logic) or the code
  bool executed = false;
  std::string result;   // what was injected as R ("" when nothing was injected)
  std::string error;    // "" on success
  bool injected = false;
  int64_t model2_tokens = 0;
};

enum class TurnEnd {
  kEnd,         // Model 1 closed its answer with <|end|>
  kBudget,      // max_model1_tokens ran out
  kRouteLimit,  // a route token beyond max_routes
  kMalformed,   // an unexpected special token
};

struct TurnResult {
  std::string answer;             // Model 1's text outside routes, trimmed
  std::vector<TraceEntry> trace;  // every route, in order, including refused ones
  TurnEnd end = TurnEnd::kEnd;
  std::string end_detail;         // why the turn ended, when not kEnd
  int64_t model1_tokens = 0;      // sampled by Model 1 this turn
  // The assistant message for the conversation history: the answer and the
  // routes whose results were injected (at most max_routes).
  chat::Message message;
};

class Router {
 public:
  // All references must outlive the router.
  Router(const Tokenizer& tokenizer, TokenGenerator& model1, TokenGenerator& model2,
         ProgramRunner& runner, RouterOptions options = {});

  // Generates one assistant turn. Model 1's context must already end with
  // <|assistant|> (see respond()); afterwards it holds the whole turn.
  TurnResult run_turn();
  // Resets Model 1, feeds it the conversation with a trailing <|assistant|>
  // (chat::encode_generation_prompt) and runs the turn.
  TurnResult respond(const chat::Conversation& conversation);
  // One route on its own: Model 2 answers the request in a fresh context and,
  // for math/logic, the program runs. What run_turn does for each request.
  TraceEntry run_route(chat::RouteKind kind, std::string request);

 private:

  const Tokenizer& tokenizer_;
  TokenGenerator& model1_;
  TokenGenerator& model2_;
  ProgramRunner& runner_;
  RouterOptions options_;
};

// Model 2's answer as a program: the first ``` fenced block if there is one
// (its language tag dropped), else the whole text.
std::string extract_program(std::string_view answer);

std::string_view turn_end_name(TurnEnd end);  // "end" | "budget" | "route_limit" | "malformed"

// {"kind", "request", "program", "result", "error", "executed"} per entry: the
// `trace` of `hessgpt chat --json`.
nlohmann::json trace_to_json(const std::vector<TraceEntry>& trace);

}  // namespace hessgpt::route
