// hessgpt quantize: an FP32 checkpoint to BF16, INT8 (per output channel) or
// INT4 (per group) weights for inference; format in src/infer/quant_file.h.
#include <cstdio>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "infer/quant_file.h"

namespace hessgpt::cli {
namespace {

struct QuantizeOptions {
  std::string checkpoint;
  std::string out;
  int bits = 8;
  int64_t group_size = 32;
  bool json = false;
  ComputeOptions compute;
};

void run_quantize(const QuantizeOptions& o) {
  if (o.bits != 16 && o.bits != 8 && o.bits != 4) HG_FAIL("--bits must be 16, 8 or 4 (got ", o.bits, ")");
  if (infer::is_quantized_dir(o.checkpoint))
    HG_FAIL("checkpoint '", o.checkpoint, "' is already quantised; quantise the FP32 one");
  auto backend = make_backend(o.compute, /*cuda_ready=*/false);
  const infer::InferWeights w = infer::load_infer_weights(o.checkpoint, *backend, o.bits, o.group_size);
  infer::save_quantized_dir(w, o.out);
  const double mb = static_cast<double>(w.decode_stream_bytes()) / 1e6;
  if (o.json) {
    print_json({{"out", o.out}, {"bits", o.bits}, {"format", infer::weight_format_name(w.format)},
                {"group_size", w.group_size}, {"matrix_megabytes", mb}});
  } else {
    std::printf("wrote %s (%s, %.1f MB of matrices)\n", o.out.c_str(),
                infer::weight_format_name(w.format), mb);
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<QuantizeOptions>();
  CLI::App* cmd = app.add_subcommand("quantize", "Quantise a checkpoint's weights for inference");
  cmd->add_option("checkpoint", o->checkpoint, "FP32 model directory")->required();
  cmd->add_option("--bits", o->bits, "16 (bf16), 8 (int8 per channel) or 4 (int4 per group)")->capture_default_str();
  cmd->add_option("--group-size", o->group_size, "INT4 values per scale (32 or 64)")->capture_default_str();
  cmd->add_option("--out", o->out, "Output directory")->required();
  cmd->add_flag("--json", o->json, "One JSON object on stdout");
  add_compute_options(cmd, o->compute);
  cmd->callback([o] { run_quantize(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
