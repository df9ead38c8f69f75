// The matrices a DeviceSession multiplies by: the Model's FP32 parameters
// (views, no copies) or, for a BF16 session, BF16 copies of them on the
// model's backend (half the bytes each decoded token streams), taken when the
// session is made: a session sees later changes to the model in FP32 only. Rows that are
// adjacent in the parameter buffer are also offered stacked (q|k|v,
// gate|up), so that one product serves them.
#pragma once

#include <cstddef>
#include <vector>

#include "backend/backend.h"
#include "infer/quant_matrix.h"
#include "model/model.h"

namespace hessgpt::infer {

struct DeviceLayerWeights {
  // [out, in] each. A BF16 down projection's rows are padded with zeros to a
  // multiple of 8 values (backend.h's padded widths: 16-byte rows).
  Tensor q, k, v, o, gate, up, down;
  Tensor qkv, gate_up;  // the stacked rows, or empty where not adjacent
};

class DeviceWeights {
 public:
  // format: F32 or BF16 (Error otherwise). The model must outlive this.
  DeviceWeights(const Model& model, WeightFormat format);

  WeightFormat format() const { return format_; }
  const DeviceLayerWeights& layer(int64_t l) const { return layers_[static_cast<size_t>(l)]; }
  // The tied embedding as the head reads it: [V, d].
  const Tensor& head() const { return head_; }
  // Bytes of the matrices and the head: what one decoded token streams.
  size_t bytes_per_token() const { return bytes_; }

 private:
  WeightFormat format_;
  std::vector<DeviceLayerWeights> layers_;
  Tensor head_;
  Buffer copies_;  // BF16 sessions: every matrix above
  size_t bytes_ = 0;
};

}  // namespace hessgpt::infer
