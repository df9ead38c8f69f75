// Built-in mixes. The demo corpus is real text that scripts/setup.sh installs
// from Debian packages (under /usr) and the npm registry (under <deps>/npm);
// src/data/README.md lists sources, sizes and licences.
//   demo-model1  prose/encyclopedic text for Model 1
//   demo-model2  Python / JavaScript / HTML / CSS for Model 2 (56/23/11/10 %)
//   demo         both: OUT/model1 and OUT/model2
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hessgpt::data {

// $HESSGPT_DEPS_DIR when set, else <source tree>/.deps (where setup.sh installs).
std::string default_deps_dir();

std::vector<std::string> preset_names();  // "demo", "demo-model1", "demo-model2"

// The mixes a preset prepares, with the sub-folder each goes to ("" for OUT itself).
struct PresetPart {
  std::string subdir;
  nlohmann::json mix;  // "${DEPS}" still unexpanded
};
std::vector<PresetPart> preset_parts(const std::string& name);

}  // namespace hessgpt::data
