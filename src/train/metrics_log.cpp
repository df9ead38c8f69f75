#include "train/metrics_log.h"

#include <fstream>

#include "core/error.h"

namespace hessgpt {

std::vector<nlohmann::json> read_metrics(const std::string& path) {
  std::vector<nlohmann::json> records;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      records.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception&) {
      // A torn last line from a crash: ignore it.
    }
  }
  return records;
}

MetricsLog::MetricsLog(const std::string& path, int64_t keep_through_step) {
  std::vector<nlohmann::json> kept;
  for (auto& r : read_metrics(path))
    if (r.value("step", int64_t{0}) <= keep_through_step) kept.push_back(std::move(r));
  file_ = std::fopen(path.c_str(), "w");
  if (!file_) HG_FAIL("cannot write metrics log '", path, "'");
  for (const auto& r : kept) append(r);
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::append(const nlohmann::json& record) {
  const std::string line = record.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

}  // namespace hessgpt
