// CudaBackend::record: the ops captured from the backend's stream into a CUDA
// graph, replayed with one launch. Decoding a token is ~250 small launches
// (11 per layer): launched one by one, the host's launch rate, not the
// device, sets the pace.
#include <exception>
#include <string>

#include "backend/cuda/cuda_backend_state.h"
#include "core/env_switch.h"
#include "core/log.h"

namespace hessgpt {
namespace {

bool cuda_graphs_wanted() { return env_switch_on("HESSGPT_CUDA_GRAPHS"); }

class CudaGraphReplay final : public RecordedOps {
 public:
  CudaGraphReplay(cudaGraphExec_t exec, cudaStream_t stream, uint64_t generation)
      : exec_(exec), stream_(stream), generation_(generation) {}
  ~CudaGraphReplay() override { cudaGraphExecDestroy(exec_); }  // errors ignored: a destructor
  CudaGraphReplay(const CudaGraphReplay&) = delete;
  CudaGraphReplay& operator=(const CudaGraphReplay&) = delete;

  bool replay() override {
    if (cuda::scratch_generation().load() != generation_) return false;
    HG_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
    return true;
  }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
  uint64_t generation_;  // of the backends' scratch when recorded
};

}  // namespace

std::unique_ptr<RecordedOps> CudaBackend::record(const std::function<void()>& ops) {
  if (!cuda_graphs_wanted()) return nullptr;
  const uint64_t generation = cuda::scratch_generation().load();
  // Thread-local capture: a call from this thread that could synchronise or
  // allocate (a host read-back, a scratch buffer growing) fails instead of
  // running, and the capture with it.
  HG_CUDA_CHECK(cudaStreamBeginCapture(s_->stream, cudaStreamCaptureModeThreadLocal));
  std::string failure;
  try {
    ops();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(s_->stream, &graph);
  if (failure.empty() && ended != cudaSuccess) failure = cudaGetErrorString(ended);
  if (failure.empty() && cuda::scratch_generation().load() != generation)
    failure = "scratch memory was reallocated while recording";
  cudaGraphExec_t exec = nullptr;
  if (failure.empty()) {
    const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
    if (made != cudaSuccess) failure = cudaGetErrorString(made);
  }
  if (graph) cudaGraphDestroy(graph);
  if (!failure.empty()) {
    (void)cudaGetLastError();  // the capture's error is not the next call's
    log_warn("CUDA graphs: the ops could not be recorded (", failure, "); they run one by one");
    return nullptr;
  }
  return std::make_unique<CudaGraphReplay>(exec, s_->stream, generation);
}

}  // namespace hessgpt
