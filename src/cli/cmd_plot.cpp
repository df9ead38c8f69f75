// hessgpt plot RUN_DIR: loss, LR and throughput curves as an SVG image.
#include <filesystem>
#include <fstream>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "core/log.h"
#include "train/metrics_log.h"
#include "train/plot_svg.h"

namespace hessgpt::cli {
namespace {

struct PlotOptions {
  std::string run_dir;
  std::string out;
};

void run_plot(const PlotOptions& o) {
  namespace fs = std::filesystem;
  const fs::path metrics = fs::path(o.run_dir) / "metrics.jsonl";
  if (!fs::exists(metrics)) HG_FAIL("'", o.run_dir, "' has no metrics.jsonl (not a training run?)");
  const auto records = read_metrics(metrics.string());
  if (records.empty()) HG_FAIL(metrics.string(), " holds no records yet");
  const std::string out = o.out.empty() ? (fs::path(o.run_dir) / "metrics.svg").string() : o.out;
  std::ofstream f(out);
  if (!f) HG_FAIL("cannot write '", out, "'");
  f << render_metrics_svg(records, fs::path(o.run_dir).filename().string() + " (" +
                                       std::to_string(records.size()) + " steps)");
  log_info("wrote ", out);
}

void setup(CLI::App& app) {
  auto o = std::make_shared<PlotOptions>();
  CLI::App* cmd = app.add_subcommand("plot", "Plot a run's loss, LR and throughput (SVG)");
  cmd->add_option("run", o->run_dir, "Run folder")->required();
  cmd->add_option("--out", o->out, "Output .svg (default RUN/metrics.svg)");
  cmd->callback([o] { run_plot(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
