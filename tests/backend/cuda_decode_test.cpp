// The CUDA decoding step (decode.cu: the rows kernel, the split attention
// whose last block per head merges) against the CPU's decode_attention, which
// decode_attention_test checks against the definitions; and CUDA graph
// recordings (Backend::record) replaying a step at positions other than the
// recorded one (each replay must find the merge's counters back at zero).
#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "cuda_ops_fixture.h"
#include "decode_attention_case.h"

namespace hessgpt::cuda_test {
namespace {

using testing::DecodeCase;
using testing::DecodeInputs;
using testing::DecodeTensors;

// Both backends' outputs of one step: the split softmax and the merge add in
// another order than the CPU's tiles (F32 either way), hence 1e-5.
void expect_same_step(const DecodeTensors& got, const DecodeTensors& want, const DecodeInputs& in,
                      int64_t pos, const std::string& what) {
  expect_close(got.host(got.step.q_out), want.host(want.step.q_out), 1e-5, what + " q_out");
  expect_close(got.cache_row(got.step.k_cache, pos), want.cache_row(want.step.k_cache, pos), 1e-5,
               what + " k row");
  EXPECT_EQ(got.cache_row(got.step.v_cache, pos), want.cache_row(want.step.v_cache, pos))
      << what << " v row";
  expect_close(got.host(got.step.out), want.host(want.step.out), 1e-5, what + " out");
  EXPECT_TRUE(got.other_rows_unchanged(in, pos)) << what;
}

TEST_F(CudaOps, DecodeAttentionMatchesTheCpu) {
  // Positions on both sides of the key runs' edges (kDecodeKeys = 32); model1's
  // heads; a head dim that leaves lanes idle (80), the widest (128), one head
  // of keys for every query head, and RoPE without QK-Norm.
  for (const DecodeCase& c : {DecodeCase{8, 2, 64, 130, true}, DecodeCase{16, 4, 80, 70, true},
                              DecodeCase{4, 1, 128, 40, true}, DecodeCase{6, 6, 32, 65, false},
                              DecodeCase{20, 5, 64, 300, true}}) {
    for (int64_t pos : {0, 1, 31, 32, 33, 64, 129, 299}) {
      if (pos >= c.positions) continue;
      const DecodeInputs in = testing::decode_inputs(c, 100 + static_cast<uint64_t>(pos));
      DecodeTensors want(cpu_, c, in, pos), got(*gpu_, c, in, pos);
      cpu_.decode_attention(want.step);
      gpu_->decode_attention(got.step);
      expect_same_step(got, want, in, pos, c.name() + " at " + std::to_string(pos));
    }
  }
}

TEST_F(CudaOps, DecodeAttentionOutsideTheCacheWritesNothing) {
  if (gpu_->device() != Device::CUDA)
    GTEST_SKIP() << "the CPU reads the position back and refuses it (decode_attention_test)";
  const DecodeCase c{4, 2, 64, 40, true};
  const DecodeInputs in = testing::decode_inputs(c, 5);
  for (int64_t pos : {int64_t{40}, int64_t{-1}}) {
    DecodeTensors t(*gpu_, c, in, pos);
    gpu_->decode_attention(t.step);
    for (float x : t.host(t.step.out)) ASSERT_TRUE(std::isnan(x)) << "position " << pos;
    EXPECT_TRUE(t.other_rows_unchanged(in, -1)) << "position " << pos;
  }
}

// One recording of a step, replayed with the position changed on the device
// in between: each replay matches the CPU's step at that position.
TEST_F(CudaOps, RecordedDecodeStepReplaysAtOtherPositions) {
  const DecodeCase c{8, 2, 64, 100, true};
  const DecodeInputs in = testing::decode_inputs(c, 7);
  DecodeTensors got(*gpu_, c, in, 3);
  gpu_->decode_attention(got.step);  // unrecorded first: the scratch grows here
  std::unique_ptr<RecordedOps> recorded = gpu_->record([&] { gpu_->decode_attention(got.step); });
  if (gpu_->device() != Device::CUDA) {
    EXPECT_EQ(recorded, nullptr) << "the CPU backend does not record";
    GTEST_SKIP() << "recording is CUDA's";
  }
  ASSERT_NE(recorded, nullptr);
  for (int64_t pos : {int64_t{0}, int64_t{31}, int64_t{32}, int64_t{77}, int64_t{99}}) {
    // The caches are the inputs again (an earlier replay wrote a row).
    DecodeTensors want(cpu_, c, in, pos);
    gpu_->copy_from_host(got.step.k_cache, in.k_cache.data());
    gpu_->copy_from_host(got.step.v_cache, in.v_cache.data());
    got.set_position(pos);
    ASSERT_TRUE(recorded->replay());
    cpu_.decode_attention(want.step);
    expect_same_step(got, want, in, pos, "replayed at " + std::to_string(pos));
  }
  // A larger cache grows the step's scratch: the recording is stale now.
  const DecodeCase big{8, 2, 64, 4096, true};
  DecodeTensors larger(*gpu_, big, testing::decode_inputs(big, 8), 4000);
  gpu_->decode_attention(larger.step);
  EXPECT_FALSE(recorded->replay());
}

TEST_F(CudaOps, OpsThatReadBackAreNotRecorded) {
  if (gpu_->device() != Device::CUDA) GTEST_SKIP() << "recording is CUDA's";
  const Tensor x = on(*gpu_, Vec{1.0f, 2.0f, 3.0f}, {3});
  double sum = 0.0;
  EXPECT_EQ(gpu_->record([&] { sum = gpu_->sum_squares(x); }), nullptr);
  // The stream works on after the failed capture.
  gpu_->scale_inplace(x, 2.0);
  EXPECT_EQ(host(*gpu_, x), (Vec{2.0f, 4.0f, 6.0f}));
  EXPECT_DOUBLE_EQ(gpu_->sum_squares(x), 56.0);
  const testing::ScopedEnv off("HESSGPT_CUDA_GRAPHS", "0");
  EXPECT_EQ(gpu_->record([&] { gpu_->scale_inplace(x, 2.0); }), nullptr);
  EXPECT_EQ(host(*gpu_, x), (Vec{2.0f, 4.0f, 6.0f})) << "declined: nothing ran";
}

// Decoding's lookup of a token checked on the host: the same rows as the
// checked op, recorded and replayed with another id uploaded in between.
TEST_F(CudaOps, PrecheckedEmbeddingIsRecordedAndMatchesTheCheckedOne) {
  const int64_t v = 50, c = 70;
  const Vec table_values = random_floats(v * c, 3);
  const Tensor table = on(*gpu_, table_values, {v, c});
  const Tensor ids = ids_on(*gpu_, {17});
  const auto fresh = [&] { return on(*gpu_, poison(static_cast<size_t>(c)), {1, c}); };
  const Tensor out = fresh(), want = fresh();
  auto row = [&](int32_t id) {
    return Vec(table_values.begin() + id * c, table_values.begin() + (id + 1) * c);
  };
  gpu_->embedding_forward_prechecked(out, ids, table);
  gpu_->embedding_forward(want, ids, table);
  EXPECT_EQ(host(*gpu_, out), host(*gpu_, want));
  EXPECT_EQ(host(*gpu_, out), row(17));
  std::unique_ptr<RecordedOps> recorded =
      gpu_->record([&] { gpu_->embedding_forward_prechecked(out, ids, table); });
  if (gpu_->device() != Device::CUDA) GTEST_SKIP() << "recording is CUDA's";
  ASSERT_NE(recorded, nullptr) << "the lookup read something back";
  for (int32_t id : {0, 49, 3}) {
    gpu_->copy_from_host(ids, &id);
    ASSERT_TRUE(recorded->replay());
    EXPECT_EQ(host(*gpu_, out), row(id)) << "id " << id;
  }
  // An id the caller failed to check writes nothing and throws nothing; the
  // checked op still reports its own bad ids afterwards.
  const Tensor untouched = fresh();
  gpu_->embedding_forward_prechecked(untouched, ids_on(*gpu_, {50}), table);
  for (float x : host(*gpu_, untouched)) ASSERT_TRUE(std::isnan(x));
  EXPECT_THROW(gpu_->embedding_forward(want, ids_on(*gpu_, {-1}), table), Error);
  gpu_->embedding_forward(want, ids, table);
}

}  // namespace
}  // namespace hessgpt::cuda_test
