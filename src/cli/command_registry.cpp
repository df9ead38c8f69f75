#include "cli/command_registry.h"

namespace hessgpt::cli {

std::vector<CommandSetup>& command_setups() {
  static std::vector<CommandSetup> setups;
  return setups;
}

}  // namespace hessgpt::cli
