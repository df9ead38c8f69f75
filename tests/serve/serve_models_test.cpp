// The server over real models (two tiny fine-tuned ones: serve_test_util.h),
// checked against answers obtained independently from the binary: `hessgpt
// chat --json` for routed turns, `hessgpt eval routing` for Model 1 alone.
#if HESSGPT_HAVE_HTTPLIB  // else hg_serve was built without HTTP

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "http_test_util.h"
#include "serve/engine.h"

namespace hessgpt {
namespace {

using nlohmann::json;
using serve_test::post;
using serve_test::user_request;
using testing::run_command;

constexpr const char* kRouted = "What is 37 times 41?";

class ServeModels : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const serve_test::TinyAssistant& a = serve_test::tiny_assistant();
    backend_ = make_backend("cpu", 1).release();  // chat_command() runs one thread too
    serve::EngineOptions eo;
    eo.model1_dir = a.model1;
    eo.model2_dir = a.model2;
    eo.max_route_tokens = 16;
    engine_ = new serve::Engine(serve_test::tok(), *backend_, eo);
    serve::ServerOptions so;
    so.max_tokens_cap = 32;
    server_ = new serve_test::ServerThread(*engine_, so);
  }
  static void TearDownTestSuite() {
    delete server_;
    delete engine_;
    delete backend_;
  }

  // `hessgpt chat --json` for one prompt (plus flags), as parsed JSON.
  static json chat(const std::string& prompt, const std::string& flags = "") {
    const auto r = run_command("(" + serve_test::tiny_assistant().chat_command() + " --prompt '" +
                               prompt + "' --json " + flags + " 2>/dev/null)");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return json::parse(r.out, nullptr, false);
  }
  static json complete(const json& body) {
    auto c = server_->client();
    auto r = post(c, body);
    if (!r) return {{"transport_error", httplib::to_string(r.error())}};
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body, nullptr, false);
  }

  static inline Backend* backend_ = nullptr;
  static inline serve::Engine* engine_ = nullptr;
  static inline serve_test::ServerThread* server_ = nullptr;
};

TEST_F(ServeModels, GreedyRoutedAnswerEqualsChat) {
  const json expected = chat(kRouted);
  // The fixture's premise: the models route and the sandbox ran Model 2's program.
  ASSERT_EQ(expected["trace"].size(), 1u) << expected.dump();
  ASSERT_EQ(expected["trace"][0]["result"], "1517") << expected.dump();
  const json got = complete(user_request(kRouted, {{"temperature", 0}, {"max_tokens", 32}}));
  EXPECT_EQ(got["choices"][0]["message"]["content"], expected["answer"]);
  EXPECT_EQ(got["hessgpt"]["trace"], expected["trace"]);
  EXPECT_EQ(got["hessgpt"]["end"], expected["end"]);
  EXPECT_EQ(got["usage"]["completion_tokens"], expected["model1_tokens"]);
  // Once more: the sessions start over, nothing carries over from the last turn.
  const json again = complete(user_request(kRouted, {{"temperature", 0}, {"max_tokens", 32}}));
  EXPECT_EQ(again["choices"], got["choices"]);
  EXPECT_EQ(again["hessgpt"]["trace"], got["hessgpt"]["trace"]);
}

TEST_F(ServeModels, SameRequestTwiceSameAnswer) {
  const json body = user_request("Hello there", {{"max_tokens", 32}});
  const json a = complete(body), b = complete(body);
  EXPECT_EQ(a["choices"], b["choices"]);
  EXPECT_EQ(a["usage"], b["usage"]);
  EXPECT_EQ(a["choices"][0]["message"]["content"], chat("Hello there")["answer"]);
}

TEST_F(ServeModels, SeededSamplingEqualsChatWithTheSameSettings) {
  const std::string flags = "--temperature 1.3 --top-k 50 --top-p 0.95 --seed 11";
  const json expected = chat("Hello there", flags);
  const json body = user_request(
      "Hello there",
      {{"temperature", 1.3}, {"top_k", 50}, {"top_p", 0.95}, {"seed", 11}, {"max_tokens", 32}});
  const json got = complete(body);
  EXPECT_EQ(got["choices"][0]["message"]["content"], expected["answer"]);
  EXPECT_EQ(got["hessgpt"]["trace"], expected["trace"]);
  EXPECT_EQ(complete(body)["choices"], got["choices"]);
  // Another seed samples something else (else the seed would not be used).
  json other = body;
  other["seed"] = 12;
  EXPECT_NE(complete(other)["choices"][0]["message"]["content"],
            got["choices"][0]["message"]["content"]);
}

TEST_F(ServeModels, SystemMessageRendersAsChatDoes) {
  const json expected = chat(kRouted, "--system 'You are terse.'");
  json body = user_request(kRouted, {{"max_tokens", 32}});
  body["messages"].insert(body["messages"].begin(),
                          json{{"role", "system"}, {"content", "You are terse."}});
  const json got = complete(body);
  EXPECT_EQ(got["choices"][0]["message"]["content"], expected["answer"]);
  EXPECT_EQ(got["hessgpt"]["trace"], expected["trace"]);
}

TEST_F(ServeModels, StreamedDeltasConcatenateToTheAnswer) {
  const json whole = complete(user_request(kRouted, {{"max_tokens", 32}}));
  auto c = server_->client();
  auto r = post(c, user_request(kRouted, {{"max_tokens", 32}, {"stream", true}}));
  ASSERT_TRUE(r);
  const auto data = serve_test::sse_data(r->body);
  ASSERT_GE(data.size(), 3u);
  EXPECT_EQ(data.back(), "[DONE]");
  EXPECT_EQ(json::parse(data.front())["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  size_t pieces = 0;
  for (size_t i = 1; i + 2 < data.size(); ++i) {
    const json delta = json::parse(data[i])["choices"][0]["delta"];
    text += delta["content"].get<std::string>();
    ++pieces;
  }
  EXPECT_EQ(text, whole["choices"][0]["message"]["content"]);
  EXPECT_GT(pieces, 3u);  // streamed as written, not in one piece
  const json last = json::parse(data[data.size() - 2]);
  EXPECT_EQ(last["choices"][0]["finish_reason"], whole["choices"][0]["finish_reason"]);
  EXPECT_EQ(last["hessgpt"]["trace"], whole["hessgpt"]["trace"]);
  EXPECT_EQ(last["usage"], whole["usage"]);
}

TEST_F(ServeModels, RoutingFalseIsModel1AloneAsTheEvaluationRunsIt) {
  const serve_test::TinyAssistant& a = serve_test::tiny_assistant();
  std::ofstream(a.dir / "alone.jsonl")
      << json{{"messages", json::array({{{"role", "user"}, {"content", kRouted}}})},
              {"should_route", true},
              {"route_kind", "math"},
              {"task", "t"},
              {"expected_request", "Calculate 37*41"},
              {"expected_answer", "1517"}}
             .dump()
      << "\n";
  // Its progress goes to stderr, which run_command would mix into the JSON.
  const auto r =
      run_command("(" + testing::hessgpt_binary() + " eval routing --model1 " + a.model1 +
                  " --model2 " + a.model2 + " --data " + (a.dir / "alone.jsonl") +
                  " --max-tokens 32 --threads 1 --device cpu --json 2>/dev/null)");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const json report = json::parse(r.out);
  const std::string alone = report["examples"][0]["alone_answer"];
  const json got = complete(user_request(kRouted, {{"routing", false}, {"max_tokens", 32}}));
  EXPECT_EQ(got["choices"][0]["message"]["content"], alone);
  EXPECT_EQ(got["hessgpt"]["trace"], json::array());
  EXPECT_EQ(got["hessgpt"]["routing"], false);
  // The premise: routing changes this answer (else the test could not fail).
  EXPECT_NE(alone, report["examples"][0]["answer"]);
}

TEST_F(ServeModels, PromptLongerThanTheContextIsA400) {
  std::string words;
  for (int i = 0; i < 300; ++i) words += " word";
  auto c = server_->client();
  auto r = post(c, user_request(words));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "context_length_exceeded");
  EXPECT_NE(r->body.find("context is 256 tokens"), std::string::npos) << r->body;
}

}  // namespace
}  // namespace hessgpt

#endif  // HESSGPT_HAVE_HTTPLIB
