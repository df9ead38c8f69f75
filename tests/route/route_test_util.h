// Shared by the router tests: the default tokenizer and id-list helpers for
// writing scripted token streams.
#pragma once

#include <initializer_list>
#include <memory>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace hessgpt::route_test {

using Ids = std::vector<int32_t>;

inline const Tokenizer& tok() {
  static const std::unique_ptr<Tokenizer> t = Tokenizer::load_default();
  return *t;
}

inline Ids text(std::string_view s) { return tok().encode(s); }

inline Ids cat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const Ids& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace hessgpt::route_test
