// The serve tests' HTTP side: an in-process server on a free port, a client
// for it, requests, and server-sent-event parsing.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "serve/http_server.h"
#include "serve_test_util.h"

namespace hessgpt::serve_test {

// An HttpServer on a free port of 127.0.0.1, served by a thread of its own.
class ServerThread {
 public:
  ServerThread(serve::TurnRunner& runner, serve::ServerOptions options) {
    options.host = "127.0.0.1";
    options.port = 0;
    options.log_requests = false;
    server_ = std::make_unique<serve::HttpServer>(runner, options);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->run(); });
  }
  ~ServerThread() { stop(); }
  void stop() {
    server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }
  serve::HttpServer& server() { return *server_; }
  httplib::Client client(const std::string& api_key = "") const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    if (!api_key.empty()) c.set_bearer_token_auth(api_key.c_str());
    return c;
  }

 private:
  std::unique_ptr<serve::HttpServer> server_;
  int port_ = 0;
  std::thread thread_;
};

inline json user_request(const std::string& content, json extra = json::object()) {
  json body = {{"messages", json::array({{{"role", "user"}, {"content", content}}})}};
  for (auto& [k, v] : extra.items()) body[k] = v;
  return body;
}

inline httplib::Result post(httplib::Client& c, const json& body) {
  return c.Post("/v1/chat/completions", body.dump(), "application/json");
}

// The "data:" payloads of a server-sent-event stream, in order ("[DONE]"
// included); comment lines (": keep-alive") are skipped as clients do.
inline std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string::npos) end = body.size();
    const std::string line = body.substr(pos, end - pos);
    if (line.rfind("data: ", 0) == 0) out.push_back(line.substr(6));
    pos = end + 1;
  }
  return out;
}

}  // namespace hessgpt::serve_test
