// hessgpt merge: fold a LoRA adapter into its base, giving a plain checkpoint.
#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "core/log.h"
#include "io/adapter_dir.h"
#include "io/model_dir.h"

namespace hessgpt::cli {
namespace {

struct MergeOptions {
  std::string base, adapter, out;
};

void setup(CLI::App& app) {
  auto o = std::make_shared<MergeOptions>();
  CLI::App* cmd = app.add_subcommand("merge", "Merge a LoRA adapter into its base checkpoint");
  cmd->add_option("--base", o->base, "Base model directory")->required();
  cmd->add_option("--adapter", o->adapter, "Adapter directory (adapter_config.json + adapter_model.safetensors)")->required();
  cmd->add_option("--out", o->out, "Output model directory")->required();
  cmd->callback([o] {
    auto backend = hessgpt::make_backend("cpu", resolve_threads(0));
    auto model = load_model_dir(o->base, *backend);
    load_adapter_dir(*model, o->adapter);
    model->merge_lora();
    save_model_dir(*model, o->out);
    log_info("merged ", o->adapter, " into ", o->base, " -> ", o->out);
  });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
