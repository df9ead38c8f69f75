// hessgpt bench ops: each backend op timed alone at a model's training shapes.
#include <algorithm>
#include <cstdio>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "cli/parent_command.h"
#include "train/ops_bench.h"

namespace hessgpt::cli {
namespace {

struct BenchOpsOptions {
  std::string model = "small";
  int64_t batch = 8;
  int64_t seq = 256;
  int repeat = 5;
  uint64_t seed = 1;
  std::string only;
  bool json = false;
  ComputeOptions compute;
};

void run_bench_ops(const BenchOpsOptions& o) {
  if (o.batch <= 0 || o.seq <= 0 || o.repeat <= 0)
    HG_FAIL("--batch, --seq and --repeat must be positive");
  const ModelConfig config = resolve_model_config(o.model);
  auto backend = make_backend(o.compute);
  const std::vector<OpTiming> ops = run_ops_bench(config, *backend, o.batch, o.seq, o.repeat, o.seed, o.only);
  if (o.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const OpTiming& t : ops)
      list.push_back({{"op", t.name}, {"shape", t.shape}, {"ms", t.ms},
                      {"tflops_per_s", t.tflops_per_s()}, {"gbytes_per_s", t.gbytes_per_s()}});
    print_json({{"model", o.model}, {"device", backend->name()}, {"precision", o.compute.precision},
                {"batch", o.batch}, {"seq", o.seq}, {"ops", list}});
    return;
  }
  std::printf("%s on %s (%s products), batch %lld x %lld; median of %d\n", o.model.c_str(),
              backend->name().c_str(), o.compute.precision.c_str(),
              static_cast<long long>(o.batch), static_cast<long long>(o.seq), o.repeat);
  int width = 2;  // the longest name, so that the columns line up
  for (const OpTiming& t : ops) width = std::max(width, static_cast<int>(t.name.size()));
  std::printf("%-*s %10s %10s %10s  %s\n", width, "op", "ms", "TFLOP/s", "GB/s", "shape");
  for (const OpTiming& t : ops)
    std::printf("%-*s %10.3f %10.2f %10.1f  %s\n", width, t.name.c_str(), t.ms, t.tflops_per_s(),
                t.gbytes_per_s(), t.shape.c_str());
}

void setup(CLI::App& app) {
  CLI::App* bench = bench_command(app);
  auto o = std::make_shared<BenchOpsOptions>();
  CLI::App* cmd = bench->add_subcommand("ops", "Each backend op timed alone at a model's shapes");
  cmd->add_option("--model", o->model, "Preset or config.json")->capture_default_str();
  cmd->add_option("--batch", o->batch, "Micro-batch size")->capture_default_str();
  cmd->add_option("--seq", o->seq, "Sequence length")->capture_default_str();
  cmd->add_option("--repeat", o->repeat, "Timed runs per op (the median is reported)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the random inputs")->capture_default_str();
  cmd->add_option("--only", o->only,
                  "Time only the ops whose names match this regular expression (e.g. attention)");
  cmd->add_flag("--json", o->json, "One JSON object on stdout");
  add_compute_options(cmd, o->compute);
  cmd->callback([o] { run_bench_ops(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
