// NumPy .npy files (format 1.0/2.0, little-endian, C order): writing from a
// host buffer, and reading by memory mapping so a billion-token chunk opens
// in microseconds and is paged in on demand.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hessgpt {

// The .npy header (magic, version 1.0, padded dict) for an array of this dtype
// and shape; the data follows it directly. Streaming writers use it too.
std::string npy_header(const std::string& descr, const std::vector<int64_t>& shape);

// NumPy dtype descriptors we use: "<f4", "<f8", "<u2", "<i4", "<i8".
void write_npy(const std::string& path, const std::string& descr,
               const std::vector<int64_t>& shape, const void* data, size_t bytes);

// A read-only memory-mapped .npy file. Throws Error naming the file for a
// missing file, a bad header, a Fortran-order array or a truncated body.
class MappedNpy {
 public:
  explicit MappedNpy(const std::string& path);
  ~MappedNpy();
  MappedNpy(MappedNpy&& other) noexcept;
  MappedNpy& operator=(MappedNpy&& other) noexcept;
  MappedNpy(const MappedNpy&) = delete;
  MappedNpy& operator=(const MappedNpy&) = delete;

  const std::string& descr() const { return descr_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const;
  const void* data() const { return data_; }
  const std::string& path() const { return path_; }

  template <typename T>
  const T* as() const { return static_cast<const T*>(data_); }

 private:
  std::string path_;
  std::string descr_;
  std::vector<int64_t> shape_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const void* data_ = nullptr;
};

}  // namespace hessgpt
