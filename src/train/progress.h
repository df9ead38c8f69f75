// Terminal progress for long loops: step, loss, LR, gradient norm, tokens/s
// and an ETA from a moving average of the step time (stderr, one line a step).
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

namespace hessgpt {

class ProgressMeter {
 public:
  ProgressMeter(int64_t total_steps, int64_t first_step);
  void update(int64_t step, double step_seconds);
  double eta_seconds() const;
  void print(const nlohmann::json& record) const;

 private:
  int64_t total_, step_;
  double avg_seconds_ = 0;
  bool has_avg_ = false;
};

std::string format_duration(double seconds);

}  // namespace hessgpt
