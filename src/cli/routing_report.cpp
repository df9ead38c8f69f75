#include "cli/routing_report.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>

namespace hessgpt::cli {

route::AssistantOptions eval_assistant_options(const std::string& model1, const std::string& model2,
                                               int bits, int64_t max_tokens) {
  route::AssistantOptions o;
  o.model1_dir = model1;
  o.model2_dir = model2;
  o.bits = bits;
  o.sampling.temperature = 0.0;
  o.router.max_model1_tokens = max_tokens;
  o.router.max_model2_tokens = max_tokens;
  return o;
}

route::RoutingEvalReport run_routing_eval(route::Assistant& assistant,
                                          const std::vector<route::RoutingEvalItem>& items, size_t limit,
                                          size_t examples) {
  route::RoutingEvalOptions eo;
  eo.limit = limit;
  eo.examples = examples;
  const auto start = std::chrono::steady_clock::now();
  // A live line on a terminal; on a pipe or log file, a line every tenth.
  const bool tty = isatty(fileno(stderr));
  eo.on_progress = [start, tty](size_t done, size_t total) {
    const size_t step = std::max<size_t>(1, total / 10);
    if (!tty && done % step != 0 && done != total) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double eta = done ? s / static_cast<double>(done) * static_cast<double>(total - done) : 0.0;
    std::fprintf(stderr, "%sevaluating %zu/%zu | %.1f items/s | ETA %.0fs%s", tty ? "\r" : "", done, total,
                 s > 0 ? static_cast<double>(done) / s : 0.0, eta, tty ? "   " : "\n");
    if (tty && done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
  return route::evaluate_routing(items, assistant.router(), assistant.alone(), eo);
}

route::Model2EvalReport run_model2_eval(route::Assistant& assistant, const std::string& path, size_t limit) {
  std::fprintf(stderr, "evaluating Model 2 alone on %s\n", path.c_str());
  return route::evaluate_model2(path, assistant.router(), limit);
}

void print_model2_report(const route::Model2EvalReport& r, std::FILE* out) {
  std::fprintf(out, "Model 2 alone (held-out requests): %.3f (%zu/%zu right; %zu programs failed to run)\n",
               r.accuracy(), r.correct, r.items, r.failed_to_run);
  for (const auto& [task, t] : r.per_task.items())
    std::fprintf(out, "  %-16s %6lld %8.3f\n", task.c_str(), static_cast<long long>(t["items"].get<int64_t>()),
                 t["correct"].get<double>() / t["items"].get<double>());
}

void print_trace(const nlohmann::json& trace, std::FILE* out) {
  for (const nlohmann::json& t : trace) {
    std::fprintf(out, "  route:   <|%s|> %s\n", t.value("kind", "?").c_str(), t.value("request", "").c_str());
    for (const char* key : {"program", "code"})
      if (t.contains(key) && t[key].is_string())
        std::fprintf(out, "  %s: %s\n", key, t[key].get<std::string>().c_str());
    if (t.contains("result") && t["result"].is_string())
      std::fprintf(out, "  result:  %s\n", t["result"].get<std::string>().c_str());
    if (t.contains("error") && t["error"].is_string())
      std::fprintf(out, "  error:   %s\n", t["error"].get<std::string>().c_str());
  }
}

void print_routing_report(const route::RoutingEvalReport& r, std::FILE* out) {
  const nlohmann::json j = r.to_json();
  std::fprintf(out, "routed tasks: %zu, decision items: %zu (%.1f s)\n", r.tasks, r.items, r.seconds);
  std::fprintf(out, "  routed system accuracy   %.3f (%zu/%zu)\n", r.routed_accuracy(), r.routed_correct, r.tasks);
  std::fprintf(out, "  Model 1 alone accuracy   %.3f (%zu/%zu)\n", r.model1_alone_accuracy(), r.alone_correct, r.tasks);
  std::fprintf(out, "  route decision accuracy  %.3f (%zu/%zu; routes %.3f of routed tasks, %.3f of factual questions)\n",
               r.route_decision_accuracy(), r.decision_correct, r.items, j["routed_when_should"].get<double>(),
               j["routed_when_should_not"].get<double>());
  std::fprintf(out, "  route kind right %.3f, request exactly as trained %.3f\n",
               j["route_kind_accuracy"].get<double>(), j["request_exact_match"].get<double>());
  std::fprintf(out, "  %-16s %6s %8s %8s\n", "task", "tasks", "routed", "alone");
  for (const auto& [task, t] : r.per_task.items()) {
    const double n = t["tasks"].get<double>();
    std::fprintf(out, "  %-16s %6.0f %8.3f %8.3f\n", task.c_str(), n, t["routed_correct"].get<double>() / n,
                 t["alone_correct"].get<double>() / n);
  }
  for (const nlohmann::json& e : r.examples) {
    std::fprintf(out, "\nuser:      %s\n", e["prompt"].get<std::string>().c_str());
    print_trace(e["trace"], out);
    std::fprintf(out, "assistant: %s   [%s; expected %s]\n", e["answer"].get<std::string>().c_str(),
                 e["correct"].get<bool>() ? "right" : "wrong", e["expected_answer"].get<std::string>().c_str());
    std::fprintf(out, "alone:     %s\n", e["alone_answer"].get<std::string>().c_str());
  }
}

}  // namespace hessgpt::cli
