// Helpers for the data tests: a temporary folder removed at the end, and
// small writers for text, gzip and JSONL corpora.
#pragma once

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace hessgpt::data::testing {

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("hg_data_test_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << content;
}

inline void write_gzip(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  gzFile gz = gzopen(path.c_str(), "wb");
  gzwrite(gz, content.data(), static_cast<unsigned>(content.size()));
  gzclose(gz);
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A deterministic English-looking paragraph that passes the prose filter;
// different `seed`s give different text (no accidental duplicates).
inline std::string prose(int seed, int words = 60) {
  static const char* kWords[] = {"the", "river", "valley", "people", "government", "history", "trade",
                                 "northern", "capital", "mountain", "economy", "language", "coast",
                                 "century", "island", "agriculture", "industry", "climate", "forest",
                                 "population", "border", "ancient", "modern", "culture", "region"};
  std::mt19937 rng(static_cast<unsigned>(seed) * 7919u + 17u);
  std::string s = "Document " + std::to_string(seed) + " tells that";
  for (int i = 0; i < words; ++i) {
    s += ' ';
    s += kWords[rng() % 25];
    if (i % 12 == 11) s += '.';
  }
  return s + ".";
}

}  // namespace hessgpt::data::testing
