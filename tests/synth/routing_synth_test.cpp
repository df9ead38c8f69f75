// hessgpt synth routing: recorded results are what the programs print (run
// through /usr/bin/python3), files are deterministic, eval splits are held
// out, every line round-trips through the chat reader and template, and
// factual answers come from the real source files.
#include "data/synth/routing_synth.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "core/error.h"
#include "data/presets.h"
#include "data/synth/model2_format.h"
#include "data/synth/routed_tasks.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::synth {
namespace {

using hessgpt::testing::TempDir;
using nlohmann::json;

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

SynthOptions small_options(const std::string& out, uint64_t seed = 7) {
  SynthOptions o;
  o.out_dir = out;
  o.seed = seed;
  o.model1_train = 300;
  o.model2_train = 400;
  o.eval = 120;
  o.paths = default_factual_paths(data::default_deps_dir());
  return o;
}

// One generated data set shared by the tests (generation takes ~0.1 s).
const TempDir& shared_dir() {
  static const TempDir* dir = [] {
    auto* d = new TempDir();
    run_synth_routing(small_options(d->path().string()));
    return d;
  }();
  return *dir;
}

// Runs (program, expected) pairs in one python3 process; returns mismatches.
std::vector<std::string> python_mismatches(const std::vector<std::pair<std::string, std::string>>& cases,
                                           const TempDir& tmp) {
  json j = json::array();
  for (const auto& [program, expected] : cases) j.push_back({program, expected});
  std::ofstream(tmp / "cases.json") << j.dump();
  std::ofstream(tmp / "check.py") << R"PY(
import contextlib, io, json, sys
bad = 0
for program, expected in json.load(open(sys.argv[1])):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(program, {})
    got = out.getvalue().strip()
    if got != expected:
        bad += 1
        print("MISMATCH", repr(program), "printed", repr(got), "recorded", repr(expected))
print("checked", len(json.load(open(sys.argv[1]))), "bad", bad)
)PY";
  const auto r = hessgpt::testing::run_command("/usr/bin/python3 " + (tmp / "check.py") + " " + (tmp / "cases.json"));
  std::vector<std::string> bad;
  std::istringstream in(r.out);
  for (std::string l; std::getline(in, l);)
    if (l.rfind("MISMATCH", 0) == 0) bad.push_back(l);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("checked"), std::string::npos) << r.out;
  return bad;
}

TEST(SynthRouting, EveryMathAndLogicProgramPrintsItsRecordedResult) {
  // Many direct tasks of every kind, both splits, plus the Model 2 files.
  std::vector<std::pair<std::string, std::string>> cases;
  Rng rng(99);
  for (const auto* names : {&math_task_names(), &logic_task_names()}) {
    for (const auto& name : *names) {
      for (int i = 0; i < 150; ++i) {
        const RoutedTask t = make_task(name, i % 2 ? Split::kEval : Split::kTrain, rng);
        ASSERT_FALSE(t.result.empty()) << t.request;
        cases.emplace_back(t.program, t.result);
      }
    }
  }
  for (const char* file : {"model2_train.jsonl", "model2_eval.jsonl"}) {
    for (const auto& line : lines_of(shared_dir() / file)) {
      const json j = json::parse(line);
      if (j["kind"] != "code") cases.emplace_back(j["messages"][1]["content"], j["result"]);
    }
  }
  TempDir tmp;
  const auto bad = python_mismatches(cases, tmp);
  EXPECT_TRUE(bad.empty()) << bad.size() << " mismatches, first: " << bad.front();
}

TEST(SynthRouting, PythonCodeFunctionsRun) {
  std::vector<std::pair<std::string, std::string>> cases;
  Rng rng(5);
  for (int i = 0; i < 200; ++i) {
    const RoutedTask t = make_code_task("code_function", Split::kTrain, rng);
    EXPECT_EQ(t.result, t.program);
    EXPECT_NE(t.answer.find(t.program), std::string::npos);
    if (t.language == "python") cases.emplace_back(t.program + "\nprint('ok')", "ok");  // defines cleanly
  }
  TempDir tmp;
  EXPECT_TRUE(python_mismatches(cases, tmp).empty());
}

TEST(SynthRouting, JavaScriptCodeFunctionsParse) {
  const auto node = hessgpt::testing::run_command("command -v node");
  if (node.exit_code != 0) GTEST_SKIP() << "node not installed";
  Rng rng(6);
  TempDir tmp;
  std::ofstream js(tmp / "all.js");
  size_t n = 0;
  for (int i = 0; i < 300; ++i) {
    const RoutedTask t = make_code_task("code_function", i % 2 ? Split::kEval : Split::kTrain, rng);
    if (t.language == "javascript") {
      js << t.program << "\n";  // repeated function names are legal in a script
      ++n;
    }
  }
  js.close();
  EXPECT_GT(n, 30u);
  const auto r = hessgpt::testing::run_command("node --check " + (tmp / "all.js"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

TEST(SynthRouting, KnownValues) {
  EXPECT_EQ(py_round2(12.0 / 1.609344), "7.46");
  EXPECT_EQ(py_round2(100.0), "100.0");
  EXPECT_EQ(py_round2(0.125), "0.12");  // ties to even on the exact binary value, like Python
  EXPECT_EQ(py_float_repr(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(with_commas(1234567), "1,234,567");
  EXPECT_EQ(fill("{a} + {b}", {{"a", "1"}, {"b", "2"}}), "1 + 2");
}

TEST(SynthRouting, DeterministicForASeed) {
  TempDir a, b, c;
  run_synth_routing(small_options(a.path().string(), 11));
  run_synth_routing(small_options(b.path().string(), 11));
  run_synth_routing(small_options(c.path().string(), 12));
  for (const char* f : {"model1_train.jsonl", "model1_eval.jsonl", "model2_train.jsonl", "model2_eval.jsonl",
                        "model1_eval_routing.jsonl", "model1_eval_routing_unseen.jsonl", "synth_manifest.json"}) {
    EXPECT_EQ(slurp(a / f), slurp(b / f)) << f;
    if (std::string(f) != "synth_manifest.json") {
      EXPECT_NE(slurp(a / f), slurp(c / f)) << f;
    }
  }
}

TEST(SynthRouting, EvalRequestsAndSubjectsAreHeldOut) {
  const TempDir& d = shared_dir();
  std::set<std::string> train_requests, train_users;
  for (const auto& line : lines_of(d / "model1_train.jsonl")) {
    const json j = json::parse(line);  // named: a temporary would die before the loop body
    for (const auto& m : j["messages"]) {
      if (m["role"] == "user") train_users.insert(m["content"]);
      if (m.contains("routes"))
        for (const auto& r : m["routes"])
          if (r["kind"] != "code") train_requests.insert(r["request"]);
    }
  }
  for (const auto& line : lines_of(d / "model2_train.jsonl")) {
    const json j = json::parse(line);
    if (j["kind"] != "code") train_requests.insert(j["messages"][0]["content"]);
  }
  size_t checked = 0;
  for (const auto& line : lines_of(d / "model1_eval.jsonl")) {
    const json j = json::parse(line);  // named: a temporary would die before the loop body
    for (const auto& m : j["messages"]) {
      if (m["role"] == "user") {
        EXPECT_FALSE(train_users.contains(m["content"])) << m["content"];
      }
      if (m.contains("routes"))
        for (const auto& r : m["routes"])
          if (r["kind"] != "code") {
            EXPECT_FALSE(train_requests.contains(r["request"])) << r["request"];
            ++checked;
          }
    }
  }
  for (const auto& line : lines_of(d / "model2_eval.jsonl")) {
    const json j = json::parse(line);
    if (j["kind"] != "code") {
      EXPECT_FALSE(train_requests.contains(j["messages"][0]["content"]));
      ++checked;
    }
  }
  // Both routing eval files: routed prompts and their requests are new.
  for (const char* f : {"model1_eval_routing.jsonl", "model1_eval_routing_unseen.jsonl"}) {
    size_t routed = 0;
    for (const auto& line : lines_of(d / f)) {
      const json j = json::parse(line);
      if (!j["should_route"].get<bool>()) continue;
      EXPECT_FALSE(train_users.contains(j["messages"][0]["content"])) << f << ": " << j["messages"][0]["content"];
      if (j["route_kind"] != "code") {
        EXPECT_FALSE(train_requests.contains(j["expected_request"])) << f << ": " << j["expected_request"];
      }
      ++routed;
    }
    EXPECT_GT(routed, 20u) << f;
    checked += routed;
  }
  EXPECT_GT(checked, 100u);
  // Factual subjects: eval items come from the held-out fifth only.
  const auto items = load_factual_items(default_factual_paths(data::default_deps_dir()));
  std::set<std::string> eval_answers;
  for (const auto& i : items)
    if (i.split == Split::kEval) eval_answers.insert(i.answer);
  size_t factual = 0;
  for (const auto& line : lines_of(d / "model1_eval_routing.jsonl")) {
    const json j = json::parse(line);
    if (!j["should_route"].get<bool>()) {
      EXPECT_TRUE(eval_answers.contains(j["expected_final"].get<std::string>())) << j["expected_final"];
      ++factual;
    }
  }
  EXPECT_GT(factual, 20u);
}

TEST(SynthRouting, EveryLineRoundTripsThroughTheChatReaderAndTemplate) {
  const TempDir& d = shared_dir();
  const auto tok = Tokenizer::load_default();
  size_t routed = 0;
  for (const char* f : {"model1_train.jsonl", "model1_eval.jsonl", "model1_eval_routing.jsonl",
                        "model1_eval_routing_unseen.jsonl"}) {
    for (const auto& line : lines_of(d / f)) {
      const chat::Conversation conv = chat::conversation_from_json_line(line);
      EXPECT_EQ(chat::conversation_to_json(conv)["messages"], json::parse(line)["messages"]);
      const chat::EncodedChat enc = chat::encode_conversation(*tok, conv);
      ASSERT_EQ(enc.ids.size(), enc.loss_mask.size());
      EXPECT_EQ(chat::decode_conversation(*tok, enc.ids), conv) << line;
      const auto targets = chat::next_token_targets(enc);
      const bool has_assistant = conv.messages.back().role == chat::Role::kAssistant;
      EXPECT_EQ(std::any_of(targets.begin(), targets.end(), [](int32_t t) { return t != -100; }), has_assistant);
      for (const auto& m : conv.messages) routed += m.routes.size();
    }
  }
  EXPECT_GT(routed, 100u);
  for (const char* f : {"model2_train.jsonl", "model2_eval.jsonl"}) {
    for (const auto& line : lines_of(d / f)) {
      const json j = json::parse(line);
      const chat::Conversation plain = chat::conversation_from_json(j);  // the ordinary reader accepts it
      const Model2Example ex = model2_example_from_json(j);
      const chat::EncodedChat enc = encode_model2_example(*tok, ex);
      // Same ids as the plain conversation with the route token after <|user|>.
      std::vector<int32_t> expect = chat::encode_conversation(*tok, plain).ids;
      expect.insert(expect.begin() + 2, chat::route_token(ex.kind));
      EXPECT_EQ(enc.ids, expect);
      const auto prompt = chat::encode_route_prompt(*tok, ex.kind, ex.request);
      EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), enc.ids.begin()));
      for (size_t i = 0; i < enc.ids.size(); ++i) EXPECT_EQ(enc.loss_mask[i], i >= prompt.size() ? 1 : 0);
    }
  }
}

// The word a single-word logic request is about: "Reverse 'planet'" -> planet.
std::string quoted_word(const std::string& request) {
  const size_t end = request.rfind('\'');
  const size_t begin = request.rfind('\'', end - 1);
  return request.substr(begin + 1, end - begin - 1);
}

TEST(SynthRouting, RoutingEvalFilesDifferInPhrasingShare) {
  TempDir d;  // enough training items to show every training word
  SynthOptions o = small_options(d.path().string());
  o.model2_train = 4000;
  run_synth_routing(o);
  std::set<std::string> train_words;  // every word inside a training request's quotes
  for (const auto& line : lines_of(d / "model2_train.jsonl")) {
    const json j = json::parse(line);
    const std::string request = j["messages"][0]["content"];
    if (j["kind"] != "logic") continue;
    std::istringstream words(quoted_word(request));
    for (std::string w; words >> w;) train_words.insert(w);
  }
  const auto single_word_items = [&](const char* file) {
    std::vector<std::string> out;
    for (const auto& line : lines_of(d / file)) {
      const json j = json::parse(line);
      const std::string task = j["task"];
      if (task == "reverse" || task == "word_length" || task == "count_vowels" || task == "count_letter")
        out.push_back(quoted_word(j["expected_request"]));
    }
    return out;
  };
  const auto seen = single_word_items("model1_eval_routing.jsonl");
  const auto unseen = single_word_items("model1_eval_routing_unseen.jsonl");
  ASSERT_GT(seen.size(), 5u);
  ASSERT_GT(unseen.size(), 5u);
  for (const auto& w : seen) EXPECT_TRUE(train_words.contains(w)) << w;     // training's words, new requests
  for (const auto& w : unseen) EXPECT_FALSE(train_words.contains(w)) << w;  // words training never shows
}

TEST(SynthRouting, FactualAnswersComeFromTheSourceFiles) {
  const FactualPaths p = default_factual_paths(data::default_deps_dir());
  const auto factbook = load_factbook(p.factbook_dir);
  std::string all_factbook;
  for (const auto& e : std::filesystem::recursive_directory_iterator(p.factbook_dir))
    if (e.path().extension() == ".json") all_factbook += slurp(e.path().string());
  size_t capitals = 0;
  for (const auto& i : factbook) {
    EXPECT_NE(all_factbook.find("\"" + i.fact), std::string::npos) << i.fact;
    EXPECT_NE(i.answer.find(i.fact), std::string::npos);
    capitals += i.topic == "capital";
  }
  EXPECT_GT(capitals, 150u);
  bool paris = false;
  for (const auto& i : factbook) paris |= i.subject == "France" && i.topic == "capital" && i.fact == "Paris";
  EXPECT_TRUE(paris);
  const auto faq = load_python_faq(p.python_faq_dir);
  EXPECT_GT(faq.size(), 50u);
  const auto foldoc = load_foldoc(p.foldoc_file);
  EXPECT_GT(foldoc.size(), 1000u);
  for (const auto& i : foldoc) EXPECT_EQ(i.answer, i.subject + ": " + i.fact);
}

TEST(SynthRouting, MissingSourceNamesThePackage) {
  FactualPaths p = default_factual_paths(data::default_deps_dir());
  p.foldoc_file = "/nonexistent/foldoc.dict.dz";
  try {
    load_factual_items(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dict-foldoc"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("scripts/setup.sh"), std::string::npos) << e.what();
  }
}

TEST(SynthRouting, CliWritesFilesAndManifest) {
  TempDir out;
  const auto r = hessgpt::testing::run_command(std::string(HESSGPT_BINARY) + " synth routing --out " +
                                               out.path().string() +
                                               " --model1-train 50 --model2-train 40 --eval 20 --seed 3 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const json m = json::parse(slurp(out / "synth_manifest.json"));
  EXPECT_EQ(m["files"]["model1_train.jsonl"]["conversations"], 50);
  EXPECT_EQ(m["files"]["model2_train.jsonl"]["conversations"], 40);
  EXPECT_EQ(lines_of(out / "model1_eval_routing.jsonl").size(), 20u);
  const auto bad = hessgpt::testing::run_command(std::string(HESSGPT_BINARY) + " synth routing --out " +
                                                 out.path().string() + " --factual-share 2");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("--factual-share"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace hessgpt::synth
