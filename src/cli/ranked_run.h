// What the training commands share under mpirun (dist/communicator.h): each
// rank takes its own GPU, its backend and communicator; ranks other than 0
// only warn; an error on any rank ends them all instead of leaving the others
// waiting in a collective.
#pragma once

#include <functional>
#include <memory>

#include "cli/cli_util.h"
#include "dist/communicator.h"

namespace hessgpt::cli {

struct RankedRun {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<dist::Communicator> comm;
};

RankedRun start_ranked_run(const ComputeOptions& options);

// Runs body; with several ranks, an exception is printed with the rank and
// ends every rank's process (exit status 1).
void run_on_every_rank(dist::Communicator& comm, const std::function<void()>& body);

}  // namespace hessgpt::cli
