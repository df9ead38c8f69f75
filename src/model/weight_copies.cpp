#include "model/weight_copies.h"

namespace hessgpt {

WeightCopies::WeightCopies(const ModelConfig& config, const ParamLayout& layout)
    : entries_(layout.params.size()) {
  const int64_t ffn = padded_width(config.intermediate_size);
  for (size_t i = 0; i < layout.params.size(); ++i) {
    const ParamInfo& p = layout.params[i];
    if (p.kind != ParamKind::Matrix) continue;
    entries_[i] = {0, p.shape[0], p.shape[1]};  // offset set below, once padded
  }
  for (const LayerParamIndex& l : layout.layers) {
    entries_[static_cast<size_t>(l.gate_proj)].rows = ffn;
    entries_[static_cast<size_t>(l.up_proj)].rows = ffn;
    entries_[static_cast<size_t>(l.down_proj)].cols = ffn;
  }
  // Offsets after the padding; adjacent matrices stay adjacent (q, k, v:
  // the fused products read them as one) wherever sizes are 16-byte multiples.
  for (Entry& e : entries_) {
    if (e.offset < 0) continue;
    e.offset = elements_;
    elements_ += padded_width(e.rows * e.cols);
  }
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    if (e.offset < 0) continue;
    const ParamInfo& p = layout.params[i];
    if (e.cols != p.shape[1]) {
      column_padded_.push_back(static_cast<int>(i));
      continue;
    }
    // Rows padded (gate, up): the real rows are a prefix of the copy, but the
    // next copy starts after the zero rows, so no run goes on past them.
    const bool continues = !runs_.empty() && runs_.back().src + runs_.back().count == p.offset &&
                           runs_.back().dst + runs_.back().count == e.offset;
    if (continues) runs_.back().count += p.numel;
    else runs_.push_back({p.offset, e.offset, p.numel});
  }
}

void WeightCopies::refresh(Backend& backend, const ParamLayout& layout, const Tensor& params) {
  HG_CHECK(params.dtype == DType::F32 && params.numel() == layout.total &&
               layout.params.size() == entries_.size(),
           "weight copies: the parameters must be the layout's F32 buffer, got ",
           dtype_name(params.dtype), " ", params.shape_string());
  if (!ready()) {
    buffer_ = Buffer(&backend, bytes());
    backend.fill(buffer_.tensor(DType::BF16, {elements_}), 0.0);  // the padding, for good
  }
  const Tensor copies = buffer_.tensor(DType::BF16, {elements_});
  for (const Run& r : runs_)
    backend.convert(copies.slice(r.dst, r.dst + r.count), params.slice(r.src, r.src + r.count));
  for (const int i : column_padded_) {
    const ParamInfo& p = layout.params[static_cast<size_t>(i)];
    const Tensor src = params.slice(p.offset, p.offset + p.numel).view({p.shape[0], p.shape[1]});
    backend.copy_columns(weight(i), 0, src);
  }
}

Tensor WeightCopies::weight(int index) const {
  HG_CHECK(ready(), "weight copies used before their first refresh");
  const Entry& e = entries_.at(static_cast<size_t>(index));
  HG_CHECK(e.offset >= 0, "weight copies: parameter ", index, " is not a matrix");
  return buffer_.tensor(DType::BF16, {e.rows, e.cols},
                        static_cast<size_t>(e.offset) * dtype_size(DType::BF16));
}

}  // namespace hessgpt
