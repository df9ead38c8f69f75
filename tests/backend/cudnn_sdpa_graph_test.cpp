// cuDNN's fused-attention graphs, checked where no GPU is needed: every
// tensor and operation descriptor finalises (cuDNN checks each product's
// dims against its operands', so the transposed views and the GQA head
// broadcast must agree), the version gates, and the backward's buffers.
// Whether cuDNN's engine takes the whole graph, and its numbers, are the
// GPU test's (cuda_cudnn_attention_test.cpp).
#include <gtest/gtest.h>

#ifdef HESSGPT_HAVE_CUDNN
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

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

// The most engine configs cuDNN offers for a pass over the variants: those
// that pass their engines' support checks for the graph on that device.
int64_t engine_configs(const CudnnApi& api, const CudnnDescriptor& device, bool backward,
                       const CudnnAttnShape& s) {
  int64_t most = 0;
  for (const CudnnSdpaVariant& v : cudnn_sdpa_variants(backward)) {
    CudnnGraph g(api, nullptr, &device);
    if (backward) build_sdpa_backward(g, s, v);
    else build_sdpa_forward(g, s, v);
    most = std::max(most, g.engine_configs());
  }
  return most;
}

// In a child process: the engines' support checks load the CUDA driver, and
// where none is installed the toolkit's stub stands in (it answers no call:
// enough for the checks, which compile nothing). The stub must never stand in
// for the driver in the process that runs the GPU tests.
[[noreturn]] void check_saved_device(const std::string& json) {
  if (!dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL) &&
      !dlopen(HESSGPT_CUDA_STUBS_DIR "/libcuda.so", RTLD_NOW | RTLD_GLOBAL)) {
    std::fprintf(stderr, "no CUDA driver and no stub in %s\n", HESSGPT_CUDA_STUBS_DIR);
    std::exit(2);
  }
  const CudnnApi& api = *cudnn();
  const CudnnDescriptor device = cudnn_device_properties(api, json);
  const CudnnAttnShape model1{32, 1024, 20, 5, 64, 0.125f}, model2{32, 1024, 16, 4, 64, 0.125f};
  CudnnAttnShape odd = model1;
  odd.d = 100;  // no engine takes a head dim that is not a multiple of 8
  bool all = true;
  for (const auto& [name, s] : {std::pair{"model1", model1}, std::pair{"model2", model2}}) {
    const int64_t forward = engine_configs(api, device, false, s);
    const int64_t backward = engine_configs(api, device, true, s);
    std::fprintf(stderr, "%s: engine configs forward %ld, backward %ld\n", name,
                 static_cast<long>(forward), static_cast<long>(backward));
    all = all && forward > 0 && backward > 0;
  }
  // Each config names its engine and knobs (the log's list, for choosing one).
  CudnnGraph named(api, nullptr, &device);
  build_sdpa_backward(named, model1, cudnn_sdpa_variants(true).front());
  for (int64_t i = 0; i < named.engine_configs(); ++i) {
    const std::string text = named.config_text(i);
    std::fprintf(stderr, "backward config %ld: %s\n", static_cast<long>(i), text.c_str());
    all = all && text.rfind("engine ", 0) == 0 && text.find("KERNEL_CFG") != std::string::npos;
  }
  const int64_t control = engine_configs(api, device, false, odd);
  std::fprintf(stderr, "d=100 forward (none expected): %ld\n", static_cast<long>(control));
  std::exit(all && control == 0 ? 0 : 1);
}

// The device properties in tests/backend/cudnn_devices/ (a GPU's, as the GPU
// test writes them, or written from a GPU's published figures) let cuDNN's
// engines judge the attention graphs for that GPU here: every CI run checks
// that its fused-attention engines still take them, at model1's and model2's shapes, and
// take no graph with a head dim they cannot (so the check can fail).
TEST(CudnnSdpaGraphs, EnginesTakeTheGraphsOnSavedDevices) {
  CUDNN_OR_SKIP(api);
  if (api->get_version() < 90800) GTEST_SKIP() << "device properties need cuDNN 9.8";
  if (!std::filesystem::exists(HESSGPT_CUDA_STUBS_DIR "/libcuda.so") &&
      !dlopen("libcuda.so.1", RTLD_LAZY | RTLD_GLOBAL))
    GTEST_SKIP() << "neither a CUDA driver nor the toolkit's stub " << HESSGPT_CUDA_STUBS_DIR;
  const std::filesystem::path dir =
      std::filesystem::path(HESSGPT_SOURCE_DIR) / "tests/backend/cudnn_devices";
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process, not a fork of this one
  int devices = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    ++devices;
    std::ifstream in(entry.path());
    std::stringstream json;
    json << in.rdbuf();
    EXPECT_EXIT(check_saved_device(json.str()), ::testing::ExitedWithCode(0), "backward config 0: engine [0-9]+ \\(")
        << entry.path().filename();
  }
  if (devices == 0) GTEST_SKIP() << "no saved device properties in " << dir;
}

}  // namespace
}  // namespace hessgpt::cuda

#else
TEST(CudnnSdpaGraphs, BuiltWithoutCudnn) { GTEST_SKIP() << "built without cuDNN's headers"; }
#endif
