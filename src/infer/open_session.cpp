#include "infer/open_session.h"

#include <filesystem>

#include "core/error.h"
#include "infer/device_session.h"
#include "infer/infer_weights.h"
#include "infer/quant_file.h"
#include "infer/session.h"
#include "io/model_dir.h"

namespace hessgpt::infer {
namespace {

// INT8 and INT4: the CPU's formats. Devices decode FP32 checkpoints with
// their matrices in FP32 or BF16 (--bits 32 or 16).
bool quantised_bits(int bits) { return bits != -1 && bits != 32 && bits != 16; }

void check_device_bits(const std::string& device, int bits) {
  if (bits != -1) weight_format_from_bits(bits);  // rejects 5, 12, ...
  if (quantised_bits(bits))
    HG_FAIL("--device ", device, " decodes FP32 checkpoints; --bits ", bits,
            " is a CPU format: use --device cpu (or --bits 32 or 16)");
}

WeightFormat device_format(int bits) { return bits == 16 ? WeightFormat::BF16 : WeightFormat::F32; }

void check_device_dir(const std::string& device, const std::string& dir) {
  if (is_quantized_dir(dir))
    HG_FAIL("checkpoint '", dir, "' holds quantised weights, a CPU format; --device ", device,
            " decodes FP32 checkpoints: use --device cpu (or the FP32 checkpoint)");
}

}  // namespace

std::string decode_device(const std::string& requested, const std::vector<std::string>& dirs,
                          int bits) {
  bool quantised = quantised_bits(bits);
  for (const std::string& dir : dirs) quantised = quantised || is_quantized_dir(dir);
  if (requested.empty()) return quantised ? "cpu" : "";
  if (requested != "cpu") {
    check_device_bits(requested, bits);
    for (const std::string& dir : dirs) check_device_dir(requested, dir);
  }
  return requested;
}

std::unique_ptr<Session> open_session(const std::string& dir, Backend& backend, int bits,
                                      int64_t group_size, int64_t capacity) {
  if (backend.device() == Device::CPU)
    return std::make_unique<DecoderSession>(
        std::make_unique<const InferWeights>(load_infer_weights(dir, backend, bits, group_size)),
        backend, capacity);
  return open_backend_ops_session(dir, {}, 0, backend, bits, capacity);
}

std::unique_ptr<Session> open_backend_ops_session(const std::string& dir,
                                                  const ModelConfig& config, uint64_t seed,
                                                  Backend& backend, int bits, int64_t capacity) {
  check_device_bits(backend.name(), bits);
  if (dir.empty()) {
    auto model = std::make_unique<Model>(config, backend);
    model->init_random(seed);
    return std::make_unique<DeviceSession>(std::unique_ptr<const Model>(std::move(model)),
                                           capacity, device_format(bits));
  }
  if (!std::filesystem::is_directory(dir)) HG_FAIL("checkpoint '", dir, "' is not a directory");
  check_device_dir(backend.name(), dir);
  return std::make_unique<DeviceSession>(std::unique_ptr<const Model>(load_model_dir(dir, backend)),
                                         capacity, device_format(bits));
}

std::unique_ptr<Session> open_random_session(const ModelConfig& config, uint64_t seed,
                                             Backend& backend, int bits, int64_t group_size,
                                             int64_t capacity) {
  if (backend.device() != Device::CPU)
    return open_backend_ops_session("", config, seed, backend, bits, capacity);
  const WeightFormat format = weight_format_from_bits(bits);
  auto model = std::make_unique<Model>(config, backend);
  model->init_random(seed);
  return std::make_unique<DecoderSession>(
      std::make_unique<const InferWeights>(weights_from_model(std::move(model), format, group_size)),
      backend, capacity);
}

}  // namespace hessgpt::infer
