#include "core/error.h"

namespace hessgpt {

void throw_error_at(const char* file, int line, const std::string& message) {
  throw Error(str_cat(message, " (", file, ":", line, ")"));
}

}  // namespace hessgpt
