// hessgpt generate: text from a checkpoint, streamed to stdout as it comes
// (KV-cache decoding, src/infer); --json gives ids, text and timings instead.
#include <cstdio>
#include <sstream>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "infer/generate.h"
#include "infer/open_session.h"
#include "infer/text_stream.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::cli {
namespace {

struct GenerateCliOptions {
  std::string checkpoint;
  std::string prompt;
  std::string tokenizer;
  std::string stop_ids;
  int64_t max_new = 128;
  int bits = -1;
  int64_t group_size = 32;
  infer::SamplingOptions sampling;
  bool chat = false;
  bool json = false;
  ComputeOptions compute;
};

std::vector<int32_t> parse_id_list(const std::string& text, const char* flag) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || v < 0 || v > INT32_MAX)
      HG_FAIL(flag, ": '", item, "' is not a token id (expected comma-separated integers)");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

void run_generate(const GenerateCliOptions& o) {
  o.sampling.validate();
  if (o.max_new < 0) HG_FAIL("--max-new must be >= 0");
  if (o.prompt.empty() && !o.chat) HG_FAIL("--prompt is empty");
  auto tokenizer = Tokenizer::load_or_default(o.tokenizer);
  auto backend = make_decode_backend(o.compute, {o.checkpoint}, o.bits);
  const std::unique_ptr<infer::Session> session =
      infer::open_session(o.checkpoint, *backend, o.bits, o.group_size);
  const infer::SessionInfo info = session->info();
  if (session->config().vocab_size < tokenizer->vocab_size())
    HG_FAIL("the model's vocabulary (", session->config().vocab_size, ") is smaller than the tokenizer's (",
            tokenizer->vocab_size(), "): it cannot read text");

  std::vector<int32_t> prompt_ids;
  if (o.chat) {
    chat::Conversation conv;
    conv.messages.push_back({chat::Role::kUser, o.prompt, {}});
    prompt_ids = chat::encode_generation_prompt(*tokenizer, conv);
  } else {
    prompt_ids.push_back(token::kBos);
    const std::vector<int32_t> body = tokenizer->encode(o.prompt);
    prompt_ids.insert(prompt_ids.end(), body.begin(), body.end());
  }

  infer::GenerateOptions g;
  g.max_new = o.max_new;
  g.sampling = o.sampling;
  if (!o.stop_ids.empty()) {
    const std::vector<int32_t> extra = parse_id_list(o.stop_ids, "--stop-ids");
    g.stop_ids.insert(g.stop_ids.end(), extra.begin(), extra.end());
  }
  infer::TextStream stream(*tokenizer);
  const auto on_token = [&](int32_t id) {
    const std::string piece = stream.push(id);
    if (!o.json && !piece.empty()) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
  };
  const infer::GenerateResult r = infer::generate(*session, prompt_ids, g, on_token);
  const std::string rest = stream.flush();
  if (o.json) {
    const nlohmann::json j = {{"prompt_ids", prompt_ids},
                              {"ids", r.ids},
                              {"text", stream.text()},
                              {"finish_reason", r.finish_reason},
                              {"prompt_tokens", r.prompt_tokens},
                              {"generated_tokens", r.ids.size()},
                              {"weights", infer::weight_format_name(info.format)},
                              {"device", info.device},
                              {"prefill_tokens_per_s", r.prefill_tokens_per_s()},
                              {"decode_tokens_per_s", r.decode_tokens_per_s()}};
    print_json(j);
  } else {
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<GenerateCliOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a checkpoint (KV-cache decoding)");
  cmd->add_option("--checkpoint", o->checkpoint, "Model directory (FP32 or quantised)")->required();
  cmd->add_option("--prompt", o->prompt, "Prompt text (after <s>; with --chat: the user turn)")->required();
  cmd->add_option("--max-new", o->max_new, "Most new tokens")->capture_default_str();
  cmd->add_option("--temperature", o->sampling.temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", o->sampling.top_k, "Keep the k most likely ids (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", o->sampling.top_p, "Nucleus probability (1 = off)")->capture_default_str();
  cmd->add_option("--repetition-penalty", o->sampling.repetition_penalty, "1 = off")->capture_default_str();
  cmd->add_option("--seed", o->sampling.seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--stop-ids", o->stop_ids, "Extra comma-separated stop ids (<|end|> and </s> always stop)");
  cmd->add_option("--bits", o->bits, "Quantise an FP32 checkpoint on load: 32, 16 (bf16), 8, 4 (CPU only)");
  cmd->add_option("--group-size", o->group_size, "INT4 group size (32 or 64)")->capture_default_str();
  cmd->add_option("--tokenizer", o->tokenizer, "SentencePiece model (default: the built-in Mistral one)");
  cmd->add_flag("--chat", o->chat, "Wrap the prompt in the chat template as a user turn");
  cmd->add_flag("--json", o->json, "One JSON object on stdout instead of streamed text");
  add_compute_options(cmd, o->compute);
  cmd->callback([o] { run_generate(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
