// The Python sandbox (SPEC §3): runs one untrusted program — Model 2's answer
// to a math or logic route — in a fresh bubblewrap (bwrap) container and
// returns what it printed, or a short error. Nothing the program does can
// crash or hang the caller: every failure (exception, time-out, limit, crash,
// signal, a sandbox that cannot start) comes back as a SandboxResult.
//
// One run, from the outside in:
//   host process ── fork ── child: new process group, rlimits, setuid to a
//     throw-away uid (when we are root), execve(bwrap)
//   bwrap: new user, PID, network, IPC, UTS and cgroup namespaces; a root
//     that holds only /usr (read-only, plus the /bin /lib /lib64 links), a
//     private /proc and minimal /dev, the program as read-only /sandbox/main.py
//     and a size-capped tmpfs at /tmp (the working directory, the only
//     writable place); the root itself is remounted read-only. No /etc, no
//     /home, /root, /work or project folder, no host /proc, no network but a
//     loopback of its own.
//   /usr/bin/python3 -I -B -u /sandbox/main.py, in an empty environment.
// The host reads stdout and stderr through pipes with poll() until both
// close or a limit is hit; the wall-clock deadline and the output cap end the
// run with SIGKILL to the process group. bwrap's --die-with-parent and the
// PID namespace take every process the program started down with it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hessgpt::route {

struct SandboxLimits {
  double wall_seconds = 5.0;          // killed after this much real time
  double cpu_seconds = 5.0;           // RLIMIT_CPU per process (SIGXCPU)
  int64_t memory_bytes = 256ll << 20; // RLIMIT_AS per process
  int64_t max_processes = 32;         // RLIMIT_NPROC: processes + threads of the sandbox uid
  int64_t max_file_bytes = 16ll << 20; // RLIMIT_FSIZE per file, and the size of the /tmp tmpfs
  int64_t max_output_bytes = 64 << 10; // stdout + stderr together; killed beyond it
  int64_t max_open_files = 64;        // RLIMIT_NOFILE

  // Throws Error naming the first limit that is not positive.
  void validate() const;
};

enum class SandboxFailure {
  kNone,          // exited 0
  kException,     // exited non-zero (an uncaught exception, sys.exit(n))
  kTimeout,       // wall-clock deadline
  kCpuLimit,      // RLIMIT_CPU
  kMemoryLimit,   // MemoryError under RLIMIT_AS
  kOutputLimit,   // stdout + stderr beyond max_output_bytes
  kSignal,        // killed by a signal (a crash, or it killed itself)
  kStartFailed,   // bwrap or python could not start
};

struct SandboxResult {
  bool ok = false;              // exited 0 within every limit
  std::string stdout_text;      // at most max_output_bytes together with stderr
  std::string stderr_text;
  int exit_code = -1;           // the program's exit status; -1 when killed or never started
  SandboxFailure failure = SandboxFailure::kStartFailed;
  std::string error;            // short, "" when ok: "ZeroDivisionError: division by zero",
                                // "timed out after 5 s", "memory limit (MemoryError)", ...
  double seconds = 0.0;         // wall time of the run
  int64_t host_uid = -1;        // the uid the sandbox ran as on the host (diagnostics, tests)
};

// The interpreter and bwrap this build uses (Debian paths).
constexpr const char* kBwrapPath = "/usr/bin/bwrap";
constexpr const char* kPythonPath = "/usr/bin/python3";

// True when bwrap and python3 exist and a trivial program runs; the answer is
// computed once and cached. `why` (optional) receives the reason when false.
bool sandbox_available(std::string* why = nullptr);

// Runs `program` (Python source) in a fresh sandbox. Never throws for
// anything the program does; throws Error only for invalid limits.
SandboxResult run_python_sandboxed(std::string_view program, const SandboxLimits& limits = {});

// What the router injects for a math/logic route: stdout trimmed and cut to
// `max_chars` (UTF-8 safe, "…" appended when cut), or "error: " + error.
// A program that succeeds but prints nothing gives "error: no output" — Model 1
// needs something to answer from.
std::string route_result_text(const SandboxResult& result, size_t max_chars = 200);

// "timeout", "memory_limit", ... (for JSON and logs).
std::string_view sandbox_failure_name(SandboxFailure failure);

}  // namespace hessgpt::route
