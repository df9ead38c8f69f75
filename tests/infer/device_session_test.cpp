// DeviceSession (the KV-cache session written against the Backend interface)
// against the CPU DecoderSession on the same weights: on the CPU backend
// (DeviceSession suite) and on the GPU (CudaDecode suite: CUDA when present,
// the CPU stand-in with HESSGPT_CUDA_TESTS_ON_CPU=1, skipped otherwise).
// Also the session factory's device choice and its errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>

#include "common/gpu_test_backend.h"
#include "common/test_util.h"
#include "core/error.h"
#include "infer/device_session.h"
#include "infer/generate.h"
#include "infer/open_session.h"
#include "infer/perplexity.h"
#include "infer/quant_file.h"
#include "infer/session.h"
#include "infer_test_util.h"
#include "io/model_dir.h"

namespace hessgpt::infer {
namespace {

using testing::random_ids;
using testing::rel_err;
using testing::random_model;
using testing::tiny_config;

// The CPU reference and a DeviceSession over the same random weights.
struct SessionPair {
  std::unique_ptr<Backend> cpu;  // the reference's backend (outlives it)
  std::unique_ptr<DecoderSession> ref;
  std::unique_ptr<DeviceSession> dev;
};

// Greedy generation of max_new tokens from the same prompt on both sessions,
// reset first (no stop ids).
std::pair<GenerateResult, GenerateResult> greedy_pair(SessionPair& p,
                                                      const std::vector<int32_t>& prompt,
                                                      int64_t max_new) {
  GenerateOptions o;
  o.max_new = max_new;
  o.sampling.temperature = 0.0;
  o.stop_ids = {};
  p.ref->reset();
  p.dev->reset();
  GenerateResult a = generate(*p.ref, prompt, o);
  GenerateResult b = generate(*p.dev, prompt, o);
  return {std::move(a), std::move(b)};
}

// format: the matrices' (FP32 or BF16), the same on both sides.
SessionPair make_pair(const ModelConfig& c, Backend& dev_backend, uint64_t seed,
                      int64_t capacity = 0, WeightFormat format = WeightFormat::F32) {
  SessionPair p;
  p.cpu = make_backend("cpu", 2);
  auto cpu_model = random_model(c, *p.cpu, seed);
  auto dev_model = std::make_unique<Model>(c, dev_backend);
  dev_model->set_params_host(cpu_model->params_host());
  p.dev = std::make_unique<DeviceSession>(std::unique_ptr<const Model>(std::move(dev_model)),
                                          capacity, format);
  p.ref = std::make_unique<DecoderSession>(
      std::make_unique<const InferWeights>(weights_from_model(std::move(cpu_model), format)),
      *p.cpu, capacity);
  return p;
}

// Prefill `prefill` ids (every row's logits), then decode the rest one by one;
// every position's logits must match the reference's. Returns the worst error.
double expect_same_logits(Session& ref, Session& got, const std::vector<int32_t>& ids,
                          int64_t prefill, double tol) {
  const int64_t v = ref.config().vocab_size, n = static_cast<int64_t>(ids.size());
  const int64_t start = got.position();
  std::vector<float> want(static_cast<size_t>(prefill * v)), have(want.size());
  const std::span<const int32_t> head(ids.data(), static_cast<size_t>(prefill));
  const std::vector<float> want_last = [&] {
    const std::span<const float> l = ref.feed(head, want.data());
    return std::vector<float>(l.begin(), l.end());
  }();
  const std::span<const float> have_last = got.feed(head, have.data());
  double worst = 0.0;
  for (int64_t t = 0; t < prefill; ++t) {
    const double e = rel_err(have.data() + t * v, want.data() + t * v, v);
    worst = std::max(worst, e);
    EXPECT_LT(e, tol) << "prefill position " << t;
  }
  EXPECT_EQ(rel_err(have_last.data(), have.data() + (prefill - 1) * v, v), 0.0)
      << "the returned logits are the last row's";
  EXPECT_LT(rel_err(have_last.data(), want_last.data(), v), tol) << "returned prefill logits";
  for (int64_t t = prefill; t < n; ++t) {
    const std::span<const int32_t> one(&ids[static_cast<size_t>(t)], 1);
    const std::span<const float> l = ref.feed(one);
    const std::vector<float> w(l.begin(), l.end());
    const std::span<const float> h = got.feed(one);
    const double e = rel_err(h.data(), w.data(), v);
    worst = std::max(worst, e);
    EXPECT_LT(e, tol) << "decode position " << t;
  }
  EXPECT_EQ(got.position(), start + n);
  EXPECT_EQ(ref.position(), start + n);
  return worst;
}

// Runs expect_same_logits on a fresh pair and prints the worst error.
void compare_on(Backend& be, const ModelConfig& c, int64_t n, int64_t prefill, double tol,
                const char* what, WeightFormat format = WeightFormat::F32) {
  SessionPair p = make_pair(c, be, 7, 0, format);
  const double worst = expect_same_logits(*p.ref, *p.dev, random_ids(n, c.vocab_size, 11), prefill, tol);
  std::printf("%s on %s: worst relative logit difference %.2e over %lld positions\n", what,
              be.name().c_str(), worst, static_cast<long long>(n));
}

ModelConfig no_qk_norm_config() {
  ModelConfig c = tiny_config(64);
  c.qk_norm = false;
  c.intermediate_size = 177;
  return c;
}

ModelConfig yarn_config() {
  ModelConfig c = tiny_config(160);
  c.rope_scaling = YarnConfig{4.0, 40, 32.0, 1.0};
  c.validate();
  return c;
}

std::string error_of(Session& s, std::span<const int32_t> ids) {
  try {
    s.feed(ids);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Empty feeds, bad ids and a full context give the reference's messages and
// leave the cache as it was.
void expect_same_errors(Backend& be) {
  const ModelConfig c = tiny_config(16);
  SessionPair p = make_pair(c, be, 5);
  const std::vector<int32_t> bad = {1, 512}, too_long = random_ids(17, c.vocab_size, 1);
  const std::vector<int32_t> negative = {3, -2, 4};
  for (const std::vector<int32_t>* ids : {&bad, &too_long, &negative}) {
    const std::string want = error_of(*p.ref, *ids);
    EXPECT_FALSE(want.empty());
    EXPECT_EQ(error_of(*p.dev, *ids), want);
  }
  EXPECT_EQ(error_of(*p.dev, {}), error_of(*p.ref, {}));
  EXPECT_NE(error_of(*p.dev, bad).find("token id 512 at position 1 is outside the vocabulary"),
            std::string::npos);
  const std::vector<int32_t> ten = random_ids(10, c.vocab_size, 2), seven = random_ids(7, c.vocab_size, 3);
  EXPECT_EQ(p.dev->position(), 0);
  p.ref->feed(ten);
  p.dev->feed(ten);
  const std::string full = error_of(*p.dev, seven);
  EXPECT_EQ(full, error_of(*p.ref, seven));
  EXPECT_NE(full.find("context full: 10 cached + 7 new tokens exceed the 16 positions"),
            std::string::npos) << full;
  EXPECT_EQ(p.dev->position(), 10);
  // Still usable: the last six positions decode like the reference.
  expect_same_logits(*p.ref, *p.dev, random_ids(6, c.vocab_size, 4), 2, 1e-4);
  EXPECT_EQ(p.dev->position(), 16);
}

// BF16 matrices (the CPU DecoderSession's BF16 format: the embedding rows
// looked up rounded too): the same logits as that session's, half the bytes
// per token, and logits that differ from the FP32 session's (so the BF16
// copies are what the products read). An FFN of 177 pads the down
// projection's rows to 184.
void expect_bf16_matrices(Backend& be) {
  compare_on(be, tiny_config(64), 40, 9, 1e-4, "BF16 matrices", WeightFormat::BF16);
  compare_on(be, no_qk_norm_config(), 30, 7, 1e-4, "BF16, FFN 177", WeightFormat::BF16);
  const ModelConfig c = tiny_config(64);
  SessionPair f32 = make_pair(c, be, 7), bf16 = make_pair(c, be, 7, 0, WeightFormat::BF16);
  EXPECT_EQ(bf16.dev->info().format, WeightFormat::BF16);
  EXPECT_EQ(2 * bf16.dev->info().weight_bytes_per_token, f32.dev->info().weight_bytes_per_token);
  const std::vector<int32_t> ids = random_ids(12, c.vocab_size, 5);
  for (size_t i = 4; i <= ids.size(); ++i) {  // a prompt of 4, then 8 tokens one by one
    const std::span<const int32_t> t = std::span(ids).subspan(i == 4 ? 0 : i - 1, i == 4 ? 4 : 1);
    const std::span<const float> a = f32.dev->feed(t);
    const std::vector<float> x(a.begin(), a.end());
    const std::span<const float> b = bf16.dev->feed(t);
    EXPECT_GT(rel_err(b.data(), x.data(), c.vocab_size), 1e-4) << "position " << i;
  }
}

// ---- DeviceSession on the CPU backend ----------------------------------------

std::string error_text(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}


TEST(DeviceSession, Bf16MatricesMatchTheDecoderSessionsBf16) {
  auto be = make_backend("cpu", 2);
  expect_bf16_matrices(*be);
}

TEST(DeviceSession, PrefillAndDecodeMatchTheDecoderSession) {
  auto be = make_backend("cpu", 2);
  compare_on(*be, tiny_config(64), 40, 9, 1e-5, "prefill 9 + decode 31");
}

TEST(DeviceSession, DecodeFromTheFirstToken) {
  auto be = make_backend("cpu", 2);
  compare_on(*be, tiny_config(64), 16, 1, 1e-5, "decode from position 0");
}

TEST(DeviceSession, WithoutQkNormAndWithAnOddFfnWidth) {
  auto be = make_backend("cpu", 2);
  compare_on(*be, no_qk_norm_config(), 30, 7, 1e-5, "no QK-Norm, FFN 177");
}

TEST(DeviceSession, YarnPositionsBeyondTheOriginalContext) {
  auto be = make_backend("cpu", 2);
  compare_on(*be, yarn_config(), 150, 60, 1e-5, "YaRN, 150 positions");
}

TEST(DeviceSession, ChunkedPrefillAndChunkedHeadMatchOnePass) {
  const ModelConfig c = tiny_config(64);
  auto be = make_backend("cpu", 2);
  const int64_t v = c.vocab_size;
  const std::vector<int32_t> ids = random_ids(8, c.vocab_size, 3);
  SessionPair p = make_pair(c, *be, 5);
  std::vector<float> one(static_cast<size_t>(8 * v)), chunks(one.size());
  p.dev->feed(ids, one.data());
  // A fresh session over the same weights, fed 3 + 5 with a 2-row head.
  auto model = std::make_unique<Model>(c, *be);
  model->set_params_host(random_model(c, *be, 5)->params_host());
  DeviceSession s(*model, 32);
  s.set_head_chunk_floats(2 * v);
  s.feed(std::span<const int32_t>(ids.data(), 3), chunks.data());
  const std::span<const float> last = s.feed(std::span<const int32_t>(ids.data() + 3, 5), chunks.data() + 3 * v);
  for (int64_t t = 0; t < 8; ++t)
    EXPECT_LT(rel_err(chunks.data() + t * v, one.data() + t * v, v), 1e-5) << "position " << t;
  EXPECT_EQ(rel_err(last.data(), chunks.data() + 7 * v, v), 0.0);
  EXPECT_EQ(s.capacity(), 32);
  EXPECT_EQ(s.kv_cache_bytes(), static_cast<size_t>(2 * c.num_hidden_layers * 32 *
                                                    c.num_key_value_heads * c.head_dim) * sizeof(float));
  // reset() starts over: the same ids give the same logits.
  s.reset();
  EXPECT_EQ(s.position(), 0);
  const std::span<const float> again = s.feed(ids);
  EXPECT_LT(rel_err(again.data(), one.data() + 7 * v, v), 1e-5);
}

TEST(DeviceSession, ErrorsAreTheDecoderSessions) {
  auto be = make_backend("cpu", 1);
  expect_same_errors(*be);
}

TEST(DeviceSession, PerplexityAndGreedyGenerationMatch) {
  const ModelConfig c = tiny_config(64);
  auto be = make_backend("cpu", 2);
  SessionPair p = make_pair(c, *be, 9, 24);
  const std::vector<int32_t> ids = random_ids(3 * 24, c.vocab_size, 7);
  std::vector<int32_t> targets = random_ids(3 * 24, c.vocab_size, 8);
  targets[5] = -1;
  const PerplexityResult want = evaluate_perplexity(*p.ref, ids, targets, 24);
  const PerplexityResult got = evaluate_perplexity(*p.dev, ids, targets, 24);
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_NEAR(got.mean_nll(), want.mean_nll(), 1e-6 * want.mean_nll());
  const auto [a, b] = greedy_pair(p, random_ids(5, c.vocab_size, 2), 18);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(b.finish_reason, a.finish_reason);
}

TEST(DeviceSession, RefusesWhatItCannotDecode) {
  const ModelConfig c = tiny_config(16);
  auto be = make_backend("cpu", 1);
  Model f64(c, *be, DType::F64);
  EXPECT_THROW({ DeviceSession s(f64); }, Error);
  Model f32(c, *be);
  const std::string q8 = error_text([&] { DeviceSession s(f32, 0, WeightFormat::Q8); });
  EXPECT_NE(q8.find("keeps its weights in FP32 or BF16, not int8"), std::string::npos) << q8;
}

// ---- the factory --------------------------------------------------------------

TEST(OpenSession, QuantisedWeightsDecodeOnTheCpuAndCudaSaysSo) {
  testing::TempDir dir;
  const ModelConfig c = tiny_config(32);
  auto be = make_backend("cpu", 1);
  save_model_dir(*random_model(c, *be, 3), dir / "fp32");
  save_quantized_dir(weights_from_model(random_model(c, *be, 3), WeightFormat::Q8), dir / "int8");
  // No --device: the best available, except for quantised weights.
  EXPECT_EQ(decode_device("", {dir / "fp32"}, -1), "");
  EXPECT_EQ(decode_device("", {dir / "fp32"}, 32), "");
  EXPECT_EQ(decode_device("", {dir / "fp32"}, 8), "cpu");
  EXPECT_EQ(decode_device("", {dir / "fp32"}, 16), "");  // BF16 matrices decode on the GPU too
  EXPECT_EQ(decode_device("cuda", {dir / "fp32"}, 16), "cuda");
  EXPECT_EQ(decode_device("", {dir / "fp32", dir / "int8"}, -1), "cpu");
  EXPECT_EQ(decode_device("cpu", {dir / "int8"}, -1), "cpu");
  EXPECT_EQ(decode_device("cuda", {dir / "fp32"}, 32), "cuda");
  const std::string bits = error_text([&] { decode_device("cuda", {dir / "fp32"}, 8); });
  EXPECT_NE(bits.find("--device cuda decodes FP32 checkpoints; --bits 8 is a CPU format: "
                      "use --device cpu (or --bits 32 or 16)"),
            std::string::npos) << bits;
  const std::string quantised = error_text([&] { decode_device("cuda", {dir / "int8"}, -1); });
  EXPECT_NE(quantised.find("holds quantised weights"), std::string::npos) << quantised;
  EXPECT_NE(quantised.find("use --device cpu"), std::string::npos) << quantised;
  EXPECT_NE(error_text([&] { decode_device("cuda", {}, 5); }).find("unsupported weight bits 5"),
            std::string::npos);
  // On the CPU backend: the DecoderSession, in any format.
  for (int b : {-1, 32, 16, 8, 4}) {
    const std::unique_ptr<Session> s = open_session(dir / "fp32", *be, b, 32, 20);
    EXPECT_NE(dynamic_cast<DecoderSession*>(s.get()), nullptr);
    EXPECT_EQ(s->capacity(), 20);
    EXPECT_EQ(s->info().device, "cpu");
    EXPECT_EQ(s->info().format, weight_format_from_bits(b == -1 ? 32 : b));
    EXPECT_EQ(s->feed(std::vector<int32_t>{1, 2, 3}).size(), static_cast<size_t>(c.vocab_size));
  }
  EXPECT_EQ(open_session(dir / "int8", *be)->info().format, WeightFormat::Q8);
  const std::unique_ptr<Session> r = open_random_session(c, 1, *be, 4, 32, 10);
  EXPECT_EQ(r->info().format, WeightFormat::Q4);
  EXPECT_EQ(r->info().group_size, 32);
}

// ---- the GPU -----------------------------------------------------------------
// FP32 on the device differs from the CPU in summation order only (cuBLASLt
// without TF32, the flash attention's key tiles): 1e-4 of the largest logit.

#define GPU_BACKEND_OR_SKIP(be)                                                   \
  auto be = testing::gpu_test_backend();                                          \
  if (!be) GTEST_SKIP() << "no CUDA device (HESSGPT_CUDA_TESTS_ON_CPU=1 runs this on the CPU)"

TEST(CudaDecode, PrefillAndDecodeMatchTheCpuDecoder) {
  GPU_BACKEND_OR_SKIP(be);
  compare_on(*be, tiny_config(64), 40, 9, 1e-4, "prefill 9 + decode 31");
  compare_on(*be, tiny_config(64), 12, 1, 1e-4, "decode from position 0");
}

TEST(CudaDecode, WithoutQkNormAndWithYarn) {
  GPU_BACKEND_OR_SKIP(be);
  compare_on(*be, no_qk_norm_config(), 30, 7, 1e-4, "no QK-Norm, FFN 177");
  compare_on(*be, yarn_config(), 150, 60, 1e-4, "YaRN, 150 positions");
}

TEST(CudaDecode, SmallPresetWithTheRealVocabulary) {
  GPU_BACKEND_OR_SKIP(be);
  ModelConfig c = preset_config("small");
  c.max_position_embeddings = 64;
  compare_on(*be, c, 24, 16, 1e-4, "small, prefill 16 + decode 8");
}

TEST(CudaDecode, ChunkedHeadPerplexityAndGreedyGeneration) {
  GPU_BACKEND_OR_SKIP(be);
  const ModelConfig c = tiny_config(64);
  SessionPair p = make_pair(c, *be, 9, 32);
  p.dev->set_head_chunk_floats(5 * c.vocab_size);  // 32 rows in 7 passes
  const std::vector<int32_t> ids = random_ids(3 * 32, c.vocab_size, 7);
  const std::vector<int32_t> targets = random_ids(3 * 32, c.vocab_size, 8);
  const PerplexityResult want = evaluate_perplexity(*p.ref, ids, targets, 32);
  const PerplexityResult got = evaluate_perplexity(*p.dev, ids, targets, 32);
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_NEAR(got.mean_nll(), want.mean_nll(), 1e-5 * want.mean_nll());
  const auto [a, b] = greedy_pair(p, random_ids(6, c.vocab_size, 2), 20);
  EXPECT_EQ(a.ids.size(), 20u);
  EXPECT_EQ(b.ids, a.ids);
  EXPECT_EQ(b.decode_steps, 19);
}

// Decoding replays a CUDA graph of the step from the second token on (and
// the CPU backend runs it op by op): the same logits bit for bit as the step
// run op by op (HESSGPT_CUDA_GRAPHS=0), through a prompt fed between tokens,
// a reset and a larger session on the same backend growing the scratch
// (the recording goes stale and is made again).
TEST(CudaDecode, RecordedStepsMatchTheStepOpByOp) {
  GPU_BACKEND_OR_SKIP(be);
  const ModelConfig c = tiny_config(64);
  SessionPair p = make_pair(c, *be, 4, 64), q = make_pair(c, *be, 4, 64);
  DeviceSession& plain = *q.dev;
  const bool records = be->device() == Device::CUDA;
  const std::vector<int32_t> ids = random_ids(40, c.vocab_size, 3);
  const auto step = [&](std::span<const int32_t> t, int64_t at) {
    const std::vector<float> want = [&] {
      const testing::ScopedEnv off("HESSGPT_CUDA_GRAPHS", "0");
      const std::span<const float> l = plain.feed(t);
      return std::vector<float>(l.begin(), l.end());
    }();
    const std::span<const float> got = p.dev->feed(t);
    ASSERT_EQ(std::vector<float>(got.begin(), got.end()), want) << "position " << at;
  };
  for (int round = 0; round < 2; ++round) {
    step(std::span(ids).first(5), 0);
    for (int64_t i = 5; i < 20; ++i) {
      step(std::span(ids).subspan(static_cast<size_t>(i), 1), i);
      EXPECT_EQ(p.dev->replayed_last_token(), records && (round > 0 || i > 5)) << i;
      EXPECT_FALSE(plain.replayed_last_token());
    }
    step(std::span(ids).subspan(20, 9), 20);  // a prompt between tokens
    for (int64_t i = 29; i < 40; ++i) step(std::span(ids).subspan(static_cast<size_t>(i), 1), i);
    p.dev->reset();
    plain.reset();
    if (round == 0) {
      // Another session's larger cache grows the step's scratch.
      SessionPair other = make_pair(c, *be, 5, 4096);
      other.dev->feed(std::span(ids).first(1));
    }
  }
}

// Decoding's kernels launched chained (chained_launch.cuh: each may start
// while the one before it finishes, and waits for it before touching its
// outputs) give the plain launches' logits bit for bit, recorded or not, with
// FP32 and BF16 weights.
TEST(CudaDecode, ChainedLaunchesChangeNoLogit) {
  GPU_BACKEND_OR_SKIP(be);
  const ModelConfig c = tiny_config(64);
  const std::vector<int32_t> ids = random_ids(30, c.vocab_size, 4);
  for (const auto& [graphs, format] : {std::pair{"1", WeightFormat::F32},
                                       std::pair{"0", WeightFormat::F32},
                                       std::pair{"1", WeightFormat::BF16}}) {
    const testing::ScopedEnv recorded("HESSGPT_CUDA_GRAPHS", graphs);
    SessionPair chained = make_pair(c, *be, 6, 64, format);
    SessionPair plain = make_pair(c, *be, 6, 64, format);
    const auto logits = [](DeviceSession& s, std::span<const int32_t> t) {
      const std::span<const float> l = s.feed(t);
      return std::vector<float>(l.begin(), l.end());
    };
    for (int64_t i = 0; i < 30; i += i == 0 ? 7 : 1) {
      const auto t = std::span(ids).subspan(static_cast<size_t>(i), i == 0 ? 7 : 1);
      const std::vector<float> want = [&] {
        const testing::ScopedEnv off("HESSGPT_CUDA_PDL", "0");
        return logits(*plain.dev, t);
      }();
      ASSERT_EQ(logits(*chained.dev, t), want)
          << "position " << i << ", graphs " << graphs
          << ", BF16 " << (format == WeightFormat::BF16);
    }
  }
}

TEST(CudaDecode, Bf16MatricesMatchTheCpuDecodersBf16) {
  GPU_BACKEND_OR_SKIP(be);
  expect_bf16_matrices(*be);
}

TEST(CudaDecode, ErrorsAreTheCpuDecodersAndLeaveTheCacheAlone) {
  GPU_BACKEND_OR_SKIP(be);
  expect_same_errors(*be);
}

}  // namespace
}  // namespace hessgpt::infer
