// Exports for other runtimes (SPEC §5): a Hugging Face directory
// (Qwen3ForCausalLM) and a GGUF file for llama.cpp's qwen3 architecture. Both
// keep the weights' SPEC names and math (rotate-half RoPE, QK-Norm, tied
// head); neither format has HessGPT's logit soft-cap, which is monotonic, so
// greedy decoding is unchanged while sampled text differs slightly. Every
// export says so (README.md in the HF directory, general.description in GGUF).
#pragma once

#include <span>
#include <string>

#include "core/model_config.h"
#include "io/export_vocab.h"
#include "io/gguf_writer.h"
#include "model/param_layout.h"

namespace hessgpt {

// The weights to export: a model's layout and its values in layout order.
struct ExportWeights {
  const ModelConfig& config;
  const ParamLayout& layout;
  std::span<const float> values;
};

// The note both exports carry about the soft-cap.
std::string softcap_note(const ModelConfig& config);

// Throws Error naming the problem when the model cannot be exported with this
// vocabulary: QK-Norm off (Qwen3 has it), or fewer embedding rows than the
// tokenizer's ids. A larger vocab_size is padded with unused tokens.
void check_exportable(const ModelConfig& config, const ExportVocab& vocab);

// llama.cpp's name for a SPEC §5 tensor ("model.layers.3.mlp.up_proj.weight"
// -> "blk.3.ffn_up.weight"); throws for a name it does not know.
std::string gguf_tensor_name(const std::string& spec_name);

// Writes a GGUF file: matrices and the embedding in `type`, norms in F32.
// Q8_0 needs every matrix row length to be a multiple of 32 (model1's FFN
// width 3413 is not: F32/F16/BF16 only, SPEC §1); refused with the tensor named.
void export_gguf(const ExportWeights& weights, const ExportVocab& vocab, gguf::TensorType type,
                 const std::string& model_name, const std::string& path);

// Writes a Hugging Face directory: config.json, generation_config.json,
// model.safetensors (F32, or BF16 when bf16), tokenizer.model,
// tokenizer_config.json (the 8 special tokens, the chat template),
// special_tokens_map.json and README.md. Written into DIR.tmp and renamed.
void export_hf_dir(const ExportWeights& weights, const ExportVocab& vocab, bool bf16,
                   const std::string& model_name, const std::string& dir);

}  // namespace hessgpt
