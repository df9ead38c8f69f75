// hessgpt sft: chat fine-tuning with LoRA (default) or --full, optional YaRN.
#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "cli/ranked_run.h"
#include "train/sft.h"

namespace hessgpt::cli {
namespace {

struct SftOptions {
  SftConfig run;
  ComputeOptions compute;
  bool json = false;
};

void setup(CLI::App& app) {
  auto o = std::make_shared<SftOptions>();
  SftConfig& c = o->run;
  CLI::App* cmd = app.add_subcommand("sft", "Fine-tune on chat conversations (LoRA or full)");
  cmd->add_option("--base", c.base_dir, "Base model directory")->required();
  cmd->add_option("--data", c.data_path, "Chat JSONL (SPEC §5)")->required();
  cmd->add_option("--out", c.run_dir, "Run folder (checkpoints, adapter/, final/, metrics.jsonl)")->required();
  cmd->add_option("--eval-data", c.eval_path, "Held-out chat JSONL (default: a fraction of --data)");
  cmd->add_option("--eval-fraction", c.eval_fraction, "Share of --data held out when no --eval-data")->capture_default_str();
  cmd->add_option("--tokenizer", c.tokenizer_path, "SentencePiece model (default: the built-in Mistral tokenizer)");
  cmd->add_flag("--full", c.full, "Full fine-tuning instead of LoRA");
  add_memory_options(cmd, c.memory);
  cmd->add_option("--lora-rank", c.lora_rank, "LoRA rank")->capture_default_str();
  cmd->add_option("--lora-alpha", c.lora_alpha, "LoRA alpha (default 2 x rank)");
  cmd->add_option("--lora-dropout", c.lora_dropout, "LoRA dropout on the adapters' inputs while training, in [0, 1)")->capture_default_str();
  cmd->add_option("--lora-targets", c.lora_targets, "Adapted modules: q k v o gate up down")->capture_default_str();
  cmd->add_option("--yarn", c.yarn, "Extend the context with YaRN by this factor (e.g. 4: 1024 -> 4096)");
  cmd->add_option("--seq", c.seq, "Longest sequence (default: the model's context)");
  cmd->add_option("--overflow", c.overflow, "Longer conversations: truncate | drop")->capture_default_str();
  cmd->add_option("--steps", c.steps, "Optimizer steps (0: --epochs over the data)")->capture_default_str();
  cmd->add_option("--epochs", c.epochs, "Passes over the data when --steps is 0")->capture_default_str();
  cmd->add_option("--batch", c.batch, "Conversations per micro-batch")->capture_default_str();
  cmd->add_option("--accum", c.accum, "Micro-batches per step")->capture_default_str();
  cmd->add_option("--lr", c.lr, "Peak learning rate")->capture_default_str();
  cmd->add_option("--weight-decay", c.weight_decay, "AdamW weight decay")->capture_default_str();
  cmd->add_option("--warmup", c.warmup_fraction, "WSD warm-up fraction")->capture_default_str();
  cmd->add_option("--decay", c.decay_fraction, "WSD decay fraction")->capture_default_str();
  cmd->add_option("--lr-floor", c.lr_floor_fraction, "Final LR as a fraction of the peak")->capture_default_str();
  cmd->add_option("--clip", c.clip_norm, "Gradient-norm clip (0: off)")->capture_default_str();
  cmd->add_option("--eval-every", c.eval_every, "Validate every N steps")->capture_default_str();
  cmd->add_option("--eval-batches", c.eval_batches, "Validation batches")->capture_default_str();
  cmd->add_option("--save-every", c.save_every, "Checkpoint every N steps")->capture_default_str();
  cmd->add_option("--keep", c.keep_last, "Checkpoints to keep")->capture_default_str();
  cmd->add_option("--log-every", c.log_every, "Print progress every N steps")->capture_default_str();
  cmd->add_option("--seed", c.seed, "Seed")->capture_default_str();
  cmd->add_option("--stop-after", c.stop_after, "Stop after this step as if interrupted (testing resume)");
  cmd->add_flag("--json", o->json, "Print a JSON summary on stdout at the end");
  add_compute_options(cmd, o->compute);
  cmd->callback([o] {
    const RankedRun ranked = start_ranked_run(o->compute);
    SftResult r;
    run_on_every_rank(*ranked.comm, [&] { r = run_sft(o->run, *ranked.backend, *ranked.comm); });
    if (ranked.comm->rank() > 0) return;
    if (o->json)
      print_json({{"steps", r.steps_done}, {"resumed_from", r.resumed_from}, {"loss", r.last_loss},
                  {"val_loss", r.last_val_loss}, {"trainable_parameters", r.trainable_parameters},
                  {"completed", r.completed}, {"device", device_name(ranked.backend->device())}});
  });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
