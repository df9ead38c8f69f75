// The generation loop: prefill the prompt, then sample and decode one token
// at a time until a stop id, the token budget or the end of the context.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "infer/sampler.h"
#include "infer/session_interface.h"

namespace hessgpt::infer {

struct GenerateOptions {
  int64_t max_new = 128;
  SamplingOptions sampling;
  // Generation ends when one of these is sampled (it is not part of the output).
  std::vector<int32_t> stop_ids = {32003 /* <|end|> */, 2 /* </s> */};
};

struct GenerateResult {
  std::vector<int32_t> ids;      // generated, stop id excluded
  int32_t stop_id = -1;          // the stop id that ended it, or -1
  std::string finish_reason;     // "stop" | "length" | "context"
  int64_t prompt_tokens = 0;
  int64_t decode_steps = 0;      // single-token forward passes
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
  double prefill_tokens_per_s() const;
  double decode_tokens_per_s() const;
};

// The session must be empty (position 0). on_token, when given, sees every
// generated id as soon as it is chosen (not the stop id).
GenerateResult generate(Session& session, std::span<const int32_t> prompt,
                        const GenerateOptions& options,
                        const std::function<void(int32_t)>& on_token = {});

}  // namespace hessgpt::infer
