#include "data/npy_stream.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "io/npy.h"

namespace hessgpt::data {

NpyStreamWriter::NpyStreamWriter(const std::string& path, const std::string& descr, size_t item_size,
                                 const std::vector<int64_t>& shape)
    : path_(path) {
  expected_ = item_size;
  for (int64_t d : shape) expected_ *= static_cast<size_t>(d);
  file_ = std::fopen(path.c_str(), "wb");
  if (!file_) HG_FAIL("cannot create '", path, "': ", std::strerror(errno));
  std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
  const std::string header = npy_header(descr, shape);
  if (std::fwrite(header.data(), 1, header.size(), file_) != header.size())
    HG_FAIL("failed writing '", path, "' (disk full?)");
}

NpyStreamWriter::~NpyStreamWriter() {
  if (file_) std::fclose(file_);
}

void NpyStreamWriter::write(const void* data, size_t bytes) {
  HG_CHECK(file_ != nullptr, "write after close: ", path_);
  if (std::fwrite(data, 1, bytes, file_) != bytes) HG_FAIL("failed writing '", path_, "' (disk full?)");
  written_ += bytes;
}

void NpyStreamWriter::close() {
  HG_CHECK(written_ == expected_, path_, ": wrote ", written_, " body bytes, expected ", expected_);
  const bool ok = std::fflush(file_) == 0 && ::fsync(fileno(file_)) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!ok || !closed) HG_FAIL("failed to flush '", path_, "' (disk full?)");
}

}  // namespace hessgpt::data
