// HttpServer where cpp-httplib was not found at configure time: the rest of
// the project builds, and `hessgpt serve` says what to install.
#include "serve/http_server.h"

#include "core/error.h"

namespace hessgpt::serve {

struct HttpServer::Impl {};

HttpServer::HttpServer(TurnRunner&, ServerOptions) {
  HG_FAIL(
      "this hessgpt was built without cpp-httplib (Debian: libcpp-httplib-dev), "
      "so it cannot serve HTTP; install it and build again");
}
HttpServer::~HttpServer() = default;
int HttpServer::bind() { return -1; }
void HttpServer::run() {}
void HttpServer::stop() {}
SchedulerStats HttpServer::stats() const { return {}; }

}  // namespace hessgpt::serve
