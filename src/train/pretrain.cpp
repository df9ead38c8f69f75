#include "train/pretrain.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <span>

#include "core/log.h"
#include "data/loader.h"
#include "dist/local_communicator.h"
#include "io/model_dir.h"
#include "model/memory_estimate.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/metrics_log.h"
#include "train/optimizer.h"
#include "train/progress.h"
#include "train/schedule.h"

namespace hessgpt {

namespace fs = std::filesystem;

void PretrainConfig::validate() const {
  if (data_dir.empty()) HG_FAIL("pretrain needs --data DIR (a folder made by hessgpt prepare)");
  if (run_dir.empty()) HG_FAIL("pretrain needs --out RUN_DIR");
  if (batch <= 0 || accum <= 0 || seq <= 0)
    HG_FAIL("--batch, --accum and --seq must be positive");
  if (steps < 0 || eval_every < 0 || eval_batches < 0 || save_every < 0 || log_every < 0)
    HG_FAIL("step counts must not be negative");
  if (!(clip_norm >= 0)) HG_FAIL("--clip must be >= 0");
  if (!(weight_decay >= 0)) HG_FAIL("--weight-decay must be >= 0");
}

nlohmann::json PretrainConfig::identity() const {
  nlohmann::json j = {{"data_dir", fs::weakly_canonical(data_dir).string()},
          {"steps", steps},
          {"batch", batch},
          {"accum", accum},
          {"seq", seq},
          {"lr", lr},
          {"warmup_fraction", warmup_fraction},
          {"decay_fraction", decay_fraction},
          {"lr_floor_fraction", lr_floor_fraction},
          {"weight_decay", weight_decay},
          {"beta1", beta1},
          {"beta2", beta2},
          {"eps", eps},
          {"clip_norm", clip_norm},
          {"seed", seed}};
  // Only when data parallel, so single-process runs keep their identity.
  if (ranks > 1) j["ranks"] = ranks;
  return j;
}

namespace {

// Where training stands in the chunk epochs; saved in checkpoints.
struct DataPosition {
  int64_t chunk = 0;        // current chunk
  int64_t chunk_step = 0;   // optimizer steps done on it in this pass
  int64_t pass = 0;         // completed passes over all chunks
};

int64_t steps_in_chunk(const data::Dataset& data, int chunk, const PretrainConfig& c) {
  data::BatchLoader probe(data, chunk, data::Split::kTrain, c.global_batch(), c.seq,
                          data::Order::kRandom, c.seed, 65536);
  return probe.examples_per_epoch() / (c.global_batch() * c.accum);
}

class PretrainRun {
 public:
  PretrainRun(const PretrainConfig& config, Backend& backend, dist::Communicator& comm)
      : cfg_(config), backend_(backend), comm_(comm), data_(data::Dataset::open(config.data_dir)) {}

  PretrainResult run();

 private:
  void check_memory(const ModelConfig& mc) const;
  void open_loader();
  double validate_chunk();
  nlohmann::json checkpoint_state() const;
  void restore(const nlohmann::json& state);

  PretrainConfig cfg_;
  Backend& backend_;
  dist::Communicator& comm_;
  data::Dataset data_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<AdamW> opt_;
  std::unique_ptr<data::BatchLoader> loader_;
  std::vector<int64_t> chunk_steps_;
  DataPosition pos_;
  nlohmann::json val_by_chunk_ = nlohmann::json::object();  // chunk -> latest val loss
  int64_t skipped_ = 0;
};

void PretrainRun::check_memory(const ModelConfig& mc) const {
  const TrainingMemory mem =
      estimate_training_memory(mc, cfg_.batch, cfg_.seq, DType::F32, cfg_.memory());
  const double gib = 1024.0 * 1024.0 * 1024.0;
  const size_t avail = backend_.free_memory_bytes();
  log_info("memory needed: ", mem.total() / gib, " GiB (weights ", mem.weights / gib,
           ", gradients ", mem.gradients / gib, ", AdamW ", mem.optimizer / gib,
           ", activations ", mem.activations / gib, " for micro-batch ", cfg_.batch, " x ",
           cfg_.seq, "); free on ", backend_.name(), ": ", avail / gib, " GiB");
  if (avail > 0 && mem.total() > avail)
    HG_FAIL("this run needs ", mem.total() / gib, " GiB but only ", avail / gib, " GiB are free on ",
            backend_.name(), "; ",
            memory_advice(mc, cfg_.batch, cfg_.seq, cfg_.memory(),
                          backend_.matmul_precision() == MatmulPrecision::BF16));
}

void PretrainRun::open_loader() {
  loader_ = std::make_unique<data::BatchLoader>(
      data_, static_cast<int>(pos_.chunk), data::Split::kTrain, cfg_.global_batch(), cfg_.seq,
      data::Order::kRandom, cfg_.seed + static_cast<uint64_t>(pos_.pass), 
      static_cast<int32_t>(model_->config().vocab_size));
}

double PretrainRun::validate_chunk() {
  const int chunk = static_cast<int>(pos_.chunk);
  const int64_t rows = data_.rows(chunk, data::Split::kVal);
  if (rows == 0) return std::nan("");
  data::BatchLoader probe(data_, chunk, data::Split::kVal, 1, cfg_.seq, data::Order::kSequential,
                          0, static_cast<int32_t>(model_->config().vocab_size));
  // Batches of the global micro-batch's size, each dealt out over the ranks as
  // in training: the validation loss does not depend on the number of ranks.
  const int64_t batch = std::min(cfg_.global_batch(), probe.examples_per_epoch());
  data::BatchLoader val(data_, chunk, data::Split::kVal, batch, cfg_.seq,
                        data::Order::kSequential, 0,
                        static_cast<int32_t>(model_->config().vocab_size));
  const int64_t n_batches = std::max<int64_t>(1, std::min(cfg_.eval_batches, val.batches_per_epoch()));
  const dist::RankRows mine = dist::rank_rows(comm_, batch);
  const size_t offset = static_cast<size_t>(mine.first * cfg_.seq);
  std::vector<int32_t> ids(static_cast<size_t>(batch * cfg_.seq)), tg(ids.size());
  double totals[2] = {0, 0};  // loss sum, token count
  for (int64_t i = 0; i < n_batches; ++i) {
    val.next(ids, tg);
    if (mine.count == 0) continue;
    const LossSum l =
        model_->evaluate(ids.data() + offset, tg.data() + offset, mine.count, cfg_.seq);
    totals[0] += l.sum;
    totals[1] += static_cast<double>(l.count);
  }
  comm_.allreduce_sum(totals);
  return totals[1] > 0 ? totals[0] / totals[1] : std::nan("");
}

nlohmann::json PretrainRun::checkpoint_state() const {
  return {{"run", cfg_.identity()},
          {"model_config", config_to_json(model_->config())},
          {"data_position", {{"chunk", pos_.chunk}, {"chunk_step", pos_.chunk_step}, {"pass", pos_.pass}}},
          {"loader", loader_->state().to_json()},
          {"val_loss_by_chunk", val_by_chunk_},
          {"skipped_steps", skipped_}};
}

void PretrainRun::restore(const nlohmann::json& s) {
  const auto& p = s.at("data_position");
  pos_.chunk = p.at("chunk");
  pos_.chunk_step = p.at("chunk_step");
  pos_.pass = p.at("pass");
  open_loader();
  loader_->set_state(data::LoaderState::from_json(s.at("loader")));
  val_by_chunk_ = s.value("val_loss_by_chunk", nlohmann::json::object());
  skipped_ = s.value("skipped_steps", int64_t{0});
}

PretrainResult PretrainRun::run() {
  PretrainResult result;
  const ModelConfig mc = resolve_model_config(cfg_.model);
  check_memory(mc);
  if (cfg_.seq > mc.max_position_embeddings)
    HG_FAIL("--seq ", cfg_.seq, " exceeds the model's max_position_embeddings (",
            mc.max_position_embeddings, ")");
  if (cfg_.seq > data_.seq_len())
    HG_FAIL("--seq ", cfg_.seq, " exceeds the sequence length the data was prepared with (",
            data_.seq_len(), "); prepare again with a longer --seq-len");

  for (int c = 0; c < data_.num_chunks(); ++c) chunk_steps_.push_back(steps_in_chunk(data_, c, cfg_));
  int64_t one_pass = 0;
  for (int64_t s : chunk_steps_) one_pass += s;
  if (one_pass == 0)
    HG_FAIL("the data in '", cfg_.data_dir, "' holds fewer than one step of ", cfg_.batch * cfg_.accum,
            " sequences of ", cfg_.seq, " tokens; lower --batch/--accum/--seq or prepare more data");
  const int64_t total = cfg_.steps > 0 ? cfg_.steps : one_pass;
  WsdSchedule sched{cfg_.lr, total, cfg_.warmup_fraction, cfg_.decay_fraction, cfg_.lr_floor_fraction};
  sched.validate();

  check_memory_options(cfg_.memory(), backend_);
  model_ = std::make_unique<Model>(mc, backend_);
  model_->set_memory_options(cfg_.memory());
  model_->init_random(cfg_.seed);
  AdamWConfig oc{cfg_.beta1, cfg_.beta2, cfg_.eps, cfg_.weight_decay, cfg_.clip_norm};
  opt_ = std::make_unique<AdamW>(*model_, oc);

  int64_t start = 0;
  if (comm_.rank() == 0) fs::create_directories(cfg_.run_dir);
  comm_.barrier();
  if (auto ck = find_latest_checkpoint(cfg_.run_dir)) {
    const nlohmann::json saved = read_checkpoint_state(*ck);
    nlohmann::json want = cfg_.identity();
    want["steps"] = total;
    nlohmann::json have = saved.at("run");
    if (have != want || saved.at("model_config") != config_to_json(mc))
      HG_FAIL("'", cfg_.run_dir, "' holds a run with other settings (saved ", have.dump(),
              ", model ", saved.at("model_config").dump(), "); use another --out or the same flags");
    const auto t_load = std::chrono::steady_clock::now();
    const nlohmann::json state = load_training_checkpoint(*ck, *model_, *opt_);
    restore(state);
    start = state.at("step");
    result.resumed_from = start;
    log_info("resuming from ", *ck, " at step ", start, " of ", total, " (checkpoint loaded in ",
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count(), " s)");
  } else {
    if (cfg_.resume) log_info("no checkpoint in ", cfg_.run_dir, ": starting a new run");
    open_loader();
  }
  dist::check_same_on_every_rank(comm_, start, "the step to resume from");
  // A new run: one set of initial weights for all replicas, whatever each
  // host's RNG and thread count would give (a resumed one loaded the same file).
  if (start == 0) comm_.broadcast(backend_, model_->params(), 0);
  const bool writer = comm_.rank() == 0;
  if (writer) {
    nlohmann::json saved = cfg_.identity();
    saved["steps"] = total;
    saved["model"] = config_to_json(mc);
    std::ofstream(fs::path(cfg_.run_dir) / "train_config.json") << saved.dump(2) << "\n";
  }
  std::optional<MetricsLog> metrics;
  if (writer) metrics.emplace((fs::path(cfg_.run_dir) / "metrics.jsonl").string(), start);
  if (comm_.size() > 1)
    log_info("data parallel over ", comm_.size(), " ranks (", comm_.name(), "): ", cfg_.batch,
             " sequences per rank and micro-batch, ", cfg_.global_batch() * cfg_.accum,
             " per step");
  const int64_t step_tokens = cfg_.global_batch() * cfg_.seq * cfg_.accum;
  const double loss_scale = 1.0 / static_cast<double>(step_tokens);
  // The global micro-batch; this rank trains on its rows.
  std::vector<int32_t> ids(static_cast<size_t>(cfg_.global_batch() * cfg_.seq)), tg(ids.size());
  const size_t my_rows =
      static_cast<size_t>(dist::rank_rows(comm_, cfg_.global_batch()).first * cfg_.seq);
  ProgressMeter progress(total, start);
  int bad_in_a_row = 0;

  for (int64_t step = start + 1; step <= total; ++step) {
    if (pos_.chunk_step >= chunk_steps_[static_cast<size_t>(pos_.chunk)]) {
      pos_.chunk_step = 0;
      if (++pos_.chunk == data_.num_chunks()) {
        pos_.chunk = 0;
        ++pos_.pass;
      }
      open_loader();
    }
    const auto t0 = std::chrono::steady_clock::now();
    const double lr = sched.lr(step);
    model_->zero_grads();
    double loss_sum = 0;
    for (int64_t a = 0; a < cfg_.accum; ++a) {
      loader_->next(ids, tg);
      loss_sum += model_->forward_backward(ids.data() + my_rows, tg.data() + my_rows, cfg_.batch,
                                           cfg_.seq, loss_scale).sum;
    }
    comm_.allreduce_sum(backend_, model_->grads());  // no-ops for a single rank
    comm_.allreduce_sum(std::span<double>(&loss_sum, 1));
    const double loss = loss_sum / static_cast<double>(step_tokens);
    const double norm = opt_->grad_norm();
    nlohmann::json rec = {{"step", step}, {"loss", loss}, {"lr", lr}, {"grad_norm", norm},
                          {"chunk", pos_.chunk}, {"pass", pos_.pass}};
    if (!std::isfinite(loss) || !std::isfinite(norm)) {
      ++skipped_;
      rec["skipped"] = true;
      log_warn("step ", step, ": non-finite loss or gradient (loss ", loss, ", grad norm ", norm,
               "); update skipped");
      if (++bad_in_a_row >= cfg_.max_bad_steps) {
        rec["skipped_total"] = skipped_;
        if (metrics) metrics->append(rec);
        HG_FAIL("stopping: ", bad_in_a_row, " consecutive steps had a non-finite loss or gradient "
                "(lower --lr, check the data); the last good checkpoint is in ", cfg_.run_dir);
      }
    } else {
      bad_in_a_row = 0;
      opt_->step_with_norm(lr, 1.0, norm);
    }
    ++pos_.chunk_step;
    backend_.synchronize();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rec["tokens_per_s"] = static_cast<double>(step_tokens) / secs;
    rec["skipped_total"] = skipped_;
    progress.update(step, secs);

    if ((cfg_.eval_every > 0 && step % cfg_.eval_every == 0) || step == total) {
      const double val = validate_chunk();
      if (std::isfinite(val)) {
        val_by_chunk_[std::to_string(pos_.chunk)] = val;
        double sum = 0;
        for (const auto& [k, v] : val_by_chunk_.items()) sum += v.get<double>();
        rec["val_loss"] = val;
        rec["val_loss_all_chunks"] = sum / static_cast<double>(val_by_chunk_.size());
        result.last_val_loss = val;
      }
    }
    if (metrics) metrics->append(rec);
    if (writer && cfg_.log_every > 0 &&
        (step % cfg_.log_every == 0 || step == total || rec.contains("val_loss")))
      progress.print(rec);
    result.last_loss = loss;
    result.steps_done = step;

    if (writer && ((cfg_.save_every > 0 && step % cfg_.save_every == 0) || step == total)) {
      const auto t_save = std::chrono::steady_clock::now();
      const std::string where = save_training_checkpoint(cfg_.run_dir, step, *model_, *opt_,
                                                         checkpoint_state(), cfg_.keep_last);
      log_info("checkpoint ", where, " written in ",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t_save).count(), " s");
    }
    if (cfg_.stop_after > 0 && step >= cfg_.stop_after && step < total) {
      log_info("stopping after step ", step, " as asked (--stop-after)");
      result.skipped_steps = skipped_;
      return result;
    }
  }
  if (start >= total) log_info("run already complete (", total, " steps)");
  if (writer) save_model_dir(*model_, (fs::path(cfg_.run_dir) / "final").string());
  comm_.barrier();  // the run directory is whole before any rank returns
  result.completed = true;
  result.steps_done = total;
  result.skipped_steps = skipped_;
  log_info("final model written to ", (fs::path(cfg_.run_dir) / "final").string());
  return result;
}

}  // namespace

PretrainResult run_pretrain(const PretrainConfig& config, Backend& backend,
                            dist::Communicator& comm) {
  PretrainConfig c = config;
  c.ranks = comm.size();
  c.validate();
  PretrainRun run(c, backend, comm);
  return run.run();
}

PretrainResult run_pretrain(const PretrainConfig& config, Backend& backend) {
  dist::LocalCommunicator one;
  return run_pretrain(config, backend, one);
}

}  // namespace hessgpt
