// A real interruption: `hessgpt pretrain` is killed with SIGKILL at an
// arbitrary moment after its first checkpoint, then the same command is run
// again. The final weights must equal, byte for byte, those of a run that was
// never interrupted.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "train/pretrain_cli_util.h"

namespace hessgpt {
namespace {

namespace fs = std::filesystem;
using hessgpt::testing::run_command;
using hessgpt::testing::TempDir;

using hessgpt::testing::read_bytes;

TEST(PretrainKill, KilledRunResumesToTheSameWeights) {
  TempDir dir;
  pretrain_test::prepare_tiny_run(dir);
  if (HasFatalFailure()) return;
  const std::string bin = hessgpt::testing::hessgpt_binary();
  const std::string args = " pretrain --model " + dir / "model.json" + " --data " + dir / "data" +
                           " --steps 30 --batch 4 --accum 1 --seq 32 --eval-every 10 --eval-batches 2"
                           " --save-every 3 --keep 2 --log-every 0 --threads 2 --out ";
  ASSERT_EQ(run_command(bin + args + dir / "straight").exit_code, 0);

  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string cmd = bin + args + dir / "killed" + " >/dev/null 2>&1";
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait for a first checkpoint, then kill without warning.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(dir / "killed/checkpoints/step_3") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(fs::exists(dir / "killed/checkpoints"));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) GTEST_SKIP() << "the run finished before the kill";
  EXPECT_FALSE(fs::exists(dir / "killed/final/model.safetensors"));

  const auto resumed = run_command(bin + args + dir / "killed");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("resuming from"), std::string::npos) << resumed.out;
  EXPECT_EQ(read_bytes(dir / "straight/final/model.safetensors"),
            read_bytes(dir / "killed/final/model.safetensors"));
}

}  // namespace
}  // namespace hessgpt
