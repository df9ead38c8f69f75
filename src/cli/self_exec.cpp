#include "cli/self_exec.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

extern char** environ;

namespace hessgpt::cli {

int run_self(const std::vector<std::string>& args) {
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) HG_FAIL("cannot find this program's path (/proc/self/exe): ", ec.message());
  std::vector<char*> argv;
  std::string name = "hessgpt";
  argv.push_back(name.data());
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ);
  if (rc != 0) HG_FAIL("cannot start ", command_line(args), ": ", std::strerror(rc));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) HG_FAIL("waiting for ", command_line(args), ": ", std::strerror(errno));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

std::string command_line(const std::vector<std::string>& args) {
  std::string s = "hessgpt";
  for (const std::string& a : args) {
    s += ' ';
    const bool quote = a.empty() || a.find_first_of(" \t'\"") != std::string::npos;
    s += quote ? "'" + a + "'" : a;
  }
  return s;
}

}  // namespace hessgpt::cli
