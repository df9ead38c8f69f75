// hessgpt sandbox run FILE.py: runs one Python program in the sandbox exactly
// as the router runs Model 2's math/logic programs (SPEC §6).
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "core/error.h"
#include "route/sandbox.h"

namespace hessgpt::cli {
namespace {

struct SandboxOptions {
  std::string file;
  double timeout = 0;        // 0: the default limit
  int64_t memory_mb = 0;
  double cpu = 0;
  int64_t processes = 0;
  int64_t output_kb = 0;
  bool json = false;
};

std::string read_program(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) HG_FAIL("sandbox: cannot read ", path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void run_sandbox(const SandboxOptions& o) {
  route::SandboxLimits limits;
  if (o.timeout > 0) {
    limits.wall_seconds = o.timeout;
    // CPU time cannot usefully exceed wall time; follow a shorter --timeout.
    limits.cpu_seconds = std::min(limits.cpu_seconds, o.timeout);
  }
  if (o.cpu > 0) limits.cpu_seconds = o.cpu;
  if (o.memory_mb > 0) limits.memory_bytes = o.memory_mb << 20;
  if (o.processes > 0) limits.max_processes = o.processes;
  if (o.output_kb > 0) limits.max_output_bytes = o.output_kb << 10;
  limits.validate();

  const route::SandboxResult r = route::run_python_sandboxed(read_program(o.file), limits);
  if (o.json) {
    nlohmann::json j;
    j["ok"] = r.ok;
    j["stdout"] = r.stdout_text;
    j["stderr"] = r.stderr_text;
    j["error"] = r.ok ? nlohmann::json(nullptr) : nlohmann::json(r.error);
    j["exit_code"] = r.exit_code;
    j["failure"] = route::sandbox_failure_name(r.failure);
    j["result"] = route::route_result_text(r);  // what the router would inject
    j["seconds"] = r.seconds;
    // dump() with replacement: program output need not be valid UTF-8.
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::fwrite(r.stdout_text.data(), 1, r.stdout_text.size(), stdout);
    std::fflush(stdout);
    std::fwrite(r.stderr_text.data(), 1, r.stderr_text.size(), stderr);
  }
  if (!r.ok) HG_FAIL("sandbox: ", r.error);
}

void setup(CLI::App& app) {
  auto o = std::make_shared<SandboxOptions>();
  CLI::App* sandbox = app.add_subcommand("sandbox", "The Python sandbox the router runs programs in");
  sandbox->require_subcommand(1);
  CLI::App* cmd = sandbox->add_subcommand("run", "Run one Python program in a fresh sandbox");
  cmd->add_option("file", o->file, "Python program")->required()->check(CLI::ExistingFile);
  cmd->add_option("--timeout", o->timeout, "Wall-clock limit in seconds (default 5)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--memory-mb", o->memory_mb, "Address-space limit in MiB (default 256)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--cpu", o->cpu, "CPU-time limit in seconds (default 5, at most --timeout)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--processes", o->processes, "Process and thread limit (default 32)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--output-kb", o->output_kb, "stdout + stderr limit in KiB (default 64)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o->json, "One JSON object: ok, stdout, stderr, error, exit_code (+ failure, result, seconds)");
  cmd->callback([o] { run_sandbox(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli
