// Warmup-Stable-Decay learning rate (SPEC §4): linear warm-up over the first
// warmup fraction, flat at the peak, then linear decay over the last decay
// fraction down to floor x peak at the final step.
#pragma once

#include <cstdint>

namespace hessgpt {

struct WsdSchedule {
  double peak_lr = 4e-4;
  int64_t total_steps = 1;
  double warmup_fraction = 0.03;
  double decay_fraction = 0.15;
  double floor_fraction = 0.10;

  int64_t warmup_steps() const;
  int64_t decay_start() const;  // last step of the stable phase
  // LR used for optimizer step `step` (1-based).
  double lr(int64_t step) const;
  void validate() const;  // throws Error naming the bad field
};

}  // namespace hessgpt
