// hessgpt eval perplexity: mean next-token cross-entropy and perplexity of a
// checkpoint on the validation split of prepared data, with its weights at
// FP32, BF16, INT8 or INT4, so that what quantisation costs is one command
// per format on the same windows.
#include <chrono>
#include <cstdio>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "cli/parent_command.h"
#include "data/loader.h"
#include "infer/open_session.h"
#include "infer/perplexity.h"

namespace hessgpt::cli {
namespace {

struct PerplexityOptions {
  std::string checkpoint;
  std::string data;
  int bits = 32;
  int64_t group_size = 32;
  int64_t seq = 256;
  int64_t windows = 64;
  int chunk = 0;
  bool json = false;
  ComputeOptions compute;
};

void run_eval_perplexity(const PerplexityOptions& o) {
  if (o.seq <= 0 || o.windows <= 0) HG_FAIL("--seq and --windows must be positive");
  auto backend = make_decode_backend(o.compute, {o.checkpoint}, o.bits);
  const std::unique_ptr<infer::Session> session =
      infer::open_session(o.checkpoint, *backend, o.bits, o.group_size, o.seq);
  const infer::SessionInfo info = session->info();
  const data::Dataset ds = data::Dataset::open(o.data);
  data::BatchLoader loader(ds, o.chunk, data::Split::kVal, 1, o.seq, data::Order::kSequential, 0,
                           static_cast<int32_t>(session->config().vocab_size));
  const int64_t windows = std::min(o.windows, loader.examples_per_epoch());
  std::vector<int32_t> inputs(static_cast<size_t>(windows * o.seq)), targets(inputs.size());
  for (int64_t i = 0; i < windows; ++i)
    loader.next(std::span<int32_t>(inputs.data() + i * o.seq, static_cast<size_t>(o.seq)),
                std::span<int32_t>(targets.data() + i * o.seq, static_cast<size_t>(o.seq)));
  const auto t0 = std::chrono::steady_clock::now();
  const infer::PerplexityResult r = infer::evaluate_perplexity(*session, inputs, targets, o.seq);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json j = {{"checkpoint", o.checkpoint},
                      {"data", o.data},
                      {"bits", infer::weight_format_bits(info.format)},
                      {"weights", infer::weight_format_name(info.format)},
                      {"device", info.device},
                      {"windows", windows},
                      {"seq", o.seq},
                      {"tokens", r.tokens},
                      {"mean_nll", r.mean_nll()},
                      {"perplexity", r.perplexity()},
                      {"seconds", seconds}};
  if (info.format == infer::WeightFormat::Q4) j["group_size"] = info.group_size;
  if (o.json) {
    print_json(j);
  } else {
    std::printf("%s (%s) on %lld validation tokens of %s: %.4f nats/token, perplexity %.2f (%.1f s)\n",
                o.checkpoint.c_str(), infer::weight_format_name(info.format),
                static_cast<long long>(r.tokens), o.data.c_str(), r.mean_nll(), r.perplexity(), seconds);
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<PerplexityOptions>();
  CLI::App* cmd = parent_command(app, "eval", "Evaluations")
                      ->add_subcommand("perplexity", "Validation perplexity at a weight precision");
  cmd->add_option("--checkpoint", o->checkpoint, "Model directory")->required();
  cmd->add_option("--data", o->data, "Prepared data folder (its validation split)")->required();
  cmd->add_option("--bits", o->bits, "Weights: 32, 16 (bf16), 8 (int8), 4 (int4)")->capture_default_str();
  cmd->add_option("--group-size", o->group_size, "INT4 group size")->capture_default_str();
  cmd->add_option("--seq", o->seq, "Tokens per window (each scored from an empty cache)")->capture_default_str();
  cmd->add_option("--windows", o->windows, "Windows scored (at most the split's)")->capture_default_str();
  cmd->add_option("--chunk", o->chunk, "Chunk of the data")->capture_default_str();
  cmd->add_flag("--json", o->json, "One JSON object on stdout");
  add_compute_options(cmd, o->compute);
  cmd->callback([o] { run_eval_perplexity(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
