// hessgpt bench generate: prefill and decode tokens/s of KV-cache generation
// at a weight precision, on random weights for a preset or on a checkpoint,
// with the memory-bandwidth bound (weight bytes per token / measured read
// bandwidth) beside the decode figure.
#include <cstdio>

#include "cli/parent_command.h"
#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "core/rng.h"
#include "infer/generate.h"
#include "infer/membw.h"

namespace hessgpt::cli {
namespace {

struct BenchGenerateOptions {
  std::string model;
  std::string checkpoint;
  int bits = 32;
  int64_t group_size = 32;
  int64_t prompt_len = 128;
  int64_t gen = 64;
  uint64_t seed = 1;
  bool measure_bandwidth = true;
  bool per_op_decode = false;
  bool json = false;
  ComputeOptions compute;
};

void run_bench_generate(const BenchGenerateOptions& o) {
  if (o.model.empty() == o.checkpoint.empty()) HG_FAIL("give exactly one of --model and --checkpoint");
  if (o.prompt_len <= 0 || o.gen <= 0) HG_FAIL("--prompt-len and --gen must be positive");
  auto backend = make_backend(o.compute, /*cuda_ready=*/false);
  const int threads = resolve_threads(o.compute.threads);
  infer::InferWeights w;
  if (!o.checkpoint.empty()) {
    w = infer::load_infer_weights(o.checkpoint, *backend, o.bits, o.group_size);
  } else {
    const ModelConfig config = resolve_model_config(o.model);
    auto model = std::make_unique<Model>(config, *backend);
    model->init_random(o.seed);
    w = infer::weights_from_model(std::move(model), infer::weight_format_from_bits(o.bits), o.group_size);
  }
  const ModelConfig& c = w.config;
  if (o.prompt_len + o.gen > c.max_position_embeddings)
    HG_FAIL("--prompt-len + --gen (", o.prompt_len + o.gen, ") exceed the context (",
            c.max_position_embeddings, ")");
  Rng rng(o.seed);
  std::vector<int32_t> prompt(static_cast<size_t>(o.prompt_len));
  for (auto& id : prompt) id = static_cast<int32_t>(rng.below(static_cast<uint64_t>(c.vocab_size)));
  infer::GenerateOptions g;
  g.max_new = o.gen + 1;  // gen decode steps after the prefill
  g.sampling.temperature = 0.0;
  g.stop_ids = {};
  infer::DecoderSession session(w, *backend, o.prompt_len + o.gen + 1);
  session.set_fused_decode(!o.per_op_decode);
  {
    // Warm-up: page in the weights and the thread team.
    const std::vector<int32_t> two(prompt.begin(), prompt.begin() + std::min<int64_t>(2, o.prompt_len));
    session.feed(two);
    session.feed(std::span<const int32_t>(prompt.data(), 1));
    session.reset();
  }
  const infer::GenerateResult r = infer::generate(session, prompt, g);
  const double bytes_per_token = static_cast<double>(w.decode_stream_bytes());
  nlohmann::json j = {{"model", o.model.empty() ? o.checkpoint : o.model},
                      {"device", backend->name()},
                      {"threads", threads},
                      {"bits", infer::weight_format_bits(w.format)},
                      {"weights", infer::weight_format_name(w.format)},
                      {"prompt_len", o.prompt_len},
                      {"gen", r.decode_steps},
                      {"prefill_tokens_per_s", r.prefill_tokens_per_s()},
                      {"decode_tokens_per_s", r.decode_tokens_per_s()},
                      {"decode_path", o.per_op_decode ? "per-op" : "one-region"},
                      {"weight_bytes_per_token", bytes_per_token},
                      {"decode_weight_gb_per_s", bytes_per_token * r.decode_tokens_per_s() / 1e9}};
  if (o.bits == 4) j["group_size"] = w.group_size;
  if (o.measure_bandwidth) {
    const double bw = infer::measure_read_bandwidth();
    j["memory_read_gb_per_s"] = bw / 1e9;
    j["decode_bound_tokens_per_s"] = bw / bytes_per_token;
    j["decode_fraction_of_bound"] = r.decode_tokens_per_s() / (bw / bytes_per_token);
  }
  if (o.json) {
    print_json(j);
  } else {
    std::printf("%s %s, %d threads: prefill %.1f tokens/s (%lld), decode %.2f tokens/s (%lld), %.1f MB/token",
                j["model"].get<std::string>().c_str(), infer::weight_format_name(w.format), threads,
                r.prefill_tokens_per_s(), static_cast<long long>(o.prompt_len), r.decode_tokens_per_s(),
                static_cast<long long>(r.decode_steps), bytes_per_token / 1e6);
    if (o.measure_bandwidth)
      std::printf(", bound %.2f tokens/s at %.1f GB/s", j["decode_bound_tokens_per_s"].get<double>(),
                  j["memory_read_gb_per_s"].get<double>());
    std::printf("\n");
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<BenchGenerateOptions>();
  CLI::App* cmd = bench_command(app)->add_subcommand("generate", "Prefill and decode tokens/s");
  auto* model = cmd->add_option("--model", o->model, "Preset or config.json (random weights)");
  auto* ck = cmd->add_option("--checkpoint", o->checkpoint, "Model directory");
  model->excludes(ck);
  cmd->add_option("--bits", o->bits, "Weights: 32, 16 (bf16), 8 (int8), 4 (int4)")->capture_default_str();
  cmd->add_option("--group-size", o->group_size, "INT4 group size")->capture_default_str();
  cmd->add_option("--prompt-len", o->prompt_len, "Prompt tokens (one prefill pass)")->capture_default_str();
  cmd->add_option("--gen", o->gen, "Decode steps")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed for weights and prompt")->capture_default_str();
  cmd->add_flag("!--no-bandwidth", o->measure_bandwidth, "Skip the memory-bandwidth probe");
  cmd->add_flag("--per-op-decode", o->per_op_decode,
                "Decode through the batched path's per-op calls (A/B against the one-region path)");
  cmd->add_flag("--json", o->json, "One JSON object on stdout");
  add_compute_options(cmd, o->compute);
  cmd->callback([o] { run_bench_generate(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
