#include "data/utf8_clean.h"

#include <gtest/gtest.h>

namespace hessgpt::data {

TEST(Utf8Clean, ValidTextIsUnchanged) {
  const std::string s = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 ok";
  EXPECT_TRUE(is_valid_utf8(s));
  const Utf8Cleaned c = clean_utf8(s);
  EXPECT_EQ(c.text, s);
  EXPECT_EQ(c.invalid_sequences, 0);
}

TEST(Utf8Clean, RepairsEachMaximalInvalidSubpartOnce) {
  // lone continuation, truncated 3-byte sequence, overlong '/', surrogate, > U+10FFFF
  const std::string s = "a\x80" "b\xE2\x82" "c\xC0\xAF" "d\xED\xA0\x80" "e\xF5\x80";
  EXPECT_FALSE(is_valid_utf8(s));
  const Utf8Cleaned c = clean_utf8(s);
  EXPECT_TRUE(is_valid_utf8(c.text));
  EXPECT_EQ(c.text.substr(0, 1), "a");
  EXPECT_NE(c.text.find("b\xEF\xBF\xBD" "c"), std::string::npos);  // truncated E2 82 is one U+FFFD
  EXPECT_GE(c.invalid_sequences, 7);
}

TEST(Utf8Clean, NormalisesLineEndsAndFlagsNul) {
  const Utf8Cleaned c = clean_utf8(std::string("a\r\nb\rc\0d", 8));
  EXPECT_EQ(c.text, std::string("a\nb\nc\0d", 7));
  EXPECT_TRUE(c.has_nul);
}

}  // namespace hessgpt::data
