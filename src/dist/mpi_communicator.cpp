#include "dist/mpi_communicator.h"

#include <mpi.h>

#include <climits>
#include <cstdlib>

#include "core/error.h"

namespace hessgpt::dist {
namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  HG_FAIL("MPI ", what, " failed: ", std::string(text, static_cast<size_t>(len)));
}

// MPI counts are ints: large tensors go in pieces.
constexpr int64_t kMaxCount = INT_MAX / 2;

}  // namespace

MpiCommunicator::MpiCommunicator() {
  int initialized = 0;
  check(MPI_Initialized(&initialized), "MPI_Initialized");
  if (!initialized) check(MPI_Init(nullptr, nullptr), "MPI_Init");
  // Errors come back as codes (and become Error exceptions) instead of
  // MPI's default of aborting with its own message.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void MpiCommunicator::allreduce_sum(Backend& backend, const Tensor& t) {
  HG_CHECK(t.dtype == DType::F32, "allreduce_sum takes F32 tensors");
  float* data = static_cast<float*>(t.data);
  if (t.device != Device::CPU) {
    staging_.resize(static_cast<size_t>(t.numel()));
    backend.copy_to_host(staging_.data(), t);
    data = staging_.data();
  }
  // Reduce to rank 0, then broadcast: one summation order, so every rank
  // holds the same bits (an allreduce may add in a different order per rank).
  for (int64_t at = 0; at < t.numel(); at += kMaxCount) {
    const int n = static_cast<int>(std::min(kMaxCount, t.numel() - at));
    float* p = data + at;
    check(MPI_Reduce(rank_ == 0 ? MPI_IN_PLACE : p, rank_ == 0 ? p : nullptr, n, MPI_FLOAT,
                     MPI_SUM, 0, MPI_COMM_WORLD), "MPI_Reduce");
    check(MPI_Bcast(p, n, MPI_FLOAT, 0, MPI_COMM_WORLD), "MPI_Bcast");
  }
  if (t.device != Device::CPU) backend.copy_from_host(t, staging_.data());
}

void MpiCommunicator::broadcast(Backend& backend, const Tensor& t, int root) {
  const size_t bytes = t.bytes();
  if (t.device == Device::CPU) {
    broadcast_bytes(t.data, bytes, root);
    return;
  }
  staging_.resize((bytes + sizeof(float) - 1) / sizeof(float));
  backend.copy_to_host(staging_.data(), t);
  broadcast_bytes(staging_.data(), bytes, root);
  backend.copy_from_host(t, staging_.data());
}

void MpiCommunicator::broadcast_bytes(void* data, size_t bytes, int root) {
  auto* p = static_cast<char*>(data);
  for (size_t at = 0; at < bytes; at += kMaxCount) {
    const int n = static_cast<int>(std::min<size_t>(kMaxCount, bytes - at));
    check(MPI_Bcast(p + at, n, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
}

void MpiCommunicator::allreduce_sum(std::span<double> values) {
  // Few values: the order question of allreduce_sum(Tensor) is moot at
  // double precision for sums of per-rank losses, but keep one order anyway.
  const int n = static_cast<int>(values.size());
  check(MPI_Reduce(rank_ == 0 ? MPI_IN_PLACE : values.data(), rank_ == 0 ? values.data() : nullptr,
                   n, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD), "MPI_Reduce");
  check(MPI_Bcast(values.data(), n, MPI_DOUBLE, 0, MPI_COMM_WORLD), "MPI_Bcast");
}

void MpiCommunicator::barrier() { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

void MpiCommunicator::abort(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

}  // namespace hessgpt::dist
