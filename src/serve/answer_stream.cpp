#include "serve/answer_stream.h"

#include <string_view>

namespace hessgpt::serve {
namespace {

// The router's trim() set.
constexpr std::string_view kSpace = " \t\r\n";

}  // namespace

std::string AnswerStream::push(int32_t id) {
  text_.push(id);
  // What the router would answer if the turn ended here, less a partial
  // character (TextStream::push held it back, so it is not in the stable part).
  const std::string& all = text_.text();
  const std::string stable = all.substr(0, all.size() - infer::unfinished_utf8_tail(all));
  const size_t begin = stable.find_first_not_of(kSpace);
  if (begin == std::string::npos) return {};
  const size_t end = stable.find_last_not_of(kSpace) + 1;
  const std::string_view shown = std::string_view(stable).substr(begin, end - begin);
  if (shown.size() <= sent_.size() || shown.substr(0, sent_.size()) != sent_) return {};
  std::string delta(shown.substr(sent_.size()));
  sent_ += delta;
  return delta;
}

std::string AnswerStream::finish(const std::string& answer) {
  // Always a prefix by the invariant; if a decoder ever broke it, the client
  // at least gets no duplicated text.
  if (answer.size() <= sent_.size() || answer.compare(0, sent_.size(), sent_) != 0) return {};
  std::string rest = answer.substr(sent_.size());
  sent_ = answer;
  return rest;
}

}  // namespace hessgpt::serve
