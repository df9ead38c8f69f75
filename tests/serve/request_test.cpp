// Request parsing and validation without sockets: every bad input gets a 400
// whose message and param name the problem; good input becomes the
// conversation the chat template renders.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "serve/request.h"
#include "serve/response.h"
#include "serve_test_util.h"

namespace hessgpt {
namespace {

using nlohmann::json;
using serve::parse_chat_request;

serve::RequestLimits limits(int64_t cap = 100, bool routing = true) {
  serve::RequestLimits l;
  l.max_tokens_cap = cap;
  l.routing_allowed = routing;
  return l;
}

// The error of a body that must be refused, or a failure naming the body.
serve::ApiError refused(const std::string& body, serve::RequestLimits l = limits()) {
  const serve::ParsedRequest p = parse_chat_request(body, l);
  EXPECT_TRUE(p.error.has_value()) << "accepted: " << body;
  return p.error.value_or(serve::ApiError{});
}

std::string with(const std::string& fields) {
  return R"({"messages": [{"role": "user", "content": "hi"}], )" + fields + "}";
}

TEST(ServeRequest, GoodRequestBecomesTheConversation) {
  const std::string body = R"({
    "model": "anything", "user": "ignored",
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "What is 37 times 41?"},
      {"role": "assistant", "content": "1517.",
       "routes": [{"kind": "math", "request": "Calculate 37*41", "result": "1517"}]},
      {"role": "user", "content": "And <|end|> twice?"}],
    "max_tokens": 20, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "seed": 7,
    "repetition_penalty": 1.1, "stream": true, "routing": false, "n": 1, "stop": null})";
  const serve::ParsedRequest p = parse_chat_request(body, limits());
  ASSERT_FALSE(p.error) << p.error->message;
  const serve::ChatRequest& r = p.request;
  chat::Conversation expected;
  expected.messages = {
      {chat::Role::kSystem, "Be brief.", {}},
      {chat::Role::kUser, "What is 37 times 41?", {}},
      {chat::Role::kAssistant, "1517.", {{chat::RouteKind::kMath, "Calculate 37*41", "1517"}}},
      {chat::Role::kUser, "And <|end|> twice?", {}}};
  EXPECT_EQ(r.conversation, expected);
  EXPECT_EQ(r.max_tokens, 20);
  EXPECT_EQ(r.temperature, 0.5);
  EXPECT_EQ(r.top_p, 0.9);
  EXPECT_EQ(r.top_k, 40);
  EXPECT_EQ(r.seed, 7u);
  EXPECT_EQ(r.repetition_penalty, 1.1);
  EXPECT_TRUE(r.stream);
  EXPECT_EQ(r.routing, false);

  // The same ids chat and SFT produce for that history: the routed turn's
  // request and result included, and the user's "<|end|>" as plain text.
  const std::vector<int32_t> ids =
      chat::encode_generation_prompt(serve_test::tok(), r.conversation);
  EXPECT_EQ(ids, chat::encode_generation_prompt(
                     serve_test::tok(),
                     chat::conversation_from_json({{"messages", json::parse(body)["messages"]}})));
  // <|end|> after the system and user turns, after the route's request and
  // result and the assistant's answer, and after the last user turn.
  EXPECT_EQ(std::count(ids.begin(), ids.end(), token::kEnd), 6);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), token::kResult), 1);
  EXPECT_EQ(ids.back(), token::kAssistant);
}

TEST(ServeRequest, OmittedAndNullFieldsTakeDefaults) {
  const serve::ParsedRequest p = parse_chat_request(
      with(R"("temperature": null, "max_tokens": null, "seed": null)"), limits());
  ASSERT_FALSE(p.error) << p.error->message;
  EXPECT_FALSE(p.request.max_tokens || p.request.temperature || p.request.top_p ||
               p.request.top_k || p.request.seed || p.request.routing);
  EXPECT_FALSE(p.request.stream);
  // OpenAI's newer name for the budget.
  EXPECT_EQ(parse_chat_request(with(R"("max_completion_tokens": 9)"), limits()).request.max_tokens,
            9);
}

struct Bad {
  std::string body, param, message_part;
};

TEST(ServeRequest, EachBadInputIsNamed) {
  const std::vector<Bad> cases = {
      {"{not json", "", "not valid JSON"},
      {"", "", "not valid JSON"},
      {"[1, 2]", "", "expected a JSON object, found an array"},
      {"{}", "messages", "messages: missing"},
      {R"({"messages": {}})", "messages", "expected an array, found an object"},
      {R"({"messages": []})", "messages", "messages: empty"},
      {R"({"messages": ["hi"]})", "messages[0]", "expected an object, found a string"},
      {R"({"messages": [{"content": "hi"}]})", "messages[0].role", "messages[0].role: missing"},
      {R"({"messages": [{"role": "bot", "content": "hi"}]})", "messages[0].role",
       "\"bot\" is not one of system, user, assistant"},
      {R"({"messages": [{"role": 1, "content": "hi"}]})", "messages[0].role",
       "expected a string, found a number"},
      {R"({"messages": [{"role": "user"}]})", "messages[0].content", "content: missing"},
      {R"({"messages": [{"role": "user", "content": null}]})", "messages[0].content",
       "expected a string, found a null"},
      {R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})",
       "messages[0].content", "content parts are not supported"},
      {R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})",
       "messages[1].role", "the last message must be from the user (found \"assistant\")"},
      {R"({"messages": [{"role": "system", "content": "s"}]})", "messages[0].role",
       "last message must be from the user"},
      {R"({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"},)"
       R"( {"role": "user", "content": "b"}]})",
       "messages[1].role", "a system message may only come first"},
      {R"({"messages": [{"role": "user", "content": "a", "routes": []}]})", "messages[0].routes",
       "only assistant messages may carry routes"},
      {R"({"messages": [{"role": "assistant", "content": "a", "routes": [{"kind": "sql",)"
       R"( "request": "r", "result": "x"}]}, {"role": "user", "content": "b"}]})",
       "messages[0].routes[0].kind", "\"sql\" is not one of math, code, logic"},
      {with(R"("max_tokens": 0)"), "max_tokens", "must be between 1 and 100"},
      {with(R"("max_tokens": 101)"), "max_tokens", "(the server's cap), got 101"},
      {with(R"("max_tokens": -5)"), "max_tokens", "got -5"},
      {with(R"("max_tokens": 2.5)"), "max_tokens", "expected an integer, found a number (2.5)"},
      {with(R"("max_tokens": "20")"), "max_tokens", "expected an integer, found a string"},
      {with(R"("max_tokens": 99999999999999999999)"), "max_tokens", "expected an integer"},
      {with(R"("max_completion_tokens": 0)"), "max_completion_tokens", "between 1 and 100"},
      {with(R"("temperature": -0.1)"), "temperature", "between 0 and 2"},
      {with(R"("temperature": 2.5)"), "temperature", "between 0 and 2"},
      {with(R"("temperature": "hot")"), "temperature", "expected a number, found a string"},
      {with(R"("top_p": 0)"), "top_p", "must be in (0, 1]"},
      {with(R"("top_p": 1.5)"), "top_p", "must be in (0, 1]"},
      {with(R"("top_k": -1)"), "top_k", "must be >= 0"},
      {with(R"("top_k": 1.5)"), "top_k", "expected an integer"},
      {with(R"("repetition_penalty": 0)"), "repetition_penalty", "must be > 0"},
      {with(R"("seed": -1)"), "seed", "must be >= 0"},
      {with(R"("seed": "x")"), "seed", "expected an integer, found a string"},
      {with(R"("stream": "yes")"), "stream", "expected true or false, found a string"},
      {with(R"("routing": 1)"), "routing", "expected true or false, found a number"},
      {with(R"("n": 2)"), "n", "only one choice per request"},
      {with(R"("stop": ["\n"])"), "stop", "stop sequences are not supported"},
      {with(R"("logprobs": true)"), "logprobs", "not supported"},
      {with(R"("tools": [{"type": "function"}])"), "tools", "not supported"},
  };
  for (const Bad& c : cases) {
    SCOPED_TRACE(c.body);
    const serve::ApiError e = refused(c.body);
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, c.param);
    EXPECT_NE(e.message.find(c.message_part), std::string::npos) << e.message;
  }
}

TEST(ServeRequest, RoutingCannotBeTurnedOnWhenTheServerRefusesIt) {
  const serve::ApiError e = refused(with(R"("routing": true)"), limits(100, false));
  EXPECT_EQ(e.param, "routing");
  EXPECT_NE(e.message.find("--no-routing"), std::string::npos);
  EXPECT_FALSE(parse_chat_request(with(R"("routing": false)"), limits(100, false)).error);
}

TEST(ServeRequest, DeepOrHugeJsonIsAnErrorNotACrash) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(refused(deep).status, 400);
  EXPECT_EQ(refused(std::string(100000, '[')).status, 400);
  EXPECT_EQ(refused("{\"messages\": \"\xff\xfe\"}").status, 400);  // invalid UTF-8
}

TEST(ServeRequest, TokenBudgetFitsTheContext) {
  // No max_tokens: the cap, clipped to what the context leaves.
  EXPECT_EQ(serve::token_budget(std::nullopt, 10, 256, 100).max_tokens, 100);
  EXPECT_EQ(serve::token_budget(std::nullopt, 200, 256, 100).max_tokens, 56);
  EXPECT_EQ(serve::token_budget(56, 200, 256, 100).max_tokens, 56);
  const serve::TokenBudget over = serve::token_budget(57, 200, 256, 100);
  ASSERT_TRUE(over.error);
  EXPECT_EQ(over.error->code, "context_length_exceeded");
  EXPECT_EQ(over.error->param, "max_tokens");
  EXPECT_NE(over.error->message.find("(200 tokens) plus max_tokens (57)"), std::string::npos);
  const serve::TokenBudget full = serve::token_budget(std::nullopt, 256, 256, 100);
  ASSERT_TRUE(full.error);
  EXPECT_EQ(full.error->param, "messages");
  EXPECT_NE(full.error->message.find("256 tokens; Model 1's context is 256"), std::string::npos);
}

TEST(ServeResponse, ErrorShapeIsOpenAIs) {
  const json e = serve::error_json({404, "no such endpoint", "", "not_found"});
  EXPECT_EQ(e, json::parse(R"({"error": {"message": "no such endpoint",
      "type": "invalid_request_error", "param": null, "code": "not_found"}})"));
  EXPECT_EQ(serve::error_json({500, "x", "p", ""})["error"]["type"], "server_error");
  // Model text that is not UTF-8 must not stop a reply.
  EXPECT_EQ(serve::to_text(json("a\xff")), "\"a\xEF\xBF\xBD\"");
}

}  // namespace
}  // namespace hessgpt
