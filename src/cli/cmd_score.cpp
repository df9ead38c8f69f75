// hessgpt score: mean next-token cross-entropy of one id sequence, and
// optionally the soft-capped logits [T, V] as .npy.
#include <sstream>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "io/model_dir.h"
#include "io/npy.h"

namespace hessgpt::cli {
namespace {

struct ScoreOptions {
  std::string checkpoint;
  std::string ids;
  std::string dump_logits;
  bool json = false;
  ComputeOptions compute;
};

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || v < 0 || v > INT32_MAX)
      HG_FAIL("--ids: '", item, "' is not a token id (expected comma-separated integers)");
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.size() < 2) HG_FAIL("--ids needs at least two ids (one prediction)");
  return ids;
}

void run_score(const ScoreOptions& o) {
  const std::vector<int32_t> ids = parse_ids(o.ids);
  auto backend = make_backend(o.compute);
  auto model = load_model_dir(o.checkpoint, *backend);
  const int64_t t = static_cast<int64_t>(ids.size());
  if (t > model->config().max_position_embeddings)
    HG_FAIL("--ids has ", t, " tokens, more than the model's context (",
            model->config().max_position_embeddings, ")");
  std::vector<int32_t> targets(ids.begin() + 1, ids.end());
  targets.push_back(-100);  // the last position has nothing to predict
  std::vector<float> logits;
  if (!o.dump_logits.empty()) logits.resize(static_cast<size_t>(t * model->config().vocab_size));
  const LossSum loss =
      model->evaluate(ids.data(), targets.data(), 1, t, logits.empty() ? nullptr : logits.data());
  if (!o.dump_logits.empty())
    write_npy(o.dump_logits, "<f4", {t, model->config().vocab_size}, logits.data(),
              logits.size() * sizeof(float));
  const nlohmann::json j = {{"loss", loss.mean()}, {"tokens", loss.count}};
  if (o.json) {
    print_json(j);
  } else {
    std::printf("loss %.6f over %lld tokens\n", loss.mean(), static_cast<long long>(loss.count));
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<ScoreOptions>();
  CLI::App* cmd = app.add_subcommand("score", "Mean next-token cross-entropy of an id sequence");
  cmd->add_option("--checkpoint", o->checkpoint, "Model directory")->required();
  cmd->add_option("--ids", o->ids, "Comma-separated token ids")->required();
  cmd->add_option("--dump-logits", o->dump_logits, "Write float32 [T, V] logits to this .npy");
  cmd->add_flag("--json", o->json, "One JSON object on stdout");
  add_compute_options(cmd, o->compute);
  cmd->callback([o] { run_score(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
