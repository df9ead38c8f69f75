#include "cli/ranked_run.h"

#include <algorithm>
#include <cstdio>
#include <exception>

#include "core/log.h"

namespace hessgpt::cli {

RankedRun start_ranked_run(const ComputeOptions& options) {
  dist::select_local_gpu();  // before any CUDA call
  RankedRun r;
  r.backend = make_backend(options);
  r.comm = dist::make_communicator(*r.backend);
  if (r.comm->rank() > 0) set_log_level(std::max(log_level(), LogLevel::Warn));
  return r;
}

void run_on_every_rank(dist::Communicator& comm, const std::function<void()>& body) {
  if (comm.size() == 1) return body();
  try {
    body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error (rank %d of %d): %s\n", comm.rank(), comm.size(), e.what());
    comm.abort(1);
  }
}

}  // namespace hessgpt::cli
