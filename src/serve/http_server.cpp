#include "serve/http_server.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <exception>
#include <mutex>
#include <random>
#include <thread>

#include <httplib.h>

#include "core/error.h"
#include "core/log.h"
#include "serve/request.h"
#include "serve/response.h"

namespace hessgpt::serve {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kJson = "application/json";
// A streaming connection writes an SSE comment when nothing else was sent for
// this long: a turn can be silent for a while (a route, the sandbox), and
// only a write tells us that the client is gone.
constexpr std::chrono::milliseconds kHeartbeat{1000};

// What the request log line needs from the handlers. httplib runs a request
// on one thread from its headers to its log line (the streaming content
// provider included) and gives the logger no way to carry our figures.
struct RequestLog {
  Clock::time_point start;
  bool started = false;
  int64_t tokens = -1;
  std::string note;
};
thread_local RequestLog t_log;

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(to_text(body), kJson);
}

void reply_error(httplib::Response& res, const ApiError& error) {
  if (t_log.note.empty()) t_log.note = error.message;
  reply(res, error.status, error_json(error));
}

// Compares without stopping at the first difference, so the time taken
// does not tell an attacker how much of a guessed key was right.
bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Keeps one slot of the in-flight limit for as long as it lives.
class Slot {
 public:
  explicit Slot(std::atomic<int>& count) : count_(count) {}
  ~Slot() { --count_; }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

 private:
  std::atomic<int>& count_;
};

struct Stream {
  std::shared_ptr<Completion> completion;
  CompletionHeader header;
  TurnFacts facts;
  std::shared_ptr<Slot> slot;
};

}  // namespace

struct HttpServer::Impl {
  TurnRunner& runner;
  ServerOptions options;
  Scheduler scheduler;
  httplib::Server server;
  const int64_t started_at = static_cast<int64_t>(std::time(nullptr));
  std::atomic<int> in_flight{0};
  int max_in_flight = 1;
  std::mutex random_mutex;
  std::mt19937_64 random{std::random_device{}()};
  std::mutex run_mutex;
  bool stopped = false, running = false;
  std::atomic<bool> finished{false};

  Impl(TurnRunner& r, ServerOptions o) : runner(r), options(std::move(o)), scheduler(r) {}

  uint64_t draw() {
    std::lock_guard<std::mutex> lock(random_mutex);
    return random();
  }

  void setup();
  httplib::Server::HandlerResponse before_routing(const httplib::Request& req,
                                                  httplib::Response& res);
  void log(const httplib::Request& req, const httplib::Response& res);
  void completions(const httplib::Request& req, httplib::Response& res);
  std::optional<ApiError> resolve(ChatRequest& request, TurnSpec& spec, TurnFacts& facts);
  void answer(const std::shared_ptr<Completion>& completion, const CompletionHeader& header,
              TurnFacts facts, httplib::Response& res);
  bool stream(Stream& s, httplib::DataSink& sink);
};

void HttpServer::Impl::setup() {
  max_in_flight = std::max(1, options.http_threads - 1);  // one thread stays for /health
  const size_t threads = static_cast<size_t>(options.http_threads);
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_payload_max_length(options.max_body_bytes);
  // httplib's default also sets SO_REUSEPORT, which would let a second
  // server bind our port and take half of its connections.
  server.set_socket_options([](socket_t sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    return before_routing(req, res);
  });
  server.set_logger(
      [this](const httplib::Request& req, const httplib::Response& res) { log(req, res); });
  // Errors httplib raises itself (no route, body too large, unreadable
  // request) come without a body; ours already carry their JSON.
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        ApiError e{res.status, str_cat("HTTP ", res.status), "", ""};
        if (res.status == 404) {
          e.message = str_cat("no such endpoint: ", req.method, " ", req.path);
          e.code = "not_found";
        } else if (res.status == 413) {
          e.message = str_cat("request body larger than the server's limit of ",
                              options.max_body_bytes, " bytes");
          e.code = "payload_too_large";
        } else if (res.status == 400) {
          e.message =
              "malformed HTTP request (request line, headers, or a body without "
              "Content-Length)";
        }
        reply_error(res, e);
        return httplib::Server::HandlerResponse::Handled;
      }));
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        reply_error(res, ApiError{500, "internal error: " + what, "", "internal_error"});
      });

  server.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, {{"status", "ok"}});
  });
  server.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, models_json(options.model_name, started_at, runner.context()));
  });
  server.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    completions(req, res);
  });

  const auto not_allowed = [](const char* allow) {
    return [allow](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Allow", allow);
      reply_error(res, ApiError{405, str_cat(req.method, " ", req.path, ": use ", allow), "",
                                "method_not_allowed"});
    };
  };
  for (const char* path : {"/health", "/v1/models"}) {
    server.Post(path, not_allowed("GET"));
    server.Put(path, not_allowed("GET"));
    server.Patch(path, not_allowed("GET"));
    server.Delete(path, not_allowed("GET"));
  }
  server.Get("/v1/chat/completions", not_allowed("POST"));
  server.Put("/v1/chat/completions", not_allowed("POST"));
  server.Patch("/v1/chat/completions", not_allowed("POST"));
  server.Delete("/v1/chat/completions", not_allowed("POST"));
}

httplib::Server::HandlerResponse HttpServer::Impl::before_routing(const httplib::Request& req,
                                                                  httplib::Response& res) {
  t_log = RequestLog{Clock::now(), true, -1, ""};
  // /health stays open: load balancers and supervisors probe it without keys.
  if (options.api_key.empty() || req.path == "/health") {
    return httplib::Server::HandlerResponse::Unhandled;
  }
  if (same_secret(req.get_header_value("Authorization"), "Bearer " + options.api_key)) {
    return httplib::Server::HandlerResponse::Unhandled;
  }
  res.set_header("WWW-Authenticate", "Bearer");
  reply_error(res, ApiError{401,
                            "missing or wrong API key: send the header "
                            "\"Authorization: Bearer <key>\"",
                            "", "invalid_api_key"});
  return httplib::Server::HandlerResponse::Handled;
}

void HttpServer::Impl::log(const httplib::Request& req, const httplib::Response& res) {
  if (options.log_requests) {
    char seconds[32] = "-";
    if (t_log.started) {
      std::snprintf(seconds, sizeof seconds, "%.3fs",
                    std::chrono::duration<double>(Clock::now() - t_log.start).count());
    }
    const std::string tokens = t_log.tokens >= 0 ? str_cat(t_log.tokens) : "-";
    log_info(req.method, " ", req.path, " ", res.status, " tokens=", tokens, " ", seconds,
             t_log.note.empty() ? "" : " (" + t_log.note + ")");
  }
  t_log = RequestLog{};
}

std::optional<ApiError> HttpServer::Impl::resolve(ChatRequest& request, TurnSpec& spec,
                                                  TurnFacts& facts) {
  spec.sampling = options.sampling;
  spec.sampling.banned.clear();
  if (request.temperature) spec.sampling.temperature = *request.temperature;
  if (request.top_p) spec.sampling.top_p = *request.top_p;
  if (request.top_k) spec.sampling.top_k = *request.top_k;
  if (request.repetition_penalty) spec.sampling.repetition_penalty = *request.repetition_penalty;
  // A drawn seed fits 53 bits: JSON clients that read numbers as doubles can
  // send it back unchanged to replay the answer.
  spec.sampling.seed = request.seed ? *request.seed : options.seed ? *options.seed : draw() >> 11;
  spec.routing = request.routing.value_or(options.routing);
  try {
    spec.sampling.validate();
    facts.prompt_tokens = static_cast<int64_t>(runner.render(request.conversation).size());
  } catch (const std::exception& e) {
    return ApiError{400, e.what(), "", ""};
  }
  const TokenBudget budget = token_budget(request.max_tokens, facts.prompt_tokens, runner.context(),
                                          options.max_tokens_cap);
  if (budget.error) return budget.error;
  spec.max_tokens = budget.max_tokens;
  spec.conversation = std::move(request.conversation);
  facts.routing = spec.routing;
  facts.seed = spec.sampling.seed;
  return std::nullopt;
}

void HttpServer::Impl::completions(const httplib::Request& req, httplib::Response& res) {
  RequestLimits limits;
  limits.max_tokens_cap = options.max_tokens_cap;
  limits.routing_allowed = options.routing;
  ParsedRequest parsed = parse_chat_request(req.body, limits);
  if (parsed.error) return reply_error(res, *parsed.error);
  TurnSpec spec;
  TurnFacts facts;
  if (auto error = resolve(parsed.request, spec, facts)) return reply_error(res, *error);

  if (++in_flight > max_in_flight) {
    --in_flight;
    res.set_header("Retry-After", "1");
    return reply_error(
        res,
        ApiError{503, str_cat("server busy: ", max_in_flight, " requests in progress; try again"),
                 "", "server_busy"});
  }
  auto slot = std::make_shared<Slot>(in_flight);
  CompletionHeader header{str_cat("chatcmpl-", std::hex, draw()),
                          static_cast<int64_t>(std::time(nullptr)), options.model_name};
  const bool streaming = parsed.request.stream;
  std::shared_ptr<Completion> completion = scheduler.submit(std::move(spec), streaming);
  if (!streaming) return answer(completion, header, facts, res);

  auto s = std::make_shared<Stream>(Stream{completion, header, facts, slot});
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream", [this, s](size_t, httplib::DataSink& sink) { return stream(*s, sink); },
      // Also runs when the response is dropped unsent: the turn must not
      // go on for nobody.
      [s](bool success) {
        if (!success) s->completion->cancel();
      });
}

void HttpServer::Impl::answer(const std::shared_ptr<Completion>& completion,
                              const CompletionHeader& header, TurnFacts facts,
                              httplib::Response& res) {
  for (;;) {
    std::optional<CompletionEvent> e = completion->next(std::chrono::hours(1));
    if (!e || e->kind == CompletionEvent::Kind::kDelta) continue;
    if (e->kind == CompletionEvent::Kind::kFailed) return reply_error(res, e->error);
    facts.seconds = e->seconds;
    facts.queued_seconds = e->queued_seconds;
    t_log.tokens = e->turn.model1_tokens;
    return reply(res, 200, completion_json(header, e->turn, facts));
  }
}

bool HttpServer::Impl::stream(Stream& s, httplib::DataSink& sink) {
  const auto send = [&](const std::string& text) {
    if (sink.write(text.data(), text.size())) return true;
    s.completion->cancel();  // the client is gone: the turn stops at its next token
    t_log.note = "client went away; turn cancelled";
    return false;
  };
  if (!send(sse_event(chunk_json(s.header, {{"role", "assistant"}, {"content", ""}}))))
    return false;
  for (;;) {
    std::optional<CompletionEvent> e = s.completion->next(kHeartbeat);
    if (!e) {
      if (!send(": keep-alive\n\n")) return false;
      continue;
    }
    switch (e->kind) {
      case CompletionEvent::Kind::kDelta:
        if (!send(sse_event(chunk_json(s.header, {{"content", e->text}})))) return false;
        continue;
      case CompletionEvent::Kind::kDone:
        s.facts.seconds = e->seconds;
        s.facts.queued_seconds = e->queued_seconds;
        t_log.tokens = e->turn.model1_tokens;
        if (!send(sse_event(final_chunk_json(s.header, e->turn, s.facts)))) return false;
        break;
      case CompletionEvent::Kind::kFailed:
        // The status line went out with the first chunk; the error is an event.
        t_log.note = e->error.message;
        if (!send(sse_event(error_json(e->error)))) return false;
        break;
    }
    if (!send("data: [DONE]\n\n")) return false;
    sink.done();
    return true;
  }
}

HttpServer::HttpServer(TurnRunner& runner, ServerOptions options)
    : impl_(std::make_unique<Impl>(runner, std::move(options))) {
  const ServerOptions& o = impl_->options;
  if (o.http_threads < 2) HG_FAIL("http threads must be at least 2 (got ", o.http_threads, ")");
  if (o.max_tokens_cap < 1) HG_FAIL("max new tokens must be positive (got ", o.max_tokens_cap, ")");
  if (o.max_body_bytes == 0) HG_FAIL("the body limit must be positive");
  if (o.port < 0 || o.port > 65535) HG_FAIL("port must be in 0..65535 (got ", o.port, ")");
  o.sampling.validate();
  impl_->setup();
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  std::signal(SIGPIPE, SIG_IGN);
  const ServerOptions& o = impl_->options;
  const int port = o.port == 0 ? impl_->server.bind_to_any_port(o.host)
                               : (impl_->server.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port <= 0) {
    HG_FAIL("cannot listen on ", o.host, ":", o.port,
            " (in use, or not an address of this machine)");
  }
  return port;
}

void HttpServer::run() {
  {
    std::lock_guard<std::mutex> lock(impl_->run_mutex);
    if (impl_->stopped) return;
    impl_->running = true;
  }
  impl_->server.listen_after_bind();
  impl_->finished = true;
}

void HttpServer::stop() {
  bool running = false;
  {
    std::lock_guard<std::mutex> lock(impl_->run_mutex);
    if (impl_->stopped) return;
    impl_->stopped = true;
    running = impl_->running;
  }
  impl_->scheduler.stop();
  if (!running) return;
  // run() may not have reached httplib's accept loop yet, and stopping a
  // server that is not running yet does nothing.
  while (!impl_->server.is_running() && !impl_->finished)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->server.stop();
}

SchedulerStats HttpServer::stats() const { return impl_->scheduler.stats(); }

}  // namespace hessgpt::serve
