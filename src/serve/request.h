// The body of POST /v1/chat/completions (OpenAI's chat completions API, plus
// two extensions: top_k and routing) parsed into native types, with every
// check a client can fail, before anything touches a model:
//
//   {"messages": [{"role": "system|user|assistant", "content": "...",
//                  "routes": [{"kind", "request", "result"}]}],   <- routes: ours,
//    "max_tokens": 64, "temperature": 0, "top_p": 1, "top_k": 0,     assistant turns only
//    "seed": 1, "stream": false, "routing": true}
//
// A problem comes back as an ApiError (status, message naming the field)
// instead of an exception, so a handler never has to catch. The messages
// become a chat::Conversation, which the server renders with the chat
// template exactly as `hessgpt chat` and SFT do (chat::encode_generation_prompt).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tokenizer/chat_template.h"

namespace hessgpt::serve {

// What goes back to a client that asked for something wrong (4xx) or that
// the server could not serve (5xx): {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  int status = 400;
  std::string message;  // names the field and the problem
  std::string param;    // the offending field ("messages[1].role"); "" when none
  std::string code;     // OpenAI-style code ("context_length_exceeded"); "" when none
};

// A request's own settings; unset fields take the server's defaults.
struct ChatRequest {
  chat::Conversation conversation;  // ends with a user message
  std::optional<int64_t> max_tokens;
  std::optional<double> temperature, top_p, repetition_penalty;
  std::optional<int64_t> top_k;
  std::optional<uint64_t> seed;
  bool stream = false;
  std::optional<bool> routing;
};

// The server's side of validation.
struct RequestLimits {
  int64_t max_tokens_cap = 512;  // the most Model 1 tokens one request may ask for
  bool routing_allowed = true;   // false under --no-routing
};

struct ParsedRequest {
  ChatRequest request;            // meaningful only without an error
  std::optional<ApiError> error;  // set: reply with it
};

// Parses and checks a request body. Unknown fields are ignored (clients send
// "model", "user", ...) except those whose meaning we cannot honour
// (n > 1, stop sequences, logprobs, tools), which are refused by name.
ParsedRequest parse_chat_request(std::string_view body, const RequestLimits& limits);

struct TokenBudget {
  int64_t max_tokens = 0;         // what Model 1 may sample this turn
  std::optional<ApiError> error;  // set: the prompt (and max_tokens) do not fit
};

// Checks that a rendered prompt of `prompt_tokens` fits Model 1's context and
// chooses the turn's budget: the request's max_tokens when it fits (else a
// 400, as OpenAI does), or the cap clipped to the space the context leaves.
TokenBudget token_budget(std::optional<int64_t> requested, int64_t prompt_tokens, int64_t context,
                         int64_t cap);

}  // namespace hessgpt::serve
