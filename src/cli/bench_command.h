// The shared `hessgpt bench` parent command. Each benchmark file adds its own
// subcommand to it; whichever registers first creates it, since the order in
// which files register is not defined.
#pragma once

#include <CLI/CLI.hpp>

namespace hessgpt::cli {

inline CLI::App* bench_command(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    if (sub->get_name() == "bench") return sub;
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  return bench;
}

}  // namespace hessgpt::cli
