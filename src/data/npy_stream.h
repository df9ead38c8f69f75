// Writes a .npy file whose shape is known up front but whose body is produced
// piece by piece, so a chunk of a billion tokens never has to sit in memory
// (io/npy.h's write_npy takes the whole buffer). Same header layout as
// write_npy (format 1.0, header padded to 64 bytes), readable by MappedNpy.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace hessgpt::data {

class NpyStreamWriter {
 public:
  // descr e.g. "<u2"; item_size its byte width.
  NpyStreamWriter(const std::string& path, const std::string& descr, size_t item_size,
                  const std::vector<int64_t>& shape);
  ~NpyStreamWriter();
  NpyStreamWriter(const NpyStreamWriter&) = delete;
  NpyStreamWriter& operator=(const NpyStreamWriter&) = delete;

  void write(const void* data, size_t bytes);
  // Checks the body is complete, flushes and fsyncs. Throws Error otherwise.
  void close();

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  size_t expected_ = 0;
  size_t written_ = 0;
};

}  // namespace hessgpt::data
