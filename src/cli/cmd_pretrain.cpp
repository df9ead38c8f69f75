// hessgpt pretrain: train a model from scratch on prepared chunks.
#include <fstream>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "train/pretrain.h"

namespace hessgpt::cli {
namespace {

struct PretrainOptions {
  PretrainConfig run;
  std::string config_file;
  ComputeOptions compute;
  bool json = false;
};

// Keys of a --config JSON file: the long flag names with '_' for '-'.
void apply_config_file(const std::string& path, PretrainConfig& c) {
  std::ifstream in(path);
  if (!in) HG_FAIL("cannot open --config '", path, "'");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    HG_FAIL("--config '", path, "' is not valid JSON: ", e.what());
  }
  for (const auto& [key, value] : j.items()) {
    try {
      if (key == "model") c.model = value.get<std::string>();
      else if (key == "data") c.data_dir = value.get<std::string>();
      else if (key == "out") c.run_dir = value.get<std::string>();
      else if (key == "steps") c.steps = value.get<int64_t>();
      else if (key == "batch") c.batch = value.get<int64_t>();
      else if (key == "accum") c.accum = value.get<int64_t>();
      else if (key == "seq") c.seq = value.get<int64_t>();
      else if (key == "lr") c.lr = value.get<double>();
      else if (key == "warmup") c.warmup_fraction = value.get<double>();
      else if (key == "decay") c.decay_fraction = value.get<double>();
      else if (key == "lr_floor") c.lr_floor_fraction = value.get<double>();
      else if (key == "weight_decay") c.weight_decay = value.get<double>();
      else if (key == "clip") c.clip_norm = value.get<double>();
      else if (key == "eval_every") c.eval_every = value.get<int64_t>();
      else if (key == "eval_batches") c.eval_batches = value.get<int64_t>();
      else if (key == "save_every") c.save_every = value.get<int64_t>();
      else if (key == "keep") c.keep_last = value.get<int>();
      else if (key == "log_every") c.log_every = value.get<int64_t>();
      else if (key == "seed") c.seed = value.get<uint64_t>();
      else HG_FAIL("--config '", path, "': unknown key '", key, "'");
    } catch (const nlohmann::json::exception&) {
      HG_FAIL("--config '", path, "': key '", key, "' has the wrong type");
    }
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<PretrainOptions>();
  PretrainConfig& c = o->run;
  CLI::App* cmd = app.add_subcommand("pretrain", "Pretrain a model on prepared chunks");
  cmd->add_option("--config", o->config_file, "JSON file of defaults (flag names as keys); flags override");
  cmd->add_option("--model", c.model, "Preset or config.json")->capture_default_str();
  cmd->add_option("--data", c.data_dir, "Folder written by hessgpt prepare");
  cmd->add_option("--out", c.run_dir, "Run folder (checkpoints, final/, metrics.jsonl)");
  cmd->add_option("--steps", c.steps, "Optimizer steps (0: one pass over all chunks)")->capture_default_str();
  cmd->add_option("--batch", c.batch, "Micro-batch sequences")->capture_default_str();
  cmd->add_option("--accum", c.accum, "Micro-batches per optimizer step")->capture_default_str();
  cmd->add_option("--seq", c.seq, "Context length")->capture_default_str();
  cmd->add_option("--lr", c.lr, "Peak learning rate")->capture_default_str();
  cmd->add_option("--warmup", c.warmup_fraction, "WSD warm-up fraction")->capture_default_str();
  cmd->add_option("--decay", c.decay_fraction, "WSD decay fraction")->capture_default_str();
  cmd->add_option("--lr-floor", c.lr_floor_fraction, "Final LR as a fraction of the peak")->capture_default_str();
  cmd->add_option("--weight-decay", c.weight_decay, "AdamW decay on matrices")->capture_default_str();
  cmd->add_option("--clip", c.clip_norm, "Global gradient-norm clip (0: off)")->capture_default_str();
  cmd->add_option("--eval-every", c.eval_every, "Validate every N steps (0: only at the end)")->capture_default_str();
  cmd->add_option("--eval-batches", c.eval_batches, "Validation batches")->capture_default_str();
  cmd->add_option("--save-every", c.save_every, "Checkpoint every N steps (0: only at the end)")->capture_default_str();
  cmd->add_option("--keep", c.keep_last, "Checkpoints to keep")->capture_default_str();
  cmd->add_option("--log-every", c.log_every, "Print progress every N steps")->capture_default_str();
  cmd->add_option("--seed", c.seed, "Seed (initialisation and data order)")->capture_default_str();
  cmd->add_option("--stop-after", c.stop_after, "Stop after this step as if interrupted (testing resume)");
  cmd->add_flag("--resume", c.resume, "Resume from the newest checkpoint (also automatic)");
  cmd->add_flag("--json", o->json, "Print a JSON summary on stdout at the end");
  add_compute_options(cmd, o->compute);
  cmd->callback([o, cmd] {
    PretrainConfig config = o->run;
    if (!o->config_file.empty()) {
      // File values first, then every flag given on the command line again on top.
      PretrainConfig from_file;
      apply_config_file(o->config_file, from_file);
      auto pick = [&](auto PretrainConfig::*field, const char* flag) {
        if (cmd->count(flag) == 0) config.*field = from_file.*field;
      };
      pick(&PretrainConfig::model, "--model");
      pick(&PretrainConfig::data_dir, "--data");
      pick(&PretrainConfig::run_dir, "--out");
      pick(&PretrainConfig::steps, "--steps");
      pick(&PretrainConfig::batch, "--batch");
      pick(&PretrainConfig::accum, "--accum");
      pick(&PretrainConfig::seq, "--seq");
      pick(&PretrainConfig::lr, "--lr");
      pick(&PretrainConfig::warmup_fraction, "--warmup");
      pick(&PretrainConfig::decay_fraction, "--decay");
      pick(&PretrainConfig::lr_floor_fraction, "--lr-floor");
      pick(&PretrainConfig::weight_decay, "--weight-decay");
      pick(&PretrainConfig::clip_norm, "--clip");
      pick(&PretrainConfig::eval_every, "--eval-every");
      pick(&PretrainConfig::eval_batches, "--eval-batches");
      pick(&PretrainConfig::save_every, "--save-every");
      pick(&PretrainConfig::keep_last, "--keep");
      pick(&PretrainConfig::log_every, "--log-every");
      pick(&PretrainConfig::seed, "--seed");
    }
    auto backend = make_backend(o->compute);
    const PretrainResult r = run_pretrain(config, *backend);
    if (o->json)
      print_json({{"steps", r.steps_done}, {"resumed_from", r.resumed_from}, {"loss", r.last_loss},
                  {"val_loss", r.last_val_loss}, {"skipped_steps", r.skipped_steps},
                  {"completed", r.completed}});
  });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
