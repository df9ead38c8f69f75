// Data-parallel communication: every rank holds a whole model replica and
// computes on its own share of each batch; gradients are summed across ranks
// before the optimizer, so all replicas take the same step (as PyTorch's DDP
// and llm.c do). Implementations: one process (LocalCommunicator), MPI for
// host memory (OpenMPI, also across hosts), NCCL for CUDA memory (bootstrapped
// through MPI). Launch with `mpirun -np N hessgpt pretrain ...`; a run that
// was not launched by an MPI launcher is a single rank.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "backend/backend.h"

namespace hessgpt::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "local", "mpi" or "nccl" (+ ", host-staged" where CUDA tensors go through host memory).
  virtual std::string name() const = 0;

  // Sums an F32 tensor over ranks, in place. Every rank gets the same bits:
  // the replicas' updates must not drift apart.
  virtual void allreduce_sum(Backend& backend, const Tensor& t) = 0;
  // Rank `root`'s tensor to every rank.
  virtual void broadcast(Backend& backend, const Tensor& t, int root) = 0;
  // Sums host values over ranks, in place (losses, token counts).
  virtual void allreduce_sum(std::span<double> values) = 0;
  virtual void barrier() = 0;
  // Ends every rank's process (after an error on this one, so that the
  // others are not left waiting in a collective).
  [[noreturn]] virtual void abort(int exit_code) = 0;
};

// This rank's share of a batch of n rows: rows [first, first + count), equal
// shares in rank order (the last ranks take fewer, or none, when n does not
// divide). Trainers deal each global micro-batch out this way.
struct RankRows {
  int64_t first = 0, count = 0;
};
RankRows rank_rows(const Communicator& comm, int64_t n);

// Throws Error on every rank (the same decision everywhere) unless all ranks
// hold the same value; `what` names it. For state each rank reads from disk.
void check_same_on_every_rank(Communicator& comm, int64_t value, const std::string& what);

// Whether this process was started by an MPI launcher (mpirun, srun with PMIx).
bool launched_by_mpi();
// Ranks on this host and this process's index among them (1 and 0 when not
// launched by MPI).
int local_size();
int local_rank();

// Points this process at its own GPU before any CUDA call: CUDA_VISIBLE_DEVICES
// becomes its local rank's entry (of the list already set, or 0..n-1). Nothing
// happens for a single rank per host.
void select_local_gpu();

// The communicator for this process: MPI (or NCCL for a CUDA backend) when
// launched by MPI, else a single local rank. Throws Error naming what is
// missing when launched by MPI but built without it.
std::unique_ptr<Communicator> make_communicator(Backend& backend);

// What the binary can use: "mpi", "nccl".
std::vector<std::string> compiled_transports();

}  // namespace hessgpt::dist
