// `hessgpt serve` as a user runs it: the "serving on" line, a request, one
// log line per request on stderr, and a clean exit on SIGTERM.
#if HESSGPT_HAVE_HTTPLIB  // else hg_serve was built without HTTP

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <regex>

#include "http_test_util.h"

extern char** environ;

namespace hessgpt {
namespace {

using nlohmann::json;

// The binary started with its stdout on a pipe and its stderr in a file.
class ServeProcess {
 public:
  ServeProcess(const std::vector<std::string>& args, const std::string& stderr_path) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    stdout_ = out[0];
    if (rc != 0) throw std::runtime_error("posix_spawn failed");
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(stdout_);
  }

  // The first line on stdout, or "" after `seconds` or at end of file.
  std::string first_line(double seconds) {
    std::string line;
    char c;
    pollfd p{stdout_, POLLIN, 0};
    while (::poll(&p, 1, static_cast<int>(seconds * 1000)) > 0 && ::read(stdout_, &c, 1) == 1) {
      if (c == '\n') return line;
      line += c;
    }
    return "";
  }
  // Sends `sig` and returns the exit status (-1: killed, or still running
  // after `seconds`).
  int stop(int sig, double seconds) {
    ::kill(pid_, sig);
    int status = 0;
    for (int i = 0; i < seconds * 100; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      ::usleep(10000);
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int stdout_ = -1;
};

TEST(ServeCli, ServesAndStopsOnSigterm) {
  const serve_test::TinyAssistant& a = serve_test::tiny_assistant();
  const std::string log = a.dir / "serve.log";
  ServeProcess p(
      {testing::hessgpt_binary(), "serve", "--model1", a.model1, "--model2", a.model2, "--port",
       "0", "--threads", "1", "--device", "cpu", "--max-new", "32", "--api-key", "k1"},
      log);
  const std::string line = p.first_line(60);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(line, m, std::regex(R"(serving on http://127\.0\.0\.1:(\d+))")))
      << "first line: \"" << line << "\"\n"
      << testing::read_bytes(log);
  httplib::Client c("127.0.0.1", std::stoi(m[1]));
  c.set_read_timeout(60, 0);
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(c.Get("/v1/models")->status, 401);
  c.set_bearer_token_auth("k1");
  auto r = serve_test::post(c, serve_test::user_request("What is 37 times 41?"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["hessgpt"]["trace"][0]["result"], "1517");

  EXPECT_EQ(p.stop(SIGTERM, 10), 0);
  const std::string err = testing::read_bytes(log);
  EXPECT_NE(err.find("GET /health 200"), std::string::npos) << err;
  EXPECT_NE(err.find("GET /v1/models 401"), std::string::npos) << err;
  EXPECT_TRUE(std::regex_search(err, std::regex(R"(POST /v1/chat/completions 200 tokens=\d+ )")))
      << err;
  EXPECT_NE(err.find("SIGTERM, stopping"), std::string::npos) << err;
  EXPECT_NE(err.find("stopped (1 completed"), std::string::npos) << err;
}

TEST(ServeCli, BadStartsFailWithAMessage) {
  const serve_test::TinyAssistant& a = serve_test::tiny_assistant();
  const std::string bin = testing::hessgpt_binary() + " serve --threads 1 --device cpu";
  auto r = testing::run_command(bin + " --model1 " + (a.dir / "nope") + " --model2 " + a.model2);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("nope"), std::string::npos) << r.out;
  r = testing::run_command(bin + " --model1 " + a.model1 + " --model2 " + a.model2 +
                           " --host 203.0.113.7 --port 0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("cannot listen on 203.0.113.7"), std::string::npos) << r.out;
  r = testing::run_command(bin + " --model1 " + a.model1 + " --model2 " + a.model2 +
                           " --port 70000");
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
}  // namespace hessgpt

#endif  // HESSGPT_HAVE_HTTPLIB
