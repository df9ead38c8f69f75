// MPI (OpenMPI) over host memory. CUDA tensors are staged through host memory
// (correct everywhere; NcclCommunicator is the fast path between GPUs).
#pragma once

#include <vector>

#include "dist/communicator.h"

namespace hessgpt::dist {

class MpiCommunicator : public Communicator {
 public:
  // Initialises MPI (once per process) and finalises it on destruction.
  MpiCommunicator();
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }
  void allreduce_sum(Backend& backend, const Tensor& t) override;
  void broadcast(Backend& backend, const Tensor& t, int root) override;
  void allreduce_sum(std::span<double> values) override;
  void barrier() override;
  [[noreturn]] void abort(int exit_code) override;

  // Raw byte broadcast (NCCL's unique id).
  void broadcast_bytes(void* data, size_t bytes, int root);

 private:
  int rank_ = 0, size_ = 1;
  std::vector<float> staging_;  // CUDA tensors pass through here
};

}  // namespace hessgpt::dist
