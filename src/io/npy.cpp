#include "io/npy.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <regex>

#include "core/error.h"

namespace hessgpt {
namespace {

size_t descr_item_size(const std::string& descr, const std::string& path) {
  if (descr.size() < 3 || (descr[0] != '<' && descr[0] != '|'))
    HG_FAIL(path, ": unsupported .npy dtype '", descr, "' (little-endian only)");
  const char kind = descr[1];
  if (kind != 'f' && kind != 'u' && kind != 'i' && kind != 'b')
    HG_FAIL(path, ": unsupported .npy dtype '", descr, "'");
  return static_cast<size_t>(std::stoul(descr.substr(2)));
}

}  // namespace

std::string npy_header(const std::string& descr, const std::vector<int64_t>& shape) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) dict += ",";
    if (i + 1 < shape.size()) dict += " ";
  }
  dict += "), }";
  // Magic (6) + version (2) + length (2) + dict + padding + '\n' is a multiple of 64.
  const size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  std::string header("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(dict.size());
  header += static_cast<char>(len & 0xff);
  header += static_cast<char>(len >> 8);
  return header + dict;
}

void write_npy(const std::string& path, const std::string& descr,
               const std::vector<int64_t>& shape, const void* data, size_t bytes) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  HG_CHECK(static_cast<size_t>(n) * descr_item_size(descr, path) == bytes,
           "npy shape does not match the byte count for ", path);
  std::ofstream out(path, std::ios::binary);
  if (!out) HG_FAIL("cannot create '", path, "'");
  const std::string header = npy_header(descr, shape);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  if (!out) HG_FAIL("failed writing '", path, "' (disk full?)");
}

MappedNpy::MappedNpy(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) HG_FAIL("cannot open '", path, "': ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    HG_FAIL("cannot stat '", path, "'");
  }
  map_bytes_ = static_cast<size_t>(st.st_size);
  if (map_bytes_ < 10) {
    ::close(fd);
    HG_FAIL(path, ": too short to be a .npy file");
  }
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    HG_FAIL("cannot memory-map '", path, "'");
  }
  const auto* bytes = static_cast<const unsigned char*>(map_);
  if (std::memcmp(bytes, "\x93NUMPY", 6) != 0) HG_FAIL(path, ": not a .npy file (bad magic)");
  const int major = bytes[6];
  size_t header_len = 0, prefix = 0;
  if (major == 1) {
    header_len = bytes[8] | (bytes[9] << 8);
    prefix = 10;
  } else if (major == 2 || major == 3) {
    if (map_bytes_ < 12) HG_FAIL(path, ": truncated .npy header");
    header_len = bytes[8] | (bytes[9] << 8) | (bytes[10] << 16) | (static_cast<size_t>(bytes[11]) << 24);
    prefix = 12;
  } else {
    HG_FAIL(path, ": unsupported .npy version ", major);
  }
  if (prefix + header_len > map_bytes_) HG_FAIL(path, ": truncated .npy header");
  const std::string header(reinterpret_cast<const char*>(bytes + prefix), header_len);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([^']+)'")))
    HG_FAIL(path, ": .npy header has no descr");
  descr_ = m[1];
  if (std::regex_search(header, m, std::regex("'fortran_order':\\s*True")))
    HG_FAIL(path, ": Fortran-order arrays are not supported");
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)")))
    HG_FAIL(path, ": .npy header has no shape");
  const std::string dims = m[1];
  const std::regex number("\\d+");
  for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it)
    shape_.push_back(std::stoll(it->str()));
  const size_t body = static_cast<size_t>(numel()) * descr_item_size(descr_, path);
  if (prefix + header_len + body > map_bytes_)
    HG_FAIL(path, ": truncated .npy file (expected ", body, " data bytes, found ",
            map_bytes_ - prefix - header_len, ")");
  data_ = bytes + prefix + header_len;
}

MappedNpy::~MappedNpy() {
  if (map_) ::munmap(map_, map_bytes_);
}

MappedNpy::MappedNpy(MappedNpy&& o) noexcept
    : path_(std::move(o.path_)), descr_(std::move(o.descr_)), shape_(std::move(o.shape_)),
      map_(o.map_), map_bytes_(o.map_bytes_), data_(o.data_) {
  o.map_ = nullptr;
  o.data_ = nullptr;
}

MappedNpy& MappedNpy::operator=(MappedNpy&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(map_, map_bytes_);
    path_ = std::move(o.path_);
    descr_ = std::move(o.descr_);
    shape_ = std::move(o.shape_);
    map_ = o.map_;
    map_bytes_ = o.map_bytes_;
    data_ = o.data_;
    o.map_ = nullptr;
    o.data_ = nullptr;
  }
  return *this;
}

int64_t MappedNpy::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

}  // namespace hessgpt
