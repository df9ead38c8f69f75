// hessgpt synth routing: routing fine-tuning data for Model 1 and Model 2
// (src/data/synth/routing_synth.h describes the files).
#include <cstdio>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "data/presets.h"
#include "data/synth/routing_synth.h"

namespace hessgpt::cli {
namespace {

struct SynthCliOptions {
  synth::SynthOptions synth;
  std::string deps_dir;
  bool json = false;
};

void run_synth(SynthCliOptions& o) {
  if (o.synth.paths.factbook_dir.empty()) {
    o.synth.paths = synth::default_factual_paths(o.deps_dir.empty() ? data::default_deps_dir() : o.deps_dir);
  }
  const nlohmann::json m = synth::run_synth_routing(o.synth);
  if (o.json) {
    print_json(m);
    return;
  }
  std::printf("wrote %s (seed %llu)\n", o.synth.out_dir.c_str(), static_cast<unsigned long long>(o.synth.seed));
  std::printf("%-28s %7s %7s %7s %7s %7s %7s\n", "file", "convs", "routed", "factual", "math", "logic", "code");
  for (const auto& [name, c] : m["files"].items()) {
    const auto& k = c["routes_by_kind"];
    std::printf("%-28s %7zu %7zu %7zu %7zu %7zu %7zu\n", name.c_str(), c["conversations"].get<size_t>(),
                c["routed_turns"].get<size_t>(), c["factual_turns"].get<size_t>(), k.value("math", size_t{0}),
                k.value("logic", size_t{0}), k.value("code", size_t{0}));
  }
  std::printf("tasks (model1_train):");
  for (const auto& [task, n] : m["files"]["model1_train.jsonl"]["tasks"].items()) {
    std::printf(" %s=%zu", task.c_str(), n.get<size_t>());
  }
  std::printf("\nfactual items: %s\n", m["factual_items"].dump().c_str());
  std::printf("user phrasing templates: %zu, politeness wrappers: %zu\n", m["user_templates_total"].get<size_t>(),
              m["politeness_wrappers"].get<size_t>());
}

void setup(CLI::App& app) {
  auto* synth = app.add_subcommand("synth", "Generate synthetic fine-tuning data");
  synth->require_subcommand(1);
  auto* cmd = synth->add_subcommand("routing", "Routing SFT data: Model 1 conversations, Model 2 programs, eval splits");
  auto o = std::make_shared<SynthCliOptions>();
  cmd->add_option("--out", o->synth.out_dir, "Output folder")->required();
  cmd->add_option("--seed", o->synth.seed, "Random seed")->capture_default_str();
  cmd->add_option("--model1-train", o->synth.model1_train, "Model 1 training conversations")->capture_default_str();
  cmd->add_option("--model2-train", o->synth.model2_train, "Model 2 request/program pairs")->capture_default_str();
  cmd->add_option("--eval", o->synth.eval, "Items per evaluation file")->capture_default_str();
  cmd->add_option("--factual-share", o->synth.factual_share, "Share of Model 1 conversations that do not route")
      ->capture_default_str();
  cmd->add_option("--deps", o->deps_dir, "The set-up's .deps folder (default: $HESSGPT_DEPS_DIR or <repo>/.deps)");
  cmd->add_flag("--json", o->json, "Print the manifest as one JSON object");
  cmd->callback([o] { run_synth(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
