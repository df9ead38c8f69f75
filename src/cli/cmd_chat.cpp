// hessgpt chat: the dual-model assistant. Model 1 answers and routes code,
// maths and logic to Model 2 (router.h); Model 2's Python runs in the sandbox.
// Interactive by default (history kept; /reset, /trace, /quit), or one-shot
// with --prompt.
#include <cstdio>
#include <iostream>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "cli/routing_report.h"
#include "route/assistant.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::cli {
namespace {

struct ChatOptions {
  std::string model1, model2, prompt, system, tokenizer;
  bool trace = false, json = false;
  double temperature = 0.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  int bits = -1;
  int64_t max_model1 = 512, max_model2 = 512;
  ComputeOptions compute;
};

void run_chat(const ChatOptions& o) {
  auto backend = make_decode_backend(o.compute, {o.model1, o.model2}, o.bits);
  auto tokenizer = Tokenizer::load_or_default(o.tokenizer);
  route::AssistantOptions ao;
  ao.model1_dir = o.model1;
  ao.model2_dir = o.model2;
  ao.bits = o.bits;
  ao.sampling.temperature = o.temperature;
  ao.sampling.top_k = o.top_k;
  ao.sampling.top_p = o.top_p;
  ao.sampling.seed = o.seed;
  ao.sampling.validate();
  ao.router.max_model1_tokens = o.max_model1;
  ao.router.max_model2_tokens = o.max_model2;
  route::Assistant assistant(*tokenizer, *backend, ao);
  route::Router& router = assistant.router();

  chat::Conversation history;
  if (!o.system.empty()) history.messages.push_back({chat::Role::kSystem, o.system, {}});
  auto turn = [&](const std::string& user) {
    history.messages.push_back({chat::Role::kUser, user, {}});
    const route::TurnResult r = router.respond(history);
    history.messages.push_back(r.message);
    return r;
  };

  if (!o.prompt.empty()) {
    const route::TurnResult r = turn(o.prompt);
    if (o.json) {
      print_json({{"answer", r.answer},
                  {"trace", route::trace_to_json(r.trace)},
                  {"end", route::turn_end_name(r.end)},
                  {"model1_tokens", r.model1_tokens}});
      return;
    }
    if (o.trace) print_trace(route::trace_to_json(r.trace), stderr);
    std::printf("%s\n", r.answer.c_str());
    return;
  }

  bool show_trace = o.trace;
  std::fprintf(stderr, "hessgpt chat: /reset clears the history, /trace toggles route traces, /quit ends\n");
  std::string line;
  while (true) {
    std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      history.messages.resize(o.system.empty() ? 0 : 1);
      std::fprintf(stderr, "(history cleared)\n");
      continue;
    }
    if (line == "/trace") {
      show_trace = !show_trace;
      std::fprintf(stderr, "(traces %s)\n", show_trace ? "on" : "off");
      continue;
    }
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    try {
      const route::TurnResult r = turn(line);
      if (show_trace) print_trace(route::trace_to_json(r.trace), stderr);
      std::printf("%s\n", r.answer.c_str());
      std::fflush(stdout);
      if (r.end != route::TurnEnd::kEnd)
        std::fprintf(stderr, "(turn ended: %s %s)\n", std::string(route::turn_end_name(r.end)).c_str(),
                     r.end_detail.c_str());
    } catch (const Error& e) {
      // A turn that cannot run (e.g. the context is full) leaves the session usable.
      history.messages.pop_back();
      std::fprintf(stderr, "error: %s\n", e.what());
    }
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* cmd = app.add_subcommand("chat", "Chat with the dual-model assistant (routing + sandbox)");
  cmd->add_option("--model1", o->model1, "Model 1 (factual) checkpoint")->required();
  cmd->add_option("--model2", o->model2, "Model 2 (code) checkpoint")->required();
  cmd->add_option("--prompt", o->prompt, "One-shot: answer this and exit");
  cmd->add_option("--system", o->system, "System message");
  cmd->add_flag("--trace", o->trace, "Print every route (request, program, result) on stderr");
  cmd->add_flag("--json", o->json, "With --prompt: {answer, trace, end} on stdout");
  cmd->add_option("--temperature", o->temperature, "0: greedy")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Top-k sampling (0: off)");
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling (1: off)");
  cmd->add_option("--seed", o->seed, "Sampling seed");
  cmd->add_option("--bits", o->bits, "Weights: 32, 16, 8 or 4 (default: as stored)");
  cmd->add_option("--max-tokens", o->max_model1, "Model 1 tokens per turn")->capture_default_str();
  cmd->add_option("--max-route-tokens", o->max_model2, "Model 2 tokens per route")->capture_default_str();
  cmd->add_option("--tokenizer", o->tokenizer, "SentencePiece model (default: built-in Mistral)");
  add_compute_options(cmd, o->compute);
  cmd->callback([o] {
    if (o->json && o->prompt.empty()) HG_FAIL("--json needs --prompt (one-shot mode)");
    run_chat(*o);
  });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
