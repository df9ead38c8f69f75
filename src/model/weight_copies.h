// BF16 copies of the weight matrices, made once per pass, for passes whose
// products round their operands to BF16 anyway (--bf16-activations under BF16
// products, no adapters). Without them every product converts its F32 weight
// on the fly: the forward once, the backward's input-gradient products
// again (2 x 2.3 GB of traffic and ~300 launches a step for model1). With
// them, one conversion per matrix per pass, and the products read the copies
// in place. The FFN's dimension is stored at its padded width, zeros beyond
// it, as the FFN's BF16 activations are (activations.h), so those products
// see whole 16-byte rows on both sides. The products' results are unchanged:
// the same roundings of the same weights, and zeros against zeros.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "core/model_config.h"
#include "model/param_layout.h"

namespace hessgpt {

class WeightCopies {
 public:
  WeightCopies() = default;
  WeightCopies(const ModelConfig& config, const ParamLayout& layout);

  // Bytes of the copies (for memory estimates).
  size_t bytes() const { return static_cast<size_t>(elements_) * dtype_size(DType::BF16); }
  // Converts every matrix of params (F32, layout's flat buffer: the one the
  // copies were sized for) into its copy; allocates them, zeroed, on first use.
  void refresh(Backend& backend, const ParamLayout& layout, const Tensor& params);
  bool ready() const { return buffer_.data() != nullptr; }
  // The copy of a matrix parameter, [rows, cols] with the FFN dimension
  // padded: [padded FFN, C] for gate and up, [C, padded FFN] for down.
  Tensor weight(int index) const;
  void release() { buffer_ = Buffer(); }

 private:
  struct Entry {
    int64_t offset = -1;  // elements into the buffer, 16-byte aligned; -1: not a matrix
    int64_t rows = 0, cols = 0;
  };
  // Values converted by one flat `convert`: matrices whose values lie
  // back to back both in the parameters and in the copies (q|k|v; gate|up|down
  // where the FFN is not padded) go in one launch.
  struct Run {
    int64_t src = 0, dst = 0, count = 0;
  };
  std::vector<Entry> entries_;
  std::vector<Run> runs_;
  std::vector<int> column_padded_;  // matrices copied with copy_columns (down, padded)
  int64_t elements_ = 0;
  Buffer buffer_;
};

}  // namespace hessgpt
