// hessgpt pretrain: train a model from scratch on prepared chunks.
#include <algorithm>
#include <fstream>
#include <type_traits>
#include <variant>
#include <vector>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "cli/ranked_run.h"
#include "train/pretrain.h"

namespace hessgpt::cli {
namespace {

struct PretrainOptions {
  PretrainConfig run;
  std::string config_file;
  ComputeOptions compute;
  bool json = false;
};

// Every setting once: its flag, where it goes, and its help. A --config JSON
// file uses the flag names without "--" and with '_' for '-' as keys.
using Field = std::variant<std::string PretrainConfig::*, int64_t PretrainConfig::*, double PretrainConfig::*,
                           int PretrainConfig::*, uint64_t PretrainConfig::*, bool PretrainConfig::*>;
struct Setting {
  const char* flag;
  Field field;
  const char* help;
};

const std::vector<Setting>& settings() {
  using C = PretrainConfig;
  static const std::vector<Setting> k = {
      {"--model", &C::model, "Preset or config.json"},
      {"--data", &C::data_dir, "Folder written by hessgpt prepare"},
      {"--out", &C::run_dir, "Run folder (checkpoints, final/, metrics.jsonl)"},
      {"--steps", &C::steps, "Optimizer steps (0: one pass over all chunks)"},
      {"--batch", &C::batch, "Micro-batch sequences"},
      {"--accum", &C::accum, "Micro-batches per optimizer step"},
      {"--seq", &C::seq, "Context length"},
      {"--lr", &C::lr, "Peak learning rate"},
      {"--warmup", &C::warmup_fraction, "WSD warm-up fraction"},
      {"--decay", &C::decay_fraction, "WSD decay fraction"},
      {"--lr-floor", &C::lr_floor_fraction, "Final LR as a fraction of the peak"},
      {"--weight-decay", &C::weight_decay, "AdamW decay on matrices"},
      {"--clip", &C::clip_norm, "Global gradient-norm clip (0: off)"},
      {"--eval-every", &C::eval_every, "Validate every N steps (0: only at the end)"},
      {"--eval-batches", &C::eval_batches, "Validation batches"},
      {"--save-every", &C::save_every, "Checkpoint every N steps (0: only at the end)"},
      {"--keep", &C::keep_last, "Checkpoints to keep"},
      {"--log-every", &C::log_every, "Print progress every N steps"},
      {"--seed", &C::seed, "Seed (initialisation and data order)"},
      {"--recompute", &C::recompute,
       "Selective activation recomputation: ~39 % less activation memory, a few more "
       "element-wise passes"},
      {"--recompute-mlp", &C::recompute_mlp,
       "Recompute only the MLP's inputs (its norm and SwiGLU): ~62 % of --recompute's saving "
       "for ~44 % of its extra passes"},
      {"--bf16-ffn", &C::bf16_ffn,
       "Keep the FFN's gate/up activations in BF16: ~27 % less activation memory"},
      {"--bf16-activations", &C::bf16_activations,
       "With --precision bf16: also keep the products' and attention's inputs (norm, "
       "attention, SwiGLU outputs; q, k, v) and SwiGLU's input gradient in BF16: the same "
       "products, less memory and traffic"}};
  return k;
}

std::string config_key(const char* flag) {
  std::string key(flag + 2);
  std::replace(key.begin(), key.end(), '-', '_');
  return key;
}

// `out` holds the command line's values (and defaults); the file's values
// replace every one whose flag was not given.
void apply_config_file(const std::string& path, const CLI::App& cmd, PretrainConfig& out) {
  std::ifstream in(path);
  if (!in) HG_FAIL("cannot open --config '", path, "'");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    HG_FAIL("--config '", path, "' is not valid JSON: ", e.what());
  }
  if (!j.is_object()) HG_FAIL("--config '", path, "' must hold a JSON object");
  for (const auto& [key, value] : j.items()) {
    const auto it = std::find_if(settings().begin(), settings().end(),
                                 [&](const Setting& s) { return config_key(s.flag) == key; });
    if (it == settings().end()) HG_FAIL("--config '", path, "': unknown key '", key, "'");
    if (cmd.count(it->flag) > 0) continue;  // the command line wins
    std::visit(
        [&](auto field) {
          using T = std::remove_reference_t<decltype(out.*field)>;
          try {
            out.*field = value.get<T>();
          } catch (const nlohmann::json::exception&) {
            HG_FAIL("--config '", path, "': key '", key, "' has the wrong type");
          }
        },
        it->field);
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<PretrainOptions>();
  PretrainConfig& c = o->run;
  CLI::App* cmd = app.add_subcommand("pretrain", "Pretrain a model on prepared chunks");
  cmd->add_option("--config", o->config_file, "JSON file of settings (flag names as keys); flags override");
  for (const Setting& s : settings())
    std::visit(
        [&](auto field) {
          if constexpr (std::is_same_v<std::remove_reference_t<decltype(c.*field)>, bool>)
            cmd->add_flag(s.flag, c.*field, s.help);
          else
            cmd->add_option(s.flag, c.*field, s.help)->capture_default_str();
        },
        s.field);
  cmd->add_option("--stop-after", c.stop_after, "Stop after this step as if interrupted (testing resume)");
  cmd->add_flag("--resume", c.resume, "Resume from the newest checkpoint (also automatic)");
  cmd->add_flag("--json", o->json, "Print a JSON summary on stdout at the end");
  add_compute_options(cmd, o->compute);
  cmd->callback([o, cmd] {
    PretrainConfig config = o->run;
    if (!o->config_file.empty()) apply_config_file(o->config_file, *cmd, config);
    const RankedRun ranked = start_ranked_run(o->compute);
    PretrainResult r;
    run_on_every_rank(*ranked.comm,
                      [&] { r = run_pretrain(config, *ranked.backend, *ranked.comm); });
    if (ranked.comm->rank() > 0) return;
    if (o->json)
      print_json({{"steps", r.steps_done}, {"resumed_from", r.resumed_from}, {"loss", r.last_loss},
                  {"val_loss", r.last_val_loss}, {"skipped_steps", r.skipped_steps},
                  {"completed", r.completed}, {"device", device_name(ranked.backend->device())}});
  });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
