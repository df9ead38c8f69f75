#include "data/mix.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"

namespace hessgpt::data {
namespace fs = std::filesystem;

FilterConfig FilterConfig::from_profile(const std::string& profile) {
  FilterConfig f;
  f.profile = profile;
  if (profile == "prose") {
    // Gopher-style heuristics (Rae et al. 2021), loosened for encyclopedic text
    // that is rich in numbers (economy and geography sections).
    f.min_chars = 200;
    f.max_chars = 1000000;
    f.min_words = 30;
    f.max_symbol_ratio = 0.20;
    f.max_digit_ratio = 0.25;
    f.max_repeated_lines = 0.30;
    f.min_mean_word_len = 3;
    f.max_mean_word_len = 10;
    f.min_alpha_words = 0.70;
  } else if (profile == "code") {
    // Code is symbol-rich by nature; what marks bad code files is size
    // (generated tables), minification (very long lines) and copy-paste.
    f.min_chars = 50;
    f.max_chars = 1000000;
    f.max_symbol_ratio = 0.60;
    f.max_digit_ratio = 0.50;
    f.max_repeated_lines = 0.50;
    f.max_line_chars = 1000;
  } else if (profile != "none") {
    HG_FAIL("unknown filter profile '", profile, "' (prose, code or none)");
  }
  return f;
}

namespace {

template <typename T>
void read_field(const nlohmann::json& obj, const char* key, T& out, const std::string& where) {
  if (!obj.contains(key)) return;
  try {
    out = obj.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    HG_FAIL(where, ": field '", key, "' has the wrong type (", obj.at(key).dump(), ")");
  }
}

void check_keys(const nlohmann::json& obj, const std::set<std::string>& allowed,
                const std::string& where) {
  if (!obj.is_object()) HG_FAIL(where, ": expected a JSON object");
  for (const auto& [key, value] : obj.items())
    if (!allowed.count(key)) HG_FAIL(where, ": unknown field '", key, "'");
}

std::vector<std::string> read_strings(const nlohmann::json& obj, const char* key,
                                      const std::string& where) {
  std::vector<std::string> out;
  if (!obj.contains(key)) return out;
  const auto& v = obj.at(key);
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) HG_FAIL(where, ": field '", key, "' must be a string or a list of strings");
  for (const auto& e : v) {
    if (!e.is_string()) HG_FAIL(where, ": field '", key, "' must list strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

FilterConfig parse_filter(const nlohmann::json& j, const std::string& default_profile,
                          const std::string& where) {
  std::string profile = default_profile;
  if (j.is_null()) return FilterConfig::from_profile(profile);
  check_keys(j, {"profile", "min_chars", "max_chars", "min_words", "max_symbol_ratio",
                 "max_digit_ratio", "max_repeated_lines", "min_mean_word_len",
                 "max_mean_word_len", "min_alpha_words", "max_line_chars"}, where);
  read_field(j, "profile", profile, where);
  FilterConfig f;
  try {
    f = FilterConfig::from_profile(profile);
  } catch (const Error& e) {
    HG_FAIL(where, ": ", e.what());
  }
  read_field(j, "min_chars", f.min_chars, where);
  read_field(j, "max_chars", f.max_chars, where);
  read_field(j, "min_words", f.min_words, where);
  read_field(j, "max_symbol_ratio", f.max_symbol_ratio, where);
  read_field(j, "max_digit_ratio", f.max_digit_ratio, where);
  read_field(j, "max_repeated_lines", f.max_repeated_lines, where);
  read_field(j, "min_mean_word_len", f.min_mean_word_len, where);
  read_field(j, "max_mean_word_len", f.max_mean_word_len, where);
  read_field(j, "min_alpha_words", f.min_alpha_words, where);
  read_field(j, "max_line_chars", f.max_line_chars, where);
  return f;
}

std::string resolve_path(std::string p, const std::string& base_dir, const std::string& deps_dir) {
  const std::string var = "${DEPS}";
  for (size_t pos; (pos = p.find(var)) != std::string::npos;) p.replace(pos, var.size(), deps_dir);
  if (fs::path(p).is_absolute() || base_dir.empty()) return p;
  return (fs::path(base_dir) / p).lexically_normal().string();
}

}  // namespace

MixConfig parse_mix(const nlohmann::json& j, const std::string& origin,
                    const std::string& base_dir, const std::string& deps_dir) {
  check_keys(j, {"name", "sources", "dedup", "comment"}, origin);
  MixConfig mix;
  mix.original = j;
  read_field(j, "name", mix.name, origin);
  if (j.contains("dedup")) {
    const std::string where = origin + ": dedup";
    check_keys(j["dedup"], {"exact", "near", "near_threshold", "num_perm", "bands", "shingle_words"}, where);
    auto& d = mix.dedup;
    read_field(j["dedup"], "exact", d.exact, where);
    read_field(j["dedup"], "near", d.near, where);
    read_field(j["dedup"], "near_threshold", d.near_threshold, where);
    read_field(j["dedup"], "num_perm", d.num_perm, where);
    read_field(j["dedup"], "bands", d.bands, where);
    read_field(j["dedup"], "shingle_words", d.shingle_words, where);
    if (d.near_threshold <= 0 || d.near_threshold > 1)
      HG_FAIL(where, ": near_threshold must be in (0, 1]");
    if (d.num_perm <= 0 || d.bands <= 0 || d.num_perm % d.bands != 0)
      HG_FAIL(where, ": num_perm must be a positive multiple of bands");
    if (d.shingle_words <= 0) HG_FAIL(where, ": shingle_words must be positive");
  }
  if (!j.contains("sources") || !j["sources"].is_array() || j["sources"].empty())
    HG_FAIL(origin, ": 'sources' must be a non-empty list");
  double share_sum = 0;
  std::set<std::string> names;
  for (size_t i = 0; i < j["sources"].size(); ++i) {
    const auto& s = j["sources"][i];
    const std::string where = origin + ": sources[" + std::to_string(i) + "]";
    check_keys(s, {"name", "share", "paths", "format", "documents", "text_field", "json_labels",
                   "include", "exclude", "utf8", "max_bytes", "split_chars", "filter", "comment"},
               where);
    SourceConfig src;
    read_field(s, "name", src.name, where);
    if (src.name.empty()) HG_FAIL(where, ": missing 'name'");
    if (!names.insert(src.name).second) HG_FAIL(where, ": duplicate source name '", src.name, "'");
    const std::string at = where + " (" + src.name + ")";
    if (!s.contains("share")) HG_FAIL(at, ": missing 'share'");
    read_field(s, "share", src.share, at);
    if (!(src.share > 0) || !std::isfinite(src.share)) HG_FAIL(at, ": 'share' must be positive");
    share_sum += src.share;
    for (const auto& p : read_strings(s, "paths", at)) src.paths.push_back(resolve_path(p, base_dir, deps_dir));
    if (src.paths.empty()) HG_FAIL(at, ": 'paths' must name at least one file or folder");
    read_field(s, "format", src.format, at);
    if (src.format != "text" && src.format != "jsonl" && src.format != "json")
      HG_FAIL(at, ": 'format' must be text, jsonl or json (got '", src.format, "')");
    read_field(s, "documents", src.documents, at);
    if (src.documents != "file" && src.documents != "blank-line" && src.documents != "heading")
      HG_FAIL(at, ": 'documents' must be file, blank-line or heading (got '", src.documents, "')");
    read_field(s, "text_field", src.text_field, at);
    if (src.text_field.empty()) HG_FAIL(at, ": 'text_field' is empty");
    read_field(s, "json_labels", src.json_labels, at);
    src.include = read_strings(s, "include", at);
    src.exclude = read_strings(s, "exclude", at);
    read_field(s, "utf8", src.utf8, at);
    if (src.utf8 != "repair" && src.utf8 != "drop")
      HG_FAIL(at, ": 'utf8' must be repair or drop (got '", src.utf8, "')");
    read_field(s, "max_bytes", src.max_bytes, at);
    read_field(s, "split_chars", src.split_chars, at);
    if (src.max_bytes < 0 || src.split_chars < 0) HG_FAIL(at, ": max_bytes/split_chars must be >= 0");
    src.filter = parse_filter(s.contains("filter") ? s["filter"] : nlohmann::json(), "prose", at + ": filter");
    mix.sources.push_back(std::move(src));
  }
  for (auto& s : mix.sources) s.share /= share_sum;
  return mix;
}

MixConfig load_mix_file(const std::string& path, const std::string& deps_dir) {
  std::ifstream in(path);
  if (!in) HG_FAIL("cannot open mix file '", path, "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    HG_FAIL(path, ": invalid JSON: ", e.what());
  }
  return parse_mix(j, path, fs::path(path).parent_path().string(), deps_dir);
}

}  // namespace hessgpt::data
