// Tensor: a non-owning, contiguous, row-major view (data pointer, dtype,
// device, up to 4 dimensions). Memory is owned by a Buffer from a backend;
// views are cheap to copy and never free anything.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/error.h"

namespace hessgpt {

enum class DType : uint8_t { F32, F64, BF16, I32, U16 };
enum class Device : uint8_t { CPU, CUDA };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
const char* device_name(Device device);

struct Tensor {
  static constexpr int kMaxDims = 4;

  void* data = nullptr;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};

  Tensor() = default;
  Tensor(void* data, DType dtype, Device device, std::initializer_list<int64_t> dims);

  int64_t numel() const;
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  // Size of dimension i; negative i counts from the end.
  int64_t dim(int i) const;
  // Product of all dimensions but the last: the row count of a [rows, cols] reading.
  int64_t rows() const { return numel() / dim(-1); }
  int64_t cols() const { return dim(-1); }

  // Same memory, new shape; the element count must match.
  Tensor view(std::initializer_list<int64_t> dims) const;
  // Rows [begin, end) of dimension 0.
  Tensor slice(int64_t begin, int64_t end) const;

  template <typename T>
  T* as() const { return static_cast<T*>(data); }

  std::string shape_string() const;
};

}  // namespace hessgpt
