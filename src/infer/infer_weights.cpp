// Building inference weights from an FP32 model or a quantised directory.
#include "infer/infer_weights.h"

#include <filesystem>

#include "core/error.h"
#include "infer/quant_file.h"
#include "io/model_dir.h"

namespace hessgpt::infer {

size_t InferWeights::decode_stream_bytes() const {
  size_t bytes = embed.stream_bytes();
  for (const InferLayer& l : layers)
    for (const QuantMatrix* m : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj,
                                 &l.up_proj, &l.down_proj})
      bytes += m->stream_bytes();
  return bytes;
}

namespace {

std::vector<float> vec_of(const Model& model, int index) {
  if (index < 0) return {};
  const Tensor t = model.param(index);
  const float* p = t.as<float>();
  return std::vector<float>(p, p + t.numel());
}

QuantMatrix matrix_of(const Model& model, int index, WeightFormat format, int64_t group) {
  const ParamInfo& info = model.layout().params[static_cast<size_t>(index)];
  HG_CHECK(info.shape.size() == 2, "parameter ", info.name, " is not a matrix");
  const float* p = model.param(index).as<float>();
  if (format == WeightFormat::F32) return QuantMatrix::view_f32(p, info.shape[0], info.shape[1]);
  return QuantMatrix::quantize(p, info.shape[0], info.shape[1], format, group);
}

}  // namespace

InferWeights weights_from_model(std::unique_ptr<Model> model, WeightFormat format,
                                int64_t group_size) {
  HG_CHECK(model, "weights_from_model: no model");
  if (model->backend().device() != Device::CPU || model->dtype() != DType::F32)
    HG_FAIL("inference needs an FP32 model on the CPU backend (got ", dtype_name(model->dtype()),
            " on ", model->backend().name(), ")");
  InferWeights w;
  w.config = model->config();
  w.format = format;
  w.group_size = format == WeightFormat::Q4 ? group_size : 0;
  const ParamLayout& lay = model->layout();
  w.embed = matrix_of(*model, lay.embed, format, group_size);
  w.final_norm = vec_of(*model, lay.final_norm);
  for (const LayerParamIndex& p : lay.layers) {
    InferLayer l;
    l.input_norm = vec_of(*model, p.input_norm);
    l.q_norm = vec_of(*model, p.q_norm);
    l.k_norm = vec_of(*model, p.k_norm);
    l.post_norm = vec_of(*model, p.post_norm);
    l.q_proj = matrix_of(*model, p.q_proj, format, group_size);
    l.k_proj = matrix_of(*model, p.k_proj, format, group_size);
    l.v_proj = matrix_of(*model, p.v_proj, format, group_size);
    l.o_proj = matrix_of(*model, p.o_proj, format, group_size);
    l.gate_proj = matrix_of(*model, p.gate_proj, format, group_size);
    l.up_proj = matrix_of(*model, p.up_proj, format, group_size);
    l.down_proj = matrix_of(*model, p.down_proj, format, group_size);
    w.layers.push_back(std::move(l));
  }
  if (format == WeightFormat::F32) w.model = std::move(model);  // the views point into it
  return w;
}

InferWeights load_infer_weights(const std::string& dir, Backend& backend, int bits,
                                int64_t group_size) {
  if (!std::filesystem::is_directory(dir)) HG_FAIL("checkpoint '", dir, "' is not a directory");
  if (is_quantized_dir(dir)) {
    InferWeights w = load_quantized_dir(dir);
    if (bits != -1 && bits != weight_format_bits(w.format))
      HG_FAIL("checkpoint '", dir, "' holds ", weight_format_bits(w.format),
              "-bit weights; --bits ", bits, " needs the FP32 checkpoint");
    return w;
  }
  if (backend.device() != Device::CPU)
    HG_FAIL("inference weights load on the CPU backend (got ", backend.name(),
            "); open_session decodes FP32 checkpoints on other backends");
  const WeightFormat format = weight_format_from_bits(bits == -1 ? 32 : bits);
  return weights_from_model(load_model_dir(dir, backend), format, group_size);
}

}  // namespace hessgpt::infer
