// hessgpt bench train: throughput of full training steps.
#include <cstdio>

#include "cli/parent_command.h"
#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "cli/profile_table.h"
#include "backend/timed_backend.h"
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
  bool profile = false;
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
  // --profile: the same steps through a TimedBackend, its table taken over the
  // timed steps only (not the warm-up, not the teardown).
  std::unique_ptr<TimedBackend> timed;
  if (o.profile) timed = std::make_unique<TimedBackend>(*backend);
  Backend& run_on = timed ? static_cast<Backend&>(*timed) : *backend;
  std::vector<TimedBackend::Entry> profile;
  const TrainBenchResult r =
      run_train_bench(config, run_on, o.batch, o.seq, o.steps, o.warmup, o.seed, o.memory,
                      [&](bool start) {
                        if (!timed) return;
                        if (start) timed->reset();
                        else profile = timed->entries();
                      });
  nlohmann::json j = {{"model", o.model},           {"device", backend->name()},
                      {"threads", threads},         {"batch", o.batch},
                      {"seq", o.seq},               {"steps", r.steps},
                      {"precision", o.compute.precision},
                      {"recompute", o.memory.recompute},
                      {"recompute_mlp", o.memory.recompute_mlp && !o.memory.recompute},
                      {"bf16_ffn", o.memory.bf16_ffn || o.memory.bf16_activations},
                      {"bf16_activations", o.memory.bf16_activations},
                      {"tokens_per_s", r.tokens_per_s},
                      {"seconds_per_step", r.seconds_per_step},
                      {"gflops_per_s", r.gflops_per_s},
                      {"flops_per_token", r.flops_per_token},
                      {"last_loss", r.last_loss}};
  if (timed) add_profile_json(j, profile, r.steps, r.seconds_per_step, "step");
  if (backend->device() == Device::CUDA) {
    // Model FLOPs utilisation against an H100 SXM's dense BF16 peak (issue 9's
    // yardstick), whatever the precision of the run.
    j["mfu"] = r.gflops_per_s * 1e9 / kH100DenseBf16FlopsPerS;
    // PaLM's convention (attention without the causal halving), the usual MFU
    // of papers and of nanoGPT: the same throughput, counted their way.
    j["mfu_palm"] = r.tokens_per_s * palm_flops_per_token(config, o.seq) / kH100DenseBf16FlopsPerS;
    j["mfu_peak_flops_per_s"] = kH100DenseBf16FlopsPerS;
  }
  if (o.json) {
    print_json(j);
  } else {
    std::printf("%s on %s, %d threads, batch %lld x %lld: %.0f tokens/s, %.3f s/step, %.1f GFLOP/s%s\n",
                o.model.c_str(), backend->name().c_str(), threads, static_cast<long long>(o.batch),
                static_cast<long long>(o.seq), r.tokens_per_s, r.seconds_per_step, r.gflops_per_s,
                timed ? " (profiled: timing marks around every op)" : "");
    if (timed) {
      print_profile(profile, r.steps, r.seconds_per_step, "step");
      print_profile_categories(profile, r.steps, r.seconds_per_step, "step");
    }
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
  train->add_flag("--profile", o->profile,
                  "Time every backend op inside the steps (on a GPU: events in its stream, the "
                  "device's time per op) and print where a step's time goes");
  train->add_flag("--json", o->json, "One JSON object on stdout");
  add_compute_options(train, o->compute);
  train->callback([o] { run_bench_train(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
