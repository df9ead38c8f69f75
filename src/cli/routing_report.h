// Human-readable output of the routed-assistant evaluation, shared by
// `hessgpt eval routing` and `hessgpt demo`.
#pragma once

#include <cstdio>

#include "route/assistant.h"
#include "route/routing_eval.h"

namespace hessgpt::cli {

// The evaluation's assistant options: greedy decoding (so the figures are
// reproducible) and the given per-turn budgets.
route::AssistantOptions eval_assistant_options(const std::string& model1, const std::string& model2,
                                               int bits, int64_t max_tokens);

// Runs the evaluation with a progress line on stderr.
route::RoutingEvalReport run_routing_eval(route::Assistant& assistant,
                                          const std::vector<route::RoutingEvalItem>& items, size_t limit,
                                          size_t examples);

// Model 2 alone on held-out request -> program items.
route::Model2EvalReport run_model2_eval(route::Assistant& assistant, const std::string& path, size_t limit);

// Routes of a trace (trace_to_json) as indented "route:/program:/result:" lines.
void print_trace(const nlohmann::json& trace, std::FILE* out);

// The headline figures, the per-task table and the example conversations.
void print_routing_report(const route::RoutingEvalReport& report, std::FILE* out);
void print_model2_report(const route::Model2EvalReport& report, std::FILE* out);

}  // namespace hessgpt::cli
