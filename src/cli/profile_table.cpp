#include "cli/profile_table.h"

#include <cstdio>
#include <string>

namespace hessgpt::cli {
namespace {

double profile_ms_per_unit(const std::vector<TimedBackend::Entry>& entries, int64_t units) {
  double ms = 0;
  for (const TimedBackend::Entry& e : entries) ms += e.ms;
  return ms / static_cast<double>(units);
}

}  // namespace

void print_profile(const std::vector<TimedBackend::Entry>& entries, int64_t units,
                   double seconds_per_unit, const char* unit) {
  const std::string per_unit = std::string("ms/") + unit;
  std::printf("%-26s %8s %10s %7s  %s\n", "op", "calls", per_unit.c_str(), "share", "shape");
  const double per = 1.0 / static_cast<double>(units);
  for (const TimedBackend::Entry& e : entries)
    std::printf("%-26s %8.1f %10.3f %6.1f%%  %s\n", e.op.c_str(),
                static_cast<double>(e.calls) * per, e.ms * per,
                100.0 * e.ms * per / (1000.0 * seconds_per_unit), e.shape.c_str());
}

void print_profile_categories(const std::vector<TimedBackend::Entry>& entries, int64_t units,
                              double seconds_per_unit, const char* unit) {
  const double per = 1.0 / static_cast<double>(units);
  for (const auto& [category, ms] : TimedBackend::by_category(entries))
    std::printf("%-26s %19.3f ms/%s\n", category.c_str(), ms * per, unit);
  const double ops_ms = profile_ms_per_unit(entries, units);
  std::printf("%-26s %19.3f ms/%s\n%-26s %19.3f ms/%s\n", "all ops", ops_ms, unit, "between ops",
              1000.0 * seconds_per_unit - ops_ms, unit);
}

void add_profile_json(nlohmann::json& j, const std::vector<TimedBackend::Entry>& entries,
                      int64_t units, double seconds_per_unit, const char* unit) {
  const double per = 1.0 / static_cast<double>(units);
  nlohmann::json rows = nlohmann::json::array();
  for (const TimedBackend::Entry& e : entries)
    rows.push_back({{"op", e.op},
                    {"shape", e.shape},
                    {std::string("calls_per_") + unit, static_cast<double>(e.calls) * per},
                    {std::string("ms_per_") + unit, e.ms * per}});
  j["profile"] = rows;
  nlohmann::json parts = nlohmann::json::object();
  for (const auto& [category, ms] : TimedBackend::by_category(entries)) parts[category] = ms * per;
  j["profile_categories_ms"] = parts;  // the categories of torch_train_step.py --profile
  const double ops_ms = profile_ms_per_unit(entries, units);
  j["profile_ops_ms"] = ops_ms;
  j["profile_between_ops_ms"] = 1000.0 * seconds_per_unit - ops_ms;
  j["profiled"] = true;  // timing marks around every op: a little slower than plain
}

}  // namespace hessgpt::cli
