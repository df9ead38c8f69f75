#include "io/gguf_writer.h"

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/bf16.h"
#include "core/error.h"
#include "io/half.h"
#include "io/model_dir.h"

namespace hessgpt::gguf {

static_assert(std::endian::native == std::endian::little, "GGUF is written little-endian");

namespace {

// gguf_type values of the metadata.
enum class ValueType : uint32_t {
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9
};

class ByteSink {
 public:
  explicit ByteSink(std::ofstream& out) : out_(out) {}
  template <typename T>
  void pod(T v) {
    out_.write(reinterpret_cast<const char*>(&v), sizeof(v));
    written_ += sizeof(v);
  }
  void bytes(const void* p, size_t n) {
    out_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    written_ += n;
  }
  void string(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad_to(uint64_t alignment) {
    static const char zeros[kAlignment] = {};
    bytes(zeros, (alignment - written_ % alignment) % alignment);
  }

 private:
  std::ofstream& out_;
  uint64_t written_ = 0;
};

void write_value(ByteSink& sink, const Writer::Value& value) {
  const auto array = [&](ValueType element, size_t n) {
    sink.pod(static_cast<uint32_t>(ValueType::kArray));
    sink.pod(static_cast<uint32_t>(element));
    sink.pod<uint64_t>(n);
  };
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, uint32_t>) {
          sink.pod(static_cast<uint32_t>(ValueType::kUint32));
          sink.pod(v);
        } else if constexpr (std::is_same_v<T, int32_t>) {
          sink.pod(static_cast<uint32_t>(ValueType::kInt32));
          sink.pod(v);
        } else if constexpr (std::is_same_v<T, float>) {
          sink.pod(static_cast<uint32_t>(ValueType::kFloat32));
          sink.pod(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          sink.pod(static_cast<uint32_t>(ValueType::kBool));
          sink.pod(static_cast<uint8_t>(v ? 1 : 0));
        } else if constexpr (std::is_same_v<T, std::string>) {
          sink.pod(static_cast<uint32_t>(ValueType::kString));
          sink.string(v);
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          array(ValueType::kString, v.size());
          for (const std::string& s : v) sink.string(s);
        } else if constexpr (std::is_same_v<T, std::vector<float>>) {
          array(ValueType::kFloat32, v.size());
          sink.bytes(v.data(), v.size() * sizeof(float));
        } else {
          array(ValueType::kInt32, v.size());
          sink.bytes(v.data(), v.size() * sizeof(int32_t));
        }
      },
      value);
}

void encode_q8_0(std::span<const float> block, uint8_t* out) {
  float amax = 0.0f;
  for (float x : block) amax = std::max(amax, std::fabs(x));
  const float d = amax / 127.0f;
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  const uint16_t d16 = float_to_half(d);
  std::memcpy(out, &d16, sizeof(d16));
  for (size_t i = 0; i < block.size(); ++i)
    out[sizeof(d16) + i] =
        static_cast<uint8_t>(static_cast<int8_t>(std::lround(block[i] * inverse)));
}

}  // namespace

const char* type_name(TensorType type) {
  switch (type) {
    case TensorType::kF32:
      return "F32";
    case TensorType::kF16:
      return "F16";
    case TensorType::kQ8_0:
      return "Q8_0";
    case TensorType::kBF16:
      return "BF16";
  }
  return "?";
}

size_t row_bytes(TensorType type, int64_t cols) {
  const auto n = static_cast<size_t>(cols);
  switch (type) {
    case TensorType::kF32:
      return 4 * n;
    case TensorType::kF16:
    case TensorType::kBF16:
      return 2 * n;
    case TensorType::kQ8_0:
      if (cols % kQ8BlockValues != 0)
        HG_FAIL("Q8_0 needs rows whose length is a multiple of ", kQ8BlockValues, " (got ", cols,
                ")");
      return n / kQ8BlockValues * (2 + kQ8BlockValues);
  }
  HG_FAIL("unknown GGUF tensor type ", static_cast<uint32_t>(type));
}

std::vector<uint8_t> encode(TensorType type, std::span<const float> values, int64_t cols) {
  HG_CHECK(cols > 0 && values.size() % static_cast<size_t>(cols) == 0,
           "a tensor's values must fill whole rows");
  const size_t rows = values.size() / static_cast<size_t>(cols);
  std::vector<uint8_t> out(rows * row_bytes(type, cols));
  uint8_t* p = out.data();
  if (type == TensorType::kF32) {
    std::memcpy(p, values.data(), out.size());
  } else if (type == TensorType::kQ8_0) {
    const size_t block_bytes = 2 + kQ8BlockValues;
    for (size_t i = 0; i < values.size(); i += kQ8BlockValues, p += block_bytes)
      encode_q8_0(values.subspan(i, kQ8BlockValues), p);
  } else {
    for (float v : values) {
      const uint16_t h = type == TensorType::kF16 ? float_to_half(v) : float_to_bf16(v);
      std::memcpy(p, &h, sizeof(h));
      p += sizeof(h);
    }
  }
  return out;
}

void Writer::set(const std::string& key, Value value) {
  for (const auto& [k, v] : metadata_)
    HG_CHECK(k != key, "GGUF metadata key '", key, "' set twice");
  metadata_.emplace_back(key, std::move(value));
}

void Writer::add_tensor(const std::string& name, const std::vector<int64_t>& shape, TensorType type,
                        std::span<const float> values) {
  HG_CHECK(!shape.empty(), "GGUF tensor '", name, "' has no dimensions");
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  HG_CHECK(numel == static_cast<int64_t>(values.size()), "GGUF tensor '", name,
           "': ", values.size(), " values for ", numel, " elements");
  for (const Tensor& t : tensors_) HG_CHECK(t.name != name, "GGUF tensor '", name, "' added twice");
  try {
    tensors_.push_back({name, shape, type, encode(type, values, shape.back())});
  } catch (const Error& e) {
    HG_FAIL("GGUF tensor '", name, "': ", e.what());
  }
}

void Writer::write(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) HG_FAIL("cannot create '", tmp, "'");
    ByteSink sink(out);
    sink.bytes("GGUF", 4);
    sink.pod<uint32_t>(3);
    sink.pod<uint64_t>(tensors_.size());
    sink.pod<uint64_t>(metadata_.size());
    for (const auto& [key, value] : metadata_) {
      sink.string(key);
      write_value(sink, value);
    }
    uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
      sink.string(t.name);
      sink.pod(static_cast<uint32_t>(t.shape.size()));
      for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) sink.pod(static_cast<uint64_t>(*d));
      sink.pod(static_cast<uint32_t>(t.type));
      sink.pod(offset);
      offset += (t.data.size() + kAlignment - 1) / kAlignment * kAlignment;
    }
    for (const Tensor& t : tensors_) {
      sink.pad_to(kAlignment);
      sink.bytes(t.data.data(), t.data.size());
    }
    out.flush();
    if (!out) HG_FAIL("write error on '", tmp, "' (disk full?)");
  }
  fsync_path(tmp);
  std::filesystem::rename(tmp, path);
}

}  // namespace hessgpt::gguf
