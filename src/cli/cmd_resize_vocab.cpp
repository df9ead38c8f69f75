// hessgpt resize-vocab: grow a checkpoint's vocabulary (new embedding rows =
// the mean embedding), e.g. a 32,000-token base gaining the special tokens.
#include <algorithm>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "core/log.h"
#include "io/model_dir.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::cli {
namespace {

struct ResizeOptions {
  std::string checkpoint, out;
  int64_t vocab = 0;
  int64_t min_vocab = token::kVocabSize;
};

void run_resize(const ResizeOptions& o) {
  auto backend = hessgpt::make_backend("cpu", resolve_threads(0));
  auto model = load_model_dir(o.checkpoint, *backend);
  const ModelConfig old_config = model->config();
  const int64_t old_v = old_config.vocab_size, d = old_config.hidden_size;
  if (o.vocab < o.min_vocab)
    HG_FAIL("--vocab ", o.vocab, " is below the tokenizer's ", o.min_vocab,
            " ids (32,000 pieces + 8 special tokens); refusing to shrink the vocabulary");
  if (o.vocab < old_v)
    HG_FAIL("--vocab ", o.vocab, " would drop trained embedding rows (the checkpoint has ", old_v,
            "); shrinking is refused");
  ModelConfig config = old_config;
  config.vocab_size = o.vocab;
  config.validate();
  const std::vector<float> old_values = model->params_host();
  Model resized(config, *backend);
  std::vector<float> values(static_cast<size_t>(resized.layout().total));
  // Embedding first: old rows, then the mean row for every new id.
  std::vector<double> mean(static_cast<size_t>(d), 0.0);
  for (int64_t r = 0; r < old_v; ++r)
    for (int64_t j = 0; j < d; ++j) mean[static_cast<size_t>(j)] += old_values[static_cast<size_t>(r * d + j)];
  std::copy(old_values.begin(), old_values.begin() + old_v * d, values.begin());
  for (int64_t r = old_v; r < o.vocab; ++r)
    for (int64_t j = 0; j < d; ++j)
      values[static_cast<size_t>(r * d + j)] = static_cast<float>(mean[static_cast<size_t>(j)] / static_cast<double>(old_v));
  // Every other tensor keeps its values (same names, same shapes).
  for (const ParamInfo& p : resized.layout().params) {
    if (p.name == "model.embed_tokens.weight") continue;
    const ParamInfo* src = model->layout().find(p.name);
    HG_CHECK(src != nullptr && src->numel == p.numel, "layout mismatch for ", p.name);
    std::copy(old_values.begin() + src->offset, old_values.begin() + src->offset + src->numel,
              values.begin() + p.offset);
  }
  resized.set_params_host(values);
  save_model_dir(resized, o.out);
  log_info("vocabulary ", old_v, " -> ", o.vocab, " (", o.vocab - old_v,
           " new rows = the mean embedding); wrote ", o.out);
}

void setup(CLI::App& app) {
  auto o = std::make_shared<ResizeOptions>();
  CLI::App* cmd = app.add_subcommand("resize-vocab", "Grow a checkpoint's vocabulary");
  cmd->add_option("--checkpoint", o->checkpoint, "Model directory")->required();
  cmd->add_option("--vocab", o->vocab, "New vocabulary size")->required();
  cmd->add_option("--out", o->out, "Output model directory")->required();
  cmd->add_option("--min-vocab", o->min_vocab, "Smallest size allowed (the tokenizer's)")
      ->capture_default_str();
  cmd->callback([o] { run_resize(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
