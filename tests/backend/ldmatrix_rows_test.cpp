// The rows each lane hands to ldmatrix (ldmatrix_rows.h) against the mma
// fragment layouts they must produce: an emulation of ldmatrix as the PTX ISA
// specifies it, fed a tile whose every element is distinct, so that a wrong
// row, column, matrix order or transposition shows up as a wrong element.
#include <gtest/gtest.h>

#include <array>
#include <functional>
#include <utility>
#include <vector>

#include "backend/cuda/ldmatrix_rows.h"

namespace hessgpt::cuda {
namespace {

constexpr int kRows = 64, kStride = 72;  // a padded shared-memory tile, as the kernels use

// Element (row, col) of the tile holds row * 1000 + col.
int tile(int row, int col) { return row * 1000 + col; }

using Pair = std::pair<int, int>;            // the two 16-bit halves of a register
using Registers = std::array<Pair, 4>;       // registers 0 .. matrices - 1 of one lane
using LaneRow = std::function<TileAt(int)>;  // the row address a lane gives

// ldmatrix.sync.aligned.m8n8.x{matrices}[.trans].b16: row r of matrix i is the
// 8 elements from the address lane 8i + r gives; lane l receives, in register
// i, the pair (row l / 4, cols 2 (l % 4), + 1) of matrix i, or with .trans the
// pair (rows 2 (l % 4), + 1; col l / 4).
std::array<Registers, 32> ldmatrix(int matrices, bool trans, const LaneRow& row_of) {
  std::array<Registers, 32> out{};
  for (int i = 0; i < matrices; ++i) {
    std::array<std::array<int, 8>, 8> m{};
    for (int r = 0; r < 8; ++r) {
      const TileAt at = row_of(8 * i + r);
      EXPECT_GE(at.row, 0);
      EXPECT_LT(at.row, kRows);
      EXPECT_EQ(at.col % 8, 0) << "rows must start on 16 bytes";
      EXPECT_LE(at.col + 8, kStride);
      for (int j = 0; j < 8; ++j) m[r][j] = tile(at.row, at.col + j);
    }
    for (int l = 0; l < 32; ++l) {
      const int g = l / 4, c = l % 4;
      out[l][i] = trans ? Pair{m[2 * c][g], m[2 * c + 1][g]} : Pair{m[g][2 * c], m[g][2 * c + 1]};
    }
  }
  return out;
}

// mma.m16n8k16 A (16 x 16, row-major) at A(row, col): lane l = 4g + c holds
// (g, 2c), (g + 8, 2c), (g, 2c + 8), (g + 8, 2c + 8), each with col + 1.
Registers a_fragment(int lane, const std::function<int(int, int)>& a) {
  const int g = lane / 4, c = lane % 4;
  return {Pair{a(g, 2 * c), a(g, 2 * c + 1)}, Pair{a(g + 8, 2 * c), a(g + 8, 2 * c + 1)},
          Pair{a(g, 2 * c + 8), a(g, 2 * c + 9)}, Pair{a(g + 8, 2 * c + 8), a(g + 8, 2 * c + 9)}};
}

// B (16 x 8) at B(k, n): lane l = 4g + c holds (k 2c, 2c + 1; n g) and
// (k 2c + 8, 2c + 9; n g).
std::pair<Pair, Pair> b_fragment(int lane, const std::function<int(int, int)>& b) {
  const int g = lane / 4, c = lane % 4;
  return {Pair{b(2 * c, g), b(2 * c + 1, g)}, Pair{b(2 * c + 8, g), b(2 * c + 9, g)}};
}

TEST(LdmatrixRows, AFragmentOfARowMajorTile) {
  for (const auto& [r0, k0] : {std::pair{0, 0}, std::pair{16, 48}, std::pair{48, 32}}) {
    const auto got = ldmatrix(4, false, [&](int l) { return ldmatrix_a_row(l, r0, k0); });
    for (int l = 0; l < 32; ++l)
      EXPECT_EQ(got[l], a_fragment(l, [&](int r, int c) { return tile(r0 + r, k0 + c); }))
          << "lane " << l << " at " << r0 << ", " << k0;
  }
}

// The registers of a two-n-tile (x4) and a one-n-tile (x2) B load against
// the fragments of B(t, k, n), n-tile t's element (k, n).
void expect_b_fragments(const std::array<Registers, 32>& two, const std::array<Registers, 32>& one,
                        const std::function<int(int, int, int)>& b) {
  for (int l = 0; l < 32; ++l) {
    for (int t = 0; t < 2; ++t) {
      const auto want = b_fragment(l, [&](int k, int n) { return b(t, k, n); });
      EXPECT_EQ(two[l][2 * t], want.first) << "x4 lane " << l << " n-tile " << t;
      EXPECT_EQ(two[l][2 * t + 1], want.second) << "x4 lane " << l << " n-tile " << t;
      if (t == 1) continue;
      EXPECT_EQ(one[l][0], want.first) << "x2 lane " << l;
      EXPECT_EQ(one[l][1], want.second) << "x2 lane " << l;
    }
  }
}

// The score products: B[k][n] = K[n][k], a tile stored [n][k]; n-tiles n0..
// and n0 + 8...
TEST(LdmatrixRows, BFragmentsOfATileStoredByN) {
  for (const auto& [n0, k0] : {std::pair{0, 0}, std::pair{16, 48}, std::pair{40, 16}}) {
    expect_b_fragments(ldmatrix(4, false, [&](int l) { return ldmatrix_b2_row(l, n0, k0); }),
                       ldmatrix(2, false, [&](int l) { return ldmatrix_b_row(l, n0, k0); }),
                       [&](int t, int k, int n) { return tile(n0 + 8 * t + n, k0 + k); });
  }
}

// The products over the rows (P V, dS^T Q, P^T dout, dS K): B[k][n] = V[k][n],
// a tile stored [k][n], read through .trans.
TEST(LdmatrixRows, BFragmentsOfATileStoredByKThroughTrans) {
  for (const auto& [k0, n0] : {std::pair{0, 0}, std::pair{16, 48}, std::pair{48, 8}}) {
    expect_b_fragments(ldmatrix(4, true, [&](int l) { return ldmatrix_b2_trans_row(l, k0, n0); }),
                       ldmatrix(2, true, [&](int l) { return ldmatrix_b_trans_row(l, k0, n0); }),
                       [&](int t, int k, int n) { return tile(k0 + k, n0 + 8 * t + n); });
  }
}

// The emulation itself: a transposed read of a tile is the plain read of its
// transpose, so swapping .trans without transposing the tile must fail.
TEST(LdmatrixRows, TheEmulationTellsTransFromPlain) {
  const auto plain = ldmatrix(2, false, [](int l) { return ldmatrix_b_trans_row(l, 0, 0); });
  int differ = 0;
  for (int l = 0; l < 32; ++l) {
    const auto want = b_fragment(l, [](int k, int n) { return tile(k, n); });
    differ += plain[l][0] != want.first;
  }
  EXPECT_GT(differ, 0);
}

}  // namespace
}  // namespace hessgpt::cuda
