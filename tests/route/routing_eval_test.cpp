// The held-out evaluation of the routed assistant: the exact-answer rule, the
// evaluation file's checks, and the figures over scripted models.
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/test_util.h"
#include "core/error.h"
#include "route/route_test_util.h"
#include "route/routing_eval.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::route {
namespace {

using route_test::Ids;
using hessgpt::testing::TempDir;

using route_test::cat;
using route_test::text;
using route_test::tok;

// One script per reset(), in order; "</s>" past a script's end.
class ScriptedModel : public TokenGenerator {
 public:
  explicit ScriptedModel(std::vector<Ids> scripts) : scripts_(std::move(scripts)) {}
  void reset() override { ++round_, pos_ = 0; }
  void append(std::span<const int32_t>) override {}
  int32_t next() override {
    if (round_ < scripts_.size() && pos_ < scripts_[round_].size()) return scripts_[round_][pos_++];
    return token::kEos;
  }
  size_t rounds() const { return round_ + 1; }

 private:
  std::vector<Ids> scripts_;
  size_t round_ = size_t(-1), pos_ = 0;
};

class FixedRunner : public ProgramRunner {
 public:
  ProgramResult run(std::string_view program) override {
    return program == "print(68*51)" ? ProgramResult{true, "3468", ""} : ProgramResult{false, "", "NameError"};
  }
};

TEST(AnswerMatches, ExactAnswerInsideTheFinalText) {
  EXPECT_TRUE(answer_matches("68 × 51 = 3468.", "3468"));
  EXPECT_TRUE(answer_matches("3468", "3468"));
  EXPECT_TRUE(answer_matches("'forest' reversed is 'tserof'.", "tserof"));
  EXPECT_TRUE(answer_matches("The words sorted:  holiday noodle\nsculpture", "holiday noodle sculpture"));
  EXPECT_TRUE(answer_matches("-12 degrees", "-12"));
  EXPECT_TRUE(answer_matches("x = 1.5", "1.5"));
}

TEST(AnswerMatches, NoPartialNumbersOrWords) {
  EXPECT_FALSE(answer_matches("68 × 51 = 34680.", "3468"));
  EXPECT_FALSE(answer_matches("68 × 51 = 13468.", "3468"));
  EXPECT_FALSE(answer_matches("'garden' has 12 vowels.", "2"));
  EXPECT_FALSE(answer_matches("The answer is 21.5", "21"));
  EXPECT_FALSE(answer_matches("It is 1,500.", "1"));
  EXPECT_FALSE(answer_matches("It is -12.", "12"));
  EXPECT_FALSE(answer_matches("It is 3.12.", "12"));
  EXPECT_TRUE(answer_matches("It is 21. Next: 1, then 2.", "21"));
  EXPECT_FALSE(answer_matches("", "2"));
  EXPECT_FALSE(answer_matches("anything", ""));
  EXPECT_FALSE(answer_matches("tserofs", "tserof"));
}

std::string write_eval_file(const TempDir& dir, const std::vector<std::string>& lines) {
  const std::string path = (dir.path() / "eval.jsonl").string();
  std::ofstream out(path);
  for (const auto& l : lines) out << l << "\n";
  return path;
}

const std::string kRoutedLine =
    R"({"messages":[{"role":"user","content":"What do you get if you multiply 68 and 51?"}],)"
    R"("should_route":true,"route_kind":"math","task":"arithmetic","expected_request":"Calculate 68*51","expected_answer":"3468"})";
const std::string kFactualLine =
    R"({"messages":[{"role":"user","content":"What is FOLDOC?"}],"should_route":false,"route_kind":null,)"
    R"("task":"definition","expected_answer":"A dictionary."})";

TEST(LoadRoutingEval, ReadsItemsAndNamesBadLines) {
  TempDir dir;
  const auto items = load_routing_eval(write_eval_file(dir, {kRoutedLine, "", kFactualLine}));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_TRUE(items[0].should_route);
  EXPECT_EQ(items[0].route_kind, chat::RouteKind::kMath);
  EXPECT_EQ(items[0].expected_answer, "3468");
  EXPECT_FALSE(items[1].should_route);
  EXPECT_FALSE(items[1].route_kind.has_value());

  const auto fails_with = [&](const std::vector<std::string>& lines, const std::string& needle) {
    TempDir d;
    try {
      load_routing_eval(write_eval_file(d, lines));
      ADD_FAILURE() << "accepted a bad file; expected: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  fails_with({kRoutedLine, "{not json"}, "eval.jsonl:2: not valid JSON");
  fails_with({R"({"messages":[{"role":"user","content":"hi"}],"expected_answer":"x"})"}, "should_route");
  fails_with({R"({"messages":[{"role":"user","content":"hi"}],"should_route":true,"route_kind":"sql","expected_answer":"x"})"},
             "\"sql\" is not one of");
  fails_with({R"({"messages":[{"role":"user","content":"hi"}],"should_route":true,"expected_answer":""})"},
             "non-empty \"expected_answer\"");
  fails_with({R"({"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}],"should_route":false,"expected_answer":""})"},
             "must end with a user message");
  fails_with({}, "has no items");
  EXPECT_THROW(load_routing_eval((dir.path() / "missing.jsonl").string()), Error);
}

TEST(EvaluateRouting, CountsRoutedAloneAndDecisions) {
  TempDir dir;
  // Item 1: a task routed and answered right (alone: wrong).
  // Item 2: a task Model 1 answers right without routing (decision wrong; alone: right too).
  // Item 3: a factual question Model 1 wrongly routes.
  // Item 4: a factual question answered directly (decision right).
  const auto items = load_routing_eval(write_eval_file(dir, {kRoutedLine, kRoutedLine, kFactualLine, kFactualLine}));
  const Ids end = {token::kEnd};
  ScriptedModel m1({cat({{token::kMath}, text("Calculate 68*51"), end, text("68 × 51 = 3468."), end}),
                    cat({text("It is 3468."), end}),
                    cat({{token::kLogic}, text("Count"), end, text("ok"), end}),
                    cat({text("A dictionary."), end})});
  ScriptedModel m1_alone({cat({text("It is 3400."), end}), cat({text("3468"), end})});
  ScriptedModel m2({cat({text("print(68*51)"), end}), cat({text("print(x)"), end})});
  FixedRunner runner;
  Router routed(tok(), m1, m2, runner), alone(tok(), m1_alone, m2, runner);
  size_t progress_calls = 0;
  RoutingEvalOptions o;
  o.examples = 5;
  o.on_progress = [&](size_t done, size_t total) {
    EXPECT_EQ(done, ++progress_calls);
    EXPECT_EQ(total, 4u);
  };
  const RoutingEvalReport r = evaluate_routing(items, routed, alone, o);
  EXPECT_EQ(progress_calls, 4u);
  EXPECT_EQ(m1.rounds(), 4u);
  EXPECT_EQ(m1_alone.rounds(), 2u);  // only routed tasks are answered alone
  EXPECT_EQ(r.items, 4u);
  EXPECT_EQ(r.tasks, 2u);
  EXPECT_EQ(r.routed_correct, 2u);  // item 2 is right without a route: the answer is what counts
  EXPECT_EQ(r.alone_correct, 1u);
  EXPECT_DOUBLE_EQ(r.routed_accuracy(), 1.0);
  EXPECT_DOUBLE_EQ(r.model1_alone_accuracy(), 0.5);
  EXPECT_EQ(r.decision_correct, 2u);  // items 1 and 4
  EXPECT_DOUBLE_EQ(r.route_decision_accuracy(), 0.5);
  EXPECT_EQ(r.kind_correct, 1u);
  EXPECT_EQ(r.request_exact, 1u);
  const nlohmann::json j = r.to_json();
  EXPECT_DOUBLE_EQ(j["routed_when_should"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["routed_when_should_not"].get<double>(), 0.5);
  EXPECT_EQ(j["per_task"]["arithmetic"]["tasks"], 2);
  EXPECT_EQ(j["per_task"]["arithmetic"]["routed_correct"], 2);
  EXPECT_EQ(j["per_task"]["arithmetic"]["alone_correct"], 1);
  ASSERT_EQ(j["examples"].size(), 1u);  // one per task
  EXPECT_EQ(j["examples"][0]["trace"][0]["result"], "3468");
  EXPECT_EQ(j["examples"][0]["answer"], "68 × 51 = 3468.");
  EXPECT_EQ(j["tasks"], 2);
  EXPECT_TRUE(j.contains("seconds"));

  // --limit: only the first items.
  ScriptedModel m1b({cat({text("no"), end})}), m1b_alone({cat({text("no"), end})});
  Router routed_b(tok(), m1b, m2, runner), alone_b(tok(), m1b_alone, m2, runner);
  RoutingEvalOptions limited;
  limited.limit = 1;
  const RoutingEvalReport rb = evaluate_routing(items, routed_b, alone_b, limited);
  EXPECT_EQ(rb.items, 1u);
  EXPECT_EQ(rb.tasks, 1u);
  EXPECT_EQ(rb.routed_correct, 0u);
}

TEST(EvaluateModel2, ProgramOutputOrCodeMustMatch) {
  TempDir dir;
  const std::string path = (dir.path() / "m2.jsonl").string();
  {
    std::ofstream out(path);
    out << R"J({"kind":"math","messages":[{"role":"user","content":"Calculate 68*51"},{"role":"assistant","content":"print(68*51)"}],"result":"3468","task":"arithmetic"})J" << "\n"
        << R"J({"kind":"math","messages":[{"role":"user","content":"Calculate 68*51"},{"role":"assistant","content":"print(68*51)"}],"result":"3468","task":"arithmetic"})J" << "\n"
        << R"J({"kind":"code","messages":[{"role":"user","content":"Write f"},{"role":"assistant","content":"def f():\n    return 1"}],"task":"code_function"})J" << "\n";
  }
  const Ids end = {token::kEnd};
  ScriptedModel m1({});
  ScriptedModel m2({cat({text("print(68*51)"), end}), cat({text("print(x)"), end}),
                    cat({text("def f():\n    return 1"), end})});
  FixedRunner runner;
  Router router(tok(), m1, m2, runner);
  const Model2EvalReport r = evaluate_model2(path, router, 0);
  EXPECT_EQ(r.items, 3u);
  EXPECT_EQ(r.correct, 2u);
  EXPECT_EQ(r.failed_to_run, 1u);  // print(x): NameError in the runner
  EXPECT_EQ(r.per_task["arithmetic"]["correct"], 1);
  EXPECT_EQ(r.per_task["code_function"]["correct"], 1);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0]["program"], "print(x)");
  EXPECT_EQ(evaluate_model2(path, router, 1).items, 1u);

  std::ofstream(path) << R"J({"kind":"sql","messages":[]})J" << "\n";
  EXPECT_THROW(evaluate_model2(path, router, 0), Error);
}

}  // namespace
}  // namespace hessgpt::route
