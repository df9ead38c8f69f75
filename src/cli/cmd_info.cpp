// hessgpt info: parameter counts and the memory a training step needs, or
// the compiled/available backends.
#include <cstdio>

#include "backend/backend.h"
#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "dist/communicator.h"
#include "core/model_config.h"
#include "model/memory_estimate.h"

namespace hessgpt::cli {
namespace {

struct InfoOptions {
  std::string model;
  int64_t lora_rank = 0;
  int64_t batch = 32;
  int64_t seq = 1024;
  MemoryOptions memory;
  bool backends = false;
  bool json = false;
};

// LoRA adapters A[r, in] and B[out, r] on the default targets q, k, v, o, gate, up.
int64_t lora_parameter_count(const ModelConfig& c, int64_t rank) {
  LoraConfig lora;
  lora.rank = rank;
  return make_lora_layout(c, lora).params.total;
}

nlohmann::json memory_json(const TrainingMemory& mem, int64_t batch, int64_t seq) {
  return {{"batch", batch},
          {"seq", seq},
          {"dtype", "F32"},
          {"weights_bytes", mem.weights},
          {"gradients_bytes", mem.gradients},
          {"optimizer_bytes", mem.optimizer},
          {"activations_bytes", mem.activations},
          {"total_bytes", mem.total()}};
}

double gib(size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0); }

// 90 -> "9.0".
std::string architecture_text(int arch) { return str_cat(arch / 10, ".", arch % 10); }

nlohmann::json gpus_json(const std::vector<GpuInfo>& gpus) {
  nlohmann::json list = nlohmann::json::array();
  for (const GpuInfo& g : gpus)
    list.push_back({{"name", g.name},
                    {"compute_capability", architecture_text(g.compute_capability)},
                    {"memory_bytes", g.memory_bytes},
                    {"code_architecture", architecture_text(g.code_architecture)},
                    {"native_code", g.code_architecture == g.compute_capability}});
  return list;
}

// A GPU that runs the portable PTX is slower than it could be and lacks the
// sm_90 paths; the line says how to build code of its own.
void print_gpu(size_t index, const GpuInfo& g) {
  std::printf("gpu %zu:              %s, sm_%d, %.1f GiB: ", index, g.name.c_str(),
              g.compute_capability, gib(static_cast<size_t>(g.memory_bytes)));
  if (g.code_architecture == g.compute_capability)
    std::printf("runs this build's sm_%d code\n", g.code_architecture);
  else if (g.code_architecture == 0)
    std::printf("the code it runs is unknown (the query failed)\n");
  else
    std::printf("runs the portable compute_%d code compiled when loaded (for its own: cmake "
                "-DCMAKE_CUDA_ARCHITECTURES=\"%d-real;80-virtual\")\n",
                g.code_architecture, g.compute_capability);
}

void run_info(const InfoOptions& o) {
  if (o.backends) {
    const std::vector<GpuInfo> gpus = available_gpus();
    const nlohmann::json j = {{"compiled", compiled_backends()},
                              {"available", available_backends()},
                              {"data_parallel", dist::compiled_transports()},
                              {"gpus", gpus_json(gpus)}};
    if (o.json) {
      print_json(j);
    } else {
      std::printf("compiled backends:  %s\navailable backends: %s\ndata parallel:      %s\n",
                  j["compiled"].dump().c_str(), j["available"].dump().c_str(),
                  j["data_parallel"].dump().c_str());
      for (size_t i = 0; i < gpus.size(); ++i) print_gpu(i, gpus[i]);
    }
    return;
  }
  if (o.model.empty()) HG_FAIL("info needs --model PRESET|CONFIG.json (or --backends)");
  if (o.batch <= 0 || o.seq <= 0) HG_FAIL("--batch and --seq must be positive");
  const ModelConfig c = resolve_model_config(o.model);
  const TrainingMemory mem = estimate_training_memory(c, o.batch, o.seq, DType::F32, o.memory);
  nlohmann::json j;
  j["parameters"] = c.parameter_count();
  j["non_embedding_parameters"] = c.non_embedding_parameter_count();
  j["embedding_parameters"] = c.vocab_size * c.hidden_size;
  j["config"] = config_to_json(c);
  j["training_memory"] = memory_json(mem, o.batch, o.seq);
  if (o.lora_rank > 0) {
    LoraConfig lora;
    lora.rank = o.lora_rank;
    j["lora_parameters"] = lora_parameter_count(c, o.lora_rank);
    j["lora_training_memory"] =
        memory_json(estimate_lora_training_memory(c, lora, o.batch, o.seq, DType::F32, o.memory), o.batch, o.seq);
  }
  if (o.json) {
    print_json(j);
    return;
  }
  std::printf("parameters:               %lld\n", static_cast<long long>(c.parameter_count()));
  std::printf("non-embedding parameters: %lld\n",
              static_cast<long long>(c.non_embedding_parameter_count()));
  if (o.lora_rank > 0) {
    LoraConfig lora;
    lora.rank = o.lora_rank;
    const TrainingMemory lm = estimate_lora_training_memory(c, lora, o.batch, o.seq, DType::F32, o.memory);
    std::printf("LoRA parameters (r=%lld):  %lld (training step needs %.2f GiB)\n",
                static_cast<long long>(o.lora_rank),
                static_cast<long long>(lora_parameter_count(c, o.lora_rank)), gib(lm.total()));
  }
  const MemoryOptions m = effective_memory_options(o.memory, DType::F32, nullptr);
  std::printf("training step memory (FP32, micro-batch %lld x %lld tokens%s%s):\n",
              static_cast<long long>(o.batch), static_cast<long long>(o.seq),
              m.recompute ? ", selective recomputation"
                          : (m.recompute_mlp ? ", the MLP's inputs recomputed" : ""),
              m.bf16_activations ? ", BF16 product inputs, gate/up and q/k"
                                 : (m.bf16_ffn ? ", BF16 gate/up" : ""));
  std::printf("  weights      %8.2f GiB\n  gradients    %8.2f GiB\n  AdamW state  %8.2f GiB\n"
              "  activations  %8.2f GiB\n  total        %8.2f GiB\n",
              gib(mem.weights), gib(mem.gradients), gib(mem.optimizer), gib(mem.activations),
              gib(mem.total()));
}

void setup(CLI::App& app) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand("info", "Parameter counts, training memory, backends");
  cmd->add_option("--model", o->model, "Preset (model1, model2, small, tiny) or config.json");
  cmd->add_option("--lora-rank", o->lora_rank, "Also count LoRA parameters at this rank")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch", o->batch, "Micro-batch for the memory estimate")->capture_default_str();
  add_memory_options(cmd, o->memory);
  cmd->add_option("--seq", o->seq, "Sequence length for the memory estimate")->capture_default_str();
  cmd->add_flag("--backends", o->backends, "List compiled and available backends");
  cmd->add_flag("--json", o->json, "One JSON object on stdout");
  cmd->callback([o] { run_info(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
