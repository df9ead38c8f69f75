// hessgpt init: a freshly initialised checkpoint directory.
#include "backend/backend.h"
#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "core/log.h"
#include "io/model_dir.h"

namespace hessgpt::cli {
namespace {

struct InitOptions {
  std::string model;
  uint64_t seed = 1234;
  std::string out;
  ComputeOptions compute;
};

void run_init(const InitOptions& o) {
  const ModelConfig config = resolve_model_config(o.model);
  auto backend = hessgpt::make_backend("cpu", resolve_threads(o.compute.threads));
  Model model(config, *backend);
  model.init_random(o.seed);
  save_model_dir(model, o.out);
  log_info("wrote ", o.out, " (", config.parameter_count(), " parameters, seed ", o.seed, ")");
}

void setup(CLI::App& app) {
  auto o = std::make_shared<InitOptions>();
  CLI::App* cmd = app.add_subcommand("init", "Write a freshly initialised checkpoint");
  cmd->add_option("--model", o->model, "Preset or config.json")->required();
  cmd->add_option("--seed", o->seed, "Initialisation seed")->capture_default_str();
  cmd->add_option("--out", o->out, "Output directory")->required();
  add_compute_options(cmd, o->compute);
  cmd->callback([o] { run_init(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
