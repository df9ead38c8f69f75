// hessgpt prepare: raw text → deduplicated, filtered, tokenised .npy chunks
// plus manifest.json (see src/data/README.md). Thin: flags → PrepareOptions.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "core/error.h"
#include "data/encoder.h"
#include "data/mix.h"
#include "data/pipeline.h"
#include "data/presets.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::cli {
namespace {

struct PrepareFlags {
  std::string preset, mix, out, tokenizer, near;
  int64_t chunk_tokens = 1'000'000'000;
  int64_t seq_len = 1024;
  int64_t max_tokens = 0;
  double val_fraction = 0.015;
  uint64_t seed = 1234;
  bool json = false, print_mix = false;
  ComputeOptions compute;
};

nlohmann::json summary(const data::PrepareResult& r, const std::string& out, int threads) {
  const auto& m = r.manifest;
  nlohmann::json shares = nlohmann::json::object();
  for (const auto& s : m["sources"]) shares[s["name"].get<std::string>()] = s["achieved_share"];
  return {{"out", out}, {"seconds", r.seconds}, {"threads", threads}, {"bytes_read", r.bytes_read},
          {"mb_per_s", r.mb_per_s}, {"tokenizer_mb_per_s_per_thread", r.tokenizer_mb_per_s_per_thread},
          {"tokens", m["tokens"]}, {"chunks", m["chunks"].size()},
          {"documents", m["documents"]}, {"shares", shares},
          {"shares_within_tolerance", m["shares_within_tolerance"]}, {"drops", m["drops"]},
          {"stop_reason", m["stop_reason"]}};
}

void print_human(const data::PrepareResult& r, const std::string& out) {
  const auto& m = r.manifest;
  std::printf("prepared %s: %lld tokens (%lld train, %lld val) in %zu chunk(s), %.1f s, %.2f MB/s of input "
              "(tokenizer alone: %.2f MB/s per thread)\n",
              out.c_str(), static_cast<long long>(m["tokens"]["written"].get<int64_t>()),
              static_cast<long long>(m["tokens"]["train"].get<int64_t>()),
              static_cast<long long>(m["tokens"]["val"].get<int64_t>()), m["chunks"].size(), r.seconds, r.mb_per_s,
              r.tokenizer_mb_per_s_per_thread);
  std::printf("  %-14s %8s %8s %10s %8s %8s\n", "source", "target", "achieved", "tokens", "used", "dropped");
  for (const auto& s : m["sources"]) {
    int64_t dropped = 0;
    for (const auto& [k, v] : s["drops"].items()) dropped += v.get<int64_t>();
    std::printf("  %-14s %7.2f%% %7.2f%% %10lld %8lld %8lld\n", s["name"].get<std::string>().c_str(),
                100 * s["target_share"].get<double>(), 100 * s["achieved_share"].get<double>(),
                static_cast<long long>(s["tokens"].get<int64_t>()),
                static_cast<long long>(s["documents_used"].get<int64_t>()), static_cast<long long>(dropped));
  }
  std::printf("  drops:");
  for (const auto& [k, v] : m["drops"].items())
    if (v.get<int64_t>() > 0) std::printf(" %s=%lld", k.c_str(), static_cast<long long>(v.get<int64_t>()));
  std::printf("\n  stop: %s\n", m["stop_reason"].get<std::string>().c_str());
}

void run(const PrepareFlags& f) {
  if (f.preset.empty() == f.mix.empty()) HG_FAIL("give exactly one of --preset or --mix");
  const std::string deps = data::default_deps_dir();
  std::vector<std::pair<std::string, nlohmann::json>> parts;  // (out dir, mix json)
  std::string base_dir;
  if (!f.preset.empty()) {
    for (auto& p : data::preset_parts(f.preset))
      parts.emplace_back(p.subdir.empty() ? f.out : (std::filesystem::path(f.out) / p.subdir).string(), p.mix);
  } else {
    base_dir = std::filesystem::path(f.mix).parent_path().string();
    std::ifstream in(f.mix);
    if (!in) HG_FAIL("cannot open mix file '", f.mix, "'");
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) HG_FAIL(f.mix, ": invalid JSON");
    parts.emplace_back(f.out, j);
  }
  if (f.print_mix) {
    for (const auto& [out, mix] : parts) std::cout << mix.dump(2) << "\n";
    return;
  }
  if (f.out.empty()) HG_FAIL("--out is required");
  auto tokenizer = std::shared_ptr<const Tokenizer>(Tokenizer::load_or_default(f.tokenizer));
  const auto encoder = data::make_tokenizer_encoder(tokenizer);
  nlohmann::json report = nlohmann::json::object();
  for (const auto& [out, mix_json] : parts) {
    data::PrepareOptions opt;
    nlohmann::json mj = mix_json;
    if (f.near == "on" || f.near == "off") mj["dedup"]["near"] = f.near == "on";
    opt.mix = data::parse_mix(mj, f.preset.empty() ? f.mix : "preset " + f.preset, base_dir, deps);
    opt.out_dir = out;
    opt.chunk_tokens = f.chunk_tokens;
    opt.seq_len = f.seq_len;
    opt.val_fraction = f.val_fraction;
    opt.seed = f.seed;
    opt.max_tokens = f.max_tokens;
    opt.threads = resolve_threads(f.compute.threads);
    if (const char* fault = std::getenv("HESSGPT_PREPARE_FAULT_CHUNK")) opt.fault_chunk = std::atoi(fault);
    const data::PrepareResult r = data::run_prepare(opt, *encoder);
    if (f.json) report[parts.size() == 1 ? "result" : std::filesystem::path(out).filename().string()] =
        summary(r, out, opt.threads);
    else print_human(r, out);
  }
  if (f.json) print_json(parts.size() == 1 ? report["result"] : report);
}

void setup(CLI::App& app) {
  auto flags = std::make_shared<PrepareFlags>();
  auto* cmd = app.add_subcommand("prepare", "Turn raw text into deduplicated, tokenised .npy chunks + manifest.json");
  auto* preset = cmd->add_option("--preset", flags->preset,
                                 "Built-in mix: demo (writes OUT/model1 and OUT/model2), demo-model1, demo-model2");
  auto* mix = cmd->add_option("--mix", flags->mix, "Mix file (JSON): sources, shares, formats, filters");
  preset->excludes(mix);
  cmd->add_option("--out", flags->out, "Output folder");
  cmd->add_option("--chunk-tokens", flags->chunk_tokens, "Tokens per chunk (default 1e9)")->check(CLI::PositiveNumber);
  cmd->add_option("--seq-len", flags->seq_len, "Stored sequence length: rows hold seq-len + 1 tokens (default 1024)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--val-fraction", flags->val_fraction, "Validation share of each chunk's rows (default 0.015)")
      ->check(CLI::Range(0.0, 0.99));
  cmd->add_option("--seed", flags->seed, "Seed for file order and the row shuffle (default 1234)");
  cmd->add_option("--max-tokens", flags->max_tokens, "Stop after this many tokens (default: when a source runs out)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--tokenizer", flags->tokenizer, "SentencePiece model (default: the built-in Mistral tokenizer)");
  cmd->add_option("--near-dedup", flags->near, "MinHash/LSH near-duplicate removal: on|off (default: the mix's)")
      ->check(CLI::IsMember({"on", "off"}));
  cmd->add_flag("--json", flags->json, "Print one JSON summary object on stdout");
  cmd->add_flag("--print-mix", flags->print_mix, "Print the preset's or mix's JSON and exit");
  add_compute_options(cmd, flags->compute);
  cmd->callback([flags] { run(*flags); });
}

}  // namespace

HG_REGISTER_COMMAND(setup);

}  // namespace hessgpt::cli
