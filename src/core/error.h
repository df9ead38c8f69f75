// Errors: one exception type carrying a message that names the problem, plus
// checked macros that add file:line. Commands catch Error at their boundary
// and turn it into "error: ..." on stderr and a non-zero exit status; worker
// threads never let one escape (see parallel.h).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace hessgpt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Concatenates any streamable values into one string.
template <typename... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

[[noreturn]] void throw_error_at(const char* file, int line, const std::string& message);

}  // namespace hessgpt

// A user-facing failure (bad input, bad file): the message is for the user.
#define HG_FAIL(...) throw ::hessgpt::Error(::hessgpt::str_cat(__VA_ARGS__))

// A broken invariant: the message carries the condition and file:line.
#define HG_CHECK(cond, ...)                                                            \
  do {                                                                                 \
    if (!(cond))                                                                       \
      ::hessgpt::throw_error_at(__FILE__, __LINE__,                                    \
                                ::hessgpt::str_cat("check failed: " #cond " ", ##__VA_ARGS__)); \
  } while (0)
