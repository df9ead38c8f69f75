#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/chained_launch.cuh"
#include "backend/cuda/cuda_check.h"

namespace hessgpt::cuda {
namespace {

__device__ __forceinline__ int64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return static_cast<int64_t>(t);
}

// times[0]: when the spinning kernel ended; times[1]: when the chained one began.
__global__ void spin_kernel(int64_t* times, int64_t spin_ns) {
  allow_next_grid();
  const int64_t start = global_ns();
  while (global_ns() - start < spin_ns) {
  }
  times[0] = global_ns();
}

__global__ void note_start_kernel(int64_t* times) {
  const int64_t start = global_ns();
  wait_for_previous_grid();
  times[1] = start;
}

// Device memory and a stream, released on every path out.
struct ProbeResources {
  int64_t* times = nullptr;
  cudaStream_t stream = nullptr;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ~ProbeResources() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (stream) cudaStreamDestroy(stream);
    if (times) cudaFree(times);
  }
};

}  // namespace

double chained_launch_overlap_us(bool in_graph, double spin_us) {
  ProbeResources r;
  HG_CUDA_CHECK(cudaMalloc(&r.times, 2 * sizeof(int64_t)));
  HG_CUDA_CHECK(cudaStreamCreateWithFlags(&r.stream, cudaStreamNonBlocking));
  const auto launch_both = [&] {
    spin_kernel<<<1, 32, 0, r.stream>>>(r.times, static_cast<int64_t>(spin_us * 1000.0));
    HG_CUDA_CHECK_LAUNCH();
    launch_chained(note_start_kernel, dim3(1), dim3(32), 0, r.stream, r.times);
  };
  if (in_graph) {
    HG_CUDA_CHECK(cudaStreamBeginCapture(r.stream, cudaStreamCaptureModeThreadLocal));
    launch_both();
    HG_CUDA_CHECK(cudaStreamEndCapture(r.stream, &r.graph));
    HG_CUDA_CHECK(cudaGraphInstantiate(&r.exec, r.graph, 0));
    HG_CUDA_CHECK(cudaGraphLaunch(r.exec, r.stream));
  } else {
    launch_both();
  }
  HG_CUDA_CHECK(cudaStreamSynchronize(r.stream));
  int64_t times[2] = {0, 0};
  HG_CUDA_CHECK(cudaMemcpy(times, r.times, sizeof(times), cudaMemcpyDeviceToHost));
  return static_cast<double>(times[0] - times[1]) / 1000.0;
}

}  // namespace hessgpt::cuda
