// hessgpt demo: the end-to-end job on the bundled data (SPEC §6, README).
//   1 prepare    both corpora with the Mistral tokenizer (prose, code)
//   2 pretrain   small Model 1 and Model 2 shapes on them
//   3 synth      routing fine-tuning data with held-out evaluation splits
//   4 sft        routing SFT of both models
//   5 evaluate   held-out routed tasks: routed system vs Model 1 alone, and
//                route decisions, on new instances phrased like training and
//                on unseen phrasings and words; writes <out>/report.json and
//                prints example conversations with their traces
// Each stage is the hessgpt command a user would type (run as a child
// process, so its progress shows). A finished stage is reused when it was
// made with the same command from the same inputs; a stage made with other
// settings is refused (--fresh starts over); a stage whose input stage was
// made again is stale and is made again too. Interrupted training stages
// resume by themselves.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "cli/routing_report.h"
#include "cli/self_exec.h"
#include "core/error.h"
#include "data/fs_util.h"

namespace hessgpt::cli {
namespace {

namespace fs = std::filesystem;

// The demo's sizes. The defaults fit 20 minutes on 2 cores; --size tiny is
// the same pipeline in about a minute (the end-to-end test).
struct DemoSize {
  int64_t corpus_tokens, chunk_tokens;  // per model
  int64_t pretrain_steps, pretrain_batch;
  size_t synth_model1, synth_model2, synth_eval;
  int64_t sft1_steps, sft2_steps, sft_batch;
  size_t eval_items;
  int64_t max_tokens;            // per model per turn in the evaluation
  double factual_share = 0.25;   // Model 1 conversations that do not route
  double sft1_decay = 0.4;       // WSD decay fractions: Model 1 gains most in a long decay,
  double sft2_decay = 0.15;      // Model 2 needs the long stable phase (measured)
};

DemoSize demo_size(const std::string& name) {
  if (name == "full")
    return {.corpus_tokens = 4'000'000, .chunk_tokens = 2'000'000, .pretrain_steps = 60, .pretrain_batch = 8,
            .synth_model1 = 40000, .synth_model2 = 60000, .synth_eval = 400, .sft1_steps = 2400,
            .sft2_steps = 3200, .sft_batch = 16, .eval_items = 400, .max_tokens = 160};
  if (name == "tiny")
    return {.corpus_tokens = 200'000, .chunk_tokens = 100'000, .pretrain_steps = 4, .pretrain_batch = 2,
            .synth_model1 = 200, .synth_model2 = 200, .synth_eval = 40, .sft1_steps = 4, .sft2_steps = 4,
            .sft_batch = 4, .eval_items = 12, .max_tokens = 16};
  HG_FAIL("--size must be full or tiny (got \"", name, "\")");
}

struct DemoOptions {
  std::string out = "runs/demo";
  std::string size = "full";
  bool fresh = false;
  int threads = 0;
  std::string precision = "bf16";
};

class Demo {
 public:
  explicit Demo(const DemoOptions& o) : o_(o), size_(demo_size(o.size)), threads_(resolve_threads(o.threads)) {}

  void run() {
    const auto start = std::chrono::steady_clock::now();
    if (o_.fresh) {
      for (const char* sub : {"data", "model1", "model2", "synth", "sft-model1", "sft-model2", "report.json"})
        fs::remove_all(fs::path(o_.out) / sub);
    }
    fs::create_directories(o_.out);

    banner("1/5 prepare the demo corpora (Model 1: prose, Model 2: code)");
    for (const char* part : {"model1", "model2"})
      stage(path("data/" + std::string(part)), {"manifest.json"},
            {"prepare", "--preset", str_cat("demo-", part), "--out", path("data/" + std::string(part)),
             "--seq-len", "256", "--chunk-tokens", std::to_string(size_.chunk_tokens), "--max-tokens",
             std::to_string(size_.corpus_tokens), "--threads", std::to_string(threads_)});

    banner("2/5 pretrain small Model 1 and Model 2 shapes");
    for (const std::string part : {"model1", "model2"})
      stage(path(part), {"final/model.safetensors"},
            {"pretrain", "--model", "small", "--data", path("data/" + std::string(part)), "--out", path(part),
             "--steps", std::to_string(size_.pretrain_steps), "--batch", std::to_string(size_.pretrain_batch),
             "--accum", "1", "--seq", "256", "--lr", "2e-3", "--eval-every", "20", "--eval-batches", "4",
             "--save-every", "20", "--log-every", "10", "--threads", std::to_string(threads_), "--precision",
             o_.precision},
            {path("data/" + part)});

    banner("3/5 routing fine-tuning data (held-out evaluation splits)");
    // An older demo's synth folder lacks the second eval file: made again.
    stage(path("synth"), {"synth_manifest.json", "model1_eval_routing_unseen.jsonl"},
          {"synth", "routing", "--out", path("synth"), "--model1-train", std::to_string(size_.synth_model1),
           "--model2-train", std::to_string(size_.synth_model2), "--eval", std::to_string(size_.synth_eval),
           "--factual-share", std::to_string(size_.factual_share)});

    banner("4/5 routing SFT of both models (full fine-tuning)");
    sft("model1", size_.sft1_steps, size_.sft1_decay);
    sft("model2", size_.sft2_steps, size_.sft2_decay);

    banner("5/5 held-out evaluation: routed system vs Model 1 alone");
    evaluate(start);
  }

 private:
  std::string path(const std::string& sub) const { return (fs::path(o_.out) / sub).string(); }

  // "data/model1", "sft-model2": the stage's folder inside the demo folder.
  std::string stage_name(const std::string& dir) const {
    return fs::relative(fs::path(dir), fs::path(o_.out)).generic_string();
  }

  static void banner(const std::string& title) {
    std::fprintf(stderr, "\n== %s ==\n", title.c_str());
    std::fflush(stderr);
  }

  // Runs `hessgpt args` unless the stage finished earlier with the same
  // command from the same inputs (the stages it reads). dir/demo_stage.json
  // records the command, the inputs' run ids and its own, once it succeeds.
  void stage(const std::string& dir, const std::vector<std::string>& done_files,
             const std::vector<std::string>& args, const std::vector<std::string>& input_dirs = {}) {
    const auto done = [&] {
      return std::all_of(done_files.begin(), done_files.end(),
                         [&](const std::string& f) { return fs::exists(fs::path(dir) / f); });
    };
    const fs::path stamp = fs::path(dir) / "demo_stage.json";
    const nlohmann::json cmd = args;
    nlohmann::json inputs = nlohmann::json::object();
    for (const auto& in : input_dirs) inputs[stage_name(in)] = read_stamp(in).value("id", "");
    const nlohmann::json recorded = read_stamp(dir);
    if (recorded.is_object() && recorded.value("command", nlohmann::json()) != cmd) {
      HG_FAIL(dir, " holds the result of other settings; delete it or run `hessgpt demo --fresh`");
    }
    if (!recorded.is_object() && fs::exists(fs::path(dir) / done_files.front())) {
      HG_FAIL(dir, " holds a result the demo did not record (other settings or an older demo); delete it or run "
              "`hessgpt demo --fresh`");
    }
    if (recorded.is_object()) {
      if (recorded.value("inputs", nlohmann::json::object()) == inputs && done()) {
        std::fprintf(stderr, "reusing %s (finished earlier with the same settings)\n", dir.c_str());
        stage_times_[stage_name(dir)] = {{"seconds", 0.0}, {"reused", true}};
        return;
      }
      // Made from inputs that have been made again since, or by an older
      // demo that wrote less: its checkpoints must not be resumed.
      std::fprintf(stderr, "making %s again: its inputs changed since it was made\n", dir.c_str());
      fs::remove_all(dir);
    }
    std::fprintf(stderr, "$ %s\n", command_line(args).c_str());
    std::fflush(stderr);
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = run_self(args);
    if (rc != 0) HG_FAIL("demo stage failed (exit status ", rc, "): ", command_line(args));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stage_times_[stage_name(dir)] = {{"seconds", s}, {"reused", false}};
    fs::create_directories(dir);
    const auto id = std::chrono::system_clock::now().time_since_epoch().count();
    data::write_file_atomic(stamp.string(),
                            nlohmann::json{{"command", cmd}, {"inputs", inputs}, {"id", std::to_string(id)}}.dump(2) +
                                "\n");
  }

  // The stage's record, or null when it has none (or an unreadable one).
  static nlohmann::json read_stamp(const std::string& dir) {
    const fs::path stamp = fs::path(dir) / "demo_stage.json";
    if (!fs::exists(stamp)) return nullptr;
    std::ifstream in(stamp);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    return j.is_object() ? j : nlohmann::json();
  }

  void sft(const std::string& part, int64_t steps, double decay) {
    const std::string synth = path("synth");
    const std::string every = std::to_string(std::max<int64_t>(1, steps / 3));  // validate and save
    stage(path("sft-" + part), {"final/model.safetensors"},
          {"sft", "--base", path(part + "/final"), "--data", synth + "/" + part + "_train.jsonl", "--eval-data",
           synth + "/" + part + "_eval.jsonl", "--out", path("sft-" + part), "--full", "--steps",
           std::to_string(steps), "--batch", std::to_string(size_.sft_batch), "--lr", "3e-3", "--decay",
           std::to_string(decay), "--seq", "256", "--eval-every", every, "--eval-batches", "5", "--save-every",
           every, "--log-every", "25", "--threads", std::to_string(threads_), "--precision", o_.precision},
          {path(part), synth});
  }


  // Both routing eval files: new instances phrased like training (the
  // headline figures) and unseen phrasings and words (generalisation).
  void evaluate(std::chrono::steady_clock::time_point start) {
    ComputeOptions compute;
    compute.threads = threads_;
    auto backend = make_backend(compute);
    auto tokenizer = Tokenizer::load_default();
    route::Assistant assistant(*tokenizer, *backend,
                               eval_assistant_options(path("sft-model1/final"), path("sft-model2/final"), -1, size_.max_tokens));
    const auto eval_file = [&](const std::string& name, size_t examples) {
      return run_routing_eval(assistant, route::load_routing_eval(path("synth/" + name)), size_.eval_items, examples);
    };
    const route::RoutingEvalReport report = eval_file("model1_eval_routing.jsonl", 4);
    std::fprintf(stderr, "unseen phrasings and words:\n");
    const route::RoutingEvalReport unseen = eval_file("model1_eval_routing_unseen.jsonl", 2);
    const route::Model2EvalReport m2 =
        run_model2_eval(assistant, path("synth/model2_eval.jsonl"), size_.eval_items);
    nlohmann::json j = report.to_json();
    j["unseen_phrasing"] = unseen.to_json();
    j["model2"] = m2.to_json();
    j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    j["evaluation_seconds"] = report.seconds + unseen.seconds;
    j["stages"] = stage_times_;
    j["size"] = o_.size;
    j["threads"] = threads_;
    j["checkpoints"] = {{"model1", path("sft-model1/final")}, {"model2", path("sft-model2/final")}};
    data::write_file_atomic(path("report.json"), j.dump(2) + "\n");
    std::printf("\nheld-out tasks (new instances, phrased like training):\n");
    print_routing_report(report, stdout);
    std::printf("\nunseen phrasings and words (generalisation): routed %.3f, Model 1 alone %.3f, "
                "route decisions %.3f, requests exactly right %.3f\n",
                unseen.routed_accuracy(), unseen.model1_alone_accuracy(), unseen.route_decision_accuracy(),
                unseen.tasks ? static_cast<double>(unseen.request_exact) / static_cast<double>(unseen.tasks) : 0.0);
    std::printf("\n");
    print_model2_report(m2, stdout);
    std::printf("\nreport: %s (%.0f s in all%s)\n", path("report.json").c_str(), j["seconds"].get<double>(),
                reused_any() ? "; some stages reused" : "");
    std::printf("chat with it: hessgpt chat --model1 %s --model2 %s --trace\n", path("sft-model1/final").c_str(),
                path("sft-model2/final").c_str());
  }

  bool reused_any() const {
    for (const auto& [name, t] : stage_times_.items())
      if (t.value("reused", false)) return true;
    return false;
  }

  DemoOptions o_;
  DemoSize size_;
  int threads_;
  nlohmann::json stage_times_ = nlohmann::json::object();
};

void setup(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  CLI::App* cmd = app.add_subcommand("demo", "The end-to-end demo: prepare, pretrain, routing SFT, evaluation");
  cmd->add_option("--out", o->out, "Demo folder")->capture_default_str();
  cmd->add_option("--size", o->size, "full (about 20 minutes on 2 cores) or tiny (a quick check)")
      ->capture_default_str();
  cmd->add_flag("--fresh", o->fresh, "Delete the demo's earlier stages and start over");
  cmd->add_option("--threads", o->threads, "CPU threads (default: all cores)");
  cmd->add_option("--precision", o->precision, "Training matrix products: fp32 or bf16")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->callback([o] { Demo(*o).run(); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
