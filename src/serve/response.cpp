#include "serve/response.h"

namespace hessgpt::serve {
namespace {

using nlohmann::json;

json usage_json(const route::TurnResult& turn, const TurnFacts& facts) {
  return {{"prompt_tokens", facts.prompt_tokens},
          {"completion_tokens", turn.model1_tokens},
          {"total_tokens", facts.prompt_tokens + turn.model1_tokens}};
}

json hessgpt_json(const route::TurnResult& turn, const TurnFacts& facts) {
  int64_t model2_tokens = 0;
  for (const route::TraceEntry& e : turn.trace) model2_tokens += e.model2_tokens;
  return {{"trace", route::trace_to_json(turn.trace)},
          {"end", route::turn_end_name(turn.end)},
          {"end_detail", turn.end_detail},
          {"routing", facts.routing},
          {"seed", facts.seed},
          {"model2_tokens", model2_tokens},
          {"seconds", facts.seconds},
          {"queued_seconds", facts.queued_seconds}};
}

json base(const CompletionHeader& header, std::string_view object) {
  return {
      {"id", header.id}, {"object", object}, {"created", header.created}, {"model", header.model}};
}

}  // namespace

std::string to_text(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string sse_event(const json& j) { return "data: " + to_text(j) + "\n\n"; }

std::string_view error_type(int status) {
  return status >= 500 ? "server_error" : "invalid_request_error";
}

json error_json(const ApiError& error) {
  return {{"error",
           {{"message", error.message},
            {"type", error_type(error.status)},
            {"param", error.param.empty() ? json(nullptr) : json(error.param)},
            {"code", error.code.empty() ? json(nullptr) : json(error.code)}}}};
}

json models_json(const std::string& model, int64_t created, int64_t context) {
  return {{"object", "list"},
          {"data", json::array({{{"id", model},
                                 {"object", "model"},
                                 {"created", created},
                                 {"owned_by", "hessgpt"},
                                 {"max_model_len", context}}})}};
}

std::string_view finish_reason(route::TurnEnd end) {
  return end == route::TurnEnd::kBudget ? "length" : "stop";
}

json completion_json(const CompletionHeader& header, const route::TurnResult& turn,
                     const TurnFacts& facts) {
  json j = base(header, "chat.completion");
  j["choices"] = json::array({{{"index", 0},
                               {"message", {{"role", "assistant"}, {"content", turn.answer}}},
                               {"finish_reason", finish_reason(turn.end)}}});
  j["usage"] = usage_json(turn, facts);
  j["hessgpt"] = hessgpt_json(turn, facts);
  return j;
}

json chunk_json(const CompletionHeader& header, json delta) {
  json j = base(header, "chat.completion.chunk");
  j["choices"] =
      json::array({{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", nullptr}}});
  return j;
}

json final_chunk_json(const CompletionHeader& header, const route::TurnResult& turn,
                      const TurnFacts& facts) {
  json j = base(header, "chat.completion.chunk");
  j["choices"] = json::array(
      {{{"index", 0}, {"delta", json::object()}, {"finish_reason", finish_reason(turn.end)}}});
  j["usage"] = usage_json(turn, facts);
  j["hessgpt"] = hessgpt_json(turn, facts);
  return j;
}

}  // namespace hessgpt::serve
