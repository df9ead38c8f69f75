#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/bf16.h"
#include "core/error.h"
#include "io/export_model.h"
#include "io/model_dir.h"
#include "io/safetensors.h"

namespace hessgpt {
namespace fs = std::filesystem;

namespace {

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) HG_FAIL("cannot create '", path.string(), "'");
  out << text;
  out.flush();
  if (!out) HG_FAIL("write error on '", path.string(), "' (disk full?)");
}

nlohmann::json hf_config(const ModelConfig& c, const ExportVocab& v, bool bf16) {
  nlohmann::json j = config_to_json(c);
  j["torch_dtype"] = bf16 ? "bfloat16" : "float32";
  j["bos_token_id"] = v.bos;
  j["eos_token_id"] = nlohmann::json::array({v.eos, v.end_of_turn});
  j["attention_dropout"] = 0.0;
  j["initializer_range"] = 0.02;
  j["use_cache"] = true;
  j["use_sliding_window"] = false;
  j["sliding_window"] = nullptr;
  j["max_window_layers"] = c.num_hidden_layers;
  return j;
}

nlohmann::json tokenizer_config(const ExportVocab& v) {
  nlohmann::json added = nlohmann::json::object();
  for (size_t id = 0; id < v.pieces.size(); ++id) {
    if (v.types[id] != GgufTokenType::kControl && v.types[id] != GgufTokenType::kUnknown) continue;
    added[std::to_string(id)] = {{"content", v.pieces[id]}, {"lstrip", false},
                                 {"normalized", false},     {"rstrip", false},
                                 {"single_word", false},    {"special", true}};
  }
  return {{"tokenizer_class", "LlamaTokenizer"},
          {"add_bos_token", true},
          {"add_eos_token", false},
          {"legacy", false},
          {"bos_token", v.pieces[static_cast<size_t>(v.bos)]},
          {"eos_token", v.pieces[static_cast<size_t>(v.end_of_turn)]},
          {"unk_token", v.pieces[static_cast<size_t>(v.unk)]},
          {"pad_token", nullptr},
          {"clean_up_tokenization_spaces", false},
          {"model_max_length", 1 << 20},
          {"added_tokens_decoder", added},
          {"chat_template", v.chat_template}};
}

std::string readme(const ModelConfig& c, const std::string& name) {
  return str_cat("# ", name, "\n\n", softcap_note(c),
                 "\n\nArchitecture: Qwen3ForCausalLM (pre-norm, GQA, QK-Norm, rotate-half RoPE, "
                 "SwiGLU, tied embeddings), ", c.parameter_count(), " parameters.\n\n"
                 "Turns end with `<|end|>` (the eos_token here; `</s>` also stops). The chat "
                 "template renders HessGPT's format: `<s><|user|>text<|end|><|assistant|>`. "
                 "Model 1 may answer with a route request (`<|code|>`, `<|math|>`, `<|logic|>` "
                 "... `<|end|>`) that HessGPT's router hands to Model 2; other runtimes show it "
                 "as text.\n");
}

}  // namespace

void export_hf_dir(const ExportWeights& weights, const ExportVocab& vocab, bool bf16,
                   const std::string& model_name, const std::string& dir) {
  const ModelConfig& c = weights.config;
  check_exportable(c, vocab);
  if (fs::exists(dir) && !fs::exists(fs::path(dir) / "config.json"))
    HG_FAIL("'", dir, "' exists and is not a model directory: refusing to replace it");
  const fs::path tmp = dir + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  std::vector<uint16_t> halves;
  if (bf16) {
    halves.resize(weights.values.size());
    for (size_t i = 0; i < halves.size(); ++i) halves[i] = float_to_bf16(weights.values[i]);
  }
  std::vector<SafetensorsTensor> tensors;
  for (const ParamInfo& p : weights.layout.params) {
    const auto at = static_cast<size_t>(p.offset);
    tensors.push_back({p.name, bf16 ? DType::BF16 : DType::F32, p.shape,
                       bf16 ? static_cast<const void*>(halves.data() + at)
                            : static_cast<const void*>(weights.values.data() + at)});
  }
  write_safetensors((tmp / "model.safetensors").string(), tensors,
                    {{"format", "pt"}, {"producer", "hessgpt"}});

  write_text(tmp / "config.json", hf_config(c, vocab, bf16).dump(2) + "\n");
  const nlohmann::json generation = {{"bos_token_id", vocab.bos},
                                     {"eos_token_id", {vocab.eos, vocab.end_of_turn}},
                                     {"do_sample", false}};
  write_text(tmp / "generation_config.json", generation.dump(2) + "\n");
  write_text(tmp / "tokenizer_config.json", tokenizer_config(vocab).dump(2) + "\n");
  const nlohmann::json special = {{"bos_token", vocab.pieces[static_cast<size_t>(vocab.bos)]},
                                  {"eos_token",
                                   vocab.pieces[static_cast<size_t>(vocab.end_of_turn)]},
                                  {"unk_token", vocab.pieces[static_cast<size_t>(vocab.unk)]}};
  write_text(tmp / "special_tokens_map.json", special.dump(2) + "\n");
  write_text(tmp / "README.md", readme(c, model_name));
  std::error_code ec;
  fs::copy_file(vocab.sentencepiece_model, tmp / "tokenizer.model",
                fs::copy_options::overwrite_existing, ec);
  if (ec)
    HG_FAIL("cannot copy the tokenizer model '", vocab.sentencepiece_model, "': ", ec.message());

  for (const auto& entry : fs::directory_iterator(tmp)) fsync_path(entry.path().string());
  fs::remove_all(dir);
  fs::rename(tmp, dir);
  fsync_path(fs::path(dir).parent_path().empty() ? "." : fs::path(dir).parent_path().string());
}

}  // namespace hessgpt
