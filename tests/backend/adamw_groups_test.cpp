// adamw_step_groups: each group updated as adamw_step updates it (its decay,
// or none), elements outside every group untouched, groups outside the
// buffers refused.
#include <gtest/gtest.h>

#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "common/test_util.h"

namespace hessgpt {
namespace {

std::vector<float> floats(size_t n, uint64_t seed, double scale) {
  const std::vector<double> d = testing::random_vector(n, seed, scale);
  return {d.begin(), d.end()};
}

TEST(AdamWGroups, EachGroupAsItsOwnStep) {
  CpuBackend be(2);
  const int64_t n = 1000;
  const std::vector<AdamWGroup> groups = {{0, 300, true}, {300, 7, false}, {307, 0, true},
                                          {400, 600, true}};  // 307..399 in no group
  AdamWParams hp;
  hp.lr = 1e-2;
  hp.weight_decay = 0.1;
  hp.step = 3;
  hp.grad_scale = 0.5;
  struct State {
    std::vector<float> p, g, m, v;
  };
  State start{floats(n, 1, 1.0), floats(n, 2, 1.0), floats(n, 3, 0.1), floats(n, 4, 0.01)};
  for (float& x : start.v) x = x * x;  // second moments are not negative
  const auto tensor = [&](std::vector<float>& x, int64_t offset, int64_t count) {
    return Tensor(x.data() + offset, DType::F32, Device::CPU, {count});
  };
  State grouped = start, separate = start;
  be.adamw_step_groups(tensor(grouped.p, 0, n), tensor(grouped.g, 0, n), tensor(grouped.m, 0, n),
                       tensor(grouped.v, 0, n), groups, hp);
  for (const AdamWGroup& gr : groups) {
    if (gr.count == 0) continue;
    AdamWParams own = hp;
    own.weight_decay = gr.decays ? hp.weight_decay : 0.0;
    be.adamw_step(tensor(separate.p, gr.offset, gr.count), tensor(separate.g, gr.offset, gr.count),
                  tensor(separate.m, gr.offset, gr.count), tensor(separate.v, gr.offset, gr.count),
                  own);
  }
  EXPECT_EQ(grouped.p, separate.p);
  EXPECT_EQ(grouped.m, separate.m);
  EXPECT_EQ(grouped.v, separate.v);
  for (size_t i = 307; i < 400; ++i) EXPECT_EQ(grouped.p[i], start.p[i]) << i;
  EXPECT_NE(grouped.p[0], start.p[0]);

  const std::vector<AdamWGroup> outside = {{900, 101, true}};
  EXPECT_THROW(be.adamw_step_groups(tensor(grouped.p, 0, n), tensor(grouped.g, 0, n),
                                    tensor(grouped.m, 0, n), tensor(grouped.v, 0, n), outside, hp),
               Error);
  EXPECT_THROW(be.adamw_step_groups(tensor(grouped.p, 0, n), tensor(grouped.g, 0, n - 1),
                                    tensor(grouped.m, 0, n), tensor(grouped.v, 0, n), groups, hp),
               Error);
}

}  // namespace
}  // namespace hessgpt
