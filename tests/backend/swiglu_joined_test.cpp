// SwiGLU over gate and up side by side (Backend::swiglu_*_joined): the values
// of the separate ops on the two halves, in every storage mix the model uses,
// on the CPU (bit for bit) and on the GPU (against its separate kernels, bit
// for bit, and against the CPU). Widths: 3416 (model1's padded FFN: 16-byte
// packs on the GPU) and 13 (one value at a time).
#include <gtest/gtest.h>

#include <list>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/bf16.h"
#include "cuda_ops_fixture.h"

namespace hessgpt {
namespace {

using namespace cuda_test;

// Storage of each operand: gate|up, out, dout, dgate|up.
struct Mix {
  bool gate_up16, out16, dout16, grads16;
  std::string name() const {
    return std::string(gate_up16 ? "bf16" : "f32") + " gate|up, " + (out16 ? "bf16" : "f32") +
           " out, " + (dout16 ? "bf16" : "f32") + " dout, " + (grads16 ? "bf16" : "f32") + " grads";
  }
};
const Mix kMixes[] = {{false, false, false, false}, {true, false, false, false},
                      {true, true, false, true}, {true, true, true, true}};

// Tensors on one backend, F32 or BF16 (the values rounded), read back as F32.
class Operands {
 public:
  explicit Operands(Backend& be) : be_(be) {}
  Tensor put(const Vec& values, bool bf16, std::initializer_list<int64_t> dims) {
    const size_t n = values.size();
    buffers_.emplace_back(&be_, n * (bf16 ? sizeof(uint16_t) : sizeof(float)));
    const Tensor t = buffers_.back().tensor(bf16 ? DType::BF16 : DType::F32, dims);
    if (bf16) be_.copy_from_host(t, rounded(values).data());
    else be_.copy_from_host(t, values.data());
    return t;
  }
  Vec get(const Tensor& t) {
    if (t.dtype == DType::F32) {
      Vec v(static_cast<size_t>(t.numel()));
      be_.copy_to_host(v.data(), t);
      return v;
    }
    std::vector<uint16_t> b(static_cast<size_t>(t.numel()));
    be_.copy_to_host(b.data(), t);
    return widened(b);
  }

 private:
  Backend& be_;
  std::list<Buffer> buffers_;
};

// [rows, 2w] as its two [rows, w] halves.
std::pair<Vec, Vec> halves(const Vec& joined, int64_t rows, int64_t w) {
  Vec a, b;
  for (int64_t r = 0; r < rows; ++r) {
    a.insert(a.end(), joined.begin() + r * 2 * w, joined.begin() + r * 2 * w + w);
    b.insert(b.end(), joined.begin() + r * 2 * w + w, joined.begin() + (r + 1) * 2 * w);
  }
  return {a, b};
}

// out, dgate and dup from the joined ops (joined = true) or the separate ones.
Outputs swiglu(Backend& be, const Mix& m, int64_t rows, int64_t w, bool joined) {
  Operands t(be);
  const Vec gate_up = random_floats(static_cast<size_t>(rows * 2 * w), 7, 3.0);
  const Vec dout_values = random_floats(static_cast<size_t>(rows * w), 8);
  const Vec poison(static_cast<size_t>(rows * 2 * w), -7.0f);
  const Tensor out = t.put(Vec(poison.begin(), poison.begin() + rows * w), m.out16, {rows, w});
  const Tensor dout = t.put(dout_values, m.dout16, {rows, w});
  if (joined) {
    const Tensor gu = t.put(gate_up, m.gate_up16, {rows, 2 * w});
    const Tensor dgu = t.put(poison, m.grads16, {rows, 2 * w});
    be.swiglu_forward_joined(out, gu);
    be.swiglu_backward_joined(dgu, dout, gu);
    const auto [dg, du] = halves(t.get(dgu), rows, w);
    return {{"out", t.get(out)}, {"dgate", dg}, {"dup", du}};
  }
  const auto [g, u] = halves(gate_up, rows, w);
  const Tensor gate = t.put(g, m.gate_up16, {rows, w}), up = t.put(u, m.gate_up16, {rows, w});
  const Vec poison_half(poison.begin(), poison.begin() + rows * w);
  const Tensor dg = t.put(poison_half, m.grads16, {rows, w});
  const Tensor du = t.put(poison_half, m.grads16, {rows, w});
  be.swiglu_forward(out, gate, up);
  be.swiglu_backward(dg, du, dout, gate, up);
  return {{"out", t.get(out)}, {"dgate", t.get(dg)}, {"dup", t.get(du)}};
}

void expect_same(const Outputs& got, const Outputs& want, const std::string& what) {
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(got[i].second, want[i].second) << what << ": " << want[i].first;
}

TEST(SwigluJoined, MatchesTheSeparateOpsOnTheCpu) {
  CpuBackend be(2);
  for (const Mix& m : kMixes)
    for (const int64_t w : {int64_t{3416}, int64_t{13}})
      expect_same(swiglu(be, m, 5, w, true), swiglu(be, m, 5, w, false),
                  m.name() + ", width " + std::to_string(w));
}

TEST(SwigluJoined, RejectsHalvesThatDoNotFit) {
  CpuBackend be(1);
  Operands t(be);
  const Tensor out = t.put(Vec(12), false, {3, 4}), gu = t.put(Vec(3 * 9), false, {3, 9});
  const Tensor gu_rows = t.put(Vec(4 * 8), false, {4, 8});
  EXPECT_THROW(be.swiglu_forward_joined(out, gu), Error);
  EXPECT_THROW(be.swiglu_forward_joined(out, gu_rows), Error);
  EXPECT_THROW(be.swiglu_backward_joined(gu, out, gu_rows), Error);
  const Tensor gu16 = t.put(Vec(3 * 8), false, {3, 8}), dout16 = t.put(Vec(12), true, {3, 4});
  EXPECT_THROW(be.swiglu_backward_joined(gu16, dout16, gu16), Error) << "BF16 dout, F32 gate|up";
}

// On the GPU the joined kernels are the separate ones with another index
// map: the same arithmetic, so the same bits; and the CPU's values to F32
// rounding of expf (1e-6, as the separate ops' test).
TEST_F(CudaOps, SwigluJoinedMatchesTheSeparateOpsAndTheCpu) {
  for (const Mix& m : kMixes) {
    for (const int64_t w : {int64_t{3416}, int64_t{13}}) {
      const std::string what = m.name() + ", width " + std::to_string(w);
      const Outputs joined = swiglu(*gpu_, m, 7, w, true);
      expect_same(joined, swiglu(*gpu_, m, 7, w, false), what);
      expect_outputs_close(joined, swiglu(cpu_, m, 7, w, true), 1e-6, what);
    }
  }
}

}  // namespace
}  // namespace hessgpt
