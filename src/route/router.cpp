// The router's state machine; the protocol and its rules are in router.h.
#include "route/router.h"

#include <exception>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace hessgpt::route {
namespace {

std::string trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e + 1 - b));
}

// Cuts at a UTF-8 boundary and marks the cut, so a long result cannot flood
// Model 1's context.
std::string cap(std::string s, size_t max_chars) {
  if (s.size() <= max_chars) return s;
  size_t cut = max_chars;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  s.resize(cut);
  return s + "…";
}

// "<|user|>" or "id 1" for <s>/</s>, which have no special name.
std::string token_name(int32_t id) {
  const std::string_view name = token::special_name(id);
  if (!name.empty()) return std::string(name);
  if (id == token::kBos) return "<s>";
  if (id == token::kEos) return "</s>";
  return str_cat("id ", id);
}

// Tokens that may not appear inside text Model 1 or Model 2 writes.
bool is_control(int32_t id) {
  return token::is_special(id) || id == token::kBos || id == token::kEos;
}

}  // namespace

SandboxRunner::SandboxRunner(SandboxLimits limits, size_t max_result_chars)
    : limits_(limits), max_result_chars_(max_result_chars) {
  limits_.validate();
}

ProgramResult SandboxRunner::run(std::string_view program) {
  const SandboxResult r = run_python_sandboxed(program, limits_);
  const std::string text = route_result_text(r, max_result_chars_);
  ProgramResult out;
  constexpr std::string_view kPrefix = "error: ";
  if (text.rfind(kPrefix, 0) == 0) {
    out.error = text.substr(kPrefix.size());  // also "no output" from a silent program
  } else {
    out.ok = true;
    out.output = text;
  }
  return out;
}

void RouterOptions::validate() const {
  if (max_model1_tokens <= 0) HG_FAIL("router: max_model1_tokens must be positive (got ", max_model1_tokens, ")");
  if (max_model2_tokens <= 0) HG_FAIL("router: max_model2_tokens must be positive (got ", max_model2_tokens, ")");
  if (max_code_result_chars == 0) HG_FAIL("router: max_code_result_chars must be positive");
}

Router::Router(const Tokenizer& tokenizer, TokenGenerator& model1, TokenGenerator& model2,
               ProgramRunner& runner, RouterOptions options)
    : tokenizer_(tokenizer), model1_(model1), model2_(model2), runner_(runner), options_(options) {
  options_.validate();
}

TurnResult Router::respond(const chat::Conversation& conversation) {
  model1_.reset();
  const std::vector<int32_t> prompt = chat::encode_generation_prompt(tokenizer_, conversation);
  model1_.append(prompt);
  return run_turn();
}

TurnResult Router::run_turn() {
  enum class State { kAnswer, kRequest };
  State state = State::kAnswer;
  chat::RouteKind kind = chat::RouteKind::kMath;
  std::vector<int32_t> request_ids, answer_ids;
  TurnResult turn;
  size_t routes_run = 0;

  // A request that never reached its <|end|>: recorded, never run.
  const auto unfinished = [&](const std::string& why) {
    TraceEntry e;
    e.kind = kind;
    e.request = trim(tokenizer_.decode(request_ids));
    e.error = why;
    turn.trace.push_back(std::move(e));
  };

  for (;;) {
    if (turn.model1_tokens >= options_.max_model1_tokens) {
      turn.end = TurnEnd::kBudget;
      turn.end_detail = str_cat("Model 1 used its budget of ", options_.max_model1_tokens, " tokens");
      if (state == State::kRequest)
        unfinished(str_cat("request not finished: the turn's budget of ", options_.max_model1_tokens,
                           " tokens ran out before <|end|>"));
      break;
    }
    const int32_t id = model1_.next();
    ++turn.model1_tokens;

    if (state == State::kAnswer) {
      if (id == token::kEnd || id == token::kEos) {  // </s>: a pretrained habit, also an end
        turn.end = TurnEnd::kEnd;
        break;
      }
      if (const auto route = chat::route_kind_of(id)) {
        kind = *route;
        request_ids.clear();
        if (routes_run >= options_.max_routes) {
          unfinished(str_cat("route refused: at most ", options_.max_routes, " routes per turn"));
          turn.end = TurnEnd::kRouteLimit;
          turn.end_detail = str_cat("Model 1 asked for route ", routes_run + 1, " (limit ",
                                    options_.max_routes, ")");
          break;
        }
        state = State::kRequest;
        continue;
      }
      if (is_control(id)) {
        turn.end = TurnEnd::kMalformed;
        turn.end_detail = str_cat("Model 1 wrote ", token_name(id), " in its answer");
        break;
      }
      answer_ids.push_back(id);
      if (options_.on_answer_token) options_.on_answer_token(id);
      continue;
    }

    // State::kRequest
    if (id == token::kEnd) {
      TraceEntry e = run_route(kind, trim(tokenizer_.decode(request_ids)));
      model1_.append(chat::encode_route_result(tokenizer_, e.result));
      e.injected = true;
      turn.message.routes.push_back({e.kind, e.request, e.result});
      turn.trace.push_back(std::move(e));
      ++routes_run;
      state = State::kAnswer;
      continue;
    }
    if (is_control(id)) {
      unfinished(str_cat("malformed request: ", token_name(id), " before <|end|>"));
      turn.end = TurnEnd::kMalformed;
      turn.end_detail = str_cat("Model 1 wrote ", token_name(id), " inside a request");
      break;
    }
    request_ids.push_back(id);
  }

  turn.answer = trim(tokenizer_.decode(answer_ids));
  turn.message.role = chat::Role::kAssistant;
  turn.message.content = turn.answer;
  return turn;
}

TraceEntry Router::run_route(chat::RouteKind kind, std::string request) {
  TraceEntry e;
  e.kind = kind;
  e.request = std::move(request);
  const auto fail = [&](std::string why) {
    e.error = std::move(why);
    e.result = "error: " + e.error;
    return e;
  };
  if (e.request.empty()) return fail("empty request");

  model2_.reset();
  model2_.append(chat::encode_route_prompt(tokenizer_, kind, e.request));
  std::vector<int32_t> ids;
  bool closed = false;
  std::string stray;
  while (e.model2_tokens < options_.max_model2_tokens) {
    const int32_t id = model2_.next();
    ++e.model2_tokens;
    if (id == token::kEnd || id == token::kEos) {
      closed = true;
      break;
    }
    if (is_control(id)) {
      stray = token_name(id);
      break;
    }
    ids.push_back(id);
  }
  const std::string answer = tokenizer_.decode(ids);
  e.program = kind == chat::RouteKind::kCode ? trim(answer) : extract_program(answer);
  if (!stray.empty()) return fail(str_cat("model 2 wrote ", stray, " in its answer"));
  if (!closed)
    return fail(str_cat("model 2 did not finish within ", options_.max_model2_tokens, " tokens"));

  if (kind == chat::RouteKind::kCode) {
    if (e.program.empty()) return fail("model 2 wrote no code");
    e.result = cap(e.program, options_.max_code_result_chars);
    return e;
  }
  if (e.program.empty()) return fail("model 2 wrote no program");
  ProgramResult r;
  try {
    r = runner_.run(e.program);
  } catch (const std::exception& ex) {  // a runner must not throw; if one does, it is this route's failure
    r.ok = false;
    r.error = str_cat("program runner failed: ", ex.what());
  }
  e.executed = true;
  if (!r.ok) return fail(r.error.empty() ? "program failed" : r.error);
  e.result = r.output;
  return e;
}

std::string extract_program(std::string_view answer) {
  const size_t open = answer.find("```");
  if (open == std::string_view::npos) return trim(answer);
  size_t body = answer.find('\n', open);
  if (body == std::string_view::npos) return "";
  ++body;  // past the language tag line
  const size_t close = answer.find("```", body);
  const std::string_view code =
      answer.substr(body, close == std::string_view::npos ? std::string_view::npos : close - body);
  return trim(code);
}

std::string_view turn_end_name(TurnEnd end) {
  switch (end) {
    case TurnEnd::kEnd: return "end";
    case TurnEnd::kBudget: return "budget";
    case TurnEnd::kRouteLimit: return "route_limit";
    case TurnEnd::kMalformed: return "malformed";
  }
  return "unknown";
}

nlohmann::json trace_to_json(const std::vector<TraceEntry>& trace) {
  nlohmann::json out = nlohmann::json::array();
  for (const TraceEntry& e : trace) {
    nlohmann::json j;
    j["kind"] = chat::route_kind_name(e.kind);
    j["request"] = e.request;
    j[e.kind == chat::RouteKind::kCode ? "code" : "program"] = e.program;
    j["executed"] = e.executed;
    j["result"] = e.result;
    j["error"] = e.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.error);
    j["injected"] = e.injected;
    j["model2_tokens"] = e.model2_tokens;
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace hessgpt::route
