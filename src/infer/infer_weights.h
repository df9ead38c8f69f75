// The weights an inference session reads: every matrix as a QuantMatrix (FP32
// views of a loaded Model, or BF16/INT8/INT4 copies) and the norm vectors as
// float. The tied embedding serves both the token lookup (one dequantised row)
// and the output head (a matvec over all V rows).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/model_config.h"
#include "infer/quant_matrix.h"
#include "model/model.h"

namespace hessgpt::infer {

struct InferLayer {
  std::vector<float> input_norm, q_norm, k_norm, post_norm;  // q/k_norm empty without QK-Norm
  QuantMatrix q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
};

struct InferWeights {
  ModelConfig config;
  WeightFormat format = WeightFormat::F32;
  int64_t group_size = 0;  // INT4 only
  QuantMatrix embed;       // [V, d]
  std::vector<float> final_norm;
  std::vector<InferLayer> layers;
  // Owns the FP32 weights that F32 views point into (null when quantised).
  std::unique_ptr<Model> model;

  // Bytes one decode step streams: every layer matrix and the head.
  size_t decode_stream_bytes() const;
};

// From a loaded FP32 model (on the CPU backend). F32 keeps views, so the
// model is moved in and owned; other formats quantise a copy and drop it.
InferWeights weights_from_model(std::unique_ptr<Model> model, WeightFormat format,
                                int64_t group_size = 32);

// A checkpoint directory: FP32 (config.json + model.safetensors, loaded with
// load_model_dir) converted to `format`, or a quantised one (quant_file.h),
// whose own format is used when `format` is unset (-1 bits).
InferWeights load_infer_weights(const std::string& dir, Backend& backend, int bits = -1,
                                int64_t group_size = 32);

}  // namespace hessgpt::infer
