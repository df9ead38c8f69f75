// Parity with the independent PyTorch implementation (tests/oracle): same
// weights, same tokens -> logits and loss within 1e-4 relative, every parameter
// gradient within 1e-3 relative (our FP32 against the oracle's float64).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "common/test_util.h"
#include "core/rng.h"
#include "io/model_dir.h"
#include "io/npy.h"
#include "io/safetensors.h"

namespace hessgpt {
namespace {

using hessgpt::testing::run_command;
using hessgpt::testing::TempDir;

const char* kPython = "/usr/bin/python3";

bool torch_available() {
  return run_command(std::string(kPython) + " -c 'import torch, numpy'").exit_code == 0;
}

std::string oracle() { return std::string(HESSGPT_SOURCE_DIR) + "/tests/oracle/hessgpt_torch.py"; }

// max |a - b| / max |b|: the error relative to the tensor's scale.
double scaled_error(const float* a, const float* b, size_t n) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return diff / std::max(scale, 1e-30);
}

struct ParityCase {
  const char* name;
  const char* config_json;
  int64_t batch, seq;
};

class TorchParity : public ::testing::TestWithParam<ParityCase> {};

TEST_P(TorchParity, LogitsLossAndGradients) {
  if (!torch_available()) GTEST_SKIP() << "python3-torch not installed for " << kPython;
  const ParityCase pc = GetParam();
  TempDir dir;
  std::ofstream(dir / "config.json") << pc.config_json;
  const auto init = run_command(std::string(kPython) + " " + oracle() +
                                " --init-random --config " + dir / "config.json" +
                                " --seed 11 --norm-noise 0.2 --out-checkpoint " + dir / "ck");
  ASSERT_EQ(init.exit_code, 0) << init.out;

  CpuBackend be(2);
  auto model = load_model_dir(dir / "ck", be);
  const ModelConfig& c = model->config();
  const int64_t b = pc.batch, t = pc.seq, n = b * t;
  Rng rng(5);
  std::vector<int32_t> ids(n), targets(n);
  for (int64_t i = 0; i < n; ++i) {
    ids[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(c.vocab_size)));
    targets[i] = i % 7 == 2 ? -100 : static_cast<int32_t>(rng.below(static_cast<uint64_t>(c.vocab_size)));
  }
  std::vector<int64_t> targets64(targets.begin(), targets.end());
  write_npy(dir / "x.npy", "<i4", {b, t}, ids.data(), ids.size() * 4);
  write_npy(dir / "y.npy", "<i8", {b, t}, targets64.data(), targets64.size() * 8);
  const auto ref = run_command(std::string("OMP_NUM_THREADS=2 ") + kPython + " " + oracle() +
                               " --checkpoint " + dir / "ck" + " --inputs " + dir / "x.npy" +
                               " --targets " + dir / "y.npy" + " --out " + dir / "ref");
  ASSERT_EQ(ref.exit_code, 0) << ref.out;

  // Logits and loss from the forward pass.
  std::vector<float> logits(static_cast<size_t>(n * c.vocab_size));
  const LossSum eval = model->evaluate(ids.data(), targets.data(), b, t, logits.data());
  MappedNpy ref_logits(dir / "ref/logits.npy");
  ASSERT_EQ(ref_logits.numel(), n * c.vocab_size);
  const double logit_err = scaled_error(logits.data(), ref_logits.as<float>(), logits.size());
  EXPECT_LT(logit_err, 1e-4) << "logits";
  nlohmann::json ref_loss;
  std::ifstream(dir / "ref/loss.json") >> ref_loss;
  EXPECT_EQ(eval.count, ref_loss["tokens"].get<int64_t>());
  EXPECT_NEAR(eval.mean(), ref_loss["loss"].get<double>(), 1e-4 * ref_loss["loss"].get<double>());

  // Gradients of the mean loss.
  model->zero_grads();
  model->forward_backward(ids.data(), targets.data(), b, t, 1.0 / static_cast<double>(eval.count));
  const std::vector<float> grads = model->grads_host();
  SafetensorsReader ref_grads(dir / "ref/grads.safetensors");
  double worst = 0;
  std::string worst_name;
  for (const ParamInfo& p : model->layout().params) {
    const std::vector<float> g = ref_grads.read_float(p.name);
    ASSERT_EQ(static_cast<int64_t>(g.size()), p.numel) << p.name;
    const double err = scaled_error(grads.data() + p.offset, g.data(), g.size());
    if (err > worst) worst = err, worst_name = p.name;
    EXPECT_LT(err, 1e-3) << p.name;
  }
  std::printf("[parity %s] logits %.2e, loss %.8f vs %.8f, worst gradient %.2e (%s)\n", pc.name,
              logit_err, eval.mean(), ref_loss["loss"].get<double>(), worst, worst_name.c_str());
}

INSTANTIATE_TEST_SUITE_P(
    Oracle, TorchParity,
    ::testing::Values(
        ParityCase{"tiny",
                   R"({"vocab_size": 512, "hidden_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                       "intermediate_size": 176})",
                   2, 24},
        ParityCase{"gqa4_yarn",
                   R"({"vocab_size": 700, "hidden_size": 96, "num_hidden_layers": 3,
                       "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 12,
                       "intermediate_size": 200, "max_position_embeddings": 256,
                       "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                        "original_max_position_embeddings": 32,
                                        "beta_fast": 32.0, "beta_slow": 1.0}})",
                   2, 100}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace hessgpt
