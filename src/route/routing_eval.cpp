#include "route/routing_eval.h"

#include <chrono>
#include <fstream>
#include <initializer_list>
#include <set>
#include <utility>

#include "core/error.h"
#include "data/synth/model2_format.h"

namespace hessgpt::route {
namespace {

bool is_word_char(unsigned char c) {
  // Bytes >= 0x80 belong to multi-byte UTF-8 characters ("×", "÷", letters
  // with accents); they count as separators so "= 3468." and "3468×" behave
  // the same as ASCII punctuation.
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

std::string squeeze_spaces(std::string_view s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

std::string required_string(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string()) HG_FAIL(where, ": \"", key, "\" must be a string");
  return it->get<std::string>();
}

RoutingEvalItem item_from_json(const nlohmann::json& j, const std::string& where) {
  RoutingEvalItem item;
  try {
    item.conversation = chat::conversation_from_json(j);
  } catch (const Error& e) {
    HG_FAIL(where, ": ", e.what());
  }
  const auto& msgs = item.conversation.messages;
  if (msgs.empty() || msgs.back().role != chat::Role::kUser)
    HG_FAIL(where, ": the conversation must end with a user message");
  const auto should = j.find("should_route");
  if (should == j.end() || !should->is_boolean()) HG_FAIL(where, ": \"should_route\" must be true or false");
  item.should_route = should->get<bool>();
  item.expected_answer = required_string(j, "expected_answer", where);
  if (item.should_route && item.expected_answer.empty())
    HG_FAIL(where, ": a routed task needs a non-empty \"expected_answer\"");
  if (const auto r = j.find("expected_request"); r != j.end() && r->is_string())
    item.expected_request = r->get<std::string>();
  if (const auto t = j.find("task"); t != j.end() && t->is_string()) item.task = t->get<std::string>();
  if (const auto k = j.find("route_kind"); k != j.end() && k->is_string()) {
    const std::string kind = k->get<std::string>();
    item.route_kind = chat::route_kind_from_name(kind);
    if (!item.route_kind) HG_FAIL(where, ": \"route_kind\" \"", kind, "\" is not one of code, math, logic");
  }
  return item;
}

// Calls fn(object, "path:line") for every non-blank line until it returns
// false; a line that is not JSON is an error naming it.
template <typename Fn>
void for_each_json_line(const std::string& path, Fn fn) {
  std::ifstream in(path);
  if (!in) HG_FAIL("cannot open evaluation file ", path);
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = str_cat(path, ":", line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      HG_FAIL(where, ": not valid JSON (", e.what(), ")");
    }
    if (!fn(j, where)) return;
  }
}

// Per-task counts: row[count_key] += 1 and row[key] += hit for each hit.
void tally(nlohmann::json& row, const char* count_key, std::initializer_list<std::pair<const char*, bool>> hits) {
  if (row.is_null()) row = nlohmann::json::object();
  const auto add = [&](const char* key, int64_t n) { row[key] = row.value(key, int64_t{0}) + n; };
  add(count_key, 1);
  for (const auto& [key, hit] : hits) add(key, hit ? 1 : 0);
}

double ratio(size_t n, size_t d) { return d ? static_cast<double>(n) / static_cast<double>(d) : 0.0; }

// The user's question, for the examples.
const std::string& last_user_text(const RoutingEvalItem& item) {
  return item.conversation.messages.back().content;
}

}  // namespace

std::vector<RoutingEvalItem> load_routing_eval(const std::string& path) {
  std::vector<RoutingEvalItem> items;
  for_each_json_line(path, [&](const nlohmann::json& j, const std::string& where) {
    items.push_back(item_from_json(j, where));
    return true;
  });
  if (items.empty()) HG_FAIL("evaluation file ", path, " has no items");
  return items;
}

bool answer_matches(std::string_view answer, std::string_view expected) {
  const std::string a = squeeze_spaces(answer), e = squeeze_spaces(expected);
  if (e.empty()) return false;
  const auto at = [&](size_t i) { return static_cast<unsigned char>(a[i]); };
  const auto digit = [](unsigned char c) { return c >= '0' && c <= '9'; };
  const bool starts_digit = digit(static_cast<unsigned char>(e.front()));
  const bool ends_digit = digit(static_cast<unsigned char>(e.back()));
  for (size_t pos = a.find(e); pos != std::string::npos; pos = a.find(e, pos + 1)) {
    const size_t end = pos + e.size();
    bool glued = false;
    if (pos > 0) {
      glued = is_word_char(at(pos - 1)) && is_word_char(static_cast<unsigned char>(e.front()));
      // "-12" or "3.468" are other numbers than "12" and "468".
      if (starts_digit && (at(pos - 1) == '-' || ((at(pos - 1) == '.' || at(pos - 1) == ',') && pos > 1 && digit(at(pos - 2)))))
        glued = true;
    }
    if (end < a.size()) {
      glued = glued || (is_word_char(at(end)) && is_word_char(static_cast<unsigned char>(e.back())));
      // "21.5" or "1,500" are other numbers than "21" and "1".
      if (ends_digit && (at(end) == '.' || at(end) == ',') && end + 1 < a.size() && digit(at(end + 1)))
        glued = true;
    }
    if (!glued) return true;
  }
  return false;
}

double RoutingEvalReport::routed_accuracy() const { return ratio(routed_correct, tasks); }
double RoutingEvalReport::model1_alone_accuracy() const { return ratio(alone_correct, tasks); }
double RoutingEvalReport::route_decision_accuracy() const { return ratio(decision_correct, items); }

nlohmann::json RoutingEvalReport::to_json() const {
  return {{"routed_accuracy", routed_accuracy()},
          {"model1_alone_accuracy", model1_alone_accuracy()},
          {"route_decision_accuracy", route_decision_accuracy()},
          {"tasks", tasks},
          {"decision_items", items},
          {"routed_when_should", ratio(routed_when_should, tasks)},
          {"routed_when_should_not", ratio(routed_when_should_not, factual)},
          {"route_kind_accuracy", ratio(kind_correct, tasks)},
          {"request_exact_match", ratio(request_exact, tasks)},
          {"seconds", seconds},
          {"per_task", per_task},
          {"examples", examples}};
}

RoutingEvalReport evaluate_routing(const std::vector<RoutingEvalItem>& items, Router& routed,
                                   Router& alone, const RoutingEvalOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const size_t n = options.limit ? std::min(options.limit, items.size()) : items.size();
  RoutingEvalReport report;
  report.items = n;
  std::set<std::string> seen_tasks;
  for (size_t i = 0; i < n; ++i) {
    const RoutingEvalItem& item = items[i];
    const TurnResult r = routed.respond(item.conversation);
    const bool did_route = !r.trace.empty();
    if (did_route == item.should_route) ++report.decision_correct;
    if (!item.should_route) {
      ++report.factual;
      if (did_route) ++report.routed_when_should_not;
    } else {
      ++report.tasks;
      if (did_route) ++report.routed_when_should;
      if (did_route && item.route_kind && r.trace.front().kind == *item.route_kind) ++report.kind_correct;
      if (did_route && r.trace.front().request == item.expected_request) ++report.request_exact;
      const TurnResult a = alone.respond(item.conversation);
      const bool ok = answer_matches(r.answer, item.expected_answer);
      const bool alone_ok = answer_matches(a.answer, item.expected_answer);
      report.routed_correct += ok;
      report.alone_correct += alone_ok;
      tally(report.per_task[item.task.empty() ? "unnamed" : item.task], "tasks",
            {{"routed_correct", ok}, {"alone_correct", alone_ok}});
      // One example per task kind first, so the examples show math, logic and code.
      const bool new_task = seen_tasks.insert(item.task).second;
      if (report.examples.size() < options.examples && new_task)
        report.examples.push_back({{"prompt", last_user_text(item)},
                                   {"answer", r.answer},
                                   {"correct", ok},
                                   {"alone_answer", a.answer},
                                   {"expected_answer", item.expected_answer},
                                   {"trace", trace_to_json(r.trace)}});
    }
    if (options.on_progress) options.on_progress(i + 1, n);
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

double Model2EvalReport::accuracy() const { return ratio(correct, items); }

nlohmann::json Model2EvalReport::to_json() const {
  return {{"model2_accuracy", accuracy()}, {"items", items}, {"failed_to_run", failed_to_run},
          {"per_task", per_task}, {"failures", failures}};
}

Model2EvalReport evaluate_model2(const std::string& path, Router& router, size_t limit) {
  Model2EvalReport report;
  for_each_json_line(path, [&](const nlohmann::json& j, const std::string& where) {
    synth::Model2Example ex;
    try {
      ex = synth::model2_example_from_json(j);
    } catch (const Error& e) {
      HG_FAIL(where, ": ", e.what());
    }
    const std::string expected = ex.kind == chat::RouteKind::kCode ? ex.answer : required_string(j, "result", where);
    const TraceEntry e = router.run_route(ex.kind, ex.request);
    const bool ok = e.error.empty() && e.result == expected;
    ++report.items;
    report.correct += ok;
    if (e.executed && !e.error.empty()) ++report.failed_to_run;
    if (!ok && report.failures.size() < 8)
      report.failures.push_back({{"request", ex.request}, {"program", e.program}, {"result", e.result},
                                 {"expected", expected}});
    tally(report.per_task[j.value("task", std::string("unnamed"))], "items", {{"correct", ok}});
    return limit == 0 || report.items < limit;
  });
  if (report.items == 0) HG_FAIL("evaluation file ", path, " has no items");
  return report;
}

}  // namespace hessgpt::route
