// The whole model's backward against finite differences, in double precision
// on the tiny shape: YaRN off and on, QK-Norm on and off, GQA 4:2.
// Tolerance: the summed loss (~100) carries ~1e-14 rounding, so with h = 1e-5
// the difference quotient is good to ~1e-9 absolute; 1e-5 relative with a
// 1e-3 floor (1e-8 absolute) leaves margin, while a wrong gradient is off by O(1).
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "common/fd_check.h"
#include "common/test_util.h"
#include "core/rng.h"
#include "model/model.h"

namespace hessgpt {
namespace {

struct Case {
  const char* name;
  bool yarn;
  bool qk_norm;
};

class ModelGrad : public ::testing::TestWithParam<Case> {};

TEST_P(ModelGrad, EveryParameterMatchesFiniteDifferences) {
  const Case tc = GetParam();
  ModelConfig c = preset_config("tiny");
  c.qk_norm = tc.qk_norm;
  c.logit_softcap = 5.0;  // small cap so soft-capping is far from the identity
  if (tc.yarn) c.rope_scaling = YarnConfig{};
  CpuBackend be(2);
  Model model(c, be, DType::F64);
  // Weights larger than the training init, so every op works in its nonlinear range.
  Rng rng(7);
  std::vector<float> w(static_cast<size_t>(model.layout().total));
  for (auto& x : w) x = static_cast<float>(rng.normal() * 0.3);
  for (const ParamInfo& p : model.layout().params)
    if (p.kind == ParamKind::Norm)
      for (int64_t i = 0; i < p.numel; ++i) w[p.offset + i] = 1.0f + 0.3f * w[p.offset + i];
  model.set_params_host(w);

  const int64_t b = 2, t = 12;
  std::vector<int32_t> ids(b * t), targets(b * t);
  for (int64_t i = 0; i < b * t; ++i) {
    ids[i] = static_cast<int32_t>(rng.below(512));
    targets[i] = i % 5 == 3 ? -100 : static_cast<int32_t>(rng.below(512));
  }
  model.zero_grads();
  const LossSum fb = model.forward_backward(ids.data(), targets.data(), b, t, 1.0);
  const LossSum ev = model.evaluate(ids.data(), targets.data(), b, t);
  EXPECT_NEAR(fb.sum, ev.sum, 1e-10);
  EXPECT_EQ(fb.count, b * t - 5);  // every 5th target from index 3 ignored

  std::vector<double> grads(static_cast<size_t>(model.layout().total));
  be.copy_to_host(grads.data(), model.grads());
  auto* params = model.params().as<double>();
  auto loss = [&] { return model.evaluate(ids.data(), targets.data(), b, t).sum; };
  for (const ParamInfo& p : model.layout().params)
    hessgpt::testing::expect_fd_match(params + p.offset, static_cast<size_t>(p.numel),
                                      grads.data() + p.offset, loss, p.name, 12, 1e-5, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Tiny, ModelGrad,
                         ::testing::Values(Case{"plain", false, true}, Case{"yarn", true, true},
                                           Case{"no_qk_norm", false, false}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace hessgpt
