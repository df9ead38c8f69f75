// Crash-safe file helpers: data reaches its final name only complete and on
// disk (write to "<name>.tmp", fsync, rename, fsync the folder), so a reader
// never sees a half-written file under a real name, whatever kills the writer.
#pragma once

#include <string>
#include <string_view>

namespace hessgpt::data {

void fsync_path(const std::string& path);        // a file or a folder
void rename_durably(const std::string& from, const std::string& to);  // rename + fsync folder
void write_file_atomic(const std::string& path, std::string_view content);

}  // namespace hessgpt::data
