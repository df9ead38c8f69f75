// hessgpt serve: the dual-model assistant over HTTP, OpenAI-compatible
// (src/serve/http_server.h has the endpoints). Prints one line,
// "serving on http://HOST:PORT", once it accepts connections; SIGINT or
// SIGTERM stops it cleanly (the running turn is cancelled, exit status 0).
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <optional>
#include <thread>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "core/log.h"
#include "serve/engine.h"
#include "serve/http_server.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::cli {
namespace {

struct ServeOptions {
  std::string model1, model2, tokenizer;
  int bits = -1;
  int64_t max_route_tokens = 512;
  bool no_routing = false;
  std::optional<uint64_t> seed;
  serve::ServerOptions server;
  ComputeOptions compute;
};

// SIGINT and SIGTERM are blocked before any other thread exists (compute,
// OpenMP, connections; threads inherit the mask, and the sandbox unblocks
// them in its children), so that only SignalWaiter's sigwait() sees them and
// stopping runs as ordinary code rather than in a signal handler. They stay
// blocked until the process exits: a second Ctrl-C during shutdown is ignored.
sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Stops the server on the first signal. Declared after the server, so that
// it is joined before the server goes away.
class SignalWaiter {
 public:
  SignalWaiter(const sigset_t& signals, serve::HttpServer& server)
      : signals_(signals), thread_([this, &server] {
          int sig = 0;
          sigwait(&signals_, &sig);
          if (done_) return;  // woken by the destructor
          log_info("hessgpt serve: ", sig == SIGINT ? "SIGINT" : "SIGTERM", ", stopping");
          server.stop();
        }) {}
  ~SignalWaiter() {
    done_ = true;
    pthread_kill(thread_.native_handle(), SIGTERM);  // pending for that thread only
    thread_.join();
  }
  SignalWaiter(const SignalWaiter&) = delete;
  SignalWaiter& operator=(const SignalWaiter&) = delete;

 private:
  sigset_t signals_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

void run_serve(ServeOptions& o) {
  const sigset_t signals = block_stop_signals();
  auto backend = make_decode_backend(o.compute, {o.model1, o.model2}, o.bits);
  auto tokenizer = Tokenizer::load_or_default(o.tokenizer);
  serve::EngineOptions eo;
  eo.model1_dir = o.model1;
  eo.model2_dir = o.model2;
  eo.bits = o.bits;
  eo.max_route_tokens = o.max_route_tokens;
  serve::Engine engine(*tokenizer, *backend, eo);

  o.server.routing = !o.no_routing;
  o.server.seed = o.seed;
  serve::HttpServer server(engine, o.server);
  const int port = server.bind();
  log_info("hessgpt serve: Model 1 ", o.model1, ", Model 2 ", o.model2, ", context ",
           engine.context(), " tokens, ", backend->name(), ", routing ",
           o.no_routing ? "off" : "on", o.server.api_key.empty() ? "" : ", API key required");
  std::printf("serving on http://%s:%d\n", o.server.host.c_str(), port);
  std::fflush(stdout);
  SignalWaiter waiter(signals, server);
  server.run();
  const serve::SchedulerStats s = server.stats();
  log_info("hessgpt serve: stopped (", s.completed, " completed, ", s.cancelled, " cancelled, ",
           s.failed, " failed)");
}

void setup(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve the dual-model assistant over HTTP (OpenAI-compatible chat completions)");
  cmd->add_option("--model1", o->model1, "Model 1 (factual) checkpoint")->required();
  cmd->add_option("--model2", o->model2, "Model 2 (code) checkpoint")->required();
  cmd->add_option("--host", o->server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->server.port, "Port (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--api-key", o->server.api_key,
                  "Require \"Authorization: Bearer KEY\" (all but /health)");
  cmd->add_flag("--no-routing", o->no_routing,
                "Model 1 alone for every request, route tokens banned");
  cmd->add_option("--max-new", o->server.max_tokens_cap,
                  "Model 1 tokens per turn: a request's default and its cap")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-route-tokens", o->max_route_tokens, "Model 2 tokens per route")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--temperature", o->server.sampling.temperature,
                  "Default temperature (0: greedy)")
      ->capture_default_str();
  cmd->add_option("--top-k", o->server.sampling.top_k, "Default top-k (0: off)");
  cmd->add_option("--top-p", o->server.sampling.top_p, "Default top-p (1: off)");
  cmd->add_option("--seed", o->seed, "Default seed (default: a random seed per request)");
  cmd->add_option("--bits", o->bits, "Weights: 32, 16, 8 or 4 (default: as stored)");
  cmd->add_option("--tokenizer", o->tokenizer, "SentencePiece model (default: built-in Mistral)");
  cmd->add_option("--http-threads", o->server.http_threads, "Connections served at once")
      ->check(CLI::Range(2, 1024))
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", o->server.max_body_bytes, "Largest request body")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_compute_options(cmd, o->compute);
  cmd->callback([o] { run_serve(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
