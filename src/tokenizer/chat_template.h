// The chat and routing template of SPEC §3, as ids (never as text, so user
// text can never forge a special token):
//
//   <s> <|system|> S <|end|> <|user|> U <|end|> <|assistant|> A <|end|> ...
//
// A routed assistant turn puts each route before the final answer:
//
//   <|assistant|> <|math|> request <|end|> <|result|> R <|end|> answer <|end|>
//
// Each text (S, U, A, request, R) is Tokenizer::encode(text): ordinary
// pieces with SentencePiece's dummy prefix. The loss mask trains on what
// Model 1 writes in an assistant turn: the route tokens and requests with
// their <|end|>, the answer and the closing <|end|>. It masks <s>, the role
// tokens, system and user turns, and the whole <|result|> ... <|end|> span
// (the tool wrote it).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/tokenizer.h"

namespace hessgpt::chat {

enum class Role { kSystem, kUser, kAssistant };
enum class RouteKind { kCode, kMath, kLogic };

// At most this many routes in one assistant turn (SPEC §3).
constexpr size_t kMaxRoutesPerTurn = 3;

struct Route {
  RouteKind kind = RouteKind::kMath;
  std::string request;
  std::string result;
  bool operator==(const Route&) const = default;
};

struct Message {
  Role role = Role::kUser;
  std::string content;        // for a routed assistant turn: the final answer
  std::vector<Route> routes;  // assistant turns only, in the order they happen
  bool operator==(const Message&) const = default;
};

struct Conversation {
  std::vector<Message> messages;
  bool operator==(const Conversation&) const = default;
};

struct EncodedChat {
  std::vector<int32_t> ids;
  std::vector<uint8_t> loss_mask;  // per id: 1 = the model is trained to produce it
};

// Throws Error naming the message when the conversation breaks the template's
// rules: empty, a system turn other than the first, routes on a non-assistant
// turn, more than kMaxRoutesPerTurn routes.
void validate(const Conversation& conversation);

// <s> + every message, with its loss mask.
EncodedChat encode_conversation(const Tokenizer& tokenizer, const Conversation& conversation);
// Training targets for next-token prediction: targets[t] = ids[t+1] where
// loss_mask[t+1] is 1, else -100 (ignored); the last position is -100.
std::vector<int32_t> next_token_targets(const EncodedChat& encoded);
// The prompt that asks Model 1 for the next assistant turn:
// encode_conversation(...).ids + <|assistant|>.
std::vector<int32_t> encode_generation_prompt(const Tokenizer& tokenizer, const Conversation& conversation);
// Model 2's prompt for one route: <s> <|user|> <|kind|> request <|end|> <|assistant|>.
std::vector<int32_t> encode_route_prompt(const Tokenizer& tokenizer, RouteKind kind, std::string_view request);
// What the router appends to Model 1's context: <|result|> R <|end|>.
std::vector<int32_t> encode_route_result(const Tokenizer& tokenizer, std::string_view result);

// The inverse of encode_conversation (a leading <s> and a trailing </s> are
// optional). Throws Error naming the position of the first id that does not
// fit the template.
Conversation decode_conversation(const Tokenizer& tokenizer, std::span<const int32_t> ids);

int32_t route_token(RouteKind kind);                   // kMath -> token::kMath
std::optional<RouteKind> route_kind_of(int32_t id);    // token::kMath -> kMath
std::string_view role_name(Role role);                 // "system" | "user" | "assistant"
std::string_view route_kind_name(RouteKind kind);      // "code" | "math" | "logic"
std::optional<RouteKind> route_kind_from_name(std::string_view name);  // the inverse; nullopt otherwise

// The chat JSONL line of SPEC §5:
//   {"messages": [{"role": "...", "content": "...",
//                  "routes": [{"kind": "math|code|logic", "request": "...", "result": "..."}]}]}
// Throws Error naming the offending field ("messages[2].routes[0].kind: ...").
Conversation conversation_from_json(const nlohmann::json& j);
Conversation conversation_from_json_line(std::string_view line);
nlohmann::json conversation_to_json(const Conversation& conversation);

}  // namespace hessgpt::chat
