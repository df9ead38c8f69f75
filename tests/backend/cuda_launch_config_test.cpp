// The CUDA kernels' launch shapes and index math (backend/cuda/launch_config.h),
// checked on the host: they run on every machine, GPU or not.
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backend/cuda/launch_config.h"

namespace hessgpt::cuda {
namespace {

TEST(CudaLaunchConfig, CeilDivAndRoundUp) {
  EXPECT_EQ(ceil_div(0, 32), 0);
  EXPECT_EQ(ceil_div(1, 32), 1);
  EXPECT_EQ(ceil_div(32, 32), 1);
  EXPECT_EQ(ceil_div(33, 32), 2);
  EXPECT_EQ(round_up(3413, 8), 3416);
  EXPECT_EQ(bf16_leading_dim(3413), 3416);
  EXPECT_EQ(bf16_leading_dim(1280), 1280);
}

TEST(CudaLaunchConfig, ElementwiseGridCoversEveryElementOnce) {
  EXPECT_EQ(elementwise_launch(0).blocks, 0);
  EXPECT_EQ(elementwise_launch(-5).blocks, 0);
  for (int64_t n : {int64_t{1}, int64_t{255}, int64_t{256}, int64_t{257}, int64_t{100000},
                    int64_t{1} << 31}) {
    const Launch1D l = elementwise_launch(n);
    EXPECT_GE(l.blocks, 1);
    EXPECT_LE(l.blocks, kMaxElementwiseBlocks);
    // A grid-stride loop covers n when the grid is non-empty; no block is idle
    // when the grid was not capped.
    if (l.blocks < kMaxElementwiseBlocks) {
      EXPECT_LT((l.blocks - 1) * l.threads, n);
    }
  }
  // The grid-stride pattern visits each index exactly once.
  const int64_t n = 5000;
  const Launch1D l = {3, 256};
  std::vector<int> hits(n, 0);
  for (int64_t b = 0; b < l.blocks; ++b)
    for (int t = 0; t < l.threads; ++t)
      for (int64_t i = b * l.threads + t; i < n; i += l.blocks * l.threads) ++hits[i];
  EXPECT_TRUE(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
}

// AdamW's chunks: each group cut into pieces of at most kAdamWChunk, in
// order, covering it exactly with its decay; empty groups give none.
TEST(CudaLaunchConfig, AdamWChunksTileTheGroups) {
  const int64_t c2 = 2 * kAdamWChunk;
  const std::vector<AdamWChunk> groups = {
      {0, c2 + 5, 1}, {c2 + 5, c2 + 5, 0}, {c2 + 9, c2 + 1289, 0}};
  const std::vector<AdamWChunk> chunks = adamw_chunks(groups);
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0], (AdamWChunk{0, kAdamWChunk, 1}));
  EXPECT_EQ(chunks[1], (AdamWChunk{kAdamWChunk, c2, 1}));
  EXPECT_EQ(chunks[2], (AdamWChunk{c2, c2 + 5, 1}));
  EXPECT_EQ(chunks[3], (AdamWChunk{c2 + 9, c2 + 1289, 0}));
  EXPECT_TRUE(adamw_chunks({}).empty());
}

// The GEMV kernel (decoding's products): a warp per column, every column
// covered by exactly one warp of the grid.
TEST(CudaLaunchConfig, GemvGridCoversEveryColumnOnce) {
  EXPECT_EQ(gemv_blocks(0), 0);
  for (const int64_t n : {1, 7, 8, 9, 1280, 1920, 6826, 32008}) {
    const int64_t blocks = gemv_blocks(n);
    EXPECT_GE(blocks * kGemvWarps, n) << n;
    EXPECT_LT((blocks - 1) * kGemvWarps, n) << n;
  }
}

// A weight row's split (gemv_dot.cuh): the values before the row's first
// 16-byte boundary, whole 16-byte chunks from it, and a tail shorter than a
// chunk, together the row; the chunks start on the boundary. For F32 and BF16
// rows at every starting offset, model1's down projection width included.
TEST(CudaLaunchConfig, GemvRowSplitCoversTheRowFromAlignedChunks) {
  for (const int64_t bytes : {4, 2})
    for (int64_t misaligned = 0; misaligned < 16; misaligned += bytes)
      for (const int64_t k : {0, 1, 2, 3, 5, 8, 17, 1280, 3413, 3416}) {
        const GemvRowSplit s = gemv_row_split(misaligned, k, bytes);
        const int64_t per_chunk = 16 / bytes, tail = k - s.head - s.body;
        const std::string what = std::to_string(bytes) + "-byte values from +" +
                                 std::to_string(misaligned) + ", k " + std::to_string(k);
        EXPECT_GE(s.head, 0) << what;
        EXPECT_LT(s.head, per_chunk) << what;
        EXPECT_EQ(s.body % per_chunk, 0) << what;
        EXPECT_GE(tail, 0) << what;
        EXPECT_LT(tail, per_chunk) << what;
        if (s.head < k) {
          EXPECT_EQ((misaligned + s.head * bytes) % 16, 0) << what;
        }
      }
  // model1's FP32 down projection: row j starts 4 * 3413 * j bytes in.
  EXPECT_EQ(gemv_row_split(4, 3413, 4).head, 3);
  EXPECT_EQ(gemv_row_split(4, 3413, 4).body, 3408);
  EXPECT_EQ(gemv_row_split(0, 3413, 4).body, 3412);
}

// The one-pass cross-entropy: a row's segments are one cluster of at most 8
// blocks (none where the row needs more: the split kernels take those), the
// grid is whole clusters, and its clusters, each stepping a grid's worth of
// clusters, take every row exactly once.
TEST(CudaLaunchConfig, CrossEntropyClustersTakeEveryRowOnce) {
  EXPECT_EQ(cross_entropy_cluster_size(1), 1);
  EXPECT_EQ(cross_entropy_cluster_size(kCrossEntropySpan), 1);
  EXPECT_EQ(cross_entropy_cluster_size(kCrossEntropySpan + 1), 2);
  EXPECT_EQ(cross_entropy_cluster_size(32008), 8);  // the Mistral vocabulary
  EXPECT_EQ(cross_entropy_cluster_size(8 * kCrossEntropySpan), 8);
  EXPECT_EQ(cross_entropy_cluster_size(8 * kCrossEntropySpan + 1), 0);
  for (const int64_t v : {int64_t{979}, int64_t{32008}})
    for (const int64_t rows : {int64_t{1}, int64_t{9}, int64_t{4193}, int64_t{200000}}) {
      const int64_t cluster = cross_entropy_cluster_size(v);
      const int64_t blocks = cross_entropy_cluster_blocks(rows, cluster);
      ASSERT_EQ(blocks % cluster, 0) << v << " " << rows;
      EXPECT_LE(blocks, int64_t{1} << 20);
      const int64_t clusters = blocks / cluster;
      std::vector<int> taken(static_cast<size_t>(rows), 0);
      for (int64_t block = 0; block < blocks; block += cluster)
        for (int64_t row = block / cluster; row < rows; row += clusters) ++taken[row];
      EXPECT_EQ(std::count(taken.begin(), taken.end(), 1), rows) << v << " " << rows;
    }
}

TEST(CudaLaunchConfig, ReductionPartitionsDependOnSizeOnly) {
  EXPECT_EQ(reduction_blocks(0), 1);
  EXPECT_EQ(reduction_blocks(1), 1);
  EXPECT_EQ(reduction_blocks(kThreads * kReduceItemsPerThread), 1);
  EXPECT_EQ(reduction_blocks(kThreads * kReduceItemsPerThread + 1), 2);
  EXPECT_EQ(reduction_blocks(int64_t{1} << 40), kMaxReduceBlocks);
}

// partition_rows(count, parts, p) for p < parts covers [0, count) in order.
void expect_partitions_tile(int64_t count, int64_t parts) {
  int64_t next = 0;
  for (int64_t p = 0; p < parts; ++p) {
    const RowRange r = partition_rows(count, parts, p);
    EXPECT_EQ(r.begin, next) << count << " in " << parts << " parts, part " << p;
    EXPECT_LE(r.begin, r.end);
    next = r.end;
  }
  EXPECT_EQ(next, count);
}

TEST(CudaLaunchConfig, RmsNormPartitionsTileTheRows) {
  for (int64_t rows : {int64_t{1}, int64_t{7}, int64_t{64}, int64_t{65}, int64_t{1000},
                       int64_t{655360}}) {
    const int64_t parts = rmsnorm_dw_partitions(rows);
    ASSERT_GE(parts, 1);
    ASSERT_LE(parts, kMaxDwPartitions);
    expect_partitions_tile(rows, parts);
  }
  EXPECT_EQ(rmsnorm_blocks(0), 0);
  EXPECT_EQ(rmsnorm_blocks(9), 2);
}

// The weight gradient's second pass: its slices tile every partition count
// (fewer partitions than slices leave some empty), its blocks every column.
TEST(CudaLaunchConfig, RmsNormDwSlicesTileThePartitions) {
  for (int64_t parts : {int64_t{1}, int64_t{5}, int64_t{16}, int64_t{17}, kMaxDwPartitions})
    expect_partitions_tile(parts, kDwSlices);
  EXPECT_EQ(rmsnorm_dw_blocks(1280), 40);
  EXPECT_EQ(rmsnorm_dw_blocks(64), 2);
  EXPECT_EQ(rmsnorm_dw_blocks(37), 2);
  EXPECT_LE(kDwColumns * kDwSlices, 1024);  // threads per block
}

TEST(CudaLaunchConfig, RmsNormBackwardSharedMemoryFits) {
  for (int64_t d : {int64_t{16}, int64_t{64}, int64_t{256}, int64_t{1280}, int64_t{1536},
                    int64_t{4096}}) {
    const int warps = rmsnorm_backward_warps(d);
    ASSERT_GE(warps, 1) << d;
    EXPECT_LE(warps, kNormWarps);
    EXPECT_LE(sizeof(float) * static_cast<size_t>(warps * d), kDefaultSmemBytes);
  }
  EXPECT_EQ(rmsnorm_backward_warps(1280), kNormWarps);  // model1: 40 KiB
  EXPECT_EQ(rmsnorm_backward_warps(4096), 3);
  EXPECT_EQ(rmsnorm_backward_warps(64), kNormWarps);
  EXPECT_EQ(rmsnorm_backward_warps(20000), 0);  // refused with a message by the launcher
}

// The held-row norm kernels: the smallest width that holds the row, the
// model presets' rows on the held path, and the generic kernels beyond.
TEST(CudaLaunchConfig, RmsNormHeldWidths) {
  EXPECT_EQ(rmsnorm_held_width(1280 / 4, false), 10);  // model1's block norms
  EXPECT_EQ(rmsnorm_held_width(1024 / 4, false), 8);   // model2's
  EXPECT_EQ(rmsnorm_held_width(64 / 2, true), 1);      // head dim 64: one pair per lane
  EXPECT_EQ(rmsnorm_held_width(128 / 2, true), 2);
  EXPECT_EQ(rmsnorm_held_width(256 / 2, true), 4);
  EXPECT_EQ(rmsnorm_held_width(258 / 2, true), 0);     // too wide to hold: generic
  EXPECT_EQ(rmsnorm_held_width(2048 / 4, false), 16);
  EXPECT_EQ(rmsnorm_held_width(2052 / 4, false), 0);
  EXPECT_EQ(rmsnorm_held_width(0, false), 0);
  for (const bool pairs : {false, true}) {
    int previous = 0;
    for (int64_t units = 1; units <= 600; ++units) {
      const int w = rmsnorm_held_width(units, pairs);
      if (w == 0) {
        EXPECT_GT(units, 32 * (pairs ? kMaxHeldPairs : kHeldWidths[std::size(kHeldWidths) - 1]));
        continue;
      }
      EXPECT_LE(units, 32 * w) << units;         // holds the row
      EXPECT_GT(units, 32 * previous) << units;  // and is the smallest that does
      if (units == 32 * w) previous = w;
    }
  }
  EXPECT_EQ(qk_norm_lanes_per_row(64), 8);  // model1 and model2: 4 rows per warp
  EXPECT_EQ(qk_norm_lanes_per_row(128), 16);
  EXPECT_EQ(qk_norm_lanes_per_row(8), 1);
  EXPECT_EQ(qk_norm_lanes_per_row(256), 32);
  for (int64_t d : {0, 2, 6, 12, 48, 80, 96, 264, 512})  // not 8 times a power of two up to 32
    EXPECT_EQ(qk_norm_lanes_per_row(d), 0) << d;
}

// Products computed as their transpose: model1's gate/up weight gradients,
// not the down projection's (its N is the odd one, padded instead), nor the
// token-sized products, nor the padded-width test shapes (K = 37).
TEST(CudaLaunchConfig, OddRowWeightGradientsRunTransposed) {
  EXPECT_TRUE(gemm_runs_transposed(3413, 1280, 32768));
  EXPECT_FALSE(gemm_runs_transposed(1280, 3413, 32768));
  EXPECT_FALSE(gemm_runs_transposed(3416, 1280, 32768));
  EXPECT_FALSE(gemm_runs_transposed(32767, 1280, 3413));
  EXPECT_FALSE(gemm_runs_transposed(19, 16, 37));
  EXPECT_TRUE(gemm_runs_transposed(27, 16, 1000));  // CudaOps.MatmulWithOddRowsRunsTransposed
  EXPECT_TRUE(gemm_runs_transposed(83, 72, 1000));
  EXPECT_FALSE(gemm_runs_transposed(3413, 1280, 16384));  // K below 8 max(m, n)
}

TEST(CudaLaunchConfig, AttentionWidthsAndSharedMemory) {
  EXPECT_EQ(attention_width(0), 0);
  EXPECT_EQ(attention_width(16), 32);
  EXPECT_EQ(attention_width(32), 32);
  EXPECT_EQ(attention_width(40), 64);
  EXPECT_EQ(attention_width(64), 64);
  EXPECT_EQ(attention_width(96), 128);
  EXPECT_EQ(attention_width(128), 128);
  EXPECT_EQ(attention_width(130), 0);
  EXPECT_EQ(kAttnRowsPerWarp * kAttnWarps, kAttnTile);
  EXPECT_EQ(kAttnTile, 32);  // one key per lane in the score step
  // Within an H100's 227 KiB per block; the narrow widths need no opt-in at all.
  for (int w : {32, 64, 128}) {
    EXPECT_LE(attention_forward_smem(w), size_t{227} * 1024) << w;
    EXPECT_LE(attention_backward_smem(w), size_t{227} * 1024) << w;
    for (int warps : {4, 8}) {
      const int rows = 16 * warps;
      EXPECT_LE(attention_mma_forward_smem(w, rows), size_t{227} * 1024) << w;
      EXPECT_LE(attention_mma_dkdv_smem(w, rows), size_t{227} * 1024) << w;
      EXPECT_LE(attention_mma_dq_smem(w, rows), size_t{227} * 1024) << w;
      // dK/dV's query tiles start on its key tile's first row.
      EXPECT_EQ(rows % attention_mma_inner(w), 0) << w;
    }
    // The forward's 32-row warps: 4 warps only (a 128-row block, the packed
    // copies' row padding), widths up to 64 (their registers).
    const int tiles = attention_mma_forward_tiles(w, 4, 2);
    EXPECT_EQ(tiles, w <= 64 ? 2 : 1) << w;
    EXPECT_EQ(attention_mma_forward_tiles(w, 8, 2), 1) << w;
    EXPECT_EQ(attention_mma_forward_tiles(w, 4, 1), 1) << w;
    EXPECT_LE(16 * tiles * 4, kMmaPackRows) << w;
    EXPECT_LE(attention_mma_forward_smem(w, 16 * tiles * 4), size_t{227} * 1024) << w;
    // k-steps of 16 over the head width and the inner tile, n-tiles of 8.
    EXPECT_EQ(w % 16, 0) << w;
    EXPECT_EQ(attention_mma_inner(w) % 16, 0) << w;
  }
  EXPECT_LE(attention_forward_smem(64), kDefaultSmemBytes);
  EXPECT_EQ(attention_tiles(1), 1);
  EXPECT_EQ(attention_tiles(1024), 32);
  EXPECT_EQ(attention_tiles(1025), 33);
}

TEST(CudaLaunchConfig, AttentionTasksAreABijectionHeaviestFirst) {
  for (int64_t batch : {1, 3}) {
    for (int64_t heads : {1, 4, 20}) {
      for (int64_t tiles : {1, 2, 33}) {
        std::set<std::tuple<int64_t, int64_t, int64_t>> seen;
        const int64_t blocks = batch * heads * tiles;
        int64_t prev_tile = tiles;
        for (int64_t blk = 0; blk < blocks; ++blk) {
          const AttnTask t = attention_task(blk, heads, tiles);
          ASSERT_GE(t.batch, 0);
          ASSERT_LT(t.batch, batch);
          ASSERT_GE(t.head, 0);
          ASSERT_LT(t.head, heads);
          ASSERT_GE(t.tile, 0);
          ASSERT_LT(t.tile, tiles);
          seen.insert({t.batch, t.head, t.tile});
          // Within a batch, tiles never increase: the long causal rows go first.
          if (blk % (heads * tiles) == 0) prev_tile = tiles;
          EXPECT_LE(t.tile, prev_tile);
          prev_tile = t.tile;
        }
        EXPECT_EQ(static_cast<int64_t>(seen.size()), blocks);
      }
    }
  }
}

// A naive column-major GEMM that takes the plan's arguments the way cuBLASLt
// does: C'[m, n] = op1(first) op2(second), each stored column-major.
void column_major_gemm(const GemmPlan& p, const float* first, const float* second, float* c) {
  auto at = [](const float* x, int64_t ld, bool trans, int64_t r, int64_t col) {
    return trans ? x[r * ld + col] : x[col * ld + r];  // op(x)[r, col]
  };
  for (int64_t j = 0; j < p.n; ++j)
    for (int64_t i = 0; i < p.m; ++i) {
      double s = 0;
      for (int64_t l = 0; l < p.k; ++l)
        s += static_cast<double>(at(first, p.ld_first, p.trans_first, i, l)) *
             at(second, p.ld_second, p.trans_second, l, j);
      c[j * p.ld_c + i] = static_cast<float>(s);
    }
}

TEST(CudaLaunchConfig, RowMajorGemmPlanMatchesRowMajorProduct) {
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> dist(-1, 1);
  const int64_t m = 5, n = 7, k = 3;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      // Row-major a is [m, k] or [k, m]; b is [k, n] or [n, k]; c is [m, n].
      const int64_t a_cols = ta ? m : k, b_cols = tb ? k : n;
      std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(k * n));
      for (auto& x : a) x = dist(gen);
      for (auto& x : b) x = dist(gen);
      std::vector<float> want(static_cast<size_t>(m * n)), got(want.size(), -99.0f);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double s = 0;
          for (int64_t l = 0; l < k; ++l) {
            const float av = ta ? a[l * a_cols + i] : a[i * a_cols + l];
            const float bv = tb ? b[j * b_cols + l] : b[l * b_cols + j];
            s += static_cast<double>(av) * bv;
          }
          want[i * n + j] = static_cast<float>(s);
        }
      const GemmPlan p = plan_row_major_gemm(ta, tb, m, n, k, a_cols, b_cols, n);
      // Stored shapes are consistent with the leading dimensions (column-major: ld >= rows).
      EXPECT_GE(p.ld_first, p.first_rows);
      EXPECT_GE(p.ld_second, p.second_rows);
      EXPECT_GE(p.ld_c, p.m);
      EXPECT_EQ(p.first_rows * p.first_cols, k * n);
      EXPECT_EQ(p.second_rows * p.second_cols, m * k);
      column_major_gemm(p, b.data(), a.data(), got.data());
      for (size_t i = 0; i < want.size(); ++i)
        EXPECT_NEAR(got[i], want[i], 1e-5) << "trans_a " << ta << " trans_b " << tb << " at " << i;
    }
  }
}

}  // namespace
}  // namespace hessgpt::cuda

namespace hessgpt::cuda {
namespace {

// The packed copies: padded to whole tiles, 256-byte aligned (cp.async reads
// 16-byte pieces), disjoint, and only those the pass reads.
TEST(CudaLaunchConfig, AttentionPackLayout) {
  const int64_t b = 3, t = 1000, h = 20, kv = 5, d = 40;
  for (bool backward : {false, true}) {
    const AttnPackLayout p = attention_pack_layout(b, t, t + 30, h, kv, d, backward);
    EXPECT_EQ(p.w, 64);
    EXPECT_EQ(p.tqp, 1024);
    EXPECT_EQ(p.tkp, 1024 + 128);
    std::vector<std::pair<size_t, size_t>> spans;  // offset, bytes
    const size_t q_bytes = 2 * static_cast<size_t>(b * h * p.tqp * p.w);
    const size_t k_bytes = 2 * static_cast<size_t>(b * kv * p.tkp * p.w);
    for (auto [offset, bytes] :
         {std::pair{p.q, q_bytes}, {p.k, k_bytes}, {p.v, k_bytes}, {p.dout, q_bytes}}) {
      if (offset == kAbsent) continue;
      EXPECT_EQ(offset % 256, 0u);
      EXPECT_LE(offset + bytes, p.bytes);
      spans.emplace_back(offset, bytes);
    }
    EXPECT_EQ(spans.size(), backward ? 4u : 3u);
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i)
      EXPECT_LE(spans[i - 1].first + spans[i - 1].second, spans[i].first);
    EXPECT_EQ(p.dout == kAbsent, !backward);
  }
}

// The decoding step's scratch: the merge's counters first, where every shape
// finds them (the kernel leaves them at zero for whatever call comes next),
// then the partials, 16-byte aligned, one (max, sum, D values) per head and run.
TEST(CudaLaunchConfig, DecodeScratchKeepsTheCountersInPlace) {
  EXPECT_EQ(kDecodeCounterBytes, sizeof(uint32_t) * kDecodeMaxHeads);
  EXPECT_EQ(kDecodeCounterBytes % 16, 0u);
  EXPECT_EQ(decode_runs(1), 1);
  EXPECT_EQ(decode_runs(kDecodeKeys), 1);
  EXPECT_EQ(decode_runs(kDecodeKeys + 1), 2);
  // model1 at 4096 positions: 20 heads x 128 runs x 66 floats.
  EXPECT_EQ(decode_partial_floats(20, 64, 4096), 20 * 128 * 66);
  EXPECT_EQ(decode_scratch_bytes(20, 64, 4096), kDecodeCounterBytes + 4u * 20 * 128 * 66);
  EXPECT_EQ(decode_scratch_bytes(1, 64, 1), kDecodeCounterBytes + 4u * 66);
}

}  // namespace
}  // namespace hessgpt::cuda
