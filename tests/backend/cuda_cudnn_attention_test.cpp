// cuDNN's fused attention (HESSGPT_ATTENTION=cudnn) against the CPU backend:
// BF16 q, k, v and out as --bf16-activations stores them, the F32 lse, and
// the backward's F32 gradients. Skips where there is no GPU or no libcudnn;
// fails where cuDNN is there but builds no plan, so a GPU run says why.
#include "backend/cuda_ops_fixture.h"

#ifdef HESSGPT_HAVE_CUDA
#include <cstdlib>
#include <fstream>

#include "backend/cuda/cuda_backend.h"
#endif
#ifdef HESSGPT_HAVE_CUDNN
#include "backend/cuda/attention_cudnn_graphs.h"
#include "backend/cuda/cudnn_api.h"
#endif

namespace hessgpt {
namespace {

using namespace cuda_test;

#ifdef HESSGPT_HAVE_CUDA
class CudnnAttention : public CudaOps {
 protected:
  void SetUp() override {
    CudaOps::SetUp();
    if (IsSkipped()) return;
    cuda_ = dynamic_cast<CudaBackend*>(gpu_.get());
    if (!cuda_) GTEST_SKIP() << "the CPU stand-in has no cuDNN";
    const std::string status = cuda_->cudnn_attention_status();
    if (status.rfind("cuDNN unavailable", 0) == 0) GTEST_SKIP() << status;
    gpu_->set_matmul_precision(MatmulPrecision::BF16);
  }

  // out, lse, dq, dk, dv: on the GPU from BF16 q, k, v (out in BF16); on the
  // CPU from the same BF16 values in F32.
  std::vector<Vec> run(Backend& be, const AttnCase& c, bool gpu) {
    const std::vector<uint16_t> q = rounded(random_floats(c.b * c.t * c.h * c.d, 71, 1.5));
    const std::vector<uint16_t> k = rounded(random_floats(c.b * c.t * c.kv * c.d, 72, 1.5));
    const std::vector<uint16_t> v = rounded(random_floats(c.b * c.t * c.kv * c.d, 73));
    const Vec dout = random_floats(q.size(), 74);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
    const auto in = [&](const std::vector<uint16_t>& x, int64_t heads) {
      return gpu ? on16(be, x, {c.b, c.t, heads, c.d}) : on(be, widened(x), {c.b, c.t, heads, c.d});
    };
    const Tensor tq = in(q, c.h), tk = in(k, c.kv), tv = in(v, c.kv);
    const Tensor out = gpu ? on16(be, std::vector<uint16_t>(q.size(), 0xffff), {c.b, c.t, c.h, c.d})
                           : on(be, poison(q.size()), {c.b, c.t, c.h, c.d});
    const Tensor lse = on(be, poison(c.b * c.h * c.t), {c.b, c.h, c.t});
    be.attention_forward(out, lse, tq, tk, tv, scale, 0);
    std::vector<Vec> r{gpu ? widened(bits_of(be, out)) : host(be, out), host(be, lse)};
    for (Vec& g : attention_grads(be, c, dout, tq, tk, tv, out, lse, scale))
      r.push_back(std::move(g));
    return r;
  }

  CudaBackend* cuda_ = nullptr;
};

// Tolerances as the tensor-core kernels' (TensorCoresUnderBf16: P and dS
// rounded to BF16 as operands), with out itself stored in BF16 here and dout
// rounded to BF16 before cuDNN reads it: another 2^-9 at most on each.
TEST_F(CudnnAttention, FusedAttentionMatchesCpu) {
  const testing::ScopedEnv engine("HESSGPT_ATTENTION", "cudnn");
  // Few shapes: cuDNN compiles its kernels for each at run time.
  const AttnCase cases[] = {{2, 128, 4, 2, 64}, {1, 256, 4, 4, 128}, {1, 384, 6, 3, 32}};
  const char* names[] = {"out", "lse", "dq", "dk", "dv"};
  int64_t expected_calls = 0;
  for (const AttnCase& c : cases) {
    const auto g = run(*gpu_, c, true), want = run(cpu_, c, false);
    expected_calls += 2;
    ASSERT_EQ(cuda_->cudnn_attention_calls(), expected_calls)
        << "cuDNN did not run t=" << c.t << " d=" << c.d << ": " << cuda_->cudnn_attention_status();
    for (size_t i = 0; i < g.size(); ++i)
      expect_close(g[i], want[i], i == 1 ? 2e-3 : 2e-2,
                   "cudnn t=" + std::to_string(c.t) + " h=" + std::to_string(c.h) +
                       " kv=" + std::to_string(c.kv) + " d=" + std::to_string(c.d) + " " + names[i]);
  }
}

// Shapes cuDNN does not take run on our kernels under the same setting:
// decoding (queries after position 0) and F32 storage.
TEST_F(CudnnAttention, OtherShapesFallBackToOurKernels) {
  const testing::ScopedEnv engine("HESSGPT_ATTENTION", "cudnn");
  const int64_t b = 1, tk = 128, tq = 4, h = 4, kv = 2, d = 64;
  const Vec q = random_floats(b * tq * h * d, 81), k = random_floats(b * tk * kv * d, 82);
  const Vec v = random_floats(b * tk * kv * d, 83);
  const auto forward = [&](Backend& be) {
    const Tensor out = on(be, poison(q.size()), {b, tq, h, d});
    const Tensor lse = on(be, poison(b * h * tq), {b, h, tq});
    be.attention_forward(out, lse, on(be, q, {b, tq, h, d}), on(be, k, {b, tk, kv, d}),
                         on(be, v, {b, tk, kv, d}), 0.125, tk - tq);
    return host(be, out);
  };
  expect_close(forward(*gpu_), forward(cpu_), 1.5e-2, "decoding under HESSGPT_ATTENTION=cudnn");
  EXPECT_EQ(cuda_->cudnn_attention_calls(), 0);
}

TEST_F(CudaOps, AttentionRejectsAnUnknownEngine) {
  if (gpu_->name() == "cpu") GTEST_SKIP() << "the CPU backend has one attention engine";
  expect_attention_rejects("HESSGPT_ATTENTION", "flash",
                           "HESSGPT_ATTENTION must be ours, fp32 or cudnn");
}

#ifdef HESSGPT_HAVE_CUDNN
// This GPU's properties in their saved (JSON) form plan both passes without
// the handle, as CI does from tests/backend/cudnn_devices/. With
// HESSGPT_CUDNN_DEVICEPROP_OUT set (gpu-check) they are written there too.
TEST_F(CudnnAttention, SavedDevicePropertiesPlanWithoutTheGpu) {
  if (cuda::cudnn()->get_version() < 90800) GTEST_SKIP() << "device properties need cuDNN 9.8";
  const std::string json = cuda_->cudnn_device_properties_json();
  ASSERT_FALSE(json.empty());
  if (const char* path = std::getenv("HESSGPT_CUDNN_DEVICEPROP_OUT")) std::ofstream(path) << json;
  const cuda::CudnnApi& api = *cuda::cudnn();
  const cuda::CudnnDescriptor props = cuda::cudnn_device_properties(api, json);
  for (const bool backward : {false, true}) {
    cuda::CudnnSdpaVariant variant;
    std::string why;
    EXPECT_NE(cuda::plan_sdpa(api, nullptr, &props, backward, {32, 1024, 20, 5, 64, 0.125f},
                              &variant, &why),
              nullptr)
        << (backward ? "backward: " : "forward: ") << why;
  }
}
#endif
#endif

}  // namespace
}  // namespace hessgpt
