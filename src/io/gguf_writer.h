// GGUF files (version 3), the format llama.cpp loads: a header, typed
// key/value metadata, tensor descriptions, then the tensors' data, each at an
// offset aligned to general.alignment (32). Dimensions are stored innermost
// first (ggml's ne order), so a row-major [rows, cols] matrix is [cols, rows].
// Tensors are encoded from float here: F32, F16, BF16, or Q8_0 (blocks of 32
// values: an F16 scale and 32 int8, llama.cpp's layout).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace hessgpt::gguf {

// ggml_type values.
enum class TensorType : uint32_t { kF32 = 0, kF16 = 1, kQ8_0 = 8, kBF16 = 30 };

constexpr int64_t kQ8BlockValues = 32;
constexpr uint32_t kAlignment = 32;

const char* type_name(TensorType type);
// Bytes of a row of `cols` values; throws Error for a Q8_0 row whose length
// is not a multiple of kQ8BlockValues.
size_t row_bytes(TensorType type, int64_t cols);
// One row-major tensor's values in the type's encoding.
std::vector<uint8_t> encode(TensorType type, std::span<const float> values, int64_t cols);

class Writer {
 public:
  using Value = std::variant<uint32_t, int32_t, float, bool, std::string,
                             std::vector<std::string>, std::vector<float>, std::vector<int32_t>>;

  // Keys must be unique (throws otherwise); written in the order added.
  void set(const std::string& key, Value value);
  // shape: row-major, as the model stores it; the values are encoded now.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, TensorType type,
                  std::span<const float> values);
  // Writes to path + ".tmp", flushes and renames: no torn file on a crash.
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    TensorType type;
    std::vector<uint8_t> data;
  };
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace hessgpt::gguf
