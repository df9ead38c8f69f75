// The dual-model assistant assembled from two checkpoints: Model 1 and Model 2
// weights, one KV-cache session each, the sandbox, and two routers over them:
//   router()  the product: Model 1 routes to Model 2 and the sandbox;
//   alone()   Model 1 with the route tokens banned, answering by itself (the
//             baseline of the demo's evaluation). Both share Model 1's session
//             (each turn starts from a reset context).
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "infer/sampler.h"
#include "infer/session_interface.h"
#include "route/router.h"
#include "route/sandbox.h"
#include "route/session_generator.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::route {

struct AssistantOptions {
  std::string model1_dir, model2_dir;
  int bits = -1;                      // 32/16/8/4, or -1: as stored
  infer::SamplingOptions sampling;    // both models
  RouterOptions router;
  SandboxLimits sandbox;
};

class Assistant {
 public:
  // tokenizer and backend must outlive the assistant. The sessions are those
  // of infer::open_session: DecoderSession on the CPU backend (any weight
  // format), DeviceSession elsewhere (FP32).
  Assistant(const Tokenizer& tokenizer, Backend& backend, const AssistantOptions& options);
  Assistant(const Assistant&) = delete;
  Assistant& operator=(const Assistant&) = delete;

  Router& router() { return *router_; }
  Router& alone() { return *alone_; }

 private:
  std::unique_ptr<infer::Session> s1_, s2_;
  std::unique_ptr<SessionGenerator> g1_, g1_alone_, g2_;
  std::unique_ptr<SandboxRunner> runner_;
  std::unique_ptr<Router> router_, alone_;
};

// The sampling options with the three route tokens banned.
infer::SamplingOptions without_routes(infer::SamplingOptions sampling);

}  // namespace hessgpt::route
