// `hessgpt serve`'s HTTP side: an OpenAI-compatible chat server over a
// TurnRunner (cpp-httplib behind this class; no other file includes it).
//
//   GET  /health                 {"status": "ok"}, also while a turn runs
//   GET  /v1/models              the one model, "hessgpt"
//   POST /v1/chat/completions    request.h's body; a chat.completion
//                                (response.h), or with "stream": true
//                                server-sent events: chunks with the answer
//                                as Model 1 writes it, a last chunk with the
//                                finish_reason, usage and trace, "data: [DONE]"
//
// Every error is JSON ({"error": {...}}, response.h): 400 for a bad request,
// 401 without the API key (when one is set; /health needs none), 404, 405,
// 413 beyond the body limit, 500 when a turn fails, 503 when busy or
// stopping. Turns run one at a time on the scheduler's compute thread; a
// streaming client that goes away stops its turn. One line per request goes
// to stderr: method, path, status, completion tokens, seconds.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "infer/sampler.h"
#include "serve/engine.h"
#include "serve/scheduler.h"

namespace hessgpt::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;      // 0: any free port (bind() tells which)
  std::string api_key;  // "": no authentication
  std::string model_name = "hessgpt";
  int64_t max_tokens_cap = 512;  // the most a request may ask for, and the default
  size_t max_body_bytes = 1 << 20;
  // Connections served at once. A waiting or streaming completion holds one,
  // so at most http_threads - 1 completions are in flight (one thread stays
  // free for /health); beyond that a completion gets 503 and Retry-After.
  int http_threads = 32;
  bool routing = true;   // false: Model 1 alone for every request
  // A request's defaults for the fields it leaves out: greedy, as `hessgpt
  // chat`. seed: none means a fresh random seed per request (reported in
  // hessgpt.seed).
  infer::SamplingOptions sampling = [] {
    infer::SamplingOptions s;
    s.temperature = 0.0;
    return s;
  }();
  std::optional<uint64_t> seed;
  bool log_requests = true;
};

class HttpServer {
 public:
  // runner must outlive the server, and run() must have returned before the
  // server is destroyed. Throws Error for invalid options.
  HttpServer(TurnRunner& runner, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port and returns the port. Throws Error naming the address
  // when it cannot. Also ignores SIGPIPE for the whole process: a client
  // that hangs up mid-write must be a failed write, not the end of the server.
  int bind();
  // Serves until stop(); call after bind(), on any one thread.
  void run();
  // Stops accepting, cancels the running turn, fails queued ones (503) and
  // makes run() return once open connections finish. Any thread; idempotent.
  void stop();
  SchedulerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hessgpt::serve
