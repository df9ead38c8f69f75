// The Python sandbox on bubblewrap; see sandbox.h for the layers.
#include "route/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace hessgpt::route {
namespace {

using Clock = std::chrono::steady_clock;

// Fixed fd numbers in the child: the program (memfd) and the exec-error pipe.
constexpr int kProgramFd = 3;
constexpr int kExecErrorFd = 4;

// An fd closed on scope exit.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset(int f = -1) {
    if (fd >= 0) ::close(fd);
    fd = f;
  }
};

// Moves `fd` to a number >= 10 (close-on-exec) so the child's dup2 onto 0..4
// never overwrites a source it still needs.
int high_fd(int fd) {
  if (fd >= 10) return fd;
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  ::close(fd);
  return moved;
}

std::string format_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

// A throw-away uid per run, so RLIMIT_NPROC counts only this sandbox's
// processes (it counts per real uid, and root is exempt from it altogether)
// and two sandboxes running side by side never share a process budget.
int64_t next_sandbox_uid() {
  static std::atomic<uint32_t> counter{0};
  const uint32_t n = counter.fetch_add(1);
  return 1'000'000'000ll + int64_t(::getpid() % 1'000'000) * 1000 + n % 1000;
}

// Tasks (processes and threads) the given real uid owns now. Used only when
// we are not root and the sandbox must share our uid: RLIMIT_NPROC is then
// set to this plus the sandbox's own allowance.
int64_t tasks_of_uid(uid_t uid) {
  int64_t tasks = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "status");
    std::string line;
    bool mine = false;
    int64_t threads = 1;
    while (std::getline(in, line)) {
      if (line.rfind("Uid:", 0) == 0) mine = std::strtoul(line.c_str() + 4, nullptr, 10) == uid;
      if (line.rfind("Threads:", 0) == 0) threads = std::strtoll(line.c_str() + 8, nullptr, 10);
    }
    if (mine) tasks += threads;
  }
  return tasks;
}

std::vector<std::string> bwrap_arguments(const SandboxLimits& limits) {
  std::vector<std::string> a = {
      kBwrapPath,
      // Every namespace bwrap knows (user, pid, net, ipc, uts, cgroup); the
      // network namespace has only its own loopback.
      "--unshare-all", "--unshare-user", "--disable-userns",
      // A process with this uid/gid inside; the host sees our throw-away uid.
      "--uid", "1000", "--gid", "1000", "--hostname", "sandbox",
      // If we (or bwrap) die, everything inside dies; a new session stops
      // TIOCSTI keystroke injection into a terminal we might hold.
      "--die-with-parent", "--new-session",
      // Read-only system: /usr only, with the usual merged-/usr links.
      "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
      "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev",
      // The only writable place, capped so files cannot eat host memory.
      "--size", std::to_string(limits.max_file_bytes), "--tmpfs", "/tmp",
      "--ro-bind-data", std::to_string(kProgramFd), "/sandbox/main.py",
      "--remount-ro", "/", "--chdir", "/tmp",
      "--clearenv", "--setenv", "PATH", "/usr/bin", "--setenv", "HOME", "/tmp",
      "--setenv", "TMPDIR", "/tmp", "--setenv", "LANG", "C.UTF-8",
      // -I: no user site, no PYTHON* variables, no script folder on sys.path;
      // -B: no .pyc writes; -u: unbuffered, so output before a kill is kept.
      "--", kPythonPath, "-I", "-B", "-u", "/sandbox/main.py"};
  return a;
}

void set_limit(int resource, rlim_t soft, rlim_t hard) {
  const rlimit r{soft, hard};
  ::setrlimit(resource, &r);  // best effort in the child; failures surface as a looser limit
}

// Runs in the forked child: async-signal-safe calls only (the host may have
// threads). Never returns.
[[noreturn]] void child_exec(int out_w, int err_w, int devnull, int program_fd, int exec_err_w,
                             const SandboxLimits& limits, int64_t sandbox_uid, rlim_t nproc,
                             char* const* argv, char* const* envp) {
  ::setpgid(0, 0);
  sigset_t all;
  sigemptyset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGXCPU, SIGXFSZ}) ::signal(sig, SIG_DFL);

  ::dup2(devnull, 0);
  ::dup2(out_w, 1);
  ::dup2(err_w, 2);
  ::dup2(program_fd, kProgramFd);
  ::dup2(exec_err_w, kExecErrorFd);
  ::fcntl(kExecErrorFd, F_SETFD, FD_CLOEXEC);
  // No host file descriptor reaches the sandbox.
  if (::syscall(SYS_close_range, kExecErrorFd + 1, ~0u, 0) != 0) {
    for (int fd = kExecErrorFd + 1; fd < 4096; ++fd) ::close(fd);
  }

  const auto cpu = static_cast<rlim_t>(limits.cpu_seconds + 0.999);
  set_limit(RLIMIT_CPU, cpu, cpu + 1);  // SIGXCPU at the soft limit, SIGKILL a second later
  set_limit(RLIMIT_AS, rlim_t(limits.memory_bytes), rlim_t(limits.memory_bytes));
  set_limit(RLIMIT_NPROC, nproc, nproc);
  set_limit(RLIMIT_FSIZE, rlim_t(limits.max_file_bytes), rlim_t(limits.max_file_bytes));
  set_limit(RLIMIT_NOFILE, rlim_t(limits.max_open_files), rlim_t(limits.max_open_files));
  set_limit(RLIMIT_CORE, 0, 0);

  if (sandbox_uid >= 0) {
    const auto id = static_cast<uid_t>(sandbox_uid);
    if (::setgroups(0, nullptr) != 0 || ::setgid(id) != 0 || ::setuid(id) != 0) {
      const int e = errno;
      [[maybe_unused]] auto n = ::write(kExecErrorFd, &e, sizeof e);
      ::_exit(127);
    }
  }
  ::execve(argv[0], argv, envp);
  const int e = errno;
  [[maybe_unused]] auto n = ::write(kExecErrorFd, &e, sizeof e);
  ::_exit(127);
}

// The last non-empty line of a traceback: "ZeroDivisionError: division by zero".
std::string last_line(const std::string& text, size_t max_chars) {
  size_t end = text.find_last_not_of(" \t\r\n");
  if (end == std::string::npos) return "";
  size_t begin = text.rfind('\n', end);
  begin = begin == std::string::npos ? 0 : begin + 1;
  std::string line = text.substr(begin, end + 1 - begin);
  if (line.size() > max_chars) {
    size_t cut = max_chars;
    while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
    line = line.substr(0, cut) + "…";
  }
  return line;
}

std::string signal_text(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return str_cat("killed by signal ", sig, abbrev ? str_cat(" (SIG", abbrev, ")") : "");
}

// Fills failure/error/exit_code from the wait status when no limit of ours
// (time-out, output cap) ended the run first.
void classify_exit(int status, const SandboxLimits& limits, SandboxResult& r) {
  if (WIFSIGNALED(status)) {
    r.failure = SandboxFailure::kSignal;
    r.error = signal_text(WTERMSIG(status));
    return;
  }
  const int code = WEXITSTATUS(status);
  r.exit_code = code;
  if (code == 0) {
    r.ok = true;
    r.failure = SandboxFailure::kNone;
    return;
  }
  if (r.stderr_text.rfind("bwrap: ", 0) == 0) {
    r.exit_code = -1;
    r.failure = SandboxFailure::kStartFailed;
    r.error = "sandbox could not start: " + last_line(r.stderr_text.substr(0, r.stderr_text.find('\n')), 160);
    return;
  }
  // bwrap reports a child killed by signal N as exit status 128 + N.
  if (code > 128 && code < 128 + 65) {
    const int sig = code - 128;
    r.exit_code = -1;
    if (sig == SIGXCPU) {
      r.failure = SandboxFailure::kCpuLimit;
      r.error = "CPU time limit (" + format_seconds(limits.cpu_seconds) + " s)";
    } else {
      r.failure = SandboxFailure::kSignal;
      r.error = signal_text(sig);
    }
    return;
  }
  const std::string line = last_line(r.stderr_text, 160);
  if (line.find("MemoryError") != std::string::npos) {
    r.failure = SandboxFailure::kMemoryLimit;
    r.error = "memory limit (" + line + ")";
  } else {
    r.failure = SandboxFailure::kException;
    r.error = line.empty() ? str_cat("exit status ", code) : line;
  }
}

}  // namespace

void SandboxLimits::validate() const {
  if (!(wall_seconds > 0)) HG_FAIL("sandbox: the wall-time limit must be positive (got ", wall_seconds, " s)");
  if (!(cpu_seconds > 0)) HG_FAIL("sandbox: the CPU-time limit must be positive (got ", cpu_seconds, " s)");
  if (memory_bytes < (32ll << 20))
    HG_FAIL("sandbox: the memory limit must be at least 32 MiB (python needs it to start); got ",
            memory_bytes, " bytes");
  if (max_processes < 4)
    HG_FAIL("sandbox: the process limit must be at least 4 (bwrap itself uses 3); got ", max_processes);
  if (max_file_bytes <= 0) HG_FAIL("sandbox: the file-size limit must be positive");
  if (max_output_bytes <= 0) HG_FAIL("sandbox: the output limit must be positive");
  if (max_open_files < 16) HG_FAIL("sandbox: the open-file limit must be at least 16");
}

std::string_view sandbox_failure_name(SandboxFailure failure) {
  switch (failure) {
    case SandboxFailure::kNone: return "none";
    case SandboxFailure::kException: return "exception";
    case SandboxFailure::kTimeout: return "timeout";
    case SandboxFailure::kCpuLimit: return "cpu_limit";
    case SandboxFailure::kMemoryLimit: return "memory_limit";
    case SandboxFailure::kOutputLimit: return "output_limit";
    case SandboxFailure::kSignal: return "signal";
    case SandboxFailure::kStartFailed: return "start_failed";
  }
  return "unknown";
}

SandboxResult run_python_sandboxed(std::string_view program, const SandboxLimits& limits) {
  limits.validate();
  SandboxResult r;
  const auto start = Clock::now();
  const auto finish = [&](SandboxResult& res) -> SandboxResult {
    res.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return std::move(res);
  };
  const auto start_failed = [&](const std::string& what) -> SandboxResult {
    r.failure = SandboxFailure::kStartFailed;
    r.error = "sandbox could not start: " + what;
    return finish(r);
  };
  if (::access(kBwrapPath, X_OK) != 0) return start_failed(str_cat(kBwrapPath, " not found (Debian: bubblewrap)"));
  if (::access(kPythonPath, X_OK) != 0) return start_failed(str_cat(kPythonPath, " not found"));

  // The program travels as an anonymous memory file that bwrap copies into
  // the sandbox read-only: no host path is involved.
  Fd program_fd(::memfd_create("hessgpt-program", MFD_CLOEXEC));
  if (program_fd.fd < 0) return start_failed(str_cat("memfd_create: ", std::strerror(errno)));
  for (size_t done = 0; done < program.size();) {
    const ssize_t n = ::write(program_fd.fd, program.data() + done, program.size() - done);
    if (n <= 0) return start_failed(str_cat("writing the program: ", std::strerror(errno)));
    done += size_t(n);
  }
  ::lseek(program_fd.fd, 0, SEEK_SET);
  program_fd.fd = high_fd(program_fd.fd);

  int out[2], err[2], exec_err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return start_failed("pipe");
  Fd out_r(high_fd(out[0])), out_w(high_fd(out[1]));
  if (::pipe2(err, O_CLOEXEC) != 0) return start_failed("pipe");
  Fd err_r(high_fd(err[0])), err_w(high_fd(err[1]));
  if (::pipe2(exec_err, O_CLOEXEC) != 0) return start_failed("pipe");
  Fd exec_err_r(high_fd(exec_err[0])), exec_err_w(high_fd(exec_err[1]));
  Fd devnull(high_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
  if (out_r.fd < 0 || out_w.fd < 0 || err_r.fd < 0 || err_w.fd < 0 || exec_err_r.fd < 0 ||
      exec_err_w.fd < 0 || devnull.fd < 0 || program_fd.fd < 0)
    return start_failed("could not set up file descriptors");

  // Everything the child needs is built before fork (no allocation after it).
  const bool root = ::geteuid() == 0;
  r.host_uid = root ? next_sandbox_uid() : int64_t(::getuid());
  const rlim_t nproc = root ? rlim_t(limits.max_processes)
                            : rlim_t(tasks_of_uid(::getuid()) + limits.max_processes);
  std::vector<std::string> args = bwrap_arguments(limits);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string path_env = "PATH=/usr/bin";
  char* envp[] = {path_env.data(), nullptr};

  const pid_t pid = ::fork();
  if (pid < 0) return start_failed(str_cat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    child_exec(out_w.fd, err_w.fd, devnull.fd, program_fd.fd, exec_err_w.fd, limits,
               root ? r.host_uid : -1, nproc, argv.data(), envp);
  }
  out_w.reset();
  err_w.reset();
  exec_err_w.reset();
  devnull.reset();
  program_fd.reset();

  // execve success closes the pipe (close-on-exec): read returns 0.
  int exec_errno = 0;
  ssize_t got;
  do got = ::read(exec_err_r.fd, &exec_errno, sizeof exec_errno);
  while (got < 0 && errno == EINTR);
  if (got > 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return start_failed(str_cat("cannot run ", kBwrapPath, ": ", std::strerror(exec_errno)));
  }

  // pidfd lets poll() wake on the exit as well as on output; without it
  // (old kernels) we poll with a short timeout and check waitpid.
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(limits.wall_seconds));
  Clock::time_point grace_end = Clock::time_point::max();
  bool exited = false, killed = false;
  int status = 0;
  int64_t total_output = 0;
  const auto kill_all = [&] {
    if (!killed) {
      ::kill(-pid, SIGKILL);  // the process group: outer bwrap; --die-with-parent and
      ::kill(pid, SIGKILL);   // the PID namespace take the rest
      killed = true;
      // Give the pipes a moment to drain and close as the namespace dies.
      grace_end = Clock::now() + std::chrono::seconds(1);
    }
  };
  bool status_lost = false;
  const auto reap = [&](int flags) {
    if (exited) return;
    const pid_t w = ::waitpid(pid, &status, flags);
    if (w == pid) exited = true;
    // ECHILD: the host ignores SIGCHLD, so the kernel reaped it for us.
    if (w < 0 && errno == ECHILD) exited = status_lost = true;
  };

  char buf[65536];
  while (out_r.fd >= 0 || err_r.fd >= 0 || !exited) {
    const auto now = Clock::now();
    if (exited && now >= deadline) break;
    if (!killed && now >= deadline) {
      r.failure = SandboxFailure::kTimeout;
      r.error = "timed out after " + format_seconds(limits.wall_seconds) + " s";
      kill_all();
    }
    if (now >= grace_end) break;
    if (exited && grace_end == Clock::time_point::max())
      grace_end = now + std::chrono::milliseconds(500);  // output still in flight after exit

    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, pid_i = -1;
    if (out_r.fd >= 0) { out_i = n; fds[n++] = {out_r.fd, POLLIN, 0}; }
    if (err_r.fd >= 0) { err_i = n; fds[n++] = {err_r.fd, POLLIN, 0}; }
    if (!exited && pidfd.fd >= 0) { pid_i = n; fds[n++] = {pidfd.fd, POLLIN, 0}; }
    const auto until = std::min(killed ? grace_end : deadline, grace_end);
    auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1;
    if (!exited && pidfd.fd < 0) wait_ms = std::min<int64_t>(wait_ms, 10);
    const int ready = ::poll(fds, nfds_t(n), int(std::clamp<int64_t>(wait_ms, 0, 60'000)));
    if (ready < 0 && errno != EINTR) break;

    for (int i : {out_i, err_i}) {
      if (i < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Fd& fd = i == out_i ? out_r : err_r;
      std::string& sink = i == out_i ? r.stdout_text : r.stderr_text;
      const ssize_t got_bytes = ::read(fd.fd, buf, sizeof buf);
      if (got_bytes <= 0) {
        if (got_bytes == 0 || errno != EINTR) fd.reset();
        continue;
      }
      const int64_t room = limits.max_output_bytes - total_output;
      if (room > 0) sink.append(buf, size_t(std::min<int64_t>(room, got_bytes)));
      total_output += got_bytes;
      if (total_output > limits.max_output_bytes && r.failure != SandboxFailure::kTimeout &&
          r.failure != SandboxFailure::kOutputLimit && !exited) {
        r.failure = SandboxFailure::kOutputLimit;
        r.error = "output limit (" + std::to_string(limits.max_output_bytes) + " bytes)";
        kill_all();
      }
    }
    if (pid_i >= 0 && (fds[pid_i].revents & POLLIN)) reap(0);
    else if (!exited) reap(WNOHANG);
  }
  if (!exited) {
    kill_all();
    reap(0);  // bwrap dies at once on SIGKILL, so this does not block
  }
  if (r.failure == SandboxFailure::kTimeout || r.failure == SandboxFailure::kOutputLimit) {
    r.ok = false;
    r.exit_code = -1;
  } else if (status_lost) {
    r.failure = SandboxFailure::kSignal;
    r.error = "exit status unavailable (the host process ignores SIGCHLD)";
  } else {
    classify_exit(status, limits, r);
  }
  return finish(r);
}

bool sandbox_available(std::string* why) {
  static std::once_flag once;
  static bool available = false;
  static std::string reason;
  std::call_once(once, [] {
    SandboxLimits limits;
    limits.wall_seconds = 10;
    const SandboxResult r = run_python_sandboxed("print(6 * 7)\n", limits);
    available = r.ok && r.stdout_text == "42\n";
    if (!available) reason = r.error.empty() ? "the probe program printed " + r.stdout_text : r.error;
  });
  if (why) *why = reason;
  return available;
}

std::string route_result_text(const SandboxResult& result, size_t max_chars) {
  if (!result.ok) return "error: " + (result.error.empty() ? std::string("unknown failure") : result.error);
  const std::string& s = result.stdout_text;
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "error: no output";
  const size_t e = s.find_last_not_of(" \t\r\n");
  std::string text = s.substr(b, e + 1 - b);
  if (text.size() > max_chars) {
    size_t cut = max_chars;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text = text.substr(0, cut) + "…";
  }
  return text;
}

}  // namespace hessgpt::route
