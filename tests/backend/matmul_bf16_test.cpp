// BF16 matrix products (oneDNN): close to FP32 within BF16's 8-bit mantissa,
// for every transpose combination and with accumulation into C; and a model
// trained with them learns like the FP32 one.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/matmul_bf16.h"
#include "common/test_util.h"
#include "core/rng.h"
#include "model/model.h"
#include "train/optimizer.h"

namespace hessgpt {
namespace {

std::vector<float> random_floats(size_t n, uint64_t seed) {
  const auto d = hessgpt::testing::random_vector(n, seed);
  return std::vector<float>(d.begin(), d.end());
}

TEST(Bf16, RoundingToNearestEven) {
  const float in[] = {1.0f, 1.00390625f /* halfway, even stays */, 1.01171875f /* halfway, odd rounds up */,
                      -2.5f, std::nanf("")};
  uint16_t out[5];
  cpu::to_bf16(out, in, 5);
  EXPECT_EQ(out[0], 0x3f80);
  EXPECT_EQ(out[1], 0x3f80);
  EXPECT_EQ(out[2], 0x3f82);
  EXPECT_EQ(out[3], 0xc020);
  EXPECT_EQ(out[4] & 0x7f80, 0x7f80);
  EXPECT_NE(out[4] & 0x007f, 0);  // still a NaN
}

TEST(Bf16, MatmulCloseToFp32ForAllTransposes) {
  if (!cpu::Bf16Matmul::compiled()) GTEST_SKIP() << "built without oneDNN";
  CpuBackend fp32(2), bf16(2);
  bf16.set_matmul_precision(MatmulPrecision::BF16);
  const int64_t m = 37, n = 53, k = 300;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (float beta : {0.0f, 1.0f}) {
        auto a = random_floats(m * k, 1), b = random_floats(k * n, 2), c0 = random_floats(m * n, 3);
        auto c1 = c0;
        const Tensor at(a.data(), DType::F32, Device::CPU, {ta ? k : m, ta ? m : k});
        const Tensor bt(b.data(), DType::F32, Device::CPU, {tb ? n : k, tb ? k : n});
        fp32.matmul(Tensor(c0.data(), DType::F32, Device::CPU, {m, n}), at, ta, bt, tb, 1, beta);
        bf16.matmul(Tensor(c1.data(), DType::F32, Device::CPU, {m, n}), at, ta, bt, tb, 1, beta);
        double diff = 0, scale = 0;
        for (size_t i = 0; i < c0.size(); ++i) {
          diff = std::max(diff, std::abs(static_cast<double>(c0[i]) - c1[i]));
          scale = std::max(scale, std::abs(static_cast<double>(c0[i])));
        }
        EXPECT_LT(diff / scale, 2e-2) << "ta " << ta << " tb " << tb << " beta " << beta;
        EXPECT_GT(diff / scale, 1e-6) << "no BF16 rounding visible: the FP32 path ran";
      }
}

TEST(Bf16, TrainingMatchesFp32Closely) {
  if (!cpu::Bf16Matmul::compiled()) GTEST_SKIP() << "built without oneDNN";
  auto train = [](MatmulPrecision precision) {
    CpuBackend be(2);
    be.set_matmul_precision(precision);
    Model model(preset_config("tiny"), be);
    model.init_random(42);
    AdamWConfig oc;
    oc.weight_decay = 0;
    AdamW opt(model, oc);
    Rng rng(3);
    std::vector<int32_t> seq(65);
    for (auto& id : seq) id = static_cast<int32_t>(rng.below(512));
    const std::vector<int32_t> ids(seq.begin(), seq.end() - 1), tg(seq.begin() + 1, seq.end());
    std::vector<double> losses;
    for (int step = 0; step < 120; ++step) {
      model.zero_grads();
      losses.push_back(model.forward_backward(ids.data(), tg.data(), 1, 64, 1.0 / 64).mean());
      opt.step(1e-2);
    }
    return losses;
  };
  const auto f = train(MatmulPrecision::FP32), b = train(MatmulPrecision::BF16);
  EXPECT_NEAR(b[0], f[0], 1e-2 * f[0]);
  EXPECT_LT(b.back(), 0.2);
  EXPECT_LT(f.back(), 0.2);
}

}  // namespace
}  // namespace hessgpt
