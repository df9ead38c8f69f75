// A TokenGenerator (router.h) over the inference engine: one KV-cache decoder
// session plus a sampler. append() only queues ids; next() feeds everything
// queued in one pass (prefill for a prompt or an injected result, a single
// token while decoding), samples, and queues the sampled id in turn.
#pragma once

#include <vector>

#include "infer/sampler.h"
#include "infer/session_interface.h"
#include "route/router.h"

namespace hessgpt::route {

class SessionGenerator final : public TokenGenerator {
 public:
  SessionGenerator(infer::Session& session, const infer::SamplingOptions& sampling);

  void reset() override;
  void append(std::span<const int32_t> ids) override;
  int32_t next() override;

 private:
  infer::Session& session_;
  infer::SamplingOptions sampling_;
  infer::Sampler sampler_;
  std::vector<int32_t> pending_;
  std::vector<int32_t> history_;  // everything in the context, for the repetition penalty
};

}  // namespace hessgpt::route
