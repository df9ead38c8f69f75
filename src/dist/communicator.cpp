#include "dist/communicator.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "dist/local_communicator.h"
#ifdef HESSGPT_HAVE_MPI
#include "dist/mpi_communicator.h"
#endif
#ifdef HESSGPT_HAVE_NCCL
#include "dist/nccl_communicator.h"
#endif

namespace hessgpt::dist {
namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

}  // namespace

// OpenMPI's mpirun sets OMPI_COMM_WORLD_*; PMIx launchers (srun, prterun) PMIX_RANK.
bool launched_by_mpi() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

int local_size() { return env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1); }
int local_rank() { return env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0); }

void select_local_gpu() {
  if (local_size() <= 1) return;
  std::vector<std::string> devices;
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"); visible && *visible) {
    std::stringstream list(visible);
    for (std::string d; std::getline(list, d, ',');) devices.push_back(d);
  }
  const int r = local_rank();
  const std::string mine = devices.empty()
                               ? std::to_string(r)
                               : devices[static_cast<size_t>(r) % devices.size()];
  ::setenv("CUDA_VISIBLE_DEVICES", mine.c_str(), 1);
}

RankRows rank_rows(const Communicator& comm, int64_t n) {
  const int64_t per_rank = (n + comm.size() - 1) / comm.size();
  const int64_t first = std::min(n, comm.rank() * per_rank);
  return {first, std::min(n, first + per_rank) - first};
}

void check_same_on_every_rank(Communicator& comm, int64_t value, const std::string& what) {
  if (comm.size() == 1) return;
  // Sum and sum of squares: all equal exactly when the variance is zero
  // (exact in double for the step counts this serves).
  const auto v = static_cast<double>(value);
  double sums[2] = {v, v * v};
  comm.allreduce_sum(sums);
  const double n = comm.size(), mean = sums[0] / n;
  if (sums[1] / n - mean * mean > 1e-9)
    HG_FAIL("the ranks disagree on ", what, " (this rank: ", value, "); every rank must see the "
            "same run directory and data (a shared filesystem)");
}

std::vector<std::string> compiled_transports() {
  std::vector<std::string> t;
#ifdef HESSGPT_HAVE_MPI
  t.push_back("mpi");
#endif
#ifdef HESSGPT_HAVE_NCCL
  t.push_back("nccl");
#endif
  return t;
}

std::unique_ptr<Communicator> make_communicator([[maybe_unused]] Backend& backend) {
  if (!launched_by_mpi()) return std::make_unique<LocalCommunicator>();
#ifdef HESSGPT_HAVE_NCCL
  if (backend.device() == Device::CUDA) return std::make_unique<NcclCommunicator>();
#endif
#ifdef HESSGPT_HAVE_MPI
  return std::make_unique<MpiCommunicator>();
#else
  if (env_int("OMPI_COMM_WORLD_SIZE", 1) <= 1) return std::make_unique<LocalCommunicator>();
  HG_FAIL("launched by mpirun with ", env_int("OMPI_COMM_WORLD_SIZE", 1),
          " ranks, but this binary was built without MPI (install libopenmpi-dev and rebuild)");
#endif
}

}  // namespace hessgpt::dist
