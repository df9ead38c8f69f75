// The padded-width product shapes both backends are tested on (backend.h):
// each case pads one dimension on one side, with every transpose.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace hessgpt::testing {

struct PaddedCase {
  int64_t rows, cols;  // c
  int64_t ma, ka;      // op(a)
  int64_t kb, nb;      // op(b)
  bool ta, tb;
  std::string name() const {
    return "c [" + std::to_string(rows) + ", " + std::to_string(cols) + "] = op(a) [" +
           std::to_string(ma) + ", " + std::to_string(ka) + "] op(b) [" + std::to_string(kb) +
           ", " + std::to_string(nb) + "], transposes " + std::to_string(ta) + std::to_string(tb);
  }
};

// m, n, k of 19, 13, 37 (not multiples of 8); one of them padded on one side.
inline std::vector<PaddedCase> padded_cases() {
  const int64_t m = 19, n = 13, k = 37;
  const int64_t mp = padded_width(m), np = padded_width(n), kp = padded_width(k);
  const std::vector<PaddedCase> shapes = {
      {m, n, m, kp, k, n, false, false},   // a wider in K (the down product reading act)
      {m, n, m, k, kp, n, false, false},   // b wider in K
      {m, np, m, k, k, n, false, false},   // c wider than op(b) (gate/up into [N, FFNp])
      {m, n, m, k, k, np, false, false},   // op(b) wider than c (down's weight gradient)
      {m, n, mp, k, k, n, false, false},   // op(a) taller than c (gate/up weight gradients)
      {mp, n, m, k, k, n, false, false},   // c taller than op(a)
      {mp, np, m, kp, k, n, false, false}, // several at once
  };
  std::vector<PaddedCase> cases;
  for (int t = 0; t < 4; ++t) {
    for (PaddedCase p : shapes) {
      p.ta = t & 1;
      p.tb = t & 2;
      cases.push_back(p);
    }
  }
  return cases;
}

}  // namespace hessgpt::testing
