#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace hessgpt {
namespace {
std::atomic<LogLevel> g_level{LogLevel::Info};
std::mutex g_mutex;
}  // namespace

void set_log_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }

void log_message(LogLevel level, const std::string& message) {
  if (level < g_level.load()) return;
  static const char* const prefix[] = {"debug: ", "", "warning: ", "error: "};
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "%s%s\n", prefix[static_cast<int>(level)], message.c_str());
}

}  // namespace hessgpt
