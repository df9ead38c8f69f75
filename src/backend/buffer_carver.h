// Lays tensors out back to back in one Buffer, each 64-byte aligned: a first
// pass with no buffer only measures (offset() is then the size to allocate),
// a second one over the allocated buffer hands out the same views
// (carve_buffer below does both).
#pragma once

#include <cstddef>
#include <initializer_list>

#include "backend/backend.h"

namespace hessgpt {

class BufferCarver {
 public:
  BufferCarver(const Buffer* buffer, DType dtype) : buffer_(buffer), dtype_(dtype) {}

  Tensor take(std::initializer_list<int64_t> dims, DType dtype) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    const size_t bytes = (static_cast<size_t>(n) * dtype_size(dtype) + 63) / 64 * 64;
    Tensor t;
    if (buffer_) t = buffer_->tensor(dtype, dims, offset_);
    offset_ += bytes;
    return t;
  }
  Tensor take(std::initializer_list<int64_t> dims) { return take(dims, dtype_); }
  size_t offset() const { return offset_; }
  DType dtype() const { return dtype_; }
  // Tensors taken after rewinding overlay those taken since `offset`.
  void rewind(size_t offset) { offset_ = offset; }

 private:
  const Buffer* buffer_;
  DType dtype_;
  size_t offset_ = 0;
};

// One Buffer holding everything carve(BufferCarver&) takes, carved: carve
// runs twice, measuring, then over the allocated buffer (moving the Buffer
// keeps the views valid).
template <typename Carve>
Buffer carve_buffer(Backend& backend, DType dtype, Carve&& carve) {
  BufferCarver measure(nullptr, dtype);
  carve(measure);
  Buffer buffer(&backend, measure.offset());
  BufferCarver cv(&buffer, dtype);
  carve(cv);
  return buffer;
}

}  // namespace hessgpt
