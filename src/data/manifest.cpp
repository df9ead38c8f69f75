#include "data/manifest.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/fs_util.h"

namespace hessgpt::data {
namespace fs = std::filesystem;

void write_manifest(const std::string& dir, const nlohmann::json& manifest) {
  write_file_atomic((fs::path(dir) / kManifestName).string(), manifest.dump(2) + "\n");
}

nlohmann::json read_manifest(const std::string& dir) {
  const fs::path path = fs::path(dir) / kManifestName;
  if (!fs::is_directory(dir)) HG_FAIL("data folder '", dir, "' does not exist");
  if (!fs::exists(path))
    HG_FAIL("'", dir, "' has no ", kManifestName,
            ": not a prepared data folder, or its prepare did not finish (run hessgpt prepare again)");
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) HG_FAIL(path.string(), ": not valid JSON");
  if (j.value("format", "") != kManifestFormat)
    HG_FAIL(path.string(), ": field 'format' is not '", kManifestFormat, "'");
  if (j.value("version", 0) != kManifestVersion)
    HG_FAIL(path.string(), ": unsupported version ", j.value("version", 0), " (expected ", kManifestVersion, ")");
  for (const char* key : {"seq_len", "row_len", "chunks", "tokenizer"})
    if (!j.contains(key)) HG_FAIL(path.string(), ": missing field '", key, "'");
  if (!j["chunks"].is_array()) HG_FAIL(path.string(), ": field 'chunks' must be a list");
  return j;
}

void clear_prepared_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) HG_FAIL("cannot create output folder '", dir, "': ", ec.message());
  const fs::path manifest = fs::path(dir) / kManifestName;
  if (fs::exists(manifest)) {
    fs::remove(manifest);
    fsync_path(dir);
  }
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const bool ours = name.starts_with("chunk_") || name == std::string(kManifestName) + ".tmp";
    if (ours && (name.ends_with(".npy") || name.ends_with(".tmp"))) fs::remove(entry.path());
  }
}

}  // namespace hessgpt::data
