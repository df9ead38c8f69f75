#include "serve/engine.h"

#include "core/error.h"
#include "infer/open_session.h"
#include "route/assistant.h"
#include "route/session_generator.h"

namespace hessgpt::serve {
namespace {

// A generator that asks before every token whether to go on, so a turn
// stops within one token of its client going away, whichever model is
// writing (Model 2's program can be long).
class StoppableGenerator final : public route::TokenGenerator {
 public:
  StoppableGenerator(route::TokenGenerator& inner, const std::function<bool()>& should_stop)
      : inner_(inner), should_stop_(should_stop) {}
  void reset() override { inner_.reset(); }
  void append(std::span<const int32_t> ids) override { inner_.append(ids); }
  int32_t next() override {
    if (should_stop_ && should_stop_()) throw Cancelled();
    return inner_.next();
  }

 private:
  route::TokenGenerator& inner_;
  const std::function<bool()>& should_stop_;
};

std::unique_ptr<infer::Session> open_model(const std::string& dir, Backend& backend, int bits,
                                           const Tokenizer& tokenizer) {
  auto session = infer::open_session(dir, backend, bits);
  if (session->config().vocab_size < tokenizer.vocab_size()) {
    HG_FAIL(dir, ": the model's vocabulary (", session->config().vocab_size,
            ") is smaller than the tokenizer's (", tokenizer.vocab_size(), ")");
  }
  return session;
}

}  // namespace

Engine::Engine(const Tokenizer& tokenizer, Backend& backend, const EngineOptions& options)
    : tokenizer_(tokenizer), options_(options) {
  if (options_.max_route_tokens <= 0)
    HG_FAIL("max route tokens must be positive (got ", options_.max_route_tokens, ")");
  model1_ = open_model(options_.model1_dir, backend, options_.bits, tokenizer_);
  model2_ = open_model(options_.model2_dir, backend, options_.bits, tokenizer_);
  sandbox_ = std::make_unique<route::SandboxRunner>(options_.sandbox);
}

Engine::~Engine() = default;

int64_t Engine::context() const { return model1_->capacity(); }

std::vector<int32_t> Engine::render(const chat::Conversation& conversation) const {
  return chat::encode_generation_prompt(tokenizer_, conversation);
}

route::TurnResult Engine::run(const TurnSpec& spec, const TurnHooks& hooks) {
  // Generators and router are cheap views over the sessions, made per turn
  // because each turn brings its own sampling; the same objects
  // route::Assistant builds, so a turn here is a turn of `hessgpt chat`.
  const infer::SamplingOptions sampling1 =
      spec.routing ? spec.sampling : route::without_routes(spec.sampling);
  route::SessionGenerator g1(*model1_, sampling1);
  route::SessionGenerator g2(*model2_, spec.sampling);
  StoppableGenerator s1(g1, hooks.should_stop), s2(g2, hooks.should_stop);
  route::RouterOptions ro;
  ro.max_model1_tokens = spec.max_tokens;
  ro.max_model2_tokens = options_.max_route_tokens;
  ro.on_answer_token = hooks.on_answer_token;
  route::Router router(tokenizer_, s1, s2, *sandbox_, ro);
  return router.respond(spec.conversation);
}

}  // namespace hessgpt::serve
