// Commands with subcommands (`hessgpt bench train`, `hessgpt eval routing`):
// each subcommand's file adds itself to the shared parent; whichever file
// registers first creates it, since the order in which files register is not
// defined.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace hessgpt::cli {

inline CLI::App* parent_command(CLI::App& app, const std::string& name, const std::string& description) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    if (sub->get_name() == name) return sub;
  CLI::App* parent = app.add_subcommand(name, description);
  parent->require_subcommand(1);
  return parent;
}

inline CLI::App* bench_command(CLI::App& app) { return parent_command(app, "bench", "Benchmarks"); }

}  // namespace hessgpt::cli
