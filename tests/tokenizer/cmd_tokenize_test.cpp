// `hessgpt tokenize` end to end (SPEC §6 contract).
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

#include "tokenizer/tokenizer.h"

namespace hessgpt {
namespace {

struct Result {
  int status = -1;
  std::string out;
  std::string err;
};

class TokenizeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("hessgpt-tokcli-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  static std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  // Runs `hessgpt tokenize --tokenizer <default> ARGS < input`.
  Result run(const std::string& args, const std::string& input = "") {
    const std::string in = write("stdin.txt", input);
    const std::string out = (dir_ / "stdout.txt").string(), err = (dir_ / "stderr.txt").string();
    const std::string cmd = std::string(HESSGPT_BINARY) + " tokenize --tokenizer '" + Tokenizer::default_path() +
                            "' " + args + " < '" + in + "' > '" + out + "' 2> '" + err + "'";
    Result r;
    const int raw = std::system(cmd.c_str());
    r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }
  std::filesystem::path dir_;
};

TEST_F(TokenizeCli, EncodesEachLineWithoutBos) {
  const Result r = run("", "Hello world!\n grabbed\n\n<|end|>\ngrabbed");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "22557 1526 28808\n28705 13300\n\n523 28766 416 28766 28767\n13300\n");
}

TEST_F(TokenizeCli, DecodeReverses) {
  const std::string text = "Hello world!\n  two spaces\tand tab\n\nCafé 東京 🦙\n";
  const Result enc = run("", text);
  ASSERT_EQ(enc.status, 0) << enc.err;
  const Result dec = run("--decode", enc.out);
  ASSERT_EQ(dec.status, 0) << dec.err;
  EXPECT_EQ(dec.out, text);
  const Result special = run("--decode", "32001 22557 32003\n");
  EXPECT_EQ(special.out, "<|user|>Hello<|end|>\n");
}

TEST_F(TokenizeCli, ReadsFilesInsteadOfStdin) {
  const std::string a = write("a.txt", "Hello world!\n");
  const std::string b = write("b.txt", "grabbed\n");
  const Result r = run("'" + a + "' '" + b + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "22557 1526 28808\n13300\n");
}

TEST_F(TokenizeCli, CountsTokensPerFile) {
  const std::string a = write("a.txt", "Hello world!\ngrabbed\n");
  const std::string b = write("b.txt", "grabbed");
  const Result r = run("--count '" + a + "' '" + b + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "4 " + a + "\n1 " + b + "\n5 total\n");
  const Result j = run("--count --json '" + a + "'");
  ASSERT_EQ(j.status, 0) << j.err;
  EXPECT_NE(j.out.find("\"tokens\":4"), std::string::npos) << j.out;
}

TEST_F(TokenizeCli, ChatLinesBecomeTemplateIds) {
  const Result r = run("--chat", R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello world!"}]})" "\n");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "1 32001 15359 32003 32002 22557 1526 28808 32003\n");
  const Result back = run("--chat --decode", r.out);
  ASSERT_EQ(back.status, 0) << back.err;
  EXPECT_EQ(back.out, R"({"messages":[{"content":"Hi","role":"user"},{"content":"Hello world!","role":"assistant"}]})" "\n");
}

TEST_F(TokenizeCli, BadInputFailsWithAMessage) {
  const Result bad_id = run("--decode", "1 2 3\n5 abc 7\n");
  EXPECT_NE(bad_id.status, 0);
  EXPECT_NE(bad_id.err.find("line 2"), std::string::npos) << bad_id.err;
  const Result out_of_range = run("--decode", "99999\n");
  EXPECT_NE(out_of_range.status, 0);
  EXPECT_NE(out_of_range.err.find("99999"), std::string::npos) << out_of_range.err;
  const Result bad_chat = run("--chat", "{\"messages\": 3}\n");
  EXPECT_NE(bad_chat.status, 0);
  EXPECT_NE(bad_chat.err.find("messages"), std::string::npos) << bad_chat.err;
  const Result missing = run("--count /nonexistent/file.txt");
  EXPECT_NE(missing.status, 0);
  const std::string cmd = std::string(HESSGPT_BINARY) + " tokenize --tokenizer /nonexistent.model < /dev/null 2>/dev/null";
  EXPECT_NE(std::system(cmd.c_str()), 0);
}

}  // namespace
}  // namespace hessgpt
