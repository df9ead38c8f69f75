// NCCL between GPUs (NVLink, PCIe, InfiniBand) for CUDA tensors; MPI starts
// it (the unique id goes out by MPI broadcast) and carries host values.
#pragma once

#include "dist/mpi_communicator.h"

namespace hessgpt::dist {

class NcclCommunicator final : public MpiCommunicator {
 public:
  NcclCommunicator();
  ~NcclCommunicator() override;

  std::string name() const override { return "nccl"; }
  // CUDA tensors through NCCL (after the backend's queued work; returns when
  // the sum is in place); host tensors through MPI.
  void allreduce_sum(Backend& backend, const Tensor& t) override;
  void broadcast(Backend& backend, const Tensor& t, int root) override;
  using MpiCommunicator::allreduce_sum;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace hessgpt::dist
