// Minimal leveled logging to stderr; stdout is reserved for command output
// (e.g. the one JSON object of --json).
#pragma once

#include <string>

#include "core/error.h"

namespace hessgpt {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3, Quiet = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
void log_message(LogLevel level, const std::string& message);

template <typename... Args>
void log_info(Args&&... args) { log_message(LogLevel::Info, str_cat(std::forward<Args>(args)...)); }
template <typename... Args>
void log_warn(Args&&... args) { log_message(LogLevel::Warn, str_cat(std::forward<Args>(args)...)); }
template <typename... Args>
void log_debug(Args&&... args) { log_message(LogLevel::Debug, str_cat(std::forward<Args>(args)...)); }

}  // namespace hessgpt
