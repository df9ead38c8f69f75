#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace hessgpt {

int64_t WsdSchedule::warmup_steps() const {
  return std::max<int64_t>(warmup_fraction > 0 ? 1 : 0,
                           std::llround(warmup_fraction * static_cast<double>(total_steps)));
}

int64_t WsdSchedule::decay_start() const {
  const int64_t decay = std::llround(decay_fraction * static_cast<double>(total_steps));
  return std::max(warmup_steps(), total_steps - decay);
}

double WsdSchedule::lr(int64_t step) const {
  const int64_t w = warmup_steps(), d = decay_start();
  if (step <= w && w > 0) return peak_lr * static_cast<double>(step) / static_cast<double>(w);
  if (step <= d || total_steps == d) return peak_lr;
  const double progress = static_cast<double>(std::min(step, total_steps) - d) /
                          static_cast<double>(total_steps - d);
  return peak_lr * (1.0 - (1.0 - floor_fraction) * progress);
}

void WsdSchedule::validate() const {
  if (!(peak_lr > 0)) HG_FAIL("learning rate must be positive (got ", peak_lr, ")");
  if (total_steps <= 0) HG_FAIL("steps must be positive (got ", total_steps, ")");
  if (warmup_fraction < 0 || decay_fraction < 0 || warmup_fraction + decay_fraction > 1)
    HG_FAIL("warm-up (", warmup_fraction, ") and decay (", decay_fraction,
            ") fractions must be >= 0 and sum to at most 1");
  if (floor_fraction < 0 || floor_fraction > 1)
    HG_FAIL("LR floor fraction must lie in [0, 1] (got ", floor_fraction, ")");
}

}  // namespace hessgpt
