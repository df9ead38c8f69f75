// hessgpt eval routing: the held-out evaluation of the dual-model assistant
// (routed accuracy, Model 1 alone, route decisions), as the demo runs it.
#include <optional>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "cli/parent_command.h"
#include "cli/routing_report.h"
#include "data/fs_util.h"

namespace hessgpt::cli {
namespace {

struct EvalRoutingOptions {
  std::string model1, model2, data, model2_data, out, tokenizer;
  size_t limit = 0, examples = 4;
  int bits = -1;
  int64_t max_tokens = 192;
  bool json = false;
  ComputeOptions compute;
};

void run(const EvalRoutingOptions& o) {
  auto backend = make_decode_backend(o.compute, {o.model1, o.model2}, o.bits);
  auto tokenizer = Tokenizer::load_or_default(o.tokenizer);
  const auto items = route::load_routing_eval(o.data);
  route::Assistant assistant(*tokenizer, *backend,
                             eval_assistant_options(o.model1, o.model2, o.bits, o.max_tokens));
  const route::RoutingEvalReport report = run_routing_eval(assistant, items, o.limit, o.examples);
  nlohmann::json j = report.to_json();
  std::optional<route::Model2EvalReport> m2;
  if (!o.model2_data.empty()) {
    m2 = run_model2_eval(assistant, o.model2_data, o.limit);
    j["model2"] = m2->to_json();
  }
  if (!o.out.empty()) data::write_file_atomic(o.out, j.dump(2) + "\n");
  if (o.json) {
    print_json(j);
    return;
  }
  print_routing_report(report, stdout);
  if (m2) print_model2_report(*m2, stdout);
}

void setup(CLI::App& app) {
  auto o = std::make_shared<EvalRoutingOptions>();
  CLI::App* cmd = parent_command(app, "eval", "Evaluations")
                      ->add_subcommand("routing", "Held-out evaluation of the routed assistant vs Model 1 alone");
  cmd->add_option("--model1", o->model1, "Model 1 checkpoint")->required();
  cmd->add_option("--model2", o->model2, "Model 2 checkpoint")->required();
  cmd->add_option("--data", o->data, "Evaluation JSONL (model1_eval_routing.jsonl of `synth routing`)")->required();
  cmd->add_option("--model2-data", o->model2_data,
                  "Also score Model 2 alone on request -> program items (model2_eval.jsonl)");
  cmd->add_option("--limit", o->limit, "Items to evaluate (0: all)")->capture_default_str();
  cmd->add_option("--examples", o->examples, "Example conversations to keep")->capture_default_str();
  cmd->add_option("--bits", o->bits, "Weights: 32, 16, 8 or 4 (default: as stored)");
  cmd->add_option("--max-tokens", o->max_tokens, "Tokens per model per turn/route")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--out", o->out, "Also write the report JSON here");
  cmd->add_option("--tokenizer", o->tokenizer, "SentencePiece model (default: built-in Mistral)");
  cmd->add_flag("--json", o->json, "The report as one JSON object on stdout");
  add_compute_options(cmd, o->compute);
  cmd->callback([o] { run(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
