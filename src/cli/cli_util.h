// Small helpers shared by the subcommands: common flags and JSON output.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "model/activations.h"

namespace hessgpt::cli {

// --threads K (default: all cores), --device cpu|cuda (default: best available),
// --precision fp32|bf16 (matrix products; default fp32).
struct ComputeOptions {
  int threads = 0;
  std::string device;
  std::string precision = "fp32";  // matrix products: fp32 | bf16
};
void add_compute_options(CLI::App* cmd, ComputeOptions& options);
int resolve_threads(int requested);
// --recompute, --bf16-ffn, --bf16-activations (MemoryOptions).
void add_memory_options(CLI::App* cmd, MemoryOptions& options);
// cuda_ready: false for commands whose engine runs on the CPU only
// (quantisation): without --device they pick the CPU even where a GPU is.
std::unique_ptr<Backend> make_backend(const ComputeOptions& options, bool cuda_ready = true);
// The backend that decodes checkpoints `dirs` at --bits (infer::decode_device):
// the best available, but the CPU for quantised weights when --device is not
// given; --device cuda with quantised weights is an error naming the problem.
std::unique_ptr<Backend> make_decode_backend(const ComputeOptions& options,
                                             const std::vector<std::string>& dirs, int bits);

// The one JSON object of --json, on stdout.
void print_json(const nlohmann::json& j);

}  // namespace hessgpt::cli
