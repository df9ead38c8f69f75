// Each backend op timed alone at one model's training shapes (hessgpt bench
// ops): where a step's time goes, per op, with the FLOP or byte rate it
// reaches, so a kernel can be compared with its ceiling (dev/cuda/NOTES.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/model_config.h"

namespace hessgpt {

struct OpTiming {
  std::string name;
  std::string shape;     // what the op ran on, e.g. "[32768, 1280] x [1280, 1920]^T"
  double ms = 0;         // median of the repeats, per call
  double flops = 0;      // per call; 0 for memory-bound ops
  double bytes = 0;      // the fewest bytes the op must move, per call
  double tflops_per_s() const { return flops > 0 ? flops / (ms * 1e-3) / 1e12 : 0; }
  double gbytes_per_s() const { return bytes / (ms * 1e-3) / 1e9; }
};

// Inputs are random (never zeros); each op runs once untimed, then `repeat`
// times, each time between backend.synchronize() calls. `only`, when not
// empty, is a regular expression: ops whose names it does not match are not
// run (their inputs are still made).
std::vector<OpTiming> run_ops_bench(const ModelConfig& config, Backend& backend, int64_t batch,
                                    int64_t seq, int repeat, uint64_t seed,
                                    const std::string& only = "");

}  // namespace hessgpt
