#include "infer/device_weights.h"

#include "backend/buffer_carver.h"
#include "core/error.h"

namespace hessgpt::infer {
namespace {

// Parameters `first` and the ones after it as one [rows, in] matrix, when
// each starts where the one before it ends.
Tensor stacked_params(const Model& m, std::initializer_list<int> indices) {
  const ParamLayout& lay = m.layout();
  int64_t rows = 0, end = -1;
  for (int i : indices) {
    const ParamInfo& p = lay.params[static_cast<size_t>(i)];
    if (end >= 0 && p.offset != end) return {};
    end = p.offset + p.numel;
    rows += m.param(i).rows();
  }
  const Tensor w = m.param(*indices.begin());
  return Tensor(w.data, w.dtype, w.device, {rows, w.cols()});
}

}  // namespace

DeviceWeights::DeviceWeights(const Model& m, WeightFormat format) : format_(format) {
  if (format != WeightFormat::F32 && format != WeightFormat::BF16)
    HG_FAIL("a device session keeps its weights in FP32 or BF16, not ",
            weight_format_name(format));
  const ModelConfig& c = m.config();
  const ParamLayout& lay = m.layout();
  const int64_t n_layers = c.num_hidden_layers;
  layers_.resize(static_cast<size_t>(n_layers));
  for (int64_t l = 0; l < n_layers; ++l) {
    const LayerParamIndex& p = lay.layers[static_cast<size_t>(l)];
    DeviceLayerWeights& w = layers_[static_cast<size_t>(l)];
    w.q = m.param(p.q_proj);
    w.k = m.param(p.k_proj);
    w.v = m.param(p.v_proj);
    w.o = m.param(p.o_proj);
    w.gate = m.param(p.gate_proj);
    w.up = m.param(p.up_proj);
    w.down = m.param(p.down_proj);
    w.qkv = stacked_params(m, {p.q_proj, p.k_proj, p.v_proj});
    w.gate_up = stacked_params(m, {p.gate_proj, p.up_proj});
  }
  head_ = m.param(lay.embed);
  const auto count = [](const Tensor& t) { return static_cast<size_t>(t.numel()); };
  for (const DeviceLayerWeights& w : layers_)
    for (const Tensor* t : {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down}) bytes_ += count(*t);
  bytes_ += count(head_);
  if (format == WeightFormat::F32) {
    bytes_ *= sizeof(float);
    return;
  }
  bytes_ *= sizeof(uint16_t);
  // BF16: each matrix converted once, stacked where the FP32 rows are (the
  // parts are then row ranges of the copy), the down projection padded.
  Backend& be = m.backend();
  const int64_t d = c.hidden_size, f = c.intermediate_size, fp = padded_width(f);
  Tensor zeros;
  Buffer zero_block;
  if (fp > f) {
    zero_block = Buffer(&be, static_cast<size_t>(d * (fp - f)) * sizeof(float));
    zeros = zero_block.tensor(DType::F32, {d, fp - f});
    be.fill(zeros, 0.0);
  }
  // (The carving runs twice, measuring first: every choice follows the FP32
  // views, never the tensors being carved.)
  const std::vector<DeviceLayerWeights> f32 = layers_;
  const Tensor embed = m.param(lay.embed);
  copies_ = carve_buffer(be, DType::BF16, [&](BufferCarver& cv) {
    const auto like = [&](const Tensor& t) { return cv.take({t.rows(), t.cols()}); };
    for (size_t l = 0; l < layers_.size(); ++l) {
      const DeviceLayerWeights& src = f32[l];
      DeviceLayerWeights& w = layers_[l];
      w = DeviceLayerWeights{};
      if (src.qkv.data) w.qkv = like(src.qkv);
      else w.q = like(src.q), w.k = like(src.k), w.v = like(src.v);
      w.o = like(src.o);
      if (src.gate_up.data) w.gate_up = like(src.gate_up);
      else w.gate = like(src.gate), w.up = like(src.up);
      w.down = cv.take({d, fp});
    }
    head_ = like(embed);
  });
  be.convert(head_, embed);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const DeviceLayerWeights& src = f32[l];
    DeviceLayerWeights& w = layers_[l];
    if (src.qkv.data) {
      be.convert(w.qkv, src.qkv);
      const int64_t qr = src.q.rows(), kr = src.k.rows();
      w.q = w.qkv.slice(0, qr);
      w.k = w.qkv.slice(qr, qr + kr);
      w.v = w.qkv.slice(qr + kr, w.qkv.rows());
    } else {
      for (auto [dst, from] : {std::pair{&w.q, &src.q}, {&w.k, &src.k}, {&w.v, &src.v}})
        be.convert(*dst, *from);
    }
    be.convert(w.o, src.o);
    if (src.gate_up.data) {
      be.convert(w.gate_up, src.gate_up);
      w.gate = w.gate_up.slice(0, f);
      w.up = w.gate_up.slice(f, 2 * f);
    } else {
      be.convert(w.gate, src.gate);
      be.convert(w.up, src.up);
    }
    if (fp > f) be.concat_columns(w.down, src.down, zeros);
    else be.convert(w.down, src.down);
  }
  be.synchronize();  // the zero block is freed on return
}

}  // namespace hessgpt::infer
