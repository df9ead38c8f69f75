// The router against scripted token streams: Model 1 and Model 2 are
// ScriptedModels that replay fixed ids, programs run in a fake runner (and in
// the real sandbox once), and every test checks both the trace and what each
// model's context ends up holding.
#include <algorithm>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "route/route_test_util.h"
#include "route/router.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::route {
namespace {

using chat::RouteKind;
using route_test::Ids;

using route_test::cat;
using route_test::text;
using route_test::tok;

const Ids kEnd = {token::kEnd};
const Ids kMath = {token::kMath};
const Ids kCode = {token::kCode};
const Ids kLogic = {token::kLogic};

// Replays one script per reset(); past the script's end it says "la" forever
// (a model that never stops). Keeps every context it was given.
class ScriptedModel : public TokenGenerator {
 public:
  explicit ScriptedModel(std::vector<Ids> scripts) : scripts_(std::move(scripts)) {}
  void reset() override {
    ++round_;
    pos_ = 0;
    contexts_.emplace_back();
  }
  void append(std::span<const int32_t> ids) override {
    ASSERT_FALSE(contexts_.empty()) << "append before reset";
    contexts_.back().insert(contexts_.back().end(), ids.begin(), ids.end());
  }
  int32_t next() override {
    EXPECT_FALSE(contexts_.empty()) << "next before reset";
    if (contexts_.empty()) reset();
    const Ids* script = round_ < scripts_.size() ? &scripts_[round_] : nullptr;
    const int32_t id = script && pos_ < script->size() ? (*script)[pos_++] : filler();
    contexts_.back().push_back(id);
    ++generated_;
    return id;
  }
  static int32_t filler() { return text("la").at(0); }

  const std::vector<Ids>& contexts() const { return contexts_; }
  size_t resets() const { return contexts_.size(); }
  int64_t generated() const { return generated_; }

 private:
  std::vector<Ids> scripts_;
  std::vector<Ids> contexts_;
  size_t round_ = size_t(-1);
  size_t pos_ = 0;
  int64_t generated_ = 0;
};

class FakeRunner : public ProgramRunner {
 public:
  std::function<ProgramResult(std::string_view)> fn = [](std::string_view) {
    return ProgramResult{true, "42", ""};
  };
  std::vector<std::string> programs;
  ProgramResult run(std::string_view program) override {
    programs.emplace_back(program);
    return fn(program);
  }
};

chat::Conversation ask(const std::string& question) {
  chat::Conversation c;
  c.messages.push_back({chat::Role::kUser, question, {}});
  return c;
}

struct Fixture {
  ScriptedModel model1;
  ScriptedModel model2;
  FakeRunner runner;
  RouterOptions options;
  Fixture(Ids m1, std::vector<Ids> m2) : model1({std::move(m1)}), model2(std::move(m2)) {}
  TurnResult respond(const std::string& question) {
    Router router(tok(), model1, model2, runner, options);
    return router.respond(ask(question));
  }
};

TEST(Router, SingleMathRoute) {
  Fixture f(cat({kMath, text("Calculate 37*41"), kEnd, text("37 × 41 = 1517."), kEnd}),
            {cat({text("print(37*41)"), kEnd})});
  f.runner.fn = [](std::string_view p) {
    return p == "print(37*41)" ? ProgramResult{true, "1517", ""} : ProgramResult{false, "", "wrong program"};
  };
  const TurnResult t = f.respond("What is 37*41?");

  EXPECT_EQ(t.end, TurnEnd::kEnd);
  EXPECT_EQ(t.answer, "37 × 41 = 1517.");
  ASSERT_EQ(t.trace.size(), 1u);
  const TraceEntry& e = t.trace[0];
  EXPECT_EQ(e.kind, RouteKind::kMath);
  EXPECT_EQ(e.request, "Calculate 37*41");
  EXPECT_EQ(e.program, "print(37*41)");
  EXPECT_TRUE(e.executed);
  EXPECT_EQ(e.result, "1517");
  EXPECT_TRUE(e.error.empty());
  EXPECT_TRUE(e.injected);
  EXPECT_EQ(f.runner.programs, std::vector<std::string>{"print(37*41)"});

  // Model 2 saw exactly SPEC §3's prompt, fresh.
  ASSERT_EQ(f.model2.resets(), 1u);
  EXPECT_EQ(f.model2.contexts()[0],
            cat({chat::encode_route_prompt(tok(), RouteKind::kMath, "Calculate 37*41"), text("print(37*41)"), kEnd}));

  // Model 1's context is exactly the conversation with this turn appended:
  // the router's injection and the chat template agree.
  chat::Conversation full = ask("What is 37*41?");
  full.messages.push_back(t.message);
  ASSERT_EQ(t.message.routes.size(), 1u);
  EXPECT_EQ(t.message.routes[0], (chat::Route{RouteKind::kMath, "Calculate 37*41", "1517"}));
  ASSERT_EQ(f.model1.resets(), 1u);
  EXPECT_EQ(f.model1.contexts()[0], chat::encode_conversation(tok(), full).ids);
  EXPECT_EQ(t.model1_tokens, int64_t(f.model1.generated()));
}

TEST(Router, SeveralRoutesInOneTurn) {
  Fixture f(cat({kMath, text("Compute 2**10"), kEnd,
                 kCode, text("Write a function that doubles x"), kEnd,
                 kLogic, text("Is 97 prime?"), kEnd,
                 text("2**10 is 1024, 97 is prime, and here is the code."), kEnd}),
            {cat({text("print(2**10)"), kEnd}),
             cat({text("def double(x):\n    return 2 * x"), kEnd}),
             cat({text("```python\nprint(all(97 % d for d in range(2, 97)))\n```"), kEnd})});
  f.runner.fn = [](std::string_view p) {
    if (p == "print(2**10)") return ProgramResult{true, "1024", ""};
    if (p == "print(all(97 % d for d in range(2, 97)))") return ProgramResult{true, "True", ""};
    return ProgramResult{false, "", "unexpected program"};
  };
  const TurnResult t = f.respond("Three questions");
  EXPECT_EQ(t.end, TurnEnd::kEnd);
  ASSERT_EQ(t.trace.size(), 3u);
  EXPECT_EQ(t.trace[0].result, "1024");
  EXPECT_EQ(t.trace[1].kind, RouteKind::kCode);
  EXPECT_FALSE(t.trace[1].executed);  // code is the result, never run
  EXPECT_EQ(t.trace[1].result, "def double(x):\n    return 2 * x");
  EXPECT_EQ(t.trace[2].kind, RouteKind::kLogic);
  EXPECT_EQ(t.trace[2].program, "print(all(97 % d for d in range(2, 97)))");  // fence stripped
  EXPECT_EQ(t.trace[2].result, "True");
  EXPECT_EQ(f.runner.programs.size(), 2u);
  EXPECT_EQ(f.model2.resets(), 3u);  // a fresh Model 2 context per route
  EXPECT_EQ(t.message.routes.size(), 3u);
  EXPECT_NO_THROW(chat::validate([&] {
    chat::Conversation c = ask("Three questions");
    c.messages.push_back(t.message);
    return c;
  }()));
  // Each result sits right after its request in Model 1's context.
  chat::Conversation full = ask("Three questions");
  full.messages.push_back(t.message);
  EXPECT_EQ(f.model1.contexts()[0], chat::encode_conversation(tok(), full).ids);
}

TEST(Router, FourthRouteIsRefusedAndEndsTheTurn) {
  Ids m1;
  for (int i = 0; i < 4; ++i) m1 = cat({m1, kMath, text("Compute " + std::to_string(i) + "+1"), kEnd});
  m1 = cat({m1, text("never reached"), kEnd});
  Fixture g(m1, {cat({text("print(1)"), kEnd}), cat({text("print(2)"), kEnd}), cat({text("print(3)"), kEnd}),
                 cat({text("print(4)"), kEnd})});
  const TurnResult t = g.respond("count");
  EXPECT_EQ(t.end, TurnEnd::kRouteLimit);
  ASSERT_EQ(t.trace.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(t.trace[i].injected) << i;
  EXPECT_FALSE(t.trace[3].injected);
  EXPECT_EQ(t.trace[3].error, "route refused: at most 3 routes per turn");
  EXPECT_EQ(g.runner.programs.size(), 3u);
  EXPECT_EQ(g.model2.resets(), 3u);
  EXPECT_EQ(t.message.routes.size(), 3u);
  EXPECT_TRUE(t.answer.empty());
  // Model 1 stopped at the refused route token.
  EXPECT_EQ(g.model1.contexts()[0].back(), token::kMath);
  EXPECT_EQ(t.end_detail, "Model 1 asked for route 4 (limit 3)");
}

TEST(Router, RouteLimitIsConfigurable) {
  Fixture f(cat({kMath, text("a"), kEnd, kMath, text("b"), kEnd, text("done"), kEnd}),
            {cat({text("print(1)"), kEnd})});
  f.options.max_routes = 1;
  const TurnResult t = f.respond("q");
  EXPECT_EQ(t.end, TurnEnd::kRouteLimit);
  EXPECT_EQ(t.trace.size(), 2u);
  EXPECT_EQ(t.message.routes.size(), 1u);
}

TEST(Router, MissingEndBeforeTheBudget) {
  // A request that never closes: Model 1 rambles on until its budget is spent.
  Fixture f(cat({kMath, text("Calculate the sum of")}), {});
  f.options.max_model1_tokens = 20;
  const TurnResult t = f.respond("sum?");
  EXPECT_EQ(t.end, TurnEnd::kBudget);
  EXPECT_EQ(t.model1_tokens, 20);
  ASSERT_EQ(t.trace.size(), 1u);
  EXPECT_FALSE(t.trace[0].injected);
  EXPECT_TRUE(t.trace[0].request.starts_with("Calculate the sum of")) << t.trace[0].request;
  EXPECT_EQ(t.trace[0].error, "request not finished: the turn's budget of 20 tokens ran out before <|end|>");
  EXPECT_TRUE(f.runner.programs.empty());
  EXPECT_EQ(f.model2.resets(), 0u);  // Model 2 is never asked
  EXPECT_TRUE(t.message.routes.empty());
}

TEST(Router, RouteTokenAsTheLastTokenOfTheBudget) {
  const Ids lead = text("Let me compute that");
  Fixture f(cat({lead, kMath, text("2+2"), kEnd}), {});
  f.options.max_model1_tokens = int64_t(lead.size()) + 1;
  const TurnResult t = f.respond("2+2?");
  EXPECT_EQ(t.end, TurnEnd::kBudget);
  EXPECT_EQ(t.answer, "Let me compute that");
  ASSERT_EQ(t.trace.size(), 1u);
  EXPECT_EQ(t.trace[0].request, "");
  EXPECT_FALSE(t.trace[0].injected);
  EXPECT_EQ(f.model2.resets(), 0u);
}

TEST(Router, AnswerWithoutEndStopsAtTheBudget) {
  Fixture f(text("Paris is"), {});
  f.options.max_model1_tokens = 10;
  const TurnResult t = f.respond("Capital of France?");
  EXPECT_EQ(t.end, TurnEnd::kBudget);
  EXPECT_EQ(t.model1_tokens, 10);
  EXPECT_TRUE(t.answer.starts_with("Paris is")) << t.answer;
  EXPECT_TRUE(t.trace.empty());
}

TEST(Router, NoRouteIsAPlainAnswer) {
  Fixture f(cat({text("Paris."), kEnd}), {});
  const TurnResult t = f.respond("Capital of France?");
  EXPECT_EQ(t.end, TurnEnd::kEnd);
  EXPECT_EQ(t.answer, "Paris.");
  EXPECT_TRUE(t.trace.empty());
  EXPECT_EQ(f.model2.resets(), 0u);
}

TEST(Router, ProgramThatRaisesBecomesAnErrorResult) {
  Fixture f(cat({kMath, text("Divide 1 by 0"), kEnd, text("That is undefined."), kEnd}),
            {cat({text("print(1/0)"), kEnd})});
  f.runner.fn = [](std::string_view) { return ProgramResult{false, "", "ZeroDivisionError: division by zero"}; };
  const TurnResult t = f.respond("1/0?");
  EXPECT_EQ(t.end, TurnEnd::kEnd);
  ASSERT_EQ(t.trace.size(), 1u);
  EXPECT_TRUE(t.trace[0].executed);
  EXPECT_EQ(t.trace[0].error, "ZeroDivisionError: division by zero");
  EXPECT_EQ(t.trace[0].result, "error: ZeroDivisionError: division by zero");
  // Model 1 gets the error as its result and answers from it.
  const Ids injected = chat::encode_route_result(tok(), "error: ZeroDivisionError: division by zero");
  const Ids& ctx = f.model1.contexts()[0];
  EXPECT_NE(std::search(ctx.begin(), ctx.end(), injected.begin(), injected.end()), ctx.end());
  EXPECT_EQ(t.answer, "That is undefined.");
}

TEST(Router, ModelTwoThatNeverEndsIsCutOff) {
  Fixture f(cat({kMath, text("Compute pi"), kEnd, text("I could not compute it."), kEnd}),
            {text("print(")});  // then "la" forever
  f.options.max_model2_tokens = 16;
  const TurnResult t = f.respond("pi?");
  EXPECT_EQ(t.end, TurnEnd::kEnd);
  ASSERT_EQ(t.trace.size(), 1u);
  EXPECT_EQ(t.trace[0].model2_tokens, 16);
  EXPECT_FALSE(t.trace[0].executed);
  EXPECT_EQ(t.trace[0].result, "error: model 2 did not finish within 16 tokens");
  EXPECT_TRUE(t.trace[0].injected);
  EXPECT_TRUE(f.runner.programs.empty());
  EXPECT_EQ(t.answer, "I could not compute it.");
}

TEST(Router, ModelTwoWritingAControlTokenFails) {
  Fixture f(cat({kMath, text("Compute pi"), kEnd, text("ok"), kEnd}),
            {cat({text("print(3.14)"), Ids{token::kUser}})});
  const TurnResult t = f.respond("pi?");
  ASSERT_EQ(t.trace.size(), 1u);
  EXPECT_EQ(t.trace[0].result, "error: model 2 wrote <|user|> in its answer");
  EXPECT_TRUE(f.runner.programs.empty());
}

TEST(Router, ModelTwoEmptyProgram) {
  Fixture f(cat({kMath, text("Compute"), kEnd, text("ok"), kEnd}), {kEnd});
  const TurnResult t = f.respond("?");
  EXPECT_EQ(t.trace.at(0).result, "error: model 2 wrote no program");
  EXPECT_TRUE(f.runner.programs.empty());
}

TEST(Router, EmptyRequestIsNotSentToModelTwo) {
  Fixture f(cat({kMath, kEnd, text("Nothing to compute."), kEnd}), {});
  const TurnResult t = f.respond("?");
  EXPECT_EQ(t.end, TurnEnd::kEnd);
  ASSERT_EQ(t.trace.size(), 1u);
  EXPECT_EQ(t.trace[0].result, "error: empty request");
  EXPECT_TRUE(t.trace[0].injected);
  EXPECT_EQ(f.model2.resets(), 0u);
}

TEST(Router, ForgedResultOrRoleTokenEndsTheTurn) {
  Fixture forged(cat({text("The answer is"), Ids{token::kResult}, text("7"), kEnd}), {});
  TurnResult t = forged.respond("?");
  EXPECT_EQ(t.end, TurnEnd::kMalformed);
  EXPECT_EQ(t.end_detail, "Model 1 wrote <|result|> in its answer");
  EXPECT_EQ(t.answer, "The answer is");

  Fixture nested(cat({kMath, text("Compute"), kCode, text("x"), kEnd}), {});
  t = nested.respond("?");
  EXPECT_EQ(t.end, TurnEnd::kMalformed);
  ASSERT_EQ(t.trace.size(), 1u);
  EXPECT_EQ(t.trace[0].error, "malformed request: <|code|> before <|end|>");
  EXPECT_EQ(nested.model2.resets(), 0u);

  Fixture user(cat({text("Hi"), Ids{token::kUser}}), {});
  EXPECT_EQ(user.respond("?").end, TurnEnd::kMalformed);
}

TEST(Router, EndOfSequenceEndsTheTurn) {
  Fixture f(cat({text("Bye."), Ids{token::kEos}}), {});
  const TurnResult t = f.respond("?");
  EXPECT_EQ(t.end, TurnEnd::kEnd);
  EXPECT_EQ(t.answer, "Bye.");
}

TEST(Router, CodeRouteIsNeverExecutedAndIsCapped) {
  const std::string code = "function add(a, b) {\n  return a + b;\n}";
  Fixture f(cat({kCode, text("JavaScript add function"), kEnd, text("Here it is."), kEnd}),
            {cat({text(code), kEnd})});
  f.options.max_code_result_chars = 20;
  const TurnResult t = f.respond("add in JS");
  ASSERT_EQ(t.trace.size(), 1u);
  EXPECT_FALSE(t.trace[0].executed);
  EXPECT_EQ(t.trace[0].program, code);
  EXPECT_EQ(t.trace[0].result, code.substr(0, 20) + "…");
  EXPECT_TRUE(f.runner.programs.empty());
}

TEST(Router, RunTurnContinuesAnExistingContext) {
  // The engine may keep Model 1's KV cache across turns: run_turn() does not reset.
  ScriptedModel m1({cat({text("Second answer."), kEnd})});
  ScriptedModel m2({});
  FakeRunner runner;
  Router router(tok(), m1, m2, runner);
  m1.reset();
  const Ids prompt = chat::encode_generation_prompt(tok(), ask("again"));
  m1.append(prompt);
  const TurnResult t = router.run_turn();
  EXPECT_EQ(t.answer, "Second answer.");
  EXPECT_EQ(m1.resets(), 1u);
}

TEST(Router, TraceJson) {
  Fixture f(cat({kMath, text("Calculate 6*7"), kEnd, kCode, text("hello in python"), kEnd, text("42"), kEnd}),
            {cat({text("print(6*7)"), kEnd}), cat({text("print('hello')"), kEnd})});
  const TurnResult t = f.respond("?");
  const nlohmann::json j = trace_to_json(t.trace);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["kind"], "math");
  EXPECT_EQ(j[0]["request"], "Calculate 6*7");
  EXPECT_EQ(j[0]["program"], "print(6*7)");
  EXPECT_EQ(j[0]["result"], "42");
  EXPECT_TRUE(j[0]["error"].is_null());
  EXPECT_EQ(j[1]["kind"], "code");
  EXPECT_EQ(j[1]["code"], "print('hello')");
  EXPECT_EQ(j[1]["executed"], false);
}

TEST(Router, ExtractProgram) {
  EXPECT_EQ(extract_program("print(1)\n"), "print(1)");
  EXPECT_EQ(extract_program("Here:\n```python\nx = 2\nprint(x)\n```\nDone."), "x = 2\nprint(x)");
  EXPECT_EQ(extract_program("```\nprint(3)"), "print(3)");  // unclosed fence
}

TEST(Router, InvalidOptionsAreRefused) {
  ScriptedModel m1({}), m2({});
  FakeRunner runner;
  RouterOptions o;
  o.max_model1_tokens = 0;
  EXPECT_THROW(Router(tok(), m1, m2, runner, o), Error);
}

TEST(Router, RealSandboxRunsModelTwosProgram) {
  std::string why;
  if (!sandbox_available(&why)) GTEST_SKIP() << "sandbox unavailable: " << why;
  ScriptedModel m1({cat({kMath, text("Calculate 37*41"), kEnd, text("37 × 41 = 1517."), kEnd})});
  ScriptedModel m2({cat({text("a = 37\nb = 41\nprint(a * b)"), kEnd})});
  SandboxLimits limits;
  limits.wall_seconds = 5;
  SandboxRunner runner(limits);
  Router router(tok(), m1, m2, runner);
  const TurnResult t = router.respond(ask("What is 37*41?"));
  ASSERT_EQ(t.trace.size(), 1u);
  EXPECT_EQ(t.trace[0].program, "a = 37\nb = 41\nprint(a * b)");
  EXPECT_EQ(t.trace[0].result, "1517");
  EXPECT_EQ(t.answer, "37 × 41 = 1517.");

  // A hostile or broken program through the same path: a short error result.
  ScriptedModel m1b({cat({kMath, text("Divide"), kEnd, text("undefined"), kEnd})});
  ScriptedModel m2b({cat({text("import os\nprint(open('/etc/shadow').read())"), kEnd})});
  Router router_b(tok(), m1b, m2b, runner);
  const TurnResult b = router_b.respond(ask("?"));
  ASSERT_EQ(b.trace.size(), 1u);
  EXPECT_EQ(b.trace[0].result, "error: FileNotFoundError: [Errno 2] No such file or directory: '/etc/shadow'");
}

}  // namespace
}  // namespace hessgpt::route
