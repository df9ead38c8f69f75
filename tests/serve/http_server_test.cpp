// The HTTP layer over a scripted runner: endpoints, JSON shapes, every error
// status, authentication, streaming, concurrency and disconnects. (The real
// models are in serve_models_test.cpp.)
#if HESSGPT_HAVE_HTTPLIB  // else hg_serve was built without HTTP

#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "http_test_util.h"

namespace hessgpt {
namespace {

using nlohmann::json;
using serve_test::FakeRunner;
using serve_test::post;
using serve_test::ServerThread;
using serve_test::user_request;

serve::ServerOptions options() {
  serve::ServerOptions o;
  o.max_tokens_cap = 400;
  o.max_body_bytes = 64 << 10;
  o.http_threads = 4;
  o.sampling.temperature = 0.0;
  return o;
}

// The error object of a JSON error reply with this status.
json error_of(const httplib::Result& r, int status) {
  if (!r) {
    ADD_FAILURE() << "no reply: " << httplib::to_string(r.error());
    return json::object();
  }
  EXPECT_EQ(r->status, status) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  const json j = json::parse(r->body, nullptr, false);
  EXPECT_TRUE(j.contains("error")) << r->body;
  return j.contains("error") ? j["error"] : json::object();
}

class ServeHttp : public ::testing::Test {
 protected:
  FakeRunner runner_;
  ServerThread server_{runner_, options()};
};

TEST_F(ServeHttp, HealthAndModels) {
  auto c = server_.client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(json::parse(h->body), json({{"status", "ok"}}));
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  const json j = json::parse(m->body);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "hessgpt");
  EXPECT_EQ(j["data"][0]["object"], "model");
  EXPECT_EQ(j["data"][0]["max_model_len"], 512);
}

TEST_F(ServeHttp, CompletionShape) {
  auto c = server_.client();
  auto r = post(c, user_request("hello there", {{"max_tokens", 30}, {"seed", 5}}));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "hessgpt");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_GT(j["created"].get<int64_t>(), 1700000000);
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["message"],
            json({{"role", "assistant"}, {"content", "echo: hello there"}}));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  const std::vector<int32_t> prompt = runner_.render(runner_.specs().back().conversation);
  EXPECT_EQ(j["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(j["usage"]["completion_tokens"], serve_test::tok().encode("echo: hello there").size());
  EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int64_t>() +
                                            j["usage"]["completion_tokens"].get<int64_t>());
  EXPECT_EQ(j["hessgpt"]["trace"], json::array());
  EXPECT_EQ(j["hessgpt"]["end"], "end");
  EXPECT_EQ(j["hessgpt"]["seed"], 5);
  EXPECT_EQ(j["hessgpt"]["routing"], true);
  // What the runner was asked: the request's settings over the server's defaults.
  const serve::TurnSpec spec = runner_.specs().back();
  EXPECT_EQ(spec.max_tokens, 30);
  EXPECT_EQ(spec.sampling.seed, 5u);
  EXPECT_EQ(spec.sampling.temperature, 0.0);
  EXPECT_TRUE(spec.routing);
  // A budget that runs out is "length".
  auto cut = post(c, user_request("hello there", {{"max_tokens", 2}}));
  ASSERT_TRUE(cut);
  EXPECT_EQ(json::parse(cut->body)["choices"][0]["finish_reason"], "length");
}

TEST_F(ServeHttp, RequestSettingsReachTheRunner) {
  auto c = server_.client();
  const json body = {{"messages", json::array({{{"role", "system"}, {"content", "S"}},
                                               {{"role", "user"}, {"content", "U1"}},
                                               {{"role", "assistant"}, {"content", "A1"}},
                                               {{"role", "user"}, {"content", "U2"}}})},
                     {"temperature", 0.7},
                     {"top_p", 0.8},
                     {"top_k", 12},
                     {"routing", false}};
  auto r = post(c, body);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const serve::TurnSpec spec = runner_.specs().back();
  EXPECT_EQ(spec.conversation, chat::conversation_from_json({{"messages", body["messages"]}}));
  EXPECT_EQ(spec.sampling.temperature, 0.7);
  EXPECT_EQ(spec.sampling.top_p, 0.8);
  EXPECT_EQ(spec.sampling.top_k, 12);
  EXPECT_FALSE(spec.routing);
  EXPECT_EQ(json::parse(r->body)["hessgpt"]["routing"], false);
  // No seed: a fresh one per request, reported so that it can be replayed.
  auto again = post(c, body);
  ASSERT_TRUE(again);
  const uint64_t seed1 = json::parse(r->body)["hessgpt"]["seed"];
  const uint64_t seed2 = json::parse(again->body)["hessgpt"]["seed"];
  EXPECT_NE(seed1, seed2);
  EXPECT_LT(seed1, uint64_t{1} << 53);
  EXPECT_EQ(runner_.specs().back().sampling.seed, seed2);
}

TEST_F(ServeHttp, BadRequestsGetJsonErrors) {
  auto c = server_.client();
  auto bad_json = c.Post("/v1/chat/completions", "{\"messages\": [", "application/json");
  EXPECT_NE(error_of(bad_json, 400)["message"].get<std::string>().find("not valid JSON"),
            std::string::npos);
  EXPECT_EQ(error_of(post(c, json::object()), 400)["param"], "messages");
  EXPECT_EQ(error_of(post(c, user_request("hi", {{"max_tokens", 401}})), 400)["param"],
            "max_tokens");
  EXPECT_EQ(error_of(post(c, user_request("hi", {{"temperature", -1}})), 400)["type"],
            "invalid_request_error");
  json wrong_role = user_request("hi");
  wrong_role["messages"][0]["role"] = "wizard";
  EXPECT_EQ(error_of(post(c, wrong_role), 400)["param"], "messages[0].role");
  // Longer than the context (512 tokens here), or with max_tokens too long for it.
  std::string words;
  for (int i = 0; i < 200; ++i) words += " word";
  const json too_long = error_of(post(c, user_request(words + words + words)), 400);
  EXPECT_EQ(too_long["code"], "context_length_exceeded");
  EXPECT_EQ(too_long["param"], "messages");
  const json too_many = error_of(post(c, user_request(words, {{"max_tokens", 400}})), 400);
  EXPECT_EQ(too_many["code"], "context_length_exceeded");
  EXPECT_EQ(too_many["param"], "max_tokens");
  // Beyond the 64 KiB body limit.
  const json big = error_of(post(c, user_request(std::string(100 << 10, 'x'))), 413);
  EXPECT_EQ(big["code"], "payload_too_large");
  EXPECT_TRUE(runner_.specs().empty());  // none of them reached the models
  // And the server still answers.
  auto ok = post(c, user_request("fine"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(ServeHttp, UnknownPathsAndWrongMethods) {
  auto c = server_.client();
  EXPECT_EQ(error_of(c.Get("/v1/completions"), 404)["code"], "not_found");
  EXPECT_EQ(error_of(c.Get("/"), 404)["message"], "no such endpoint: GET /");
  auto get = c.Get("/v1/chat/completions");
  EXPECT_EQ(error_of(get, 405)["code"], "method_not_allowed");
  EXPECT_EQ(get->get_header_value("Allow"), "POST");
  EXPECT_EQ(error_of(c.Post("/health", "{}", "application/json"), 405)["message"],
            "POST /health: use GET");
  EXPECT_EQ(error_of(c.Delete("/v1/models"), 405)["code"], "method_not_allowed");
}

TEST_F(ServeHttp, AFailingTurnIsA500AndTheServerGoesOn) {
  auto c = server_.client();
  const json e = error_of(post(c, user_request("boom")), 500);
  EXPECT_EQ(e["type"], "server_error");
  EXPECT_EQ(e["message"], "generation failed: boom");
  // Streaming: the status went out first, so the error is an event.
  auto s = post(c, user_request("boom", {{"stream", true}}));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, 200);
  const auto data = serve_test::sse_data(s->body);
  ASSERT_GE(data.size(), 2u);
  EXPECT_EQ(json::parse(data[data.size() - 2])["error"]["message"], "generation failed: boom");
  EXPECT_EQ(data.back(), "[DONE]");
  auto ok = post(c, user_request("after"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(json::parse(ok->body)["choices"][0]["message"]["content"], "echo: after");
}

TEST_F(ServeHttp, StreamingSendsChunksThenTheEnd) {
  auto c = server_.client();
  auto r = post(c, user_request("stream me please", {{"stream", true}}));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  const auto data = serve_test::sse_data(r->body);
  ASSERT_GE(data.size(), 4u);
  EXPECT_EQ(data.back(), "[DONE]");
  const json first = json::parse(data.front());
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  for (size_t i = 1; i + 2 < data.size(); ++i) {
    const json chunk = json::parse(data[i]);
    EXPECT_EQ(chunk["id"], first["id"]);
    EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
    text += chunk["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(text, "echo: stream me please");
  const json last = json::parse(data[data.size() - 2]);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(last["choices"][0]["delta"], json::object());
  EXPECT_EQ(last["hessgpt"]["end"], "end");
  EXPECT_EQ(last["usage"]["completion_tokens"],
            serve_test::tok().encode("echo: stream me please").size());
}

TEST_F(ServeHttp, HealthAnswersWhileATurnRuns) {
  std::future<httplib::Result> slow = std::async(std::launch::async, [&] {
    auto c = server_.client();
    return post(c, user_request("slow", {{"max_tokens", 150}}));  // ~1.5 s
  });
  ASSERT_TRUE(serve_test::eventually([&] { return runner_.running(); }));
  auto c = server_.client();
  const auto t0 = std::chrono::steady_clock::now();
  auto h = c.Get("/health");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_LT(seconds, 0.5);
  EXPECT_TRUE(runner_.running());  // answered during the turn, not after it
  // A second completion waits for the first instead of running beside it.
  auto second = post(c, user_request("queued"));
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(slow.get()->status, 200);
  EXPECT_FALSE(runner_.overlapped);
}

TEST_F(ServeHttp, AClientThatGoesAwayStopsItsTurn) {
  auto c = server_.client();
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = user_request("slow", {{"max_tokens", 300}, {"stream", true}}).dump();
  req.set_header("Content-Type", "application/json");
  int chunks = 0;
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
  auto r = c.send(req);  // hangs up after the third piece
  EXPECT_EQ(chunks, 3);
  ASSERT_TRUE(serve_test::eventually([&] { return server_.server().stats().cancelled == 1; }))
      << "the turn went on after its client left";
  EXPECT_LT(runner_.tokens_when_cancelled, 100);  // 300 would take 3 s
  auto ok = post(c, user_request("still here"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

// Stopped once the stream has begun (its first piece received: a stop before
// the response's headers leave drops the connection, which is no stream to end).
TEST_F(ServeHttp, StopEndsARunningStreamPromptly) {
  std::atomic<int> pieces{0};
  std::string body;  // read after slow.get()
  std::future<httplib::Result> slow = std::async(std::launch::async, [&] {
    auto c = server_.client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.body = user_request("slow", {{"max_tokens", 300}, {"stream", true}}).dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
      body.append(d, n);
      ++pieces;
      return true;
    };
    return c.send(req);
  });
  ASSERT_TRUE(serve_test::eventually([&] { return runner_.running() && pieces > 0; }));
  const auto t0 = std::chrono::steady_clock::now();
  server_.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  auto r = slow.get();
  ASSERT_TRUE(r);
  const auto data = serve_test::sse_data(body);
  ASSERT_GE(data.size(), 2u);
  EXPECT_EQ(json::parse(data[data.size() - 2])["error"]["code"], "server_shutting_down");
}

TEST(ServeHttpLimits, BusyServerSays503) {
  FakeRunner runner;
  serve::ServerOptions o = options();
  o.http_threads = 2;  // one completion at a time, one thread kept for /health
  ServerThread server(runner, o);
  std::future<httplib::Result> slow = std::async(std::launch::async, [&] {
    auto c = server.client();
    return post(c, user_request("slow", {{"max_tokens", 100}}));
  });
  ASSERT_TRUE(serve_test::eventually([&] { return runner.running(); }));
  auto c = server.client();
  auto busy = post(c, user_request("me too"));
  EXPECT_EQ(error_of(busy, 503)["code"], "server_busy");
  EXPECT_EQ(busy->get_header_value("Retry-After"), "1");
  EXPECT_EQ(c.Get("/health")->status, 200);
  EXPECT_EQ(slow.get()->status, 200);
}

TEST(ServeHttpLimits, ApiKeyGuardsAllButHealth) {
  FakeRunner runner;
  serve::ServerOptions o = options();
  o.api_key = "sekret-key";
  ServerThread server(runner, o);
  auto anon = server.client();
  const json e = error_of(anon.Get("/v1/models"), 401);
  EXPECT_EQ(e["code"], "invalid_api_key");
  EXPECT_NE(e["message"].get<std::string>().find("Authorization: Bearer"), std::string::npos);
  EXPECT_EQ(error_of(post(anon, user_request("hi")), 401)["code"], "invalid_api_key");
  auto wrong = server.client("sekret-kez");
  error_of(post(wrong, user_request("hi")), 401);
  EXPECT_EQ(anon.Get("/health")->status, 200);
  auto right = server.client("sekret-key");
  EXPECT_EQ(right.Get("/v1/models")->status, 200);
  EXPECT_EQ(post(right, user_request("hi"))->status, 200);
  EXPECT_EQ(runner.specs().size(), 1u);
}

TEST(ServeHttpLimits, NoRoutingServerRunsModel1Alone) {
  FakeRunner runner;
  serve::ServerOptions o = options();
  o.routing = false;
  ServerThread server(runner, o);
  auto c = server.client();
  ASSERT_EQ(post(c, user_request("hi"))->status, 200);
  EXPECT_FALSE(runner.specs().back().routing);
  EXPECT_EQ(error_of(post(c, user_request("hi", {{"routing", true}})), 400)["param"], "routing");
}

TEST(ServeHttpLimits, BindingATakenPortNamesIt) {
  FakeRunner runner;
  ServerThread first(runner, options());
  serve::ServerOptions o = options();
  o.port = first.port();
  serve::HttpServer second(runner, o);
  try {
    second.bind();
    FAIL() << "bound a port in use";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(str_cat("127.0.0.1:", first.port())), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace hessgpt

#endif  // HESSGPT_HAVE_HTTPLIB
