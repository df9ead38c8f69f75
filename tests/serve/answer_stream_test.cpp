// AnswerStream's invariant: the streamed deltas concatenate to the router's
// answer for the same ids (the trimmed decode), whatever the ids hold:
// leading and trailing whitespace, line breaks inside, characters split over
// byte-fallback pieces.
#include <gtest/gtest.h>

#include "serve/answer_stream.h"
#include "serve_test_util.h"

namespace hessgpt {
namespace {

using serve_test::tok;
using serve_test::trim;

// Streams `ids`; checks the concatenation and returns the deltas.
std::vector<std::string> stream(const std::vector<int32_t>& ids) {
  serve::AnswerStream s(tok());
  std::vector<std::string> deltas;
  for (int32_t id : ids) deltas.push_back(s.push(id));
  const std::string answer = trim(tok().decode(ids));  // what Router::run_turn answers
  deltas.push_back(s.finish(answer));
  std::string joined;
  for (const std::string& d : deltas) joined += d;
  EXPECT_EQ(joined, answer);
  return deltas;
}

TEST(AnswerStream, DeltasConcatenateToTheTrimmedAnswer) {
  for (const char* text :
       {"Hello world", "  two leading spaces", "line one\nline two\n\n", "\n\nstarts with breaks",
        "ends with spaces   ", "a\tb \t ", "price: 5 €, 3 ¥ and ∑ 😀!", "", "   ", "x"}) {
    SCOPED_TRACE(text);
    stream(tok().encode(text));
  }
}

TEST(AnswerStream, TextArrivesAsItIsWrittenNotAtTheEnd) {
  const std::vector<std::string> d = stream(tok().encode("one two three four"));
  // Everything but the last word is out before finish().
  std::string before;
  for (size_t i = 0; i + 1 < d.size(); ++i) before += d[i];
  EXPECT_EQ(before.rfind("one two three", 0), 0u) << before;
}

TEST(AnswerStream, WhitespaceWaitsForTheTextAfterIt) {
  serve::AnswerStream s(tok());
  std::string out;
  for (int32_t id : tok().encode("a\n")) out += s.push(id);
  EXPECT_EQ(out, "a");  // the line break may be the end of the answer
  for (int32_t id : tok().encode("b")) out += s.push(id);
  EXPECT_EQ(out, "a\n b");  // encode("b") brings its dummy-prefix space
}

TEST(AnswerStream, SplitCharacterWaitsForItsLastByte) {
  // "€" as three byte-fallback pieces: nothing until the third.
  std::vector<int32_t> ids = tok().encode("x");
  for (const char* piece : {"<0xE2>", "<0x82>", "<0xAC>"}) {
    int32_t id = -1;
    for (int32_t i = 0; i < 32000 && id < 0; ++i)
      if (tok().id_to_piece(i) == piece) id = i;
    ASSERT_GE(id, 0) << piece;
    ids.push_back(id);
  }
  serve::AnswerStream s(tok());
  std::vector<std::string> deltas;
  for (int32_t id : ids) deltas.push_back(s.push(id));
  EXPECT_EQ(deltas, (std::vector<std::string>{"x", "", "", "€"}));
}

}  // namespace
}  // namespace hessgpt
