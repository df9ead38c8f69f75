// hessgpt: one binary for the whole life cycle. Each subcommand lives in its
// own cmd_<name>.cpp and registers itself (command_registry.h).
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "cli/command_registry.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"HessGPT: train and serve a dual-model (factual + code) assistant"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hessgpt 0.1.0");
  for (const auto& setup : hessgpt::cli::command_setups()) setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const hessgpt::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
