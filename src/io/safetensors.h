// safetensors files: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets}} (+ "__metadata__"), then raw data.
// Reading memory-maps the file and validates every entry against its size.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace hessgpt {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // into the mapping
  size_t bytes = 0;
  int64_t numel() const;
};

class SafetensorsReader {
 public:
  // Throws Error naming the file for a missing, truncated or malformed file.
  explicit SafetensorsReader(const std::string& path);
  ~SafetensorsReader();
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  // Throws when absent.
  const SafetensorsEntry& at(const std::string& name) const;
  // The entry converted to float (F32, F64 or BF16 on disk).
  std::vector<float> read_float(const std::string& name) const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // host memory, numel * dtype_size bytes
};

// Writes tensors (in the given order) and string metadata. Not atomic by
// itself: checkpoint code writes into a temporary folder and renames.
void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace hessgpt
