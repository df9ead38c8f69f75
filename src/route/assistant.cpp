#include "route/assistant.h"

#include "infer/open_session.h"
#include "tokenizer/chat_template.h"

namespace hessgpt::route {

infer::SamplingOptions without_routes(infer::SamplingOptions sampling) {
  for (chat::RouteKind k : {chat::RouteKind::kCode, chat::RouteKind::kMath, chat::RouteKind::kLogic})
    sampling.banned.push_back(chat::route_token(k));
  return sampling;
}

Assistant::Assistant(const Tokenizer& tokenizer, Backend& backend, const AssistantOptions& o)
    : s1_(infer::open_session(o.model1_dir, backend, o.bits)),
      s2_(infer::open_session(o.model2_dir, backend, o.bits)) {
  g1_ = std::make_unique<SessionGenerator>(*s1_, o.sampling);
  g1_alone_ = std::make_unique<SessionGenerator>(*s1_, without_routes(o.sampling));
  g2_ = std::make_unique<SessionGenerator>(*s2_, o.sampling);
  runner_ = std::make_unique<SandboxRunner>(o.sandbox);
  router_ = std::make_unique<Router>(tokenizer, *g1_, *g2_, *runner_, o.router);
  alone_ = std::make_unique<Router>(tokenizer, *g1_alone_, *g2_, *runner_, o.router);
}

}  // namespace hessgpt::route
