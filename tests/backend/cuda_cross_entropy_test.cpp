// The fused soft-cap + cross-entropy kernels (every HESSGPT_CE_KERNEL form)
// against the CPU backend, and the one-pass kernel against the two-pass one
// bit for bit. Skipped where no CUDA device is available.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/bf16.h"
#include "core/error.h"
#include "cuda_ops_fixture.h"

namespace hessgpt {
namespace {

using namespace cuda_test;

// Vocabularies held in registers (an odd width; 32008, the Mistral one) and
// one past kCrossEntropyHeld (32768), which the two-sweep kernel takes.
TEST_F(CudaOps, SoftcapAndFusedCrossEntropy) {
  // Every kernel: a block per row, a warp per row, blocks per row segment in
  // two passes (split) and in one (cluster, the default; 32769 is 9
  // segments, which it leaves to split); the widths cover 16-byte and scalar
  // accesses.
  for (const char* kernel : {"rows", "warp", "split", "cluster"})
  for (const int64_t v : {int64_t{32008 % 1001}, int64_t{32008}, int64_t{32769}}) {
    const testing::ScopedEnv choice("HESSGPT_CE_KERNEL", kernel);
    const int64_t r = 9;
    std::vector<int32_t> targets = {3, -100, static_cast<int32_t>(v - 1), 0, 5, -100, 17, 200, 1};
    for (double cap : {30.0, 2.0, 0.0}) {
      for (double dscale : {0.0, 1.0 / 7.0}) {
        const Vec z = random_floats(r * v, 31, 4.0);
        auto run = [&](Backend& be) {
          const Tensor logits = on(be, z, {r, v});
          const Tensor losses = on(be, poison(r), {r});
          be.softcap_cross_entropy(logits, losses, ids_on(be, targets), cap, dscale);
          Outputs out{{"losses", host(be, losses)}};
          if (dscale != 0.0) out.emplace_back("dlogits", host(be, logits));
          const Tensor capped = on(be, z, {r, v});
          be.softcap_forward(capped, cap);
          out.emplace_back("softcap", host(be, capped));
          return out;
        };
        expect_outputs_close(run(*gpu_), run(cpu_), 1e-5,
                             std::string(kernel) + " cross-entropy v=" + std::to_string(v) + " cap=" +
                                 std::to_string(cap) + " dscale=" + std::to_string(dscale));
      }
    }
  }
}

TEST_F(CudaOps, CrossEntropyRejectsOutOfRangeTargets) {
  for (const char* kernel : {"rows", "warp", "split", "cluster"}) {
    const testing::ScopedEnv choice("HESSGPT_CE_KERNEL", kernel);
    const Tensor logits = on(*gpu_, random_floats(3 * 11, 32), {3, 11});
    const Tensor losses = on(*gpu_, Vec(3), {3});
    try {
      gpu_->softcap_cross_entropy(logits, losses, ids_on(*gpu_, {1, -100, 11}), 30.0, 1.0);
      FAIL() << kernel << ": target 11 accepted with a vocabulary of 11";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("target id 11 at position 2"), std::string::npos)
          << kernel << ": " << e.what();
    }
  }
}

// The one-pass (cluster) kernel does the split kernels' arithmetic in their
// order: the same losses and gradients bit for bit, from F32 logits in place
// and into BF16, from BF16 logits in place, with ignored rows, at 8 segments
// a row (16-byte accesses) and at one (scalar).
TEST_F(CudaOps, CrossEntropyInOnePassEqualsTwoPasses) {
  const auto bits = [](const Vec& v) {
    std::vector<uint32_t> b(v.size());
    std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
    return b;
  };
  for (const int64_t v : {int64_t{979}, int64_t{32008}}) {
    const int64_t r = 64;
    std::vector<int32_t> targets(static_cast<size_t>(r));
    for (int64_t i = 0; i < r; ++i)
      targets[i] = i % 7 == 3 ? -100 : static_cast<int32_t>((i * 7919) % v);
    const Vec z = random_floats(r * v, 93, 4.0);
    std::vector<uint16_t> z16(z.size());
    for (size_t i = 0; i < z.size(); ++i) z16[i] = float_to_bf16(z[i]);
    for (const double dscale : {0.0, 1.0 / 3.0}) {
      struct Result {
        Vec loss_f32, grad_f32, loss_into, loss_bf16;
        std::vector<uint16_t> grad_into, grad_bf16;
      };
      const auto run = [&](const char* kernel) {
        const testing::ScopedEnv choice("HESSGPT_CE_KERNEL", kernel);
        Result out;
        const Tensor logits = on(*gpu_, z, {r, v}), losses = on(*gpu_, poison(r), {r});
        const Tensor ids = ids_on(*gpu_, targets);
        const Tensor into = on16(*gpu_, std::vector<uint16_t>(z.size(), 0xffff), {r, v});
        gpu_->softcap_cross_entropy_into(into, logits, losses, ids, 30.0, dscale);
        out.loss_into = host(*gpu_, losses);
        out.grad_into = bits_of(*gpu_, into);
        gpu_->softcap_cross_entropy(logits, losses, ids, 30.0, dscale);
        out.loss_f32 = host(*gpu_, losses);
        out.grad_f32 = host(*gpu_, logits);
        const Tensor l16 = on16(*gpu_, z16, {r, v});
        gpu_->softcap_cross_entropy_into(l16, l16, losses, ids, 30.0, dscale);
        out.loss_bf16 = host(*gpu_, losses);
        out.grad_bf16 = bits_of(*gpu_, l16);
        return out;
      };
      const Result one = run("cluster"), two = run("split");
      const std::string what = "v=" + std::to_string(v) + " dscale=" + std::to_string(dscale);
      EXPECT_EQ(bits(one.loss_f32), bits(two.loss_f32)) << what << ": f32 losses";
      EXPECT_EQ(bits(one.grad_f32), bits(two.grad_f32)) << what << ": f32 dlogits in place";
      EXPECT_EQ(bits(one.loss_into), bits(two.loss_into)) << what << ": losses, into bf16";
      EXPECT_EQ(one.grad_into, two.grad_into) << what << ": bf16 dlogits";
      EXPECT_EQ(bits(one.loss_bf16), bits(two.loss_bf16)) << what << ": bf16 logits' losses";
      EXPECT_EQ(one.grad_bf16, two.grad_bf16) << what << ": bf16 dlogits in place";
    }
  }
}

}  // namespace
}  // namespace hessgpt
