// hessgpt bench train: throughput of full training steps.
#include <cstdio>

#include "cli/parent_command.h"
#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "core/log.h"
#include "train/train_bench.h"

namespace hessgpt::cli {
namespace {

constexpr double kH100DenseBf16FlopsPerS = 989e12;

struct BenchTrainOptions {
  std::string model = "small";
  int64_t batch = 8;
  int64_t seq = 256;
  int64_t steps = 5;
  int64_t warmup = 1;
  uint64_t seed = 1;
  MemoryOptions memory;
  bool json = false;
  ComputeOptions compute;
};

void run_bench_train(const BenchTrainOptions& o) {
  if (o.batch <= 0 || o.seq <= 0 || o.steps <= 0)
    HG_FAIL("--batch, --seq and --steps must be positive");
  const ModelConfig config = resolve_model_config(o.model);
  if (o.seq > config.max_position_embeddings)
    log_warn("--seq ", o.seq, " exceeds max_position_embeddings ", config.max_position_embeddings);
  auto backend = make_backend(o.compute);
  const int threads = resolve_threads(o.compute.threads);
  const TrainBenchResult r =
      run_train_bench(config, *backend, o.batch, o.seq, o.steps, o.warmup, o.seed, o.memory);
  nlohmann::json j = {{"model", o.model},           {"device", backend->name()},
                      {"threads", threads},         {"batch", o.batch},
                      {"seq", o.seq},               {"steps", r.steps},
                      {"precision", o.compute.precision},
                      {"recompute", o.memory.recompute},
                      {"bf16_ffn", o.memory.bf16_ffn || o.memory.bf16_activations},
                      {"bf16_activations", o.memory.bf16_activations},
                      {"tokens_per_s", r.tokens_per_s},
                      {"seconds_per_step", r.seconds_per_step},
                      {"gflops_per_s", r.gflops_per_s},
                      {"flops_per_token", r.flops_per_token},
                      {"last_loss", r.last_loss}};
  if (backend->device() == Device::CUDA) {
    // Model FLOPs utilisation against an H100 SXM's dense BF16 peak (issue 9's
    // yardstick), whatever the precision of the run.
    j["mfu"] = r.gflops_per_s * 1e9 / kH100DenseBf16FlopsPerS;
    j["mfu_peak_flops_per_s"] = kH100DenseBf16FlopsPerS;
  }
  if (o.json) {
    print_json(j);
  } else {
    std::printf("%s on %s, %d threads, batch %lld x %lld: %.0f tokens/s, %.3f s/step, %.1f GFLOP/s\n",
                o.model.c_str(), backend->name().c_str(), threads, static_cast<long long>(o.batch),
                static_cast<long long>(o.seq), r.tokens_per_s, r.seconds_per_step, r.gflops_per_s);
  }
}

void setup(CLI::App& app) {
  CLI::App* bench = bench_command(app);
  auto o = std::make_shared<BenchTrainOptions>();
  CLI::App* train = bench->add_subcommand("train", "Tokens/s of full training steps");
  train->add_option("--model", o->model, "Preset or config.json")->capture_default_str();
  train->add_option("--batch", o->batch, "Micro-batch size")->capture_default_str();
  train->add_option("--seq", o->seq, "Sequence length")->capture_default_str();
  train->add_option("--steps", o->steps, "Timed steps")->capture_default_str();
  train->add_option("--warmup", o->warmup, "Untimed warm-up steps")->capture_default_str();
  train->add_option("--seed", o->seed, "Seed")->capture_default_str();
  add_memory_options(train, o->memory);
  train->add_flag("--json", o->json, "One JSON object on stdout");
  add_compute_options(train, o->compute);
  train->callback([o] { run_bench_train(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
