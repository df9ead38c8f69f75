#include "route/assistant.h"

#include "tokenizer/chat_template.h"

namespace hessgpt::route {

infer::SamplingOptions without_routes(infer::SamplingOptions sampling) {
  for (chat::RouteKind k : {chat::RouteKind::kCode, chat::RouteKind::kMath, chat::RouteKind::kLogic})
    sampling.banned.push_back(chat::route_token(k));
  return sampling;
}

Assistant::Assistant(const Tokenizer& tokenizer, Backend& backend, const AssistantOptions& o)
    : w1_(infer::load_infer_weights(o.model1_dir, backend, o.bits)),
      w2_(infer::load_infer_weights(o.model2_dir, backend, o.bits)) {
  s1_ = std::make_unique<infer::DecoderSession>(w1_, backend);
  s2_ = std::make_unique<infer::DecoderSession>(w2_, backend);
  g1_ = std::make_unique<SessionGenerator>(*s1_, o.sampling);
  g1_alone_ = std::make_unique<SessionGenerator>(*s1_, without_routes(o.sampling));
  g2_ = std::make_unique<SessionGenerator>(*s2_, o.sampling);
  runner_ = std::make_unique<SandboxRunner>(o.sandbox);
  router_ = std::make_unique<Router>(tokenizer, *g1_, *g2_, *runner_, o.router);
  alone_ = std::make_unique<Router>(tokenizer, *g1_alone_, *g2_, *runner_, o.router);
}

}  // namespace hessgpt::route
