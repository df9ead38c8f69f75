// On/off switches read from the environment (HESSGPT_FUSED_KV=0 and the
// like): a default form a user, or an A/B timing, can turn off. Unset, empty
// or "1" leaves it on, "0" turns it off; anything else is a clear error, not
// a silent default.
#pragma once

#include <cstdlib>
#include <string_view>

#include "core/error.h"

namespace hessgpt {

inline bool env_switch_on(const char* var) {
  const char* e = std::getenv(var);
  if (!e || !*e || std::string_view(e) == "1") return true;
  if (std::string_view(e) == "0") return false;
  HG_FAIL(var, " must be 0 or 1 (got '", e, "')");
}

}  // namespace hessgpt
