// Held-out evaluation of the dual-model assistant (the demo's report, SPEC §6).
//
// Input: the routing-decision file of `hessgpt synth routing`
// (model1_eval_routing.jsonl), one single-turn conversation a line with
//   should_route (bool), route_kind ("math"|"code"|"logic"|null), task,
//   expected_request, expected_answer.
// Every item is answered twice by the same Model 1 weights:
//   routed  the full router: Model 1 may route to Model 2 and the sandbox;
//   alone   Model 1 with the three route tokens banned from sampling, so it
//           has to answer by itself (what a single model would do).
// Figures:
//   routed_accuracy        share of routed tasks (should_route) whose routed
//                          answer contains the expected answer (answer_matches)
//   model1_alone_accuracy  the same tasks, answered alone
//   route_decision_accuracy share of all items (routed tasks and factual
//                          questions) where Model 1 routed iff it should
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "route/router.h"
#include "tokenizer/chat_template.h"

namespace hessgpt::route {

struct RoutingEvalItem {
  chat::Conversation conversation;  // ends with the user's turn
  bool should_route = false;
  std::optional<chat::RouteKind> route_kind;
  std::string task;
  std::string expected_request;
  std::string expected_answer;
};

// Reads the JSONL file; throws Error naming the line and field for bad input.
std::vector<RoutingEvalItem> load_routing_eval(const std::string& path);

// Exact-answer match: `expected` occurs in `answer` and is not glued to a
// letter or digit on either side, nor part of a longer number (so "34" does
// not match "3468", "21" not "21.5", "12" not "-12" or "3.12"; "3468" matches
// "68 × 51 = 3468."). Whitespace runs count as one space in both strings.
bool answer_matches(std::string_view answer, std::string_view expected);

struct RoutingEvalOptions {
  size_t limit = 0;                // items to use (0: all), taken in file order
  size_t examples = 4;             // routed conversations kept with their traces
  // Called after every item with (done, total); the demo prints progress.
  std::function<void(size_t, size_t)> on_progress;
};

struct RoutingEvalReport {
  size_t items = 0;               // all items evaluated
  size_t tasks = 0;               // routed tasks among them
  size_t routed_correct = 0, alone_correct = 0;
  size_t decision_correct = 0;
  size_t routed_when_should = 0, routed_when_should_not = 0, factual = 0;
  size_t kind_correct = 0;         // routed tasks whose first route had the expected kind
  size_t request_exact = 0;        // ... whose first request equals the expected one
  double seconds = 0;
  nlohmann::json per_task = nlohmann::json::object();  // task -> {tasks, routed_correct, alone_correct}
  nlohmann::json examples = nlohmann::json::array();   // {prompt, answer, alone_answer, expected, trace}

  double routed_accuracy() const;
  double model1_alone_accuracy() const;
  double route_decision_accuracy() const;
  nlohmann::json to_json() const;
};

// `routed` routes with Model 2 and the sandbox; `alone` must be a router over
// a Model 1 generator that cannot sample route tokens (see
// alone_sampling() in session_generator.h).
RoutingEvalReport evaluate_routing(const std::vector<RoutingEvalItem>& items, Router& routed,
                                   Router& alone, const RoutingEvalOptions& options);

// Model 2 on its own, on held-out request -> program items (model2_eval.jsonl
// of `synth routing`: {"kind", "messages": [user request, assistant program],
// "result"}): a math/logic item is right when its program's output equals the
// recorded result, a code item when the code equals the recorded code.
struct Model2EvalReport {
  size_t items = 0, correct = 0, failed_to_run = 0;
  nlohmann::json per_task = nlohmann::json::object();  // task -> {items, correct}
  nlohmann::json failures = nlohmann::json::array();   // the first wrong items
  double accuracy() const;
  nlohmann::json to_json() const;
};
Model2EvalReport evaluate_model2(const std::string& path, Router& router, size_t limit);

}  // namespace hessgpt::route
