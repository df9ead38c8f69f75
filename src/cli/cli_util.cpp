#include "cli/cli_util.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <thread>

#include "dist/communicator.h"
#include "infer/open_session.h"

namespace hessgpt::cli {

void add_compute_options(CLI::App* cmd, ComputeOptions& options) {
  cmd->add_option("--threads", options.threads, "CPU threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", options.device, "cpu or cuda (default: cuda when present)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--precision", options.precision,
                  "Matrix products: fp32, or bf16 (FP32 accumulation and master weights)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
}

void add_memory_options(CLI::App* cmd, MemoryOptions& options) {
  cmd->add_flag("--recompute", options.recompute,
                "Selective activation recomputation: ~39 % less activation memory, a few more "
                "element-wise passes");
  cmd->add_flag("--recompute-mlp", options.recompute_mlp,
                "Recompute only the MLP's inputs (its norm and SwiGLU): ~62 % of --recompute's "
                "saving for ~44 % of its extra passes");
  cmd->add_flag("--bf16-ffn", options.bf16_ffn,
                "Keep the FFN's gate/up activations in BF16 (not where LoRA adapts gate or up)");
  cmd->add_flag("--bf16-activations", options.bf16_activations,
                "With --precision bf16: also keep the products' and attention's inputs (norm, "
                "attention, SwiGLU outputs; q, k, v) and SwiGLU's input gradient in BF16: the "
                "same products, less memory and traffic");
}

int resolve_threads(int requested) {
  if (requested > 0) return requested;
  // Ranks sharing a host share its cores (mpirun -np N on one machine).
  const int n = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, n / std::max(1, dist::local_size()));
}

std::unique_ptr<Backend> make_backend(const ComputeOptions& options, bool cuda_ready) {
  const std::string device = options.device.empty() && !cuda_ready ? "cpu" : options.device;
  auto backend = hessgpt::make_backend(device, resolve_threads(options.threads));
  backend->set_matmul_precision(options.precision == "bf16" ? MatmulPrecision::BF16
                                                            : MatmulPrecision::FP32);
  return backend;
}

std::unique_ptr<Backend> make_decode_backend(const ComputeOptions& options,
                                             const std::vector<std::string>& dirs, int bits) {
  ComputeOptions o = options;
  o.device = infer::decode_device(options.device, dirs, bits);
  return make_backend(o);
}

void print_json(const nlohmann::json& j) {
  std::cout << j.dump() << std::endl;
}

}  // namespace hessgpt::cli
