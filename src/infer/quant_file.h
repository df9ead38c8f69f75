// Quantised checkpoint directories (`hessgpt quantize`):
//
//   config.json        the model config (SPEC §5 fields) plus
//                      "quantization": {"bits": 8|4|16, "format": "int8"|"int4"|"bf16",
//                                       "group_size": G (int4 only), "scheme": "symmetric"}
//   model.safetensors  for each matrix NAME (SPEC §5 names, embedding included):
//                        NAME.q       I8 [rows, cols]              (int8, per output channel)
//                                     U8 [rows, ceil(cols/G)*G/2]  (int4, layout in quant_matrix.h)
//                                     BF16 [rows, cols]            (bf16)
//                        NAME.scales  F32 [rows] (int8) or [rows, ceil(cols/G)] (int4)
//                      norms under their own names as F32; metadata
//                      {"format": "hessgpt-quantized"}.
//
// Readers other than ours see a standard safetensors file; dequantise with
// w = scales[r] * q (int8) or scales[r, g] * (nibble - 8) (int4).
#pragma once

#include <string>

#include "infer/infer_weights.h"

namespace hessgpt::infer {

// True when DIR/config.json has a "quantization" object.
bool is_quantized_dir(const std::string& dir);

// Writes a quantised checkpoint (format must not be F32). Files are written
// under temporary names and renamed.
void save_quantized_dir(const InferWeights& weights, const std::string& dir);

// Reads a directory written by save_quantized_dir; throws Error naming the
// file and tensor on anything missing, misshapen or of the wrong type.
InferWeights load_quantized_dir(const std::string& dir);

}  // namespace hessgpt::infer
