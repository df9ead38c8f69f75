#include "core/tensor.h"

namespace hessgpt {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::U16: return 2;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::U16: return "U16";
  }
  return "?";
}

const char* device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

Tensor::Tensor(void* data_, DType dtype_, Device device_, std::initializer_list<int64_t> dims)
    : data(data_), dtype(dtype_), device(device_) {
  HG_CHECK(dims.size() >= 1 && dims.size() <= static_cast<size_t>(kMaxDims));
  for (int64_t d : dims) {
    HG_CHECK(d >= 0, "negative dimension");
    shape[ndim++] = d;
  }
}

int64_t Tensor::numel() const {
  if (ndim == 0) return 0;
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

int64_t Tensor::dim(int i) const {
  if (i < 0) i += ndim;
  HG_CHECK(i >= 0 && i < ndim, "dimension index out of range");
  return shape[i];
}

Tensor Tensor::view(std::initializer_list<int64_t> dims) const {
  Tensor t(data, dtype, device, dims);
  HG_CHECK(t.numel() == numel(), "view ", t.shape_string(), " of ", shape_string());
  return t;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  HG_CHECK(ndim >= 1 && begin >= 0 && begin <= end && end <= shape[0]);
  Tensor t = *this;
  const int64_t row = numel() / (shape[0] == 0 ? 1 : shape[0]);
  t.data = static_cast<char*>(data) + static_cast<size_t>(begin * row) * dtype_size(dtype);
  t.shape[0] = end - begin;
  return t;
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace hessgpt
