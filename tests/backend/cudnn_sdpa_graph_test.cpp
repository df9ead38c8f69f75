// cuDNN's fused-attention graphs, checked where no GPU is needed: every
// tensor and operation descriptor finalises (cuDNN checks each product's
// dims against its operands', so the transposed views and the GQA head
// broadcast must agree), the version gates, and the backward's buffers.
// Whether cuDNN's engine takes the whole graph, and its numbers, are the
// GPU test's (cuda_cudnn_attention_test.cpp).
#include <gtest/gtest.h>

#ifdef HESSGPT_HAVE_CUDNN
#include <filesystem>
#include <fstream>
#include <sstream>

#include "backend/cuda/attention_cudnn_graphs.h"
#include "backend/cuda/cudnn_api.h"

namespace hessgpt::cuda {
namespace {

// libcudnn itself, which loads without a GPU; a machine with the headers
// and not the library skips.
#define CUDNN_OR_SKIP(api)                      \
  std::string why;                              \
  const CudnnApi* api = cudnn(&why);            \
  if (!api) GTEST_SKIP() << why

TEST(CudnnSdpaGraphs, EveryDescriptorFinalises) {
  CUDNN_OR_SKIP(api);
  const CudnnAttnShape shapes[] = {{32, 1024, 20, 5, 64, 0.125f},  // model1
                                   {2, 256, 4, 4, 128, 0.088f},    // MHA: no group sums
                                   {3, 128, 8, 2, 32, 0.177f}};
  for (const bool backward : {false, true})
    for (const CudnnAttnShape& s : shapes)
      for (const CudnnSdpaVariant& v : cudnn_sdpa_variants(backward)) {
        CudnnGraph g(*api, nullptr);  // no handle: finish() is the GPU test's
        try {
          if (backward) build_sdpa_backward(g, s, v);
          else build_sdpa_forward(g, s, v);
        } catch (const CudnnError& e) {
          ADD_FAILURE() << (backward ? "backward" : "forward") << " t=" << s.t << " h=" << s.h
                        << " kv=" << s.kv << " d=" << s.d << " (" << v.name() << "): " << e.what();
        }
      }
}

// The descriptor checks are cuDNN's own, not ours: a product whose inner
// dims disagree is refused, naming the operation.
TEST(CudnnSdpaGraphs, CudnnRefusesMismatchedProducts) {
  CUDNN_OR_SKIP(api);
  CudnnGraph g(*api, nullptr);
  const auto& a = g.tensor({1, CUDNN_DATA_BFLOAT16, {1, 1, 4, 8}, packed_strides({1, 1, 4, 8})});
  const auto& b = g.tensor({2, CUDNN_DATA_BFLOAT16, {1, 1, 9, 4}, packed_strides({1, 1, 9, 4})});
  const auto& c = g.tensor({3, CUDNN_DATA_FLOAT, {1, 1, 4, 4}, packed_strides({1, 1, 4, 4})});
  try {
    g.matmul(a, b, c);
    FAIL() << "an 8-deep by 9-deep product was accepted";
  } catch (const CudnnError& e) {
    EXPECT_NE(std::string(e.what()).find("matmul operation"), std::string::npos) << e.what();
  }
}

TEST(CudnnSdpaGraphs, VersionAndShapeGates) {
  const CudnnAttnShape ok{32, 1024, 20, 5, 64, 0.125f};
  EXPECT_EQ(cudnn_sdpa_unsupported(91900, ok), "");
  EXPECT_EQ(cudnn_sdpa_unsupported(91100, ok), "");
  EXPECT_NE(cudnn_sdpa_unsupported(91000, ok), "");  // 9.10.0 and 9.10.1: known bugs
  EXPECT_NE(cudnn_sdpa_unsupported(91001, ok), "");
  EXPECT_EQ(cudnn_sdpa_unsupported(91002, ok), "");
  EXPECT_NE(cudnn_sdpa_unsupported(80906, ok), "");
  CudnnAttnShape s = ok;
  s.t = 1000;  // not whole 128-row tiles: only from 9.16
  EXPECT_NE(cudnn_sdpa_unsupported(91500, s), "");
  EXPECT_EQ(cudnn_sdpa_unsupported(91600, s), "");
  s = ok;
  s.d = 100;
  EXPECT_NE(cudnn_sdpa_unsupported(91900, s), "");
  s.d = 256;
  EXPECT_NE(cudnn_sdpa_unsupported(91900, s), "");
  s = ok;
  s.kv = 3;
  EXPECT_NE(cudnn_sdpa_unsupported(91900, s), "");
}

TEST(CudnnSdpaGraphs, BackwardBuffersDoNotOverlap) {
  const CudnnAttnShape s{3, 100, 4, 2, 40, 0.1f};
  const SdpaBackwardBuffers b = sdpa_backward_buffers(s);
  EXPECT_EQ(b.dq_accum, 0);
  EXPECT_GE(b.softmax_sum, 3 * 100 * 4 * 40 * 4);
  EXPECT_GE(b.plan, b.softmax_sum + 3 * 100 * 4 * 4);
  EXPECT_EQ(b.bytes, b.plan);
  for (const int64_t at : {b.softmax_sum, b.plan}) EXPECT_EQ(at % 256, 0);
}

// A GPU's properties saved by the GPU test (gpu-check's cudnn-deviceprop.json,
// kept in tests/backend/cudnn_devices/) let cuDNN plan both passes here, on a
// machine without that GPU: whether its fused-attention engine takes these
// graphs on that GPU, checked by every CI run.
TEST(CudnnSdpaGraphs, PlansForSavedDevices) {
  CUDNN_OR_SKIP(api);
  if (api->get_version() < 90800) GTEST_SKIP() << "device properties need cuDNN 9.8";
  const std::filesystem::path dir =
      std::filesystem::path(HESSGPT_SOURCE_DIR) / "tests/backend/cudnn_devices";
  int devices = 0;
  if (std::filesystem::is_directory(dir))
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.path().extension() != ".json") continue;
      ++devices;
      std::ifstream in(entry.path());
      std::stringstream json;
      json << in.rdbuf();
      const CudnnDescriptor props = cudnn_device_properties(*api, json.str());
      for (const bool backward : {false, true}) {
        std::string variant, why;
        const auto plan = plan_sdpa(*api, nullptr, &props, backward,
                                    {32, 1024, 20, 5, 64, 0.125f}, &variant, &why);
        EXPECT_NE(plan, nullptr) << entry.path().filename() << (backward ? " backward" : " forward")
                                 << ": " << why;
      }
    }
  if (devices == 0) GTEST_SKIP() << "no saved device properties in " << dir;
}

}  // namespace
}  // namespace hessgpt::cuda

#else
TEST(CudnnSdpaGraphs, BuiltWithoutCudnn) { GTEST_SKIP() << "built without cuDNN's headers"; }
#endif
