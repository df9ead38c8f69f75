#include "data/quality_filter.h"

#include <gtest/gtest.h>

#include "data_test_util.h"

namespace hessgpt::data {

using testing::prose;

namespace {
std::optional<DropReason> check(const std::string& text, const std::string& profile = "prose") {
  return check_quality(text, FilterConfig::from_profile(profile));
}
}  // namespace

TEST(QualityFilter, GoodProsePasses) {
  EXPECT_EQ(check(prose(1)), std::nullopt);
  EXPECT_EQ(check("The Republic of Chile is a country in western South America. " + prose(2)), std::nullopt);
}

TEST(QualityFilter, CraftedDocumentsFailForTheRightReason) {
  EXPECT_EQ(check("   \n\t  "), DropReason::kEmpty);
  EXPECT_EQ(check("Too short to be a document."), DropReason::kTooShort);
  EXPECT_EQ(check(std::string(1'000'001, 'a')), DropReason::kTooLong);
  // 200+ characters but only a handful of (long) words
  EXPECT_EQ(check(std::string(120, 'x') + " " + std::string(120, 'y')), DropReason::kFewWords);
  std::string symbols;
  for (int i = 0; i < 40; ++i) symbols += "word {}[]<>|#@ ";
  EXPECT_EQ(check(symbols), DropReason::kSymbolRatio);
  std::string digits;
  for (int i = 0; i < 40; ++i) digits += "year 1234567 ";
  EXPECT_EQ(check(digits), DropReason::kDigitRatio);
  std::string repeated;
  for (int i = 0; i < 20; ++i) repeated += "Click here to subscribe to our newsletter today\n";
  EXPECT_EQ(check(repeated), DropReason::kRepeatedLines);
  std::string short_words;
  for (int i = 0; i < 80; ++i) short_words += "a b c ";
  EXPECT_EQ(check(short_words), DropReason::kWordLength);
  std::string numbers_only;
  for (int i = 0; i < 40; ++i) numbers_only += "12 ab 34 56 cd 78 ";  // 1/3 of words alphabetic
  FilterConfig f = FilterConfig::from_profile("prose");
  f.max_digit_ratio = 0;  // isolate the alphabetic-words rule
  f.min_mean_word_len = 0;
  EXPECT_EQ(check_quality(numbers_only, f), DropReason::kAlphaWords);
}

TEST(QualityFilter, CodeProfileKeepsCodeAndRefusesMinified) {
  const std::string code =
      "def area(radius):\n    \"\"\"Area of a circle.\"\"\"\n    return 3.14159 * radius ** 2\n\n"
      "for r in range(10):\n    print(r, area(r))\n";
  EXPECT_EQ(check(code, "code"), std::nullopt);
  EXPECT_NE(check(code, "prose"), std::nullopt);  // prose rules would refuse it
  std::string minified = "var a=1;";
  while (minified.size() < 3000) minified += "function f(b){return b*a+1};";
  EXPECT_EQ(check(minified, "code"), DropReason::kLongLines);
}

TEST(QualityFilter, ZeroSwitchesATestOff) {
  FilterConfig f = FilterConfig::from_profile("none");
  EXPECT_EQ(check_quality("x", f), std::nullopt);
  EXPECT_EQ(check_quality("  ", f), DropReason::kEmpty);  // empty is always dropped
}

TEST(QualityFilter, MeasuresText) {
  const TextStats st = measure_text("ab 12 c!\nab 12 c!\nxyz");
  EXPECT_EQ(st.words, 7);
  EXPECT_EQ(st.digits, 4);
  EXPECT_EQ(st.symbols, 2);
  EXPECT_EQ(st.lines, 2);  // "xyz" is under 4 characters
  EXPECT_EQ(st.repeated_lines, 1);
  EXPECT_EQ(st.longest_line, 8);
}

}  // namespace hessgpt::data
