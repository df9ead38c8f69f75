#include "data/synth/routing_synth.h"

#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <unordered_set>

#include "data/synth/model2_format.h"
#include "data/synth/routed_tasks.h"
#include "tokenizer/chat_template.h"

namespace hessgpt::synth {
namespace fs = std::filesystem;
namespace {

using chat::Conversation;
using chat::Message;
using chat::Role;

// What a generated task is for: evaluation requests are kept out of training.
enum class Use { kTrain, kEval };

using TaskWeights = std::vector<std::pair<std::string, int>>;

// Task mix (weights): arithmetic-heavy, as the demo's evaluation is.
const TaskWeights& task_weights() {
  static const TaskWeights k = {
      {"arithmetic", 5},   {"multi_step", 2},  {"percentage", 2}, {"unit_conversion", 3},
      {"count_letter", 1}, {"count_vowels", 1}, {"word_length", 1}, {"count_words", 1},
      {"reverse", 1},      {"uppercase", 1},    {"sort_words", 1},  {"code_function", 3}};
  return k;
}

// Model 2's training mix leans on the tasks whose programs copy several
// words from the request: copying a word sequence is the skill a small
// Model 2 learns last (measured: 0-45 % on those tasks with the plain mix,
// near 100 % on the rest).
const TaskWeights& model2_train_weights() {
  static const TaskWeights k = {
      {"arithmetic", 5},   {"multi_step", 3},  {"percentage", 2}, {"unit_conversion", 3},
      {"count_letter", 1}, {"count_vowels", 1}, {"word_length", 1}, {"count_words", 3},
      {"reverse", 1},      {"uppercase", 2},    {"sort_words", 3},  {"code_function", 3}};
  return k;
}

const std::vector<std::string> kSystemPrompts = {
    "You are HessGPT, a helpful assistant.",
    "You are a helpful assistant. Answer concisely.",
    "You are HessGPT. Use your tools for exact calculations and code.",
    "You are a friendly and accurate assistant.",
    "You are HessGPT, an assistant that answers questions clearly.",
    "Answer the user's questions accurately.",
    "You are a concise assistant.",
    "You are HessGPT, a careful assistant that never guesses numbers."};

// Share of factual turns per source.
constexpr std::array<std::pair<std::string_view, double>, 3> kFactualShares = {
    {{"factbook", 0.45}, {"foldoc", 0.40}, {"python_faq", 0.15}}};

const std::vector<std::string> kJoiners = {" Also, ", " And ", " Then, ", " One more thing: ", " Next: ",
                                           " Additionally, ", " Plus, ", " After that, "};

// Counters for the manifest, per file.
struct Counts {
  size_t conversations = 0, turns = 0, routed_turns = 0, factual_turns = 0, two_route_turns = 0,
         multi_turn_conversations = 0, with_system = 0;
  std::map<std::string, size_t> routes_by_kind, tasks, factual_sources;
  nlohmann::json to_json() const {
    return {{"conversations", conversations},
            {"turns", turns},
            {"routed_turns", routed_turns},
            {"factual_turns", factual_turns},
            {"two_route_turns", two_route_turns},
            {"multi_turn_conversations", multi_turn_conversations},
            {"with_system_prompt", with_system},
            {"routes_by_kind", routes_by_kind},
            {"tasks", tasks},
            {"factual_sources", factual_sources}};
  }
};

class Generator {
 public:
  Generator(const SynthOptions& options, const std::vector<FactualItem>& factual) : options_(options) {
    for (const auto& item : factual) {
      auto& pools = item.split == Split::kEval ? factual_eval_ : factual_train_;
      size_t s = 0;
      while (s < kFactualShares.size() && kFactualShares[s].first != item.source) ++s;
      HG_CHECK(s < kFactualShares.size(), "unknown factual source ", item.source);
      pools[s].push_back(&item);
    }
    for (size_t s = 0; s < kFactualShares.size(); ++s) {
      HG_CHECK(!factual_train_[s].empty() && !factual_eval_[s].empty(), "factual source ",
               kFactualShares[s].first, " gave no train or no eval items");
    }
  }

  // A routed task phrased from the split's share of templates and words.
  // Training never repeats a math/logic request, nor any user message, that
  // an eval item holds, whichever share the eval item was phrased from. Code
  // requests are few (18 functions), so there the held-out part is the
  // phrasing and the parameter k, not the request: excluding them would
  // starve training of code tasks.
  RoutedTask routed(Split phrasing, Use use, Rng& rng, const TaskWeights& weights = task_weights()) {
    for (int tries = 0;; ++tries) {
      RoutedTask t = make_task(pick_task(rng, weights), phrasing, rng);
      const bool code = t.kind == chat::RouteKind::kCode;
      if (use == Use::kEval) {
        if (!code) eval_requests_.insert(t.request);
        eval_users_.insert(t.user);
        return t;
      }
      if ((code || !eval_requests_.contains(t.request)) && !eval_users_.contains(t.user)) return t;
      HG_CHECK(tries < 1000, "cannot find a training task disjoint from the eval set");
    }
  }
  RoutedTask routed(Split split, Rng& rng) { return routed(split, split == Split::kEval ? Use::kEval : Use::kTrain, rng); }

  Conversation model1_conversation(Split split, Rng& rng, Counts& c, std::vector<std::string>& tasks) {
    Conversation conv;
    if (chance(rng, 0.25)) {
      conv.messages.push_back({Role::kSystem, pick(rng, kSystemPrompts, split), {}});
      ++c.with_system;
    }
    const bool factual_first = chance(rng, options_.factual_share);
    const size_t n_turns = chance(rng, 0.2) ? 2 : 1;
    for (size_t turn = 0; turn < n_turns; ++turn) {
      // The second turn of a multi-turn conversation mixes both kinds, so the
      // model sees routing after a factual answer and the reverse.
      const bool factual = turn == 0 ? factual_first : chance(rng, 0.5);
      if (factual) {
        add_factual_turn(conv, split, rng, c, tasks);
      } else {
        add_routed_turn(conv, split, rng, c, tasks, chance(rng, 0.15) ? 2 : 1);
      }
    }
    ++c.conversations;
    if (n_turns > 1) ++c.multi_turn_conversations;
    c.turns += n_turns;
    return conv;
  }

  // One prompt of a routing eval file. Routed tasks are always new instances
  // (their requests never occur in training); `phrasing` says whether they
  // use training's templates, wrappers and words (kTrain) or the held-out
  // ones (kEval). Factual questions always come from held-out subjects.
  nlohmann::json routing_eval_item(Split phrasing, Rng& rng, Counts& c) {
    nlohmann::json j;
    Conversation conv;
    if (chance(rng, 0.5)) {
      const RoutedTask t = routed(phrasing, Use::kEval, rng);
      conv.messages.push_back({Role::kUser, wrap_politely(t.user, phrasing, rng), {}});
      j = chat::conversation_to_json(conv);
      j["should_route"] = true;
      j["route_kind"] = chat::route_kind_name(t.kind);
      j["task"] = t.task;
      j["source"] = "synthetic";
      j["expected_request"] = t.request;
      j["expected_answer"] = t.result;
      j["expected_final"] = t.answer;
      ++c.routed_turns;
      ++c.routes_by_kind[std::string(chat::route_kind_name(t.kind))];
      ++c.tasks[t.task];
    } else {
      const FactualItem& f = pick_factual(Split::kEval, rng);
      conv.messages.push_back({Role::kUser, wrap_politely(pick(rng, f.questions, Split::kEval), Split::kEval, rng), {}});
      j = chat::conversation_to_json(conv);
      j["should_route"] = false;
      j["route_kind"] = nullptr;
      j["task"] = f.topic;
      j["source"] = f.source;
      j["expected_request"] = "";
      j["expected_answer"] = f.fact;
      j["expected_final"] = f.answer;
      ++c.factual_turns;
      ++c.factual_sources[f.source];
    }
    ++c.conversations;
    ++c.turns;
    return j;
  }

  nlohmann::json model2_item(Split split, Rng& rng, Counts& c) {
    const RoutedTask t = split == Split::kTrain ? routed(split, Use::kTrain, rng, model2_train_weights())
                                                : routed(split, rng);
    nlohmann::json j = model2_example_to_json({t.kind, t.request, t.program});
    j["task"] = t.task;
    j["language"] = t.language;
    if (t.kind != chat::RouteKind::kCode) j["result"] = t.result;
    ++c.conversations;
    ++c.turns;
    ++c.routes_by_kind[std::string(chat::route_kind_name(t.kind))];
    ++c.tasks[t.task];
    return j;
  }

 private:
  static std::string pick_task(Rng& rng, const TaskWeights& weights) {
    int total = 0;
    for (const auto& [name, w] : weights) total += w;
    int r = static_cast<int>(rng.below(static_cast<uint64_t>(total)));
    for (const auto& [name, w] : weights) {
      if (r < w) return name;
      r -= w;
    }
    return weights.back().first;
  }

  // Source first, then an item: FOLDOC alone has 10x the Factbook's items,
  // and the Factbook's number questions ("How many people live in X?") are
  // the ones that teach Model 1 not to route every number.
  const FactualItem& pick_factual(Split split, Rng& rng) {
    const auto& pools = split == Split::kEval ? factual_eval_ : factual_train_;
    double u = rng.uniform();
    size_t s = 0;
    while (s + 1 < kFactualShares.size() && u >= kFactualShares[s].second) u -= kFactualShares[s++].second;
    return *pick_any(rng, pools[s]);
  }

  void add_factual_turn(Conversation& conv, Split split, Rng& rng, Counts& c, std::vector<std::string>& tasks) {
    const FactualItem& f = pick_factual(split, rng);
    conv.messages.push_back({Role::kUser, wrap_politely(pick(rng, f.questions, split), split, rng), {}});
    conv.messages.push_back({Role::kAssistant, f.answer, {}});
    ++c.factual_turns;
    ++c.factual_sources[f.source];
    tasks.push_back(f.source + ":" + f.topic);
  }

  void add_routed_turn(Conversation& conv, Split split, Rng& rng, Counts& c, std::vector<std::string>& tasks,
                       int n_routes) {
    const RoutedTask first = routed(split, rng);
    std::string user = first.user, answer = first.answer;
    Message reply{Role::kAssistant, "", {{first.kind, first.request, first.result}}};
    tasks.push_back(first.task);
    if (n_routes == 2) {
      RoutedTask second = routed(split, rng);
      while (second.request == first.request) second = routed(split, rng);
      user += pick(rng, kJoiners, split) + lower_first(second.user);
      // Code answers end in a code block: keep the next sentence on its own paragraph.
      answer += (first.kind == chat::RouteKind::kCode ? "\n\n" : " ") + second.answer;
      reply.routes.push_back({second.kind, second.request, second.result});
      tasks.push_back(second.task);
      ++c.two_route_turns;
    }
    reply.content = answer;
    for (const auto& r : reply.routes) ++c.routes_by_kind[std::string(chat::route_kind_name(r.kind))];
    for (size_t i = tasks.size() - reply.routes.size(); i < tasks.size(); ++i) ++c.tasks[tasks[i]];
    conv.messages.push_back({Role::kUser, wrap_politely(user, split, rng), {}});
    conv.messages.push_back(std::move(reply));
    ++c.routed_turns;
  }

  const SynthOptions& options_;
  std::array<std::vector<const FactualItem*>, 3> factual_train_, factual_eval_;  // per kFactualShares entry
  std::unordered_set<std::string> eval_requests_, eval_users_;
};

// Lines into DIR/name through a temporary file, renamed when complete, so a
// killed run never leaves a half file under the final name.
class JsonlWriter {
 public:
  JsonlWriter(const fs::path& dir, const std::string& name) : final_(dir / name), tmp_(dir / (name + ".tmp")) {
    out_.open(tmp_, std::ios::binary | std::ios::trunc);
    if (!out_) HG_FAIL("cannot write ", tmp_.string());
  }
  void write(const nlohmann::json& j) { out_ << j.dump() << '\n'; }
  void close() {
    out_.close();
    if (!out_) HG_FAIL("write failed: ", tmp_.string());
    fs::rename(tmp_, final_);
  }

 private:
  fs::path final_, tmp_;
  std::ofstream out_;
};

// Each file has its own stream, so changing one count leaves the others' content unchanged.
Rng file_rng(uint64_t seed, std::string_view file) { return Rng(seed ^ stable_hash(file)); }

}  // namespace

nlohmann::json run_synth_routing(const SynthOptions& o) {
  if (o.out_dir.empty()) HG_FAIL("synth routing needs --out DIR");
  if (!(o.factual_share >= 0.0 && o.factual_share <= 1.0)) HG_FAIL("--factual-share must be in [0, 1], got ", o.factual_share);
  if (o.eval == 0) HG_FAIL("--eval must be at least 1");
  const std::vector<FactualItem> factual = load_factual_items(o.paths);
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) HG_FAIL("cannot create ", o.out_dir, ": ", ec.message());
  fs::remove(fs::path(o.out_dir) / "synth_manifest.json");  // the manifest marks a finished run

  Generator gen(o, factual);
  nlohmann::json files;
  const auto model1_file = [&](const std::string& name, Split split, size_t n) {
    Rng rng = file_rng(o.seed, name);
    Counts c;
    JsonlWriter w(o.out_dir, name);
    for (size_t i = 0; i < n; ++i) {
      std::vector<std::string> tasks;
      nlohmann::json j = chat::conversation_to_json(gen.model1_conversation(split, rng, c, tasks));
      j["tasks"] = tasks;
      w.write(j);
    }
    w.close();
    files[name] = c.to_json();
  };
  const auto model2_file = [&](const std::string& name, Split split, size_t n) {
    Rng rng = file_rng(o.seed, name);
    Counts c;
    JsonlWriter w(o.out_dir, name);
    for (size_t i = 0; i < n; ++i) w.write(gen.model2_item(split, rng, c));
    w.close();
    files[name] = c.to_json();
  };
  const auto routing_eval_file = [&](const std::string& name, Split phrasing) {
    Rng rng = file_rng(o.seed, name);
    Counts c;
    JsonlWriter w(o.out_dir, name);
    for (size_t i = 0; i < o.eval; ++i) w.write(gen.routing_eval_item(phrasing, rng, c));
    w.close();
    files[name] = c.to_json();
  };
  // Eval files first: their requests are then excluded from training.
  routing_eval_file("model1_eval_routing.jsonl", Split::kTrain);
  routing_eval_file("model1_eval_routing_unseen.jsonl", Split::kEval);
  model1_file("model1_eval.jsonl", Split::kEval, o.eval);
  model2_file("model2_eval.jsonl", Split::kEval, o.eval);
  model1_file("model1_train.jsonl", Split::kTrain, o.model1_train);
  model2_file("model2_train.jsonl", Split::kTrain, o.model2_train);

  nlohmann::json templates = nlohmann::json::object();
  size_t total_templates = 0;
  for (const auto& t : template_counts()) {
    templates[t.task] = t.templates;
    total_templates += t.templates;
  }
  std::map<std::string, size_t> factual_items;
  for (const auto& f : factual) ++factual_items[f.source + (f.split == Split::kEval ? ".eval" : ".train")];
  nlohmann::json manifest = {
      {"format", "hessgpt-synth-routing-1"},
      {"options",
       {{"seed", o.seed},
        {"model1_train", o.model1_train},
        {"model2_train", o.model2_train},
        {"eval", o.eval},
        {"factual_share", o.factual_share}}},
      {"sources",
       {{"factbook", o.paths.factbook_dir}, {"foldoc", o.paths.foldoc_file}, {"python_faq", o.paths.python_faq_dir}}},
      {"factual_items", factual_items},
      {"user_templates", templates},
      {"user_templates_total", total_templates},
      {"politeness_wrappers", wrapper_count()},
      {"files", files}};
  std::ofstream m(fs::path(o.out_dir) / "synth_manifest.json.tmp");
  m << manifest.dump(2) << '\n';
  m.close();
  if (!m) HG_FAIL("cannot write ", o.out_dir, "/synth_manifest.json");
  fs::rename(fs::path(o.out_dir) / "synth_manifest.json.tmp", fs::path(o.out_dir) / "synth_manifest.json");
  return manifest;
}

}  // namespace hessgpt::synth
