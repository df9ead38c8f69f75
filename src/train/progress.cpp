#include "train/progress.h"

#include <cstdio>
#include <string>

namespace hessgpt {

std::string format_duration(double s) {
  if (!(s >= 0)) return "?";
  const long long t = static_cast<long long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%llds", t);
  return buf;
}

ProgressMeter::ProgressMeter(int64_t total_steps, int64_t first_step)
    : total_(total_steps), step_(first_step) {}

void ProgressMeter::update(int64_t step, double step_seconds) {
  step_ = step;
  // The first step pays for allocation; a moving average forgets it quickly.
  avg_seconds_ = has_avg_ ? 0.9 * avg_seconds_ + 0.1 * step_seconds : step_seconds;
  has_avg_ = true;
}

double ProgressMeter::eta_seconds() const {
  return avg_seconds_ * static_cast<double>(total_ - step_);
}

void ProgressMeter::print(const nlohmann::json& r) const {
  std::string line = "step " + std::to_string(step_) + "/" + std::to_string(total_);
  char buf[160];
  std::snprintf(buf, sizeof buf, " | loss %.4f | lr %.2e | grad %.3f | %.0f tok/s | ETA %s",
                r.value("loss", 0.0), r.value("lr", 0.0), r.value("grad_norm", 0.0),
                r.value("tokens_per_s", 0.0), format_duration(eta_seconds()).c_str());
  line += buf;
  if (r.contains("val_loss")) {
    std::snprintf(buf, sizeof buf, " | val %.4f", r["val_loss"].get<double>());
    line += buf;
    if (r.contains("val_loss_all_chunks")) {
      std::snprintf(buf, sizeof buf, " (all chunks %.4f)", r["val_loss_all_chunks"].get<double>());
      line += buf;
    }
  }
  if (r.value("skipped", false)) line += " | SKIPPED";
  std::fprintf(stderr, "%s\n", line.c_str());
}

}  // namespace hessgpt
