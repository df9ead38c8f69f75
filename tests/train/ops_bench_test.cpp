// hessgpt bench ops: every op is timed, with rates that follow from its shape.
#include <gtest/gtest.h>

#include <set>

#include "backend/cpu/cpu_backend.h"
#include "common/test_util.h"
#include "train/ops_bench.h"

namespace hessgpt {
namespace {

TEST(OpsBench, TimesEveryOpOnTiny) {
  CpuBackend be(2);
  const auto ops = run_ops_bench(preset_config("tiny"), be, 2, 33, 2, 1);
  std::set<std::string> names;
  for (const OpTiming& t : ops) {
    names.insert(t.name);
    EXPECT_GT(t.ms, 0) << t.name;
    EXPECT_GT(t.bytes, 0) << t.name;
    EXPECT_FALSE(t.shape.empty()) << t.name;
    if (t.name.rfind("matmul", 0) == 0 || t.name.rfind("attention", 0) == 0) {
      EXPECT_GT(t.tflops_per_s(), 0) << t.name;
    }
  }
  for (const char* op : {"matmul qkv", "matmul head chunk", "attention fwd", "attention bwd",
                         "rmsnorm bwd", "softcap cross-entropy", "adamw (all parameters)",
                         "matmul gate/up (bf16 out)", "swiglu bwd (bf16 gate/up)",
                         "attention bwd (all bf16)", "matmul head dW chunk",
                         "matmul head dW chunk (bf16 x)"})
    EXPECT_TRUE(names.count(op)) << op;
}

TEST(OpsBench, OnlyTimesTheOpsItMatches) {
  CpuBackend be(2);
  const auto ops = run_ops_bench(preset_config("tiny"), be, 1, 16, 1, 1, "^attention b");
  ASSERT_FALSE(ops.empty());
  for (const OpTiming& t : ops) EXPECT_EQ(t.name.rfind("attention bwd", 0), 0u) << t.name;
  EXPECT_THROW(run_ops_bench(preset_config("tiny"), be, 1, 16, 1, 1, "(attention"), Error);
}

TEST(OpsBench, CliJson) {
  const auto r = testing::run_command(testing::hessgpt_binary() +
                                      " bench ops --model tiny --batch 1 --seq 16 --repeat 1 --threads 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"attention bwd\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"device\":\"cpu\""), std::string::npos) << r.out;
  const auto bad = testing::run_command(testing::hessgpt_binary() + " bench ops --model tiny --repeat 0");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("must be positive"), std::string::npos) << bad.out;
  const auto regex = testing::run_command(testing::hessgpt_binary() +
                                          " bench ops --model tiny --only '(attention'");
  EXPECT_NE(regex.exit_code, 0);
  EXPECT_NE(regex.out.find("is not a regular expression"), std::string::npos) << regex.out;
}

}  // namespace
}  // namespace hessgpt
