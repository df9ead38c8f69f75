#include "infer/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace hessgpt::infer {

double GenerateResult::prefill_tokens_per_s() const {
  return prefill_seconds > 0.0 ? static_cast<double>(prompt_tokens) / prefill_seconds : 0.0;
}

double GenerateResult::decode_tokens_per_s() const {
  return decode_seconds > 0.0 ? static_cast<double>(decode_steps) / decode_seconds : 0.0;
}

GenerateResult generate(Session& session, std::span<const int32_t> prompt,
                        const GenerateOptions& options,
                        const std::function<void(int32_t)>& on_token) {
  using Clock = std::chrono::steady_clock;
  if (prompt.empty()) HG_FAIL("the prompt is empty (it needs at least one token, e.g. <s>)");
  if (options.max_new < 0) HG_FAIL("max new tokens must be >= 0 (got ", options.max_new, ")");
  HG_CHECK(session.position() == 0, "generate needs a fresh session");
  const int64_t p = static_cast<int64_t>(prompt.size());
  if (p > session.capacity())
    HG_FAIL("the prompt has ", p, " tokens, more than the model's context (", session.capacity(),
            ")");
  Sampler sampler(options.sampling);
  GenerateResult r;
  r.prompt_tokens = p;
  std::vector<int32_t> history(prompt.begin(), prompt.end());

  const auto t0 = Clock::now();
  std::span<const float> logits = session.feed(prompt);
  r.prefill_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.finish_reason = "length";
  const auto t1 = Clock::now();
  for (int64_t i = 0; i < options.max_new; ++i) {
    const int32_t id = sampler.sample(logits, history);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), id) != options.stop_ids.end()) {
      r.stop_id = id;
      r.finish_reason = "stop";
      break;
    }
    r.ids.push_back(id);
    history.push_back(id);
    if (on_token) on_token(id);
    if (i + 1 == options.max_new) break;  // no need to run the last token
    if (session.position() >= session.capacity()) {
      r.finish_reason = "context";
      break;
    }
    logits = session.feed(std::span<const int32_t>(&id, 1));
    ++r.decode_steps;
  }
  r.decode_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return r;
}

}  // namespace hessgpt::infer
