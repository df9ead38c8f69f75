#include "tokenizer/utf8.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace hessgpt {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8, ValidTextIsUnchanged) {
  for (const std::string& s : std::vector<std::string>{"", "plain ascii", "caf\xC3\xA9", "\xE6\x97\xA5\xE6\x9C\xAC", "\xF0\x9F\xA6\x99",
                              "\xF4\x8F\xBF\xBF", std::string("nul\0inside", 10)}) {
    EXPECT_TRUE(utf8::is_valid(s)) << s;
    EXPECT_EQ(utf8::repair(s), s);
    EXPECT_EQ(utf8::valid_prefix_length(s), s.size());
  }
}

// Expected outputs follow the WHATWG decoder (as TextDecoder and Python's
// errors="replace" give): one U+FFFD per maximal invalid subpart.
TEST(Utf8, RepairsMaximalSubparts) {
  EXPECT_EQ(utf8::repair("a\x80z"), "a" + kFffd + "z");                    // lone continuation
  EXPECT_EQ(utf8::repair("\xC0\xAF"), kFffd + kFffd);                       // overlong 2-byte lead
  EXPECT_EQ(utf8::repair("\xE0\x80\xAF"), kFffd + kFffd + kFffd);           // overlong 3-byte
  EXPECT_EQ(utf8::repair("\xED\xA0\x80"), kFffd + kFffd + kFffd);           // surrogate
  EXPECT_EQ(utf8::repair("\xF4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);  // above U+10FFFF
  EXPECT_EQ(utf8::repair("\xE2\x82"), kFffd);                               // truncated at the end
  EXPECT_EQ(utf8::repair("\xE2\x82z"), kFffd + "z");                        // truncated before ASCII
  EXPECT_EQ(utf8::repair("\xF0\x9F\x98"), kFffd);                           // truncated 4-byte
  EXPECT_EQ(utf8::repair("\xF5\xFF"), kFffd + kFffd);                       // never-valid bytes
  EXPECT_EQ(utf8::repair("\xC3\x28"), kFffd + "(");                         // bad continuation
  EXPECT_EQ(utf8::valid_prefix_length("ab\xFF"), 2u);
  EXPECT_FALSE(utf8::is_valid("\xC3"));
}

}  // namespace
}  // namespace hessgpt
