// The mix file: which sources go into a dataset, in which token shares, and
// how each is read and cleaned. JSON; paths are relative to the mix file's
// folder unless absolute; "${DEPS}" expands to the set-up's dependency folder
// (see presets.h). src/data/README.md documents every field.
//
//   {"name": "model2-demo",
//    "dedup": {"exact": true, "near": false, "near_threshold": 0.8},
//    "sources": [
//      {"name": "python", "share": 0.56, "paths": ["/usr/lib/python3.11"],
//       "format": "text", "documents": "file", "include": ["*.py"],
//       "exclude": ["*/test/*"], "filter": {"profile": "code"}, "max_bytes": 20000000},
//      {"name": "web", "share": 0.44, "paths": ["web.jsonl.gz"], "format": "jsonl",
//       "text_field": "text"}]}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hessgpt::data {

// Quality ("academic") filter thresholds. A value of 0 switches a test off.
// Profiles give defaults ("prose", "code", "none"); any field overrides them.
struct FilterConfig {
  std::string profile = "prose";
  int64_t min_chars = 0;          // characters (code points) after cleaning
  int64_t max_chars = 0;
  int64_t min_words = 0;          // whitespace-separated words
  double max_symbol_ratio = 0;    // ASCII punctuation/symbols ÷ non-space characters
  double max_digit_ratio = 0;     // digits ÷ non-space characters
  double max_repeated_lines = 0;  // repeated lines ÷ lines (lines of 4+ non-space chars)
  double min_mean_word_len = 0;   // bytes per word
  double max_mean_word_len = 0;
  double min_alpha_words = 0;     // words with a letter ÷ words
  int64_t max_line_chars = 0;     // longest line allowed (minified code, data dumps)

  static FilterConfig from_profile(const std::string& profile);
};

struct SourceConfig {
  std::string name;
  double share = 0;                   // normalised over the mix
  std::vector<std::string> paths;     // files or folders (recursed)
  std::string format = "text";        // text | jsonl | json
  std::string documents = "file";     // text: file | blank-line | heading
  std::string text_field = "text";    // jsonl/json: dotted path ("meta.body" ok)
  bool json_labels = false;           // json: prefix each text with its key path
  std::vector<std::string> include;   // glob patterns on the relative path or file name
  std::vector<std::string> exclude;
  std::string utf8 = "repair";        // repair | drop
  int64_t max_bytes = 0;              // stop reading this source after that many bytes (0: no cap)
  int64_t split_chars = 0;            // split longer documents at line ends (0: never)
  FilterConfig filter;
};

struct DedupConfig {
  bool exact = true;           // xxHash-128 of the normalised document
  bool near = false;           // MinHash + LSH
  double near_threshold = 0.8;  // estimated Jaccard of word 5-gram sets
  int num_perm = 128;
  int bands = 16;              // rows per band = num_perm / bands
  int shingle_words = 5;
};

struct MixConfig {
  std::string name;
  std::vector<SourceConfig> sources;
  DedupConfig dedup;
  nlohmann::json original;  // the mix as given, recorded in the manifest
};

// Parses and validates a mix; errors name the file (origin) and the field.
// base_dir resolves relative paths; deps_dir replaces "${DEPS}".
MixConfig parse_mix(const nlohmann::json& j, const std::string& origin,
                    const std::string& base_dir, const std::string& deps_dir);
MixConfig load_mix_file(const std::string& path, const std::string& deps_dir);

}  // namespace hessgpt::data
