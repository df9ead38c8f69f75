// manifest.json: the description of a prepared folder, written last (and
// atomically) so a folder without one is visibly incomplete. Layout and every
// field: src/data/README.md.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace hessgpt::data {

constexpr const char* kManifestName = "manifest.json";
constexpr const char* kManifestFormat = "hessgpt-token-chunks";
constexpr int kManifestVersion = 1;

void write_manifest(const std::string& dir, const nlohmann::json& manifest);

// Reads and checks the fields the loader relies on. Throws Error with a clear
// message for a folder without a manifest (incomplete or never prepared).
nlohmann::json read_manifest(const std::string& dir);

// Removes manifest.json first (durably), then chunk files and temporaries
// from an earlier run, so an interrupted prepare can never look complete.
void clear_prepared_dir(const std::string& dir);

}  // namespace hessgpt::data
