// Subcommands register themselves here, one file per command (cmd_<name>.cpp):
//
//   static void setup(CLI::App& app) { auto* cmd = app.add_subcommand(...); ... }
//   HG_REGISTER_COMMAND(setup);
//
// A command's callback may throw hessgpt::Error; main prints it and exits 1.
#pragma once

#include <functional>
#include <vector>

#include <CLI/CLI.hpp>

namespace hessgpt::cli {

using CommandSetup = std::function<void(CLI::App&)>;

std::vector<CommandSetup>& command_setups();

struct CommandRegistration {
  explicit CommandRegistration(CommandSetup setup) { command_setups().push_back(std::move(setup)); }
};

}  // namespace hessgpt::cli

#define HG_CONCAT_INNER(a, b) a##b
#define HG_CONCAT(a, b) HG_CONCAT_INNER(a, b)
#define HG_REGISTER_COMMAND(fn) \
  static ::hessgpt::cli::CommandRegistration HG_CONCAT(hg_command_registration_, __LINE__)(fn)
