// Runs this same hessgpt binary as a child process with other arguments,
// sharing stdout/stderr (so its progress shows), and waits for it. The demo
// drives its stages this way: each stage is exactly the command a user would
// type, and a stage's memory is returned to the system when it ends.
#pragma once

#include <string>
#include <vector>

namespace hessgpt::cli {

// The exit status of `hessgpt args...` (128 + signal when killed by one).
// Throws Error when the child cannot be started.
int run_self(const std::vector<std::string>& args);

// "hessgpt prepare --out x" for messages.
std::string command_line(const std::vector<std::string>& args);

}  // namespace hessgpt::cli
