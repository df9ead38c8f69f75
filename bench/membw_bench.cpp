// Memory read bandwidth and the decode matvec kernels at each weight format,
// on model1's FFN shape [3413, 1280] with enough copies (>= 256 MB) that the
// weights stream from DRAM as they do in decode. Compare bytes_per_second of
// the kernels with ReadBandwidth: the fraction is how close decode can get to
// its bandwidth bound. Run with OMP_NUM_THREADS=2 for the 2-thread figures.
#include <benchmark/benchmark.h>

#include <vector>

#include "core/rng.h"
#include "infer/membw.h"
#include "infer/quant_matrix.h"

namespace {

using hessgpt::infer::QuantMatrix;

void ReadBandwidth(benchmark::State& state) {
  double bw = 0.0;
  for (auto _ : state) bw = hessgpt::infer::measure_read_bandwidth(size_t{512} << 20, 3);
  state.counters["GB_per_s"] = bw / 1e9;
}
BENCHMARK(ReadBandwidth)->Unit(benchmark::kMillisecond)->Iterations(1);

void Matvec(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  const int64_t rows = 3413, cols = 1280;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  hessgpt::Rng rng(1);
  for (auto& x : w) x = static_cast<float>(0.02 * rng.normal());
  const auto format = hessgpt::infer::weight_format_from_bits(bits);
  std::vector<QuantMatrix> mats;
  size_t total = 0;
  while (total < (size_t{256} << 20)) {
    mats.push_back(QuantMatrix::quantize(w.data(), rows, cols, format, 32));
    total += mats.back().stream_bytes();
  }
  std::vector<float> x(static_cast<size_t>(cols), 0.5f), y(static_cast<size_t>(rows));
  for (auto _ : state) {
    for (const QuantMatrix& m : mats) m.matvec(x.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * total));
}
BENCHMARK(Matvec)->Arg(32)->Arg(16)->Arg(8)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
