// hessgpt bench generate: prefill and decode tokens/s of KV-cache generation
// at a weight precision, on random weights for a preset or on a checkpoint.
// On the CPU the memory-bandwidth bound (weight bytes per token / measured
// read bandwidth) stands beside the decode figure; on the GPU (DeviceSession,
// FP32 or BF16 matrices) the weight bytes per token and the GB/s they imply, and
// whether the decoding steps replayed a CUDA graph (decode_path
// "recorded-step"; HESSGPT_CUDA_GRAPHS=0 gives "backend-ops" for A/B).
// --profile: the device session's backend ops timed (on the CPU too), then a
// table of where a decoded token's time goes (infer/decode_profile.h).
#include <cstdio>

#include "cli/parent_command.h"
#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "cli/profile_table.h"
#include "core/rng.h"
#include "infer/decode_profile.h"
#include "infer/device_session.h"
#include "infer/generate.h"
#include "infer/membw.h"
#include "infer/open_session.h"
#include "infer/quant_file.h"
#include "infer/session.h"

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
  double temperature = 0.0;  // greedy by default: the draw's cost apart
  bool measure_bandwidth = true;
  bool per_op_decode = false;
  bool profile = false;
  bool json = false;
  ComputeOptions compute;
};

void run_bench_generate(const BenchGenerateOptions& o) {
  if (o.model.empty() == o.checkpoint.empty()) HG_FAIL("give exactly one of --model and --checkpoint");
  if (o.prompt_len <= 0 || o.gen <= 0) HG_FAIL("--prompt-len and --gen must be positive");
  std::vector<std::string> dirs;
  if (!o.checkpoint.empty()) dirs.push_back(o.checkpoint);
  auto backend = make_decode_backend(o.compute, dirs, o.bits);
  const bool on_cpu = backend->device() == Device::CPU;
  if (o.per_op_decode && !on_cpu)
    HG_FAIL("--per-op-decode picks a CPU decode path; --device ", backend->name(),
            " decodes through the backend's ops");
  if (o.profile && o.per_op_decode)
    HG_FAIL("--profile times the backend-op path (decode_path \"backend-ops\"); --per-op-decode "
            "picks a path of the CPU decoder");
  if (o.profile && o.bits != 32 && o.bits != 16)
    HG_FAIL("--profile times the backend-op path, which decodes with FP32 or BF16 matrices "
            "(--bits 32 or 16), not --bits ", o.bits);
  if (o.profile && !o.checkpoint.empty() && infer::is_quantized_dir(o.checkpoint))
    HG_FAIL("--profile times the backend-op path, which decodes FP32 checkpoints; '",
            o.checkpoint, "' holds quantised weights");
  const int threads = resolve_threads(o.compute.threads);
  const int64_t capacity = o.prompt_len + o.gen + 1;
  // --profile: the device's session (on the CPU too: the backend-op path,
  // not the CPU decoder's one region) on a TimedBackend, which records no CUDA
  // graph: the rates are then those of the op-by-op path, "backend-ops".
  std::unique_ptr<TimedBackend> timed;
  if (o.profile) timed = std::make_unique<TimedBackend>(*backend);
  const ModelConfig config = o.checkpoint.empty() ? resolve_model_config(o.model) : ModelConfig{};
  const std::unique_ptr<infer::Session> session =
      timed ? infer::open_backend_ops_session(o.checkpoint, config, o.seed, *timed, o.bits,
                                              capacity)
      : o.checkpoint.empty()
          ? infer::open_random_session(config, o.seed, *backend, o.bits, o.group_size, capacity)
          : infer::open_session(o.checkpoint, *backend, o.bits, o.group_size, capacity);
  const ModelConfig& c = session->config();
  if (o.prompt_len + o.gen > c.max_position_embeddings)
    HG_FAIL("--prompt-len + --gen (", o.prompt_len + o.gen, ") exceed the context (",
            c.max_position_embeddings, ")");
  Rng rng(o.seed);
  std::vector<int32_t> prompt(static_cast<size_t>(o.prompt_len));
  for (auto& id : prompt) id = static_cast<int32_t>(rng.below(static_cast<uint64_t>(c.vocab_size)));
  infer::GenerateOptions g;
  g.max_new = o.gen + 1;  // gen decode steps after the prefill
  g.sampling.temperature = o.temperature;
  g.sampling.seed = o.seed;
  g.stop_ids = {};
  if (auto* cpu = dynamic_cast<infer::DecoderSession*>(session.get()))
    cpu->set_fused_decode(!o.per_op_decode);
  {
    // Warm-up: page in the weights and the thread team (CPU); kernels,
    // product plans, the logits block, scratch grown to the prompt's size
    // and the decoding step recorded (GPU: a recording is made at a
    // session's second token and again after the scratch grows, so the
    // timed run would otherwise pay for one).
    const int64_t warm = on_cpu ? std::min<int64_t>(2, o.prompt_len) : o.prompt_len;
    session->feed(std::span<const int32_t>(prompt.data(), static_cast<size_t>(warm)));
    for (int i = 0; i < 2; ++i) session->feed(std::span<const int32_t>(prompt.data(), 1));
    session->reset();
  }
  const infer::GenerateResult r = infer::generate(*session, prompt, g);
  const infer::SessionInfo info = session->info();
  const auto* device_session = dynamic_cast<const infer::DeviceSession*>(session.get());
  const bool replayed = device_session && device_session->replayed_last_token();
  const double bytes_per_token = static_cast<double>(info.weight_bytes_per_token);
  const bool measure_bandwidth = o.measure_bandwidth && on_cpu;  // the probe reads host memory
  nlohmann::json j = {{"model", o.model.empty() ? o.checkpoint : o.model},
                      {"device", info.device},
                      {"threads", threads},
                      {"bits", infer::weight_format_bits(info.format)},
                      {"weights", infer::weight_format_name(info.format)},
                      {"prompt_len", o.prompt_len},
                      {"gen", r.decode_steps},
                      {"temperature", o.temperature},
                      {"prefill_tokens_per_s", r.prefill_tokens_per_s()},
                      {"decode_tokens_per_s", r.decode_tokens_per_s()},
                      {"decode_path", replayed           ? "recorded-step"
                                      : !on_cpu || timed ? "backend-ops"
                                      : o.per_op_decode ? "per-op"
                                                        : "one-region"},
                      {"weight_bytes_per_token", bytes_per_token},
                      {"decode_weight_gb_per_s", bytes_per_token * r.decode_tokens_per_s() / 1e9}};
  if (info.format == infer::WeightFormat::Q4) j["group_size"] = info.group_size;
  infer::DecodeProfile profile;
  double seconds_per_token = 0.0;  // of the profiled steps
  if (timed) {
    profile = infer::profile_decode(*session, *timed, prompt, o.gen);
    seconds_per_token = profile.seconds / static_cast<double>(profile.tokens);
    add_profile_json(j, profile.entries, profile.tokens, seconds_per_token, "token");
  }
  if (measure_bandwidth) {
    const double bw = infer::measure_read_bandwidth();
    j["memory_read_gb_per_s"] = bw / 1e9;
    j["decode_bound_tokens_per_s"] = bw / bytes_per_token;
    j["decode_fraction_of_bound"] = r.decode_tokens_per_s() / (bw / bytes_per_token);
  }
  if (o.json) {
    print_json(j);
  } else {
    const std::string where = on_cpu ? std::to_string(threads) + " threads" : info.device;
    std::printf("%s %s, %s: prefill %.1f tokens/s (%lld), decode %.2f tokens/s (%lld), %.1f MB/token",
                j["model"].get<std::string>().c_str(), infer::weight_format_name(info.format),
                where.c_str(), r.prefill_tokens_per_s(), static_cast<long long>(o.prompt_len),
                r.decode_tokens_per_s(), static_cast<long long>(r.decode_steps), bytes_per_token / 1e6);
    if (!on_cpu)
      std::printf(" (%.1f GB/s of weights; %s)", j["decode_weight_gb_per_s"].get<double>(),
                  j["decode_path"].get<std::string>().c_str());
    if (measure_bandwidth)
      std::printf(", bound %.2f tokens/s at %.1f GB/s", j["decode_bound_tokens_per_s"].get<double>(),
                  j["memory_read_gb_per_s"].get<double>());
    std::printf("\n");
    if (timed) {
      std::printf("%lld decoding steps profiled (timing marks around every op), %.3f ms a token\n",
                  static_cast<long long>(profile.tokens), 1000.0 * seconds_per_token);
      print_profile(profile.entries, profile.tokens, seconds_per_token, "token");
      print_profile_categories(profile.entries, profile.tokens, seconds_per_token, "token");
    }
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<BenchGenerateOptions>();
  CLI::App* cmd = bench_command(app)->add_subcommand("generate", "Prefill and decode tokens/s");
  auto* model = cmd->add_option("--model", o->model, "Preset or config.json (random weights)");
  auto* ck = cmd->add_option("--checkpoint", o->checkpoint, "Model directory");
  model->excludes(ck);
  cmd->add_option("--bits", o->bits,
                  "Weights: 32, 16 (bf16), 8 (int8), 4 (int4); the GPU decodes 32 or 16")
      ->capture_default_str();
  cmd->add_option("--group-size", o->group_size, "INT4 group size")->capture_default_str();
  cmd->add_option("--prompt-len", o->prompt_len, "Prompt tokens (one prefill pass)")->capture_default_str();
  cmd->add_option("--gen", o->gen, "Decode steps")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed for weights, prompt and draws")->capture_default_str();
  cmd->add_option("--temperature", o->temperature,
                  "Draw each token at this temperature (generate's default is 0.7) instead of "
                  "greedily: the decode rate then includes the host's draw")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("!--no-bandwidth", o->measure_bandwidth,
                "Skip the memory-bandwidth probe (CPU; never run for --device cuda)");
  cmd->add_flag("--per-op-decode", o->per_op_decode,
                "Decode through the batched path's per-op calls (A/B against the one-region path)");
  cmd->add_flag("--profile", o->profile,
                "Time every backend op of --gen decoding steps and show where a token's time "
                "goes: the device session's op-by-op path (no CUDA graph; on the CPU that path, "
                "not the CPU decoder)");
  cmd->add_flag("--json", o->json, "One JSON object on stdout");
  add_compute_options(cmd, o->compute);
  cmd->callback([o] { run_bench_generate(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
