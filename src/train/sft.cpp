#include "train/sft.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>

#include "core/log.h"
#include "dist/local_communicator.h"
#include "io/adapter_dir.h"
#include "io/model_dir.h"
#include "model/memory_estimate.h"
#include "model/model.h"
#include "train/chat_dataset.h"
#include "train/checkpoint.h"
#include "train/metrics_log.h"
#include "train/optimizer.h"
#include "train/progress.h"
#include "train/schedule.h"

namespace hessgpt {

namespace fs = std::filesystem;

void SftConfig::validate() const {
  if (base_dir.empty()) HG_FAIL("sft needs --base CHECKPOINT");
  if (data_path.empty()) HG_FAIL("sft needs --data CHAT.jsonl");
  if (run_dir.empty()) HG_FAIL("sft needs --out RUN_DIR");
  if (batch <= 0 || accum <= 0 || epochs <= 0) HG_FAIL("--batch, --accum and --epochs must be positive");
  if (!full && lora_rank <= 0) HG_FAIL("--lora-rank must be positive (or use --full)");
  if (!(lora_dropout >= 0 && lora_dropout < 1))
    HG_FAIL("--lora-dropout must lie in [0, 1) (got ", lora_dropout, ")");
  if (full && lora_dropout > 0) HG_FAIL("--lora-dropout applies to LoRA adapters, not --full");
  if (yarn != 0 && yarn <= 1) HG_FAIL("--yarn must be > 1 (got ", yarn, ")");
  if (overflow != "truncate" && overflow != "drop")
    HG_FAIL("--overflow must be truncate or drop (got '", overflow, "')");
  if (eval_path.empty() && !(eval_fraction >= 0 && eval_fraction < 1))
    HG_FAIL("--eval-fraction must lie in [0, 1)");
}

nlohmann::json SftConfig::identity() const {
  nlohmann::json id = {{"base", fs::weakly_canonical(base_dir).string()},
                       {"data", fs::weakly_canonical(data_path).string()},
                       {"full", full}, {"lora_rank", lora_rank}, {"lora_alpha", lora_alpha},
                       {"lora_targets", lora_targets}, {"yarn", yarn}, {"seq", seq}, {"overflow", overflow},
                       {"steps", steps}, {"epochs", epochs}, {"batch", batch}, {"accum", accum}, {"lr", lr},
                       {"weight_decay", weight_decay}, {"clip_norm", clip_norm}, {"seed", seed},
                       {"eval_fraction", eval_fraction}};
  // Only when set, so that run folders from before dropout existed still resume.
  if (lora_dropout > 0) id["lora_dropout"] = lora_dropout;
  if (ranks > 1) id["ranks"] = ranks;
  // The schedule's shape, likewise only when it is not the default.
  const SftConfig defaults;
  if (warmup_fraction != defaults.warmup_fraction || decay_fraction != defaults.decay_fraction ||
      lr_floor_fraction != defaults.lr_floor_fraction)
    id["schedule"] = {warmup_fraction, decay_fraction, lr_floor_fraction};
  return id;
}

ModelConfig with_yarn(const ModelConfig& base, double factor) {
  ModelConfig c = base;
  const int64_t original = base.rope_scaling ? base.rope_scaling->original_max_position_embeddings
                                             : base.max_position_embeddings;
  YarnConfig y;
  y.factor = factor;
  y.original_max_position_embeddings = original;
  c.rope_scaling = y;
  c.max_position_embeddings = static_cast<int64_t>(std::llround(static_cast<double>(original) * factor));
  c.validate();
  return c;
}

namespace {

// Batches of the global micro-batch's size, each dealt out over the ranks: the
// loss does not depend on the number of ranks.
double evaluate(Model& model, const std::vector<ChatExample>& eval, int64_t batch,
                int64_t max_batches, dist::Communicator& comm) {
  double totals[2] = {0, 0};  // loss sum, token count
  const auto n_eval = static_cast<int64_t>(eval.size());
  for (int64_t b = 0; b < max_batches && b * batch < n_eval; ++b) {
    const int64_t size = std::min((b + 1) * batch, n_eval) - b * batch;
    const auto [first, count] = dist::rank_rows(comm, size);
    std::vector<const ChatExample*> rows;
    for (int64_t i = 0; i < count; ++i)
      rows.push_back(&eval[static_cast<size_t>(b * batch + first + i)]);
    if (rows.empty()) continue;
    const PaddedBatch pb = pad_batch(rows);
    const LossSum l = model.evaluate(pb.ids.data(), pb.targets.data(), pb.batch, pb.seq);
    totals[0] += l.sum;
    totals[1] += static_cast<double>(l.count);
  }
  comm.allreduce_sum(totals);
  return totals[1] > 0 ? totals[0] / totals[1] : std::nan("");
}

}  // namespace

SftResult run_sft(const SftConfig& config, Backend& backend) {
  dist::LocalCommunicator one;
  return run_sft(config, backend, one);
}

SftResult run_sft(const SftConfig& config, Backend& backend, dist::Communicator& comm) {
  SftConfig cfg = config;
  cfg.ranks = comm.size();
  cfg.validate();
  SftResult result;
  const std::string base_config_path = (fs::path(cfg.base_dir) / "config.json").string();
  if (!fs::exists(base_config_path)) HG_FAIL("--base '", cfg.base_dir, "' has no config.json");
  ModelConfig mc = load_config_file(base_config_path);
  if (cfg.yarn > 1) mc = with_yarn(mc, cfg.yarn);
  const int64_t seq = cfg.seq > 0 ? cfg.seq : mc.max_position_embeddings;
  if (seq > mc.max_position_embeddings)
    HG_FAIL("--seq ", seq, " exceeds the model's context of ", mc.max_position_embeddings,
            " (use --yarn to extend it)");
  if (mc.rope_scaling && seq != mc.max_position_embeddings)
    log_warn("YaRN factor ", mc.rope_scaling->factor, " extends the context to ",
             mc.max_position_embeddings, " but sequences are capped at ", seq);

  auto tokenizer = Tokenizer::load_or_default(cfg.tokenizer_path);
  if (tokenizer->vocab_size() > mc.vocab_size)
    HG_FAIL("the tokenizer has ", tokenizer->vocab_size(), " ids but the base model only ",
            mc.vocab_size, "; run hessgpt resize-vocab first");
  const OverflowRule rule = cfg.overflow == "drop" ? OverflowRule::Drop : OverflowRule::Truncate;
  ChatLoadReport report;
  std::vector<ChatExample> train = load_chat_examples(cfg.data_path, *tokenizer, seq, rule, report);
  std::vector<ChatExample> eval;
  if (!cfg.eval_path.empty()) {
    ChatLoadReport eval_report;
    eval = load_chat_examples(cfg.eval_path, *tokenizer, seq, rule, eval_report);
  } else if (cfg.eval_fraction > 0 && train.size() > 1) {
    const auto n_eval = std::max<size_t>(1, static_cast<size_t>(cfg.eval_fraction * static_cast<double>(train.size())));
    eval.assign(std::make_move_iterator(train.end() - static_cast<std::ptrdiff_t>(n_eval)),
                std::make_move_iterator(train.end()));
    train.resize(train.size() - n_eval);
  }
  log_info("chat data: ", report.conversations, " conversations, ", report.kept, " kept (",
           report.truncated, " truncated to ", seq, " tokens, ", report.dropped_too_long,
           " dropped as too long, ", report.dropped_invalid, " invalid, ", report.dropped_no_target,
           " without assistant tokens); ", train.size(), " train / ", eval.size(), " eval");
  if (train.empty()) HG_FAIL("no usable training conversations in '", cfg.data_path, "'");

  Model model(mc, backend);
  check_memory_options(cfg.memory, backend);
  model.set_memory_options(cfg.memory);
  load_model_weights(model, (fs::path(cfg.base_dir) / "model.safetensors").string());
  if (!cfg.full) {
    LoraConfig lc;
    lc.rank = cfg.lora_rank;
    lc.alpha = cfg.lora_alpha;
    lc.targets = cfg.lora_targets;
    lc.dropout = cfg.lora_dropout;
    model.enable_lora(lc, cfg.seed);
  }
  result.trainable_parameters = cfg.full ? model.layout().total : model.lora_layout().total;
  AdamW opt(model, AdamWConfig{0.9, 0.95, 1e-8, cfg.weight_decay, cfg.clip_norm});

  const int64_t per_step = cfg.global_batch() * cfg.accum;
  const int64_t total = cfg.steps > 0 ? cfg.steps
                                      : std::max<int64_t>(1, cfg.epochs * static_cast<int64_t>(train.size()) / per_step);
  WsdSchedule sched{cfg.lr, total, cfg.warmup_fraction, cfg.decay_fraction, cfg.lr_floor_fraction};
  sched.validate();
  // Micro-batches of similar lengths: dynamic padding then wastes little.
  std::vector<int64_t> lengths;
  for (const ChatExample& e : train) lengths.push_back(static_cast<int64_t>(e.ids.size()));
  ChatSampler sampler(static_cast<int64_t>(train.size()), cfg.seed, std::move(lengths),
                      cfg.global_batch());
  nlohmann::json identity = cfg.identity();
  identity["steps"] = total;

  int64_t start = 0;
  const bool writer = comm.rank() == 0;
  if (writer) fs::create_directories(cfg.run_dir);
  comm.barrier();
  if (auto ck = find_latest_checkpoint(cfg.run_dir)) {
    const nlohmann::json saved = read_checkpoint_state(*ck);
    if (saved.at("run") != identity)
      HG_FAIL("'", cfg.run_dir, "' holds a fine-tuning run with other settings (saved ",
              saved.at("run").dump(), "); use another --out or the same flags");
    const nlohmann::json state = load_training_checkpoint(*ck, model, opt);
    sampler.restore(state.at("sampler_epoch"), state.at("sampler_position"));
    start = state.at("step");
    result.resumed_from = start;
    log_info("resuming from ", *ck, " at step ", start, " of ", total);
  }
  dist::check_same_on_every_rank(comm, start, "the step to resume from");
  // A new run: one set of starting adapters (or weights) for all replicas.
  if (start == 0)
    comm.broadcast(backend, model.has_lora() ? model.lora_params() : model.params(), 0);
  log_info("trainable parameters: ", result.trainable_parameters,
           cfg.full ? " (full fine-tuning)" : " (LoRA adapters; base frozen)");
  if (comm.size() > 1)
    log_info("data parallel over ", comm.size(), " ranks (", comm.name(), "): ", cfg.batch,
             " conversations per rank and micro-batch, ", per_step, " per step");
  std::optional<MetricsLog> metrics;
  if (writer) metrics.emplace((fs::path(cfg.run_dir) / "metrics.jsonl").string(), start);
  ProgressMeter progress(total, start);

  for (int64_t step = start + 1; step <= total; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<PaddedBatch> micro;
    // Trained tokens and padded tokens of the step, over all ranks.
    double counts[2] = {0, 0};
    const auto [first, mine] = dist::rank_rows(comm, cfg.global_batch());
    for (int64_t a = 0; a < cfg.accum; ++a) {
      std::vector<const ChatExample*> rows;
      for (int64_t i = 0; i < cfg.global_batch(); ++i) {
        const int64_t example = sampler.next();
        if (i >= first && i < first + mine) rows.push_back(&train[static_cast<size_t>(example)]);
      }
      micro.push_back(pad_batch(rows));
      counts[0] += static_cast<double>(micro.back().trained_tokens);
      counts[1] += static_cast<double>(micro.back().batch * micro.back().seq);
    }
    comm.allreduce_sum(counts);
    const double trained = counts[0];
    model.zero_grads();
    // Masks follow the step (each micro-batch adds one), which the checkpoint
    // restores: a resumed run draws the masks the uninterrupted one did. Each
    // rank has its own stream of them.
    model.set_lora_dropout_counter(
        static_cast<uint64_t>(((step - 1) * cfg.ranks + comm.rank()) * cfg.accum));
    double loss_sum = 0;
    for (const PaddedBatch& pb : micro)
      loss_sum += model.forward_backward(pb.ids.data(), pb.targets.data(), pb.batch, pb.seq,
                                         1.0 / trained).sum;
    // (No-ops for a single rank.)
    comm.allreduce_sum(backend, model.has_lora() ? model.lora_grads() : model.grads());
    comm.allreduce_sum(std::span<double>(&loss_sum, 1));
    const double loss = loss_sum / trained;
    const double lr = sched.lr(step);
    const double norm = opt.grad_norm();
    nlohmann::json rec = {{"step", step}, {"loss", loss}, {"lr", lr}, {"grad_norm", norm},
                          {"epoch", sampler.epoch()},
                          {"trained_tokens", static_cast<int64_t>(trained)}};
    if (std::isfinite(loss) && std::isfinite(norm)) {
      opt.step_with_norm(lr, 1.0, norm);
    } else {
      rec["skipped"] = true;
      log_warn("step ", step, ": non-finite loss or gradient; update skipped");
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rec["tokens_per_s"] = counts[1] / secs;
    progress.update(step, secs);
    if (!eval.empty() && ((cfg.eval_every > 0 && step % cfg.eval_every == 0) || step == total)) {
      rec["val_loss"] = evaluate(model, eval, cfg.global_batch(), cfg.eval_batches, comm);
      result.last_val_loss = rec["val_loss"];
    }
    if (metrics) metrics->append(rec);
    if (writer && cfg.log_every > 0 && (step % cfg.log_every == 0 || step == total))
      progress.print(rec);
    result.last_loss = loss;
    result.steps_done = step;
    if (writer && ((cfg.save_every > 0 && step % cfg.save_every == 0) || step == total))
      save_training_checkpoint(cfg.run_dir, step, model, opt,
                               {{"run", identity},
                                {"sampler_epoch", sampler.epoch()},
                                {"sampler_position", sampler.position()}},
                               cfg.keep_last);
    if (cfg.stop_after > 0 && step >= cfg.stop_after && step < total) return result;
  }
  // Outputs: the adapter on its own, and the merged model ready for generate/chat.
  // Rank 0 writes them; the other replicas are the same model.
  if (writer) {
    if (model.has_lora()) {
      save_adapter_dir(model, (fs::path(cfg.run_dir) / "adapter").string(), cfg.base_dir);
      model.merge_lora();
    }
    save_model_dir(model, (fs::path(cfg.run_dir) / "final").string());
  }
  comm.barrier();  // the run directory is whole before any rank returns
  log_info("fine-tuned model written to ", (fs::path(cfg.run_dir) / "final").string());
  result.completed = true;
  result.steps_done = total;
  return result;
}

}  // namespace hessgpt
