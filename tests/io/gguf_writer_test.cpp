// The GGUF writer's encodings and byte layout, checked against the format's
// definition (ggml's GGUF spec and Q8_0 block), and the names llama.cpp's
// qwen3 loader expects. The whole file is checked by llama.cpp itself in
// llama_cpp_oracle.mjs.
#include "io/gguf_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/test_util.h"
#include "core/error.h"
#include "io/export_model.h"
#include "io/half.h"

namespace hessgpt {
namespace {

using testing::TempDir;

TEST(Half, EveryHalfRoundTripsAndMidpointsRoundToEven) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const bool nan = ((h >> 10) & 31) == 31 && (h & 1023) != 0;
    if (nan) continue;
    ASSERT_EQ(float_to_half(half_to_float(static_cast<uint16_t>(h))), h) << h;
  }
  // Between neighbours a < b (positive, finite): the midpoint goes to the even
  // one, anything off the midpoint to the nearer one.
  for (uint16_t h = 0; h < 0x7bff; ++h) {
    const double a = half_to_float(h), b = half_to_float(static_cast<uint16_t>(h + 1));
    const auto mid = static_cast<float>((a + b) / 2);
    ASSERT_EQ(static_cast<double>(mid), (a + b) / 2);
    ASSERT_EQ(float_to_half(mid), h % 2 ? h + 1 : h) << h;
    ASSERT_EQ(float_to_half(std::nextafter(mid, 1e9f)), h + 1) << h;
    ASSERT_EQ(float_to_half(std::nextafter(mid, -1e9f)), h) << h;
  }
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);  // rounds past the largest half
  EXPECT_EQ(float_to_half(-1e-8f), 0x8000);
  EXPECT_EQ(float_to_half(std::nanf("")) & 0x7e00, 0x7e00);
}

TEST(Gguf, Q8BlocksHoldAHalfScaleAndRoundedInt8) {
  std::vector<float> v(64);
  for (int i = 0; i < 32; ++i) v[i] = static_cast<float>(i - 16) * 0.25f;  // amax 4
  const std::vector<uint8_t> out = gguf::encode(gguf::TensorType::kQ8_0, v, 64);
  ASSERT_EQ(out.size(), 2u * 34u);
  uint16_t d16 = 0;
  std::memcpy(&d16, out.data(), 2);
  const float d = 4.0f / 127.0f;
  EXPECT_EQ(d16, float_to_half(d));
  for (int i = 0; i < 32; ++i)
    EXPECT_EQ(static_cast<int8_t>(out[2 + i]), std::lround(v[i] / d)) << i;
  for (int i = 34; i < 68; ++i) EXPECT_EQ(out[i], 0) << "an all-zero block: scale and values 0";
  EXPECT_THROW(gguf::encode(gguf::TensorType::kQ8_0, std::vector<float>(40), 40), Error);
}

template <typename T>
T read_at(const std::string& bytes, size_t& at) {
  T v;
  std::memcpy(&v, bytes.data() + at, sizeof(T));
  at += sizeof(T);
  return v;
}

std::string read_string(const std::string& bytes, size_t& at) {
  const auto n = read_at<uint64_t>(bytes, at);
  std::string s = bytes.substr(at, n);
  at += n;
  return s;
}

TEST(Gguf, FileLayoutFollowsTheSpec) {
  TempDir dir;
  gguf::Writer w;
  w.set("general.architecture", std::string("qwen3"));
  w.set("count", uint32_t{7});
  w.set("list", std::vector<int32_t>{3, -1});
  const std::vector<float> m = {1, 2, 3, 4, 5, 6};
  w.add_tensor("m", {2, 3}, gguf::TensorType::kF32, m);
  w.add_tensor("h", {5}, gguf::TensorType::kF16, std::vector<float>{1, -2, 0.5f, 0, 65504});
  EXPECT_THROW(w.set("count", uint32_t{8}), Error);
  w.write(dir / "f.gguf");
  const std::string b = testing::read_bytes(dir / "f.gguf");
  size_t at = 0;
  EXPECT_EQ(b.substr(0, 4), "GGUF");
  at = 4;
  EXPECT_EQ(read_at<uint32_t>(b, at), 3u);
  EXPECT_EQ(read_at<uint64_t>(b, at), 2u);  // tensors
  EXPECT_EQ(read_at<uint64_t>(b, at), 3u);  // key/values
  EXPECT_EQ(read_string(b, at), "general.architecture");
  EXPECT_EQ(read_at<uint32_t>(b, at), 8u);  // string
  EXPECT_EQ(read_string(b, at), "qwen3");
  EXPECT_EQ(read_string(b, at), "count");
  EXPECT_EQ(read_at<uint32_t>(b, at), 4u);  // uint32
  EXPECT_EQ(read_at<uint32_t>(b, at), 7u);
  EXPECT_EQ(read_string(b, at), "list");
  EXPECT_EQ(read_at<uint32_t>(b, at), 9u);  // array
  EXPECT_EQ(read_at<uint32_t>(b, at), 5u);  // of int32
  EXPECT_EQ(read_at<uint64_t>(b, at), 2u);
  EXPECT_EQ(read_at<int32_t>(b, at), 3);
  EXPECT_EQ(read_at<int32_t>(b, at), -1);
  // Tensor infos: dimensions innermost first, offsets aligned to 32.
  EXPECT_EQ(read_string(b, at), "m");
  EXPECT_EQ(read_at<uint32_t>(b, at), 2u);
  EXPECT_EQ(read_at<uint64_t>(b, at), 3u);
  EXPECT_EQ(read_at<uint64_t>(b, at), 2u);
  EXPECT_EQ(read_at<uint32_t>(b, at), 0u);  // F32
  EXPECT_EQ(read_at<uint64_t>(b, at), 0u);
  EXPECT_EQ(read_string(b, at), "h");
  EXPECT_EQ(read_at<uint32_t>(b, at), 1u);
  EXPECT_EQ(read_at<uint64_t>(b, at), 5u);
  EXPECT_EQ(read_at<uint32_t>(b, at), 1u);   // F16
  EXPECT_EQ(read_at<uint64_t>(b, at), 32u);  // 24 bytes of m, padded
  const size_t data = (at + 31) / 32 * 32;
  ASSERT_EQ(b.size(), data + 32 + 10);
  float first[6];
  std::memcpy(first, b.data() + data, sizeof(first));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(first[i], m[i]);
  uint16_t halves[5];
  std::memcpy(halves, b.data() + data + 32, sizeof(halves));
  EXPECT_EQ(halves[1], float_to_half(-2.0f));
  EXPECT_EQ(halves[4], 0x7bff);
}

TEST(Gguf, TensorNamesAreLlamaCppsQwen3Names) {
  EXPECT_EQ(gguf_tensor_name("model.embed_tokens.weight"), "token_embd.weight");
  EXPECT_EQ(gguf_tensor_name("model.norm.weight"), "output_norm.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.0.input_layernorm.weight"), "blk.0.attn_norm.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.12.self_attn.o_proj.weight"),
            "blk.12.attn_output.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.3.self_attn.k_norm.weight"), "blk.3.attn_k_norm.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.3.post_attention_layernorm.weight"),
            "blk.3.ffn_norm.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.21.mlp.down_proj.weight"), "blk.21.ffn_down.weight");
  EXPECT_THROW(gguf_tensor_name("lm_head.weight"), Error);
  EXPECT_THROW(gguf_tensor_name("model.layers.1.mlp.fc1.weight"), Error);
}

}  // namespace
}  // namespace hessgpt
