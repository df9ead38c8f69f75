// The machine-readable metrics log of a run: RUN/metrics.jsonl, one JSON object
// per optimizer step (validation lines add val_loss). On resume the log is cut
// back to the checkpoint's step, so it always reads as one uninterrupted run.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hessgpt {

class MetricsLog {
 public:
  // Opens (creating) path; keeps only lines with step <= keep_through_step.
  MetricsLog(const std::string& path, int64_t keep_through_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void append(const nlohmann::json& record);  // flushed line by line

 private:
  std::FILE* file_ = nullptr;
};

// Every record of a metrics log (malformed lines are skipped).
std::vector<nlohmann::json> read_metrics(const std::string& path);

}  // namespace hessgpt
