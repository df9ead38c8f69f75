#include "serve/request.h"

#include <cmath>
#include <exception>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace hessgpt::serve {
namespace {

using nlohmann::json;

// Parsing stops at the first problem; the exception never leaves this file.
struct Invalid {
  ApiError error;
};

[[noreturn]] void invalid(std::string param, std::string message, std::string code = "") {
  throw Invalid{ApiError{400, std::move(message), std::move(param), std::move(code)}};
}

const json* find(const json& object, const std::string& key) {
  const auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;  // null counts as absent
}

std::string found(const json& j) {
  if (j.is_number_float()) return str_cat("a number (", j.dump(), ")");
  return str_cat(j.is_array() || j.is_object() ? "an " : "a ", j.type_name());
}

std::optional<double> number_field(const json& body, const std::string& key) {
  const json* j = find(body, key);
  if (!j) return std::nullopt;
  if (!j->is_number()) invalid(key, str_cat(key, ": expected a number, found ", found(*j)));
  const double v = j->get<double>();
  if (!std::isfinite(v)) invalid(key, str_cat(key, ": must be finite"));
  return v;
}

std::optional<int64_t> integer_field(const json& body, const std::string& key) {
  const json* j = find(body, key);
  if (!j) return std::nullopt;
  if (!j->is_number_integer())
    invalid(key, str_cat(key, ": expected an integer, found ", found(*j)));
  if (j->is_number_unsigned() &&
      j->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    invalid(key, str_cat(key, ": ", j->dump(), " is too large"));
  return j->get<int64_t>();
}

std::optional<bool> bool_field(const json& body, const std::string& key) {
  const json* j = find(body, key);
  if (!j) return std::nullopt;
  if (!j->is_boolean()) invalid(key, str_cat(key, ": expected true or false, found ", found(*j)));
  return j->get<bool>();
}

std::string string_field(const json& object, const std::string& key, const std::string& where) {
  const std::string param = str_cat(where, ".", key);
  const auto it = object.find(key);
  if (it == object.end()) invalid(param, str_cat(param, ": missing"));
  if (!it->is_string()) {
    invalid(param, str_cat(param, ": expected a string, found ", found(*it),
                           it->is_array() ? " (content parts are not supported)" : ""));
  }
  return it->get<std::string>();
}

// Our extension of an assistant message, as in the chat JSONL of SPEC §5, so
// a client can hand back a routed turn exactly as the trace reported it.
std::vector<chat::Route> parse_routes(const json& routes, const std::string& where) {
  const std::string param = where + ".routes";
  if (!routes.is_array())
    invalid(param, str_cat(param, ": expected an array, found ", found(routes)));
  if (routes.size() > chat::kMaxRoutesPerTurn) {
    invalid(param, str_cat(param, ": ", routes.size(), " routes; at most ", chat::kMaxRoutesPerTurn,
                           " per turn"));
  }
  std::vector<chat::Route> out;
  for (size_t k = 0; k < routes.size(); ++k) {
    const std::string rwhere = str_cat(param, "[", k, "]");
    if (!routes[k].is_object())
      invalid(rwhere, str_cat(rwhere, ": expected an object, found ", found(routes[k])));
    chat::Route r;
    const std::string kind = string_field(routes[k], "kind", rwhere);
    const auto parsed = chat::route_kind_from_name(kind);
    if (!parsed)
      invalid(rwhere + ".kind",
              str_cat(rwhere, ".kind: \"", kind, "\" is not one of math, code, logic"));
    r.kind = *parsed;
    r.request = string_field(routes[k], "request", rwhere);
    r.result = string_field(routes[k], "result", rwhere);
    out.push_back(std::move(r));
  }
  return out;
}

chat::Message parse_message(const json& m, size_t i) {
  const std::string where = str_cat("messages[", i, "]");
  if (!m.is_object()) invalid(where, str_cat(where, ": expected an object, found ", found(m)));
  chat::Message out;
  const std::string role = string_field(m, "role", where);
  if (role == "system") {
    out.role = chat::Role::kSystem;
  } else if (role == "user") {
    out.role = chat::Role::kUser;
  } else if (role == "assistant") {
    out.role = chat::Role::kAssistant;
  } else {
    invalid(where + ".role",
            str_cat(where, ".role: \"", role, "\" is not one of system, user, assistant"));
  }
  out.content = string_field(m, "content", where);
  if (const json* routes = find(m, "routes")) {
    if (out.role != chat::Role::kAssistant) {
      invalid(where + ".routes",
              str_cat(where, ".routes: only assistant messages may carry routes"));
    }
    out.routes = parse_routes(*routes, where);
  }
  return out;
}

chat::Conversation parse_messages(const json& body) {
  const json* messages = find(body, "messages");
  if (!messages) {
    invalid("messages", "messages: missing; expected an array of {\"role\", \"content\"} objects");
  }
  if (!messages->is_array())
    invalid("messages", str_cat("messages: expected an array, found ", found(*messages)));
  if (messages->empty()) invalid("messages", "messages: empty; a user message is needed");
  chat::Conversation conv;
  for (size_t i = 0; i < messages->size(); ++i) {
    conv.messages.push_back(parse_message((*messages)[i], i));
    if (conv.messages.back().role == chat::Role::kSystem && i != 0) {
      invalid(str_cat("messages[", i, "].role"),
              str_cat("messages[", i, "]: a system message may only come first"));
    }
  }
  const chat::Message& last = conv.messages.back();
  if (last.role != chat::Role::kUser) {
    const std::string param = str_cat("messages[", conv.messages.size() - 1, "].role");
    invalid(param, str_cat(param, ": the last message must be from the user (found \"",
                           chat::role_name(last.role), "\")"));
  }
  try {
    chat::validate(conv);  // the template's own rules, should they grow
  } catch (const Error& e) {
    invalid("messages", e.what());
  }
  return conv;
}

// Fields that would change the answer's meaning if ignored.
void refuse_unsupported(const json& body) {
  if (const auto n = integer_field(body, "n"); n && *n != 1)
    invalid("n", str_cat("n: only one choice per request is supported (got ", *n, ")"));
  if (const json* stop = find(body, "stop"); stop && !stop->empty() && *stop != "")
    invalid("stop", "stop: stop sequences are not supported");
  if (bool_field(body, "logprobs").value_or(false)) invalid("logprobs", "logprobs: not supported");
  if (const json* tools = find(body, "tools"); tools && !tools->empty())
    invalid("tools", "tools: not supported (routing to Model 2 is the assistant's own tool use)");
}

ChatRequest parse(std::string_view body, const RequestLimits& limits) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    invalid("", str_cat("request body is not valid JSON: ", e.what()));
  }
  if (!j.is_object())
    invalid("", str_cat("request body: expected a JSON object, found ", found(j)));

  ChatRequest r;
  r.conversation = parse_messages(j);
  refuse_unsupported(j);

  // max_completion_tokens is OpenAI's newer name for max_tokens.
  const std::string budget_key =
      find(j, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  r.max_tokens = integer_field(j, budget_key);
  if (r.max_tokens && (*r.max_tokens < 1 || *r.max_tokens > limits.max_tokens_cap)) {
    invalid(budget_key, str_cat(budget_key, ": must be between 1 and ", limits.max_tokens_cap,
                                " (the server's cap), got ", *r.max_tokens));
  }
  r.temperature = number_field(j, "temperature");
  if (r.temperature && (*r.temperature < 0 || *r.temperature > 2))
    invalid("temperature", str_cat("temperature: must be between 0 and 2, got ", *r.temperature));
  r.top_p = number_field(j, "top_p");
  if (r.top_p && !(*r.top_p > 0 && *r.top_p <= 1))
    invalid("top_p", str_cat("top_p: must be in (0, 1], got ", *r.top_p));
  r.top_k = integer_field(j, "top_k");
  if (r.top_k && *r.top_k < 0)
    invalid("top_k", str_cat("top_k: must be >= 0 (0: off), got ", *r.top_k));
  r.repetition_penalty = number_field(j, "repetition_penalty");
  if (r.repetition_penalty && !(*r.repetition_penalty > 0)) {
    invalid("repetition_penalty",
            str_cat("repetition_penalty: must be > 0 (1: off), got ", *r.repetition_penalty));
  }
  if (const auto seed = integer_field(j, "seed")) {
    if (*seed < 0) invalid("seed", str_cat("seed: must be >= 0, got ", *seed));
    r.seed = static_cast<uint64_t>(*seed);
  }
  r.stream = bool_field(j, "stream").value_or(false);
  r.routing = bool_field(j, "routing");
  if (r.routing.value_or(false) && !limits.routing_allowed)
    invalid("routing", "routing: this server runs Model 1 alone (--no-routing)");
  return r;
}

}  // namespace

ParsedRequest parse_chat_request(std::string_view body, const RequestLimits& limits) {
  ParsedRequest out;
  try {
    out.request = parse(body, limits);
  } catch (const Invalid& e) {
    out.error = e.error;
  } catch (const std::exception& e) {  // a bug here must still be a reply, not a crash
    out.error = ApiError{400, str_cat("invalid request: ", e.what()), "", ""};
  }
  return out;
}

TokenBudget token_budget(std::optional<int64_t> requested, int64_t prompt_tokens, int64_t context,
                         int64_t cap) {
  TokenBudget out;
  if (prompt_tokens >= context) {
    out.error = ApiError{
        400,
        str_cat("messages: the conversation is ", prompt_tokens, " tokens; Model 1's context is ",
                context, " tokens, which leaves no room for an answer"),
        "messages", "context_length_exceeded"};
    return out;
  }
  const int64_t room = context - prompt_tokens;
  if (requested && *requested > room) {
    out.error = ApiError{
        400,
        str_cat("max_tokens: the conversation (", prompt_tokens, " tokens) plus max_tokens (",
                *requested, ") exceed Model 1's context of ", context, " tokens"),
        "max_tokens", "context_length_exceeded"};
    return out;
  }
  out.max_tokens = requested ? *requested : std::min(cap, room);
  return out;
}

}  // namespace hessgpt::serve
