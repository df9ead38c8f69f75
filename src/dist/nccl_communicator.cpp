#include "dist/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "core/error.h"

namespace hessgpt::dist {
namespace {

void check(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess) HG_FAIL("NCCL ", what, " failed: ", ncclGetErrorString(rc));
}

void check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) HG_FAIL("CUDA ", what, " failed: ", cudaGetErrorString(rc));
}

}  // namespace

struct NcclCommunicator::State {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
};

NcclCommunicator::NcclCommunicator() : s_(std::make_unique<State>()) {
  ncclUniqueId id{};
  if (rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  broadcast_bytes(&id, sizeof(id), 0);
  check(cudaStreamCreateWithFlags(&s_->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  check(ncclCommInitRank(&s_->comm, size(), id, rank()), "ncclCommInitRank");
}

NcclCommunicator::~NcclCommunicator() {
  // Errors are ignored: a destructor must not throw.
  if (s_->comm) ncclCommDestroy(s_->comm);
  if (s_->stream) cudaStreamDestroy(s_->stream);
}

void NcclCommunicator::allreduce_sum(Backend& backend, const Tensor& t) {
  if (t.device != Device::CUDA) return MpiCommunicator::allreduce_sum(backend, t);
  HG_CHECK(t.dtype == DType::F32, "allreduce_sum takes F32 tensors");
  // The backend's stream is private to it: wait for its work, then reduce on
  // ours. NCCL's ring and tree give every rank the same bits.
  backend.synchronize();
  check(ncclAllReduce(t.data, t.data, static_cast<size_t>(t.numel()), ncclFloat, ncclSum,
                      s_->comm, s_->stream), "ncclAllReduce");
  check(cudaStreamSynchronize(s_->stream), "cudaStreamSynchronize");
}

void NcclCommunicator::broadcast(Backend& backend, const Tensor& t, int root) {
  if (t.device != Device::CUDA) return MpiCommunicator::broadcast(backend, t, root);
  backend.synchronize();
  check(ncclBroadcast(t.data, t.data, t.bytes(), ncclChar, root, s_->comm, s_->stream),
        "ncclBroadcast");
  check(cudaStreamSynchronize(s_->stream), "cudaStreamSynchronize");
}

}  // namespace hessgpt::dist
