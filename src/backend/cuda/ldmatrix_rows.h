// Which 16-byte row each lane hands to ldmatrix for the tensor-core fragments
// of warp_mma.cuh, in plain C++ so that the host tests can check the index
// math against the fragment layouts (tests/backend/ldmatrix_rows_test.cpp).
//
// ldmatrix .m8n8 .xN: lanes 8i .. 8i + 7 give the addresses of rows 0 .. 7 of
// matrix i (lanes past 8N give addresses too, which are ignored); register i
// of lane l then holds the pair (row l / 4, cols 2 (l % 4), + 1) of matrix i,
// or with .trans the pair (rows 2 (l % 4), + 1; col l / 4).
#pragma once

#include "backend/cuda/launch_config.h"

namespace hessgpt::cuda {

// A tile element: row and column in the tile's own [rows][stride] storage.
struct TileAt {
  int row = 0, col = 0;
};

// A (16 x 16, row-major) at rows r0.., cols k0..: matrices (r0, k0),
// (r0 + 8, k0), (r0, k0 + 8), (r0 + 8, k0 + 8).
HG_HD inline TileAt ldmatrix_a_row(int lane, int r0, int k0) {
  return {r0 + (lane & 7) + ((lane >> 3) & 1) * 8, k0 + (lane >> 4) * 8};
}

// B (16 x 8) of two n-tiles n0.. and n0 + 8.. from a tile stored [n][k]:
// matrices (n0, k0), (n0, k0 + 8), (n0 + 8, k0), (n0 + 8, k0 + 8).
HG_HD inline TileAt ldmatrix_b2_row(int lane, int n0, int k0) {
  return {n0 + (lane & 7) + (lane >> 4) * 8, k0 + ((lane >> 3) & 1) * 8};
}

// The same from a tile stored [k][n], through .trans: matrices (k0, n0),
// (k0 + 8, n0), (k0, n0 + 8), (k0 + 8, n0 + 8).
HG_HD inline TileAt ldmatrix_b2_trans_row(int lane, int k0, int n0) {
  return {k0 + (lane & 7) + ((lane >> 3) & 1) * 8, n0 + (lane >> 4) * 8};
}

// One n-tile (.x2): the first two matrices of the forms above.
HG_HD inline TileAt ldmatrix_b_row(int lane, int n0, int k0) {
  return {n0 + (lane & 7), k0 + ((lane >> 3) & 1) * 8};
}
HG_HD inline TileAt ldmatrix_b_trans_row(int lane, int k0, int n0) {
  return {k0 + (lane & 7) + ((lane >> 3) & 1) * 8, n0};
}

}  // namespace hessgpt::cuda
