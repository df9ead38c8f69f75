// The JSON the server sends: OpenAI's shapes (chat.completion,
// chat.completion.chunk, model list, error), each with a "hessgpt" object
// for what OpenAI has no field for (the route trace, how the turn ended).
//
//   {"id", "object": "chat.completion", "created", "model",
//    "choices": [{"index": 0, "message": {"role": "assistant", "content"},
//                 "finish_reason": "stop" | "length"}],
//    "usage": {"prompt_tokens", "completion_tokens", "total_tokens"},
//    "hessgpt": {"trace": [...as chat --json...], "end", "end_detail", "routing",
//                "seed", "model2_tokens", "seconds", "queued_seconds"}}
//
// completion_tokens counts Model 1's sampled tokens (route requests and the
// closing <|end|> included); Model 2's are in hessgpt.model2_tokens.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "route/router.h"
#include "serve/request.h"

namespace hessgpt::serve {

// Shared by a completion and all its chunks.
struct CompletionHeader {
  std::string id;       // "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

struct TurnFacts {
  int64_t prompt_tokens = 0;
  bool routing = true;
  uint64_t seed = 0;
  double seconds = 0, queued_seconds = 0;
};

// Never throws: text that is not valid UTF-8 is written with U+FFFD.
std::string to_text(const nlohmann::json& j);
// One server-sent event: "data: <json>\n\n".
std::string sse_event(const nlohmann::json& j);

// "invalid_request_error" for 4xx, "server_error" for 5xx.
std::string_view error_type(int status);
nlohmann::json error_json(const ApiError& error);

nlohmann::json models_json(const std::string& model, int64_t created, int64_t context);

// "stop" when Model 1 ended its turn (also a refused route or a stray
// special token: hessgpt.end tells them apart), "length" when the budget ran out.
std::string_view finish_reason(route::TurnEnd end);

nlohmann::json completion_json(const CompletionHeader& header, const route::TurnResult& turn,
                               const TurnFacts& facts);
// A streamed chunk carrying `delta` ({"role": ...} first, then {"content": ...}).
nlohmann::json chunk_json(const CompletionHeader& header, nlohmann::json delta);
// The last chunk: empty delta, finish_reason, usage and the hessgpt object.
nlohmann::json final_chunk_json(const CompletionHeader& header, const route::TurnResult& turn,
                                const TurnFacts& facts);

}  // namespace hessgpt::serve
