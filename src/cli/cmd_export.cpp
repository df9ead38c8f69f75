// hessgpt export: a checkpoint (optionally with a LoRA adapter folded in) as a
// Hugging Face directory or a GGUF file for llama.cpp (io/export_model.h).
//
//   hessgpt export --checkpoint DIR --format hf   --out DIR  [--dtype f32|bf16]
//   hessgpt export --checkpoint DIR --format gguf --out F.gguf [--dtype f32|f16|bf16|q8_0]
#include <chrono>
#include <filesystem>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "core/log.h"
#include "infer/quant_file.h"
#include "io/adapter_dir.h"
#include "io/export_model.h"
#include "io/model_dir.h"
#include "tokenizer/vocab_export.h"

namespace hessgpt::cli {
namespace {

namespace fs = std::filesystem;

struct ExportOptions {
  std::string checkpoint, adapter, format, out, dtype, name, tokenizer;
  bool force = false, json = false;
};

gguf::TensorType gguf_type(const std::string& dtype) {
  if (dtype == "f32") return gguf::TensorType::kF32;
  if (dtype == "f16") return gguf::TensorType::kF16;
  if (dtype == "bf16") return gguf::TensorType::kBF16;
  if (dtype == "q8_0") return gguf::TensorType::kQ8_0;
  HG_FAIL("--dtype '", dtype, "' is not a GGUF type (f32, f16, bf16, q8_0)");
}

void run(const ExportOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  const std::string dtype = o.dtype.empty() ? (o.format == "hf" ? "f32" : "f16") : o.dtype;
  if (o.format == "hf" && dtype != "f32" && dtype != "bf16")
    HG_FAIL("--dtype '", dtype, "' is not offered for --format hf (f32, bf16)");
  const gguf::TensorType type = o.format == "gguf" ? gguf_type(dtype) : gguf::TensorType::kF32;
  if (fs::exists(o.out) && !o.force)
    HG_FAIL("'", o.out, "' exists: choose another --out, or pass --force to replace it");
  if (o.format == "gguf" && fs::is_directory(o.out))
    HG_FAIL("'", o.out, "' is a directory; --format gguf writes a file");

  // Without an adapter the checkpoint's values are all an export needs: no
  // model (and no second copy of the weights) is built.
  if (!fs::exists(fs::path(o.checkpoint) / "config.json"))
    HG_FAIL("'", o.checkpoint, "' is not a model directory (no config.json)");
  if (infer::is_quantized_dir(o.checkpoint))
    HG_FAIL("'", o.checkpoint, "' holds quantized weights (hessgpt quantize): export the "
            "full-precision checkpoint it was made from, choosing the export's --dtype");
  ModelConfig config = load_config_file((fs::path(o.checkpoint) / "config.json").string());
  ParamLayout layout = make_param_layout(config);
  std::vector<float> values;
  if (o.adapter.empty()) {
    values = read_param_values((fs::path(o.checkpoint) / "model.safetensors").string(), layout);
  } else {
    auto backend = hessgpt::make_backend("cpu", resolve_threads(0));
    auto model = load_model_dir(o.checkpoint, *backend);
    load_adapter_dir(*model, o.adapter);
    model->merge_lora();
    values = model->params_host();
  }
  const auto tokenizer = Tokenizer::load_or_default(o.tokenizer);
  const ExportVocab vocab = export_vocab(*tokenizer);
  const ExportWeights weights{config, layout, values};
  const std::string name =
      !o.name.empty() ? o.name : fs::path(o.checkpoint).lexically_normal().filename().string();
  if (o.format == "hf")
    export_hf_dir(weights, vocab, dtype == "bf16", name, o.out);
  else
    export_gguf(weights, vocab, type, name, o.out);

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const uintmax_t bytes = fs::is_directory(o.out)
                              ? fs::file_size(fs::path(o.out) / "model.safetensors")
                              : fs::file_size(o.out);
  log_info("exported ", o.checkpoint, " as ", o.format, " (", dtype, ") -> ", o.out, " in ",
           seconds, " s. ", softcap_note(config));
  if (o.json)
    print_json({{"format", o.format},
                {"dtype", dtype},
                {"out", o.out},
                {"weights_bytes", bytes},
                {"parameters", config.parameter_count()},
                {"seconds", seconds},
                {"note", softcap_note(config)}});
}

void setup(CLI::App& app) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "export", "Export a checkpoint as a Hugging Face directory or a GGUF file (llama.cpp)");
  cmd->add_option("--checkpoint", o->checkpoint,
                  "Model directory (config.json + model.safetensors)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--adapter", o->adapter, "LoRA adapter directory to fold in first")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--format", o->format,
                  "hf (Qwen3ForCausalLM directory) or gguf (llama.cpp qwen3)")
      ->required()
      ->check(CLI::IsMember({"hf", "gguf"}));
  cmd->add_option("--out", o->out, "Output directory (hf) or file (gguf)")->required();
  cmd->add_option("--dtype", o->dtype,
                  "Weight type: hf f32 (default) | bf16; gguf f16 (default) | f32 | bf16 | q8_0");
  cmd->add_option("--name", o->name, "Model name recorded in the export (default: the folder's)");
  cmd->add_option("--tokenizer", o->tokenizer, "SentencePiece model (default: the Mistral one)");
  cmd->add_flag("--force", o->force, "Replace an existing --out");
  cmd->add_flag("--json", o->json, "Print a JSON summary on stdout");
  cmd->callback([o] { run(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
