// The sandbox against hostile programs: each must be contained with a clear
// result and leave the host (this test process, its files, its network
// listeners) untouched. Limits are short so the suite stays fast.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "route/sandbox.h"

namespace hessgpt::route {
namespace {

namespace fs = std::filesystem;

#define REQUIRE_SANDBOX()                                                  \
  do {                                                                     \
    std::string why;                                                       \
    if (!sandbox_available(&why)) GTEST_SKIP() << "sandbox unavailable: " << why; \
  } while (0)

SandboxLimits quick_limits() {
  SandboxLimits l;
  // Generous: ctest runs suites side by side on few cores. Tests that expect
  // a time-out set a short wall limit of their own.
  l.wall_seconds = 5.0;
  l.cpu_seconds = 5.0;
  return l;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Host processes still alive as the sandbox's throw-away uid. Zombies do not
// count: bwrap's namespace init is orphaned when the outer bwrap exits and
// waits for the host's init to reap it; it runs nothing and holds nothing.
int processes_of_uid(int64_t uid) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "status");
    std::string line;
    bool zombie = false;
    while (std::getline(in, line)) {
      if (line.rfind("State:", 0) == 0) zombie = line.find('Z') != std::string::npos;
      if (line.rfind("Uid:", 0) == 0) {
        if (std::strtoll(line.c_str() + 4, nullptr, 10) == uid && !zombie) ++count;
        break;
      }
    }
  }
  return count;
}

// Waits up to 3 s for every process of `uid` to be gone. Only meaningful when
// the sandbox ran under a throw-away uid (we are root); run as an ordinary
// user it shares our uid, and this check is skipped.
bool all_gone(int64_t uid) {
  if (uid == int64_t(::getuid())) return true;
  for (int i = 0; i < 300; ++i) {
    if (processes_of_uid(uid) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// A file on the host the programs try to reach; it must stay intact.
class HostMarker {
 public:
  HostMarker() {
    dir_ = fs::temp_directory_path() / ("hg_sandbox_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    path_ = dir_ / "marker.txt";
    std::ofstream(path_) << "intact";
  }
  ~HostMarker() { fs::remove_all(dir_); }
  std::string path() const { return path_.string(); }
  bool intact() const {
    std::ifstream in(path_);
    std::string s;
    std::getline(in, s);
    return s == "intact" && fs::file_size(path_) == 6;
  }

 private:
  fs::path dir_, path_;
};

TEST(Sandbox, NormalProgramPrintsItsResult) {
  REQUIRE_SANDBOX();
  const SandboxResult r = run_python_sandboxed("print(37*41)\n", quick_limits());
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.failure, SandboxFailure::kNone);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stdout_text, "1517\n");
  EXPECT_EQ(route_result_text(r), "1517");
}

TEST(Sandbox, ExceptionBecomesShortError) {
  REQUIRE_SANDBOX();
  const SandboxResult r = run_python_sandboxed("x = 1\nprint(x / 0)\n", quick_limits());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.failure, SandboxFailure::kException);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.error, "ZeroDivisionError: division by zero");
  EXPECT_EQ(route_result_text(r), "error: ZeroDivisionError: division by zero");
}

TEST(Sandbox, SyntaxErrorAndExitStatus) {
  REQUIRE_SANDBOX();
  SandboxResult r = run_python_sandboxed("def f(:\n", quick_limits());
  EXPECT_EQ(r.failure, SandboxFailure::kException);
  EXPECT_TRUE(contains(r.error, "SyntaxError")) << r.error;
  r = run_python_sandboxed("import sys\nsys.exit(3)\n", quick_limits());
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.error, "exit status 3");
}

TEST(Sandbox, ResultIsTrimmedAndCapped) {
  REQUIRE_SANDBOX();
  SandboxResult r = run_python_sandboxed("print('  é' * 300)\n", quick_limits());
  ASSERT_TRUE(r.ok) << r.error;
  const std::string text = route_result_text(r, 200);
  EXPECT_LE(text.size(), 200u + std::string("…").size());
  EXPECT_EQ(text.rfind("é", 0), 0u);  // leading spaces trimmed
  EXPECT_TRUE(text.ends_with("…"));
  r = run_python_sandboxed("pass\n", quick_limits());
  EXPECT_EQ(route_result_text(r), "error: no output");
}

TEST(Sandbox, NoNetwork) {
  REQUIRE_SANDBOX();
  // A listener on the host's loopback: the sandbox must not reach it.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);

  const std::string program =
      "import socket\n"
      "def attempt(label, fn):\n"
      "    try:\n"
      "        fn(); print(label, 'CONNECTED')\n"
      "    except Exception as e:\n"
      "        print(label, type(e).__name__)\n"
      "def tcp(host, port):\n"
      "    s = socket.socket(); s.settimeout(1); s.connect((host, port))\n"
      "attempt('loopback', lambda: tcp('127.0.0.1', " + std::to_string(port) + "))\n"
      "attempt('dns', lambda: socket.getaddrinfo('example.com', 80))\n"
      "attempt('internet', lambda: tcp('1.1.1.1', 53))\n";
  const SandboxResult r = run_python_sandboxed(program, quick_limits());
  ASSERT_TRUE(r.ok) << r.error << r.stderr_text;
  EXPECT_FALSE(contains(r.stdout_text, "CONNECTED")) << r.stdout_text;
  EXPECT_TRUE(contains(r.stdout_text, "loopback ConnectionRefusedError")) << r.stdout_text;
  EXPECT_TRUE(contains(r.stdout_text, "dns gaierror")) << r.stdout_text;
  EXPECT_TRUE(contains(r.stdout_text, "internet OSError")) << r.stdout_text;
  // Nothing knocked on the host listener.
  EXPECT_LT(::accept(listener, nullptr, nullptr), 0);
  ::close(listener);
}

TEST(Sandbox, HostFilesAreInvisible) {
  REQUIRE_SANDBOX();
  ::setenv("HG_SANDBOX_TEST_SECRET", "s3cr3t-host-marker", 1);
  HostMarker marker;
  const std::string program =
      "import os\n"
      "for p in ['" HESSGPT_SOURCE_DIR "', '" HESSGPT_SOURCE_DIR "/README.md', '/root', '/home',\n"
      "          '/etc/shadow', '/etc/passwd', '/work', '" + marker.path() + "']:\n"
      "    print(p, 'VISIBLE' if os.path.exists(p) else 'absent')\n"
      "print('environ', open('/proc/1/environ').read())\n"
      "print('pids', sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
      "print('uid', os.getuid())\n";
  const SandboxResult r = run_python_sandboxed(program, quick_limits());
  ASSERT_TRUE(r.ok) << r.error << r.stderr_text;
  EXPECT_FALSE(contains(r.stdout_text, "VISIBLE")) << r.stdout_text;
  EXPECT_FALSE(contains(r.stdout_text, "s3cr3t-host-marker")) << r.stdout_text;
  // A PID namespace of its own: bwrap's init, python, nothing of the host.
  EXPECT_TRUE(contains(r.stdout_text, "pids [1, 2]")) << r.stdout_text;
  EXPECT_TRUE(contains(r.stdout_text, "uid 1000")) << r.stdout_text;
  EXPECT_TRUE(marker.intact());
}

TEST(Sandbox, CannotWriteOutsideItsTmpfs) {
  REQUIRE_SANDBOX();
  HostMarker marker;
  const std::string program =
      "import os\n"
      "for p in ['/usr/hg_sandbox_probe', '/etc/hg_sandbox_probe', '/hg_sandbox_probe',\n"
      "          '/sandbox/main.py', '/usr/bin/python3', '" + marker.path() + "']:\n"
      "    try:\n"
      "        open(p, 'w').write('pwned'); print(p, 'WROTE')\n"
      "    except Exception as e:\n"
      "        print(p, type(e).__name__)\n"
      "open('/tmp/scratch.txt', 'w').write('ok')\n"
      "print('tmp', open('/tmp/scratch.txt').read())\n";
  const SandboxResult r = run_python_sandboxed(program, quick_limits());
  ASSERT_TRUE(r.ok) << r.error << r.stderr_text;
  EXPECT_FALSE(contains(r.stdout_text, "WROTE")) << r.stdout_text;
  EXPECT_TRUE(contains(r.stdout_text, "tmp ok")) << r.stdout_text;  // the working dir is writable
  EXPECT_FALSE(fs::exists("/usr/hg_sandbox_probe"));
  EXPECT_FALSE(fs::exists("/hg_sandbox_probe"));
  EXPECT_TRUE(marker.intact());
}

TEST(Sandbox, TmpfsIsFreshPerRun) {
  REQUIRE_SANDBOX();
  ASSERT_TRUE(run_python_sandboxed("open('/tmp/left.txt', 'w').write('x')\nprint(1)\n", quick_limits()).ok);
  const SandboxResult r =
      run_python_sandboxed("import os\nprint(os.path.exists('/tmp/left.txt'))\n", quick_limits());
  EXPECT_EQ(r.stdout_text, "False\n");
}

TEST(Sandbox, ForkBombIsContained) {
  REQUIRE_SANDBOX();
  HostMarker marker;
  SandboxLimits l = quick_limits();
  l.wall_seconds = 1.0;
  const auto t0 = std::chrono::steady_clock::now();
  const SandboxResult r = run_python_sandboxed(
      "import os\n"
      "while True:\n"
      "    try:\n"
      "        os.fork()\n"
      "    except OSError:\n"
      "        pass\n",
      l);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.failure, SandboxFailure::kTimeout) << r.error;
  EXPECT_EQ(route_result_text(r), "error: timed out after 1 s");
  EXPECT_LT(seconds, 4.0);
  EXPECT_TRUE(all_gone(r.host_uid)) << "processes of uid " << r.host_uid << " survived";
  EXPECT_TRUE(marker.intact());
}

TEST(Sandbox, ProcessLimitStopsForks) {
  REQUIRE_SANDBOX();
  SandboxLimits l = quick_limits();
  l.max_processes = 8;
  const SandboxResult r = run_python_sandboxed(
      "import os, time\n"
      "n = 0\n"
      "try:\n"
      "    for _ in range(100):\n"
      "        if os.fork() == 0:\n"
      "            time.sleep(5); os._exit(0)\n"
      "        n += 1\n"
      "except OSError as e:\n"
      "    print('refused after', n, type(e).__name__)\n",
      l);
  EXPECT_TRUE(r.ok) << r.error << r.stderr_text;
  EXPECT_TRUE(contains(r.stdout_text, "refused after")) << r.stdout_text;
  EXPECT_TRUE(all_gone(r.host_uid));  // the sleeping children die with the sandbox
}

TEST(Sandbox, MemoryBombHitsTheLimit) {
  REQUIRE_SANDBOX();
  SandboxResult r = run_python_sandboxed("x = bytearray(1 << 30)\n", quick_limits());
  EXPECT_EQ(r.failure, SandboxFailure::kMemoryLimit) << r.error;
  EXPECT_EQ(route_result_text(r), "error: memory limit (MemoryError)");
  r = run_python_sandboxed("chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 20))\n", quick_limits());
  EXPECT_EQ(r.failure, SandboxFailure::kMemoryLimit) << r.error;
}

TEST(Sandbox, InfiniteLoopHitsCpuLimit) {
  REQUIRE_SANDBOX();
  SandboxLimits l = quick_limits();
  l.cpu_seconds = 1.0;
  l.wall_seconds = 15.0;  // CPU time, not wall time, must end it
  const SandboxResult r = run_python_sandboxed("while True:\n    pass\n", l);
  EXPECT_EQ(r.failure, SandboxFailure::kCpuLimit) << r.error;
  EXPECT_EQ(route_result_text(r), "error: CPU time limit (1 s)");
}

TEST(Sandbox, InfiniteLoopHitsWallLimit) {
  REQUIRE_SANDBOX();
  SandboxLimits l = quick_limits();
  l.wall_seconds = 0.5;
  const SandboxResult r = run_python_sandboxed("while True:\n    pass\n", l);
  EXPECT_EQ(r.failure, SandboxFailure::kTimeout) << r.error;
  EXPECT_EQ(r.error, "timed out after 0.5 s");
}

TEST(Sandbox, CpuSpinInThreadsHitsCpuLimit) {
  REQUIRE_SANDBOX();
  SandboxLimits l = quick_limits();
  l.cpu_seconds = 1.0;
  l.wall_seconds = 15.0;
  const SandboxResult r = run_python_sandboxed(
      "import threading\n"
      "def spin():\n"
      "    while True:\n"
      "        pass\n"
      "for _ in range(8):\n"
      "    threading.Thread(target=spin).start()\n",
      l);
  // RLIMIT_CPU counts every thread of the process together.
  EXPECT_EQ(r.failure, SandboxFailure::kCpuLimit) << r.error;
  EXPECT_TRUE(all_gone(r.host_uid));
}

TEST(Sandbox, EnormousOutputIsCutAndKilled) {
  REQUIRE_SANDBOX();
  SandboxLimits l = quick_limits();
  l.max_output_bytes = 16 << 10;
  const SandboxResult r = run_python_sandboxed("while True:\n    print('x' * 1000)\n", l);
  EXPECT_EQ(r.failure, SandboxFailure::kOutputLimit) << r.error;
  EXPECT_EQ(r.error, "output limit (16384 bytes)");
  EXPECT_LE(r.stdout_text.size() + r.stderr_text.size(), size_t(16 << 10));
  EXPECT_LT(r.seconds, 5.0);  // killed at the cap, not at the deadline
  // Also through stderr alone.
  const SandboxResult e = run_python_sandboxed("import sys\nwhile True:\n    sys.stderr.write('y' * 999)\n", l);
  EXPECT_EQ(e.failure, SandboxFailure::kOutputLimit) << e.error;
}

TEST(Sandbox, KillingItsParentDoesNotReachTheHost) {
  REQUIRE_SANDBOX();
  const pid_t me = ::getpid();
  const SandboxResult r = run_python_sandboxed(
      "import os\n"
      "for target in (os.getppid(), 1):\n"
      "    try:\n"
      "        os.kill(target, 9)\n"
      "    except Exception as e:\n"
      "        print(type(e).__name__)\n"
      "print('alive')\n",
      quick_limits());
  // Signals from inside a PID namespace to its init are dropped.
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(contains(r.stdout_text, "alive"));
  // kill(-1) reaches every process the program may signal: in its PID
  // namespace that is nobody but init (exempt) and itself (skipped).
  const SandboxResult all = run_python_sandboxed(
      "import os\ntry:\n    os.kill(-1, 9)\nexcept Exception as e:\n    print(type(e).__name__)\nprint('alive')\n",
      quick_limits());
  EXPECT_TRUE(all.ok) << all.error;
  EXPECT_EQ(all.stdout_text, "ProcessLookupError\nalive\n");
  // Killing its own process group ends the program, nothing else.
  const SandboxResult group = run_python_sandboxed("import os\nos.killpg(0, 9)\n", quick_limits());
  EXPECT_EQ(group.failure, SandboxFailure::kSignal) << group.error;
  EXPECT_EQ(group.error, "killed by signal 9 (SIGKILL)");
  EXPECT_EQ(::getpid(), me);
  EXPECT_EQ(::kill(me, 0), 0);  // this test process is alive
}

TEST(Sandbox, SleepPastTheDeadlineKeepsEarlierOutput) {
  REQUIRE_SANDBOX();
  SandboxLimits l = quick_limits();
  l.wall_seconds = 2.0;  // long enough to print first even on a loaded machine
  const SandboxResult r =
      run_python_sandboxed("import time\nprint('started')\ntime.sleep(60)\n", l);
  EXPECT_EQ(r.failure, SandboxFailure::kTimeout);
  EXPECT_EQ(r.stdout_text, "started\n");
  EXPECT_LT(r.seconds, 4.5);
  EXPECT_EQ(route_result_text(r), "error: timed out after 2 s");
}

TEST(Sandbox, EscapingThePidNamespaceByDaemonisingFails) {
  REQUIRE_SANDBOX();
  // A double fork + setsid child outliving the program must still die with the sandbox.
  const SandboxResult r = run_python_sandboxed(
      "import os, time\n"
      "if os.fork() == 0:\n"
      "    os.setsid()\n"
      "    if os.fork() == 0:\n"
      "        time.sleep(30)\n"
      "    os._exit(0)\n"
      "print('parent done')\n",
      quick_limits());
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(all_gone(r.host_uid));
}

TEST(Sandbox, CrashIsReportedAsSignal) {
  REQUIRE_SANDBOX();
  const SandboxResult r = run_python_sandboxed("import ctypes\nctypes.string_at(0)\n", quick_limits());
  EXPECT_EQ(r.failure, SandboxFailure::kSignal);
  EXPECT_EQ(r.error, "killed by signal 11 (SIGSEGV)");
}

TEST(Sandbox, ConcurrentRunsDoNotShareProcessBudgets) {
  REQUIRE_SANDBOX();
  if (::geteuid() != 0) GTEST_SKIP() << "per-run uids need root; as a user, sandboxes share one process budget";
  SandboxLimits bomb = quick_limits();
  bomb.wall_seconds = 1.0;
  auto f = std::async(std::launch::async, [&] {
    return run_python_sandboxed("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", bomb);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the bomb is at its limit now
  for (int i = 0; i < 3; ++i) {
    const SandboxResult r = run_python_sandboxed("print(2 ** 10)\n", quick_limits());
    EXPECT_EQ(route_result_text(r), "1024");
  }
  EXPECT_EQ(f.get().failure, SandboxFailure::kTimeout);
}

TEST(Sandbox, InvalidLimitsAreRefused) {
  SandboxLimits l;
  l.wall_seconds = 0;
  EXPECT_THROW(run_python_sandboxed("print(1)", l), Error);
  l = {};
  l.memory_bytes = 1 << 20;
  EXPECT_THROW(l.validate(), Error);
}

TEST(SandboxCli, JsonContract) {
  REQUIRE_SANDBOX();
  const fs::path dir = fs::temp_directory_path() / ("hg_sandbox_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "p.py") << "print(37*41)\n";
  const std::string out_path = (dir / "out.json").string();
  const std::string cmd = std::string(HESSGPT_BINARY) + " sandbox run " + (dir / "p.py").string() +
                          " --timeout 2 --memory-mb 128 --json > " + out_path;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(out_path);
  std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* field : {"\"ok\":true", "\"stdout\":\"1517\\n\"", "\"stderr\":\"\"", "\"error\":null",
                            "\"exit_code\":0"})
    EXPECT_TRUE(contains(json, field)) << field << " in " << json;

  std::ofstream(dir / "bad.py") << "raise ValueError('nope')\n";
  const std::string bad = std::string(HESSGPT_BINARY) + " sandbox run " + (dir / "bad.py").string() +
                          " --json > " + out_path + " 2>/dev/null";
  EXPECT_NE(std::system(bad.c_str()), 0);  // a failed program is a failed command
  std::ifstream in2(out_path);
  json.assign((std::istreambuf_iterator<char>(in2)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(contains(json, "\"error\":\"ValueError: nope\"")) << json;
  EXPECT_TRUE(contains(json, "\"ok\":false")) << json;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hessgpt::route
