// Launch shapes and index math of the CUDA kernels, in plain C++ so that the
// host compiler (and the tests on machines without a GPU) see exactly what the
// kernels use. Nothing here includes a CUDA header; HG_HD marks the functions
// the kernels call on the device too.
//
// Determinism: every partition below depends on the problem size only, never
// on the device (SM count) or on timing, so a reduction adds its terms in the
// same order on every run and every GPU.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#if defined(__CUDACC__)
#define HG_HD __host__ __device__
#else
#define HG_HD
#endif

namespace hessgpt::cuda {

HG_HD constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
HG_HD constexpr int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// ---- element-wise kernels: grid-stride loops --------------------------------
constexpr int kThreads = 256;
// Enough blocks to fill any current GPU several times over; larger tensors
// are covered by the grid-stride loop instead of a larger grid.
constexpr int64_t kMaxElementwiseBlocks = 8192;

struct Launch1D {
  int64_t blocks = 0;  // 0: nothing to do, skip the launch
  int threads = kThreads;
};

inline Launch1D elementwise_launch(int64_t n) {
  Launch1D l;
  l.blocks = n <= 0 ? 0 : std::min(ceil_div(n, kThreads), kMaxElementwiseBlocks);
  return l;
}

// ---- deterministic reductions (sum of squares) -------------------------------
// Pass 1: block p sums the elements i = p*kThreads + t + k*stride (a fixed
// grid-stride pattern) into partial[p]; pass 2: one block adds the partials in
// a fixed tree order.
constexpr int64_t kReduceItemsPerThread = 16;
constexpr int64_t kMaxReduceBlocks = 1024;  // pass 2 is one block of kMaxReduceBlocks threads

inline int64_t reduction_blocks(int64_t n) {
  if (n <= 0) return 1;
  return std::clamp<int64_t>(ceil_div(n, kThreads * kReduceItemsPerThread), 1, kMaxReduceBlocks);
}

// ---- AdamW over a model's parameter groups in one launch (adamw.cu) -------------
// Each block updates one chunk: at most kAdamWChunk consecutive elements of one
// group (so of one decay), in 16-byte accesses where the index allows.
struct AdamWChunk {
  int64_t begin = 0, end = 0;
  int32_t decays = 0;
  bool operator==(const AdamWChunk&) const = default;
};
constexpr int64_t kAdamWChunk = 32768;
// The groups (given as chunks of any length, in order) cut into blocks' chunks;
// empty groups give none.
inline std::vector<AdamWChunk> adamw_chunks(const std::vector<AdamWChunk>& groups) {
  std::vector<AdamWChunk> out;
  for (const AdamWChunk& g : groups)
    for (int64_t b = g.begin; b < g.end; b += kAdamWChunk)
      out.push_back({b, std::min(g.end, b + kAdamWChunk), g.decays});
  return out;
}

// ---- products of a few rows (gemv.cu) --------------------------------------------
// c[m, n] = a b^T with m <= kGemvMaxRows rows of a (decoding): one warp per
// column of c, kGemvWarps columns per block.
constexpr int64_t kGemvMaxRows = 8;
constexpr int kGemvWarps = 8;
inline int64_t gemv_blocks(int64_t n) { return n <= 0 ? 0 : ceil_div(n, kGemvWarps); }
// A weight row of k values of `value_bytes` each, starting `misaligned` bytes
// past a 16-byte boundary (rows of an odd width start anywhere: model1's FP32
// down projection, k = 3413): `head` values one per lane up to the boundary,
// then `body` values in 16-byte chunks, then the rest (fewer than a chunk)
// one per lane. value_bytes divides 16 and misaligned.
struct GemvRowSplit {
  int64_t head = 0, body = 0;
};
HG_HD inline GemvRowSplit gemv_row_split(int64_t misaligned, int64_t k, int64_t value_bytes) {
  const int64_t per_chunk = 16 / value_bytes;
  const int64_t to_boundary = misaligned == 0 ? 0 : (16 - misaligned) / value_bytes;
  const int64_t head = to_boundary < k ? to_boundary : k;
  return {head, (k - head) / per_chunk * per_chunk};
}
// With a prologue (gemv_prologue.cu) each block first builds the operand, k
// floats of shared memory (up to the default 48 KB): at most 512 blocks
// (about four per SM on an H100), each warp then taking every
// (512 * kGemvWarps)-th column, so few blocks repeat the prologue.
constexpr int64_t kGemvPrologueBlocks = 512;
inline bool gemv_prologue_fits(int64_t k) { return k > 0 && k <= 12288; }
inline int64_t gemv_prologue_blocks(int64_t n) {
  return n <= 0 ? 0 : std::min(gemv_blocks(n), kGemvPrologueBlocks);
}

// ---- one decoding step's attention (decode.cu) -----------------------------------
// Keys are split into runs of kDecodeKeys, a block of kDecodeWarps warps per
// (query head, run), each keeping a partial softmax (max, sum, D weighted
// values); the head's last block to finish merges them. Each block norms and
// rotates its head's q itself, and the run holding the new key its k (and v),
// so the step is one kernel. The grid covers every position of the
// cache and blocks past the position read on the device return at once: the
// launch is the same at every position (CUDA graphs replay it), and a short
// context still spreads over heads x runs blocks.
constexpr int64_t kDecodeKeys = 32;
constexpr int kDecodeWarps = 4;
inline int64_t decode_runs(int64_t positions) { return ceil_div(positions, kDecodeKeys); }
// Floats of the partials: (max, sum, D values) per query head and run.
inline int64_t decode_partial_floats(int64_t heads, int64_t head_dim, int64_t positions) {
  return heads * decode_runs(positions) * (head_dim + 2);
}
// The step's scratch: a counter of finished blocks per head, at a place and
// in a room that do not depend on the shape (the kernel leaves them at zero for
// the next call, whatever its shape), then the partials.
constexpr int64_t kDecodeMaxHeads = 1024;
constexpr size_t kDecodeCounterBytes = sizeof(uint32_t) * kDecodeMaxHeads;
inline size_t decode_scratch_bytes(int64_t heads, int64_t head_dim, int64_t positions) {
  return kDecodeCounterBytes +
         sizeof(float) * static_cast<size_t>(decode_partial_floats(heads, head_dim, positions));
}

// ---- RMSNorm ------------------------------------------------------------------
// One warp per row, kNormWarps rows per block.
constexpr int kNormWarps = 8;

inline int64_t rmsnorm_blocks(int64_t rows) { return rows <= 0 ? 0 : ceil_div(rows, kNormWarps); }

// Rows held in registers (rmsnorm_held.cuh): for a row of `units` 4-float groups
// (plain norms) or rotation pairs (QK-Norm + RoPE), how many each lane holds: the
// smallest of kHeldWidths with units <= 32 * width (pairs: up to kMaxHeldPairs),
// or 0 where the generic kernels run. model1's 1280: 10; model2's 1024: 8; head
// dim 64: 1 pair.
constexpr int kHeldWidths[] = {1, 2, 4, 8, 10, 16};
constexpr int kMaxHeldPairs = 4;
inline int rmsnorm_held_width(int64_t units, bool pairs) {
  if (units <= 0) return 0;
  for (const int w : kHeldWidths) {
    if (pairs && w > kMaxHeldPairs) return 0;
    if (units <= 32 * static_cast<int64_t>(w)) return w;
  }
  return 0;
}
// Lanes per row of the QK-Norm + RoPE lane-group kernels (qk_norm_lanes.cuh):
// a lane holds 4 rotation pairs, so L = d / 8 lanes per row, 32 / L rows per
// warp; where L is not a power of two up to 32 (d % 8 != 0, d > 256), 0: a
// warp per row. Head dim 64: 8 lanes, 4 rows per warp.
HG_HD constexpr int qk_norm_lanes_per_row(int64_t d) {
  if (d <= 0 || d % 8 != 0 || d / 8 > 32) return 0;
  const int64_t lanes = d / 8;
  return (lanes & (lanes - 1)) == 0 ? static_cast<int>(lanes) : 0;
}

// dw is summed in two passes without atomics: partition p (one block) sums its
// contiguous rows into partial[p, :], then each column adds the partitions in
// order. At least kRowsPerDwPartition rows per partition keeps pass 2 small.
// Up to 4096 partitions: QK-Norm's 655360 rows of 64 (model1's q) in 512
// partitions left each warp 160 rows in a row, one memory round trip each.
constexpr int64_t kRowsPerDwPartition = 64;
constexpr int64_t kMaxDwPartitions = 4096;

inline int64_t rmsnorm_dw_partitions(int64_t rows) {
  if (rows <= 0) return 1;
  return std::clamp<int64_t>(ceil_div(rows, kRowsPerDwPartition), 1, kMaxDwPartitions);
}

// Rows [begin, end) of partition p.
struct RowRange {
  int64_t begin = 0, end = 0;
};

HG_HD inline RowRange partition_rows(int64_t rows, int64_t parts, int64_t p) {
  const int64_t per = ceil_div(rows, parts);
  const int64_t b = p * per < rows ? p * per : rows;
  const int64_t e = b + per < rows ? b + per : rows;
  return {b, e};
}

// The second pass: a block per kDwColumns columns; its kDwSlices thread rows
// each add a contiguous slice of the partitions in order, then the slices are
// added in order (a fixed tree: the same bits every run). One thread per
// column walking all the partitions left ~40 warps on the GPU for model1's
// d = 1280 (2 for QK-Norm's 64), each with a load per partition in a row.
constexpr int kDwColumns = 32, kDwSlices = 32;
inline int64_t rmsnorm_dw_blocks(int64_t d) { return ceil_div(d, kDwColumns); }

// Warps per block of the backward's first pass: each keeps a [d] dw row in
// shared memory, within the 48 KiB every GPU grants without opting in.
constexpr size_t kDefaultSmemBytes = 48 * 1024;
inline int rmsnorm_backward_warps(int64_t d) {
  const int64_t fit = static_cast<int64_t>(kDefaultSmemBytes / sizeof(float)) / std::max<int64_t>(d, 1);
  return static_cast<int>(std::clamp<int64_t>(fit, 0, kNormWarps));  // 0: d too wide
}

// ---- soft-cap + cross-entropy ---------------------------------------------------
// A block per row (HESSGPT_CE_KERNEL=rows): rows of up to kCrossEntropyHeld
// values are read once and kept in registers (kCrossEntropyHeldThreads
// threads, kCrossEntropyPerThread each: 32768, the Mistral vocabulary's 32008
// with room); wider rows are swept twice.
constexpr int kCrossEntropyThreads = 512;
// The warp-per-row kernel (HESSGPT_CE_KERNEL=warp): 8 rows per block.
constexpr int kCrossEntropyWarpThreads = 256;
// The split kernels (the default off sm_90): a block per (row, segment of
// kCrossEntropySpan values), so that thousands of blocks are in flight where a
// block per row keeps one row per SM. Pass 1 writes each segment's (max, sum
// of exponentials), pass 2 merges its row's and writes the gradient.
constexpr int kCrossEntropySplitThreads = 256;
constexpr int64_t kCrossEntropySpan = 4096;
HG_HD constexpr int64_t cross_entropy_segments(int64_t v) { return ceil_div(v, kCrossEntropySpan); }
// The one-pass form (HESSGPT_CE_KERNEL=cluster, the default on sm_90): a
// row's segments are one thread-block cluster, at most the 8 blocks every
// sm_90 GPU grants without opting in; 0 where a row needs more (the split
// kernels take those). Its grid: whole clusters, at most ~2^20 blocks, each
// cluster taking rows a grid's worth of clusters apart.
constexpr int64_t kCrossEntropyMaxCluster = 8;
HG_HD constexpr int64_t cross_entropy_cluster_size(int64_t v) {
  return cross_entropy_segments(v) <= kCrossEntropyMaxCluster ? cross_entropy_segments(v) : 0;
}
HG_HD constexpr int64_t cross_entropy_cluster_blocks(int64_t rows, int64_t cluster) {
  const int64_t clusters = (int64_t{1} << 20) / cluster;
  return (rows < clusters ? rows : clusters) * cluster;
}
constexpr int kCrossEntropyHeldThreads = 1024;
constexpr int kCrossEntropyPerThread = 32;
constexpr int64_t kCrossEntropyHeld = int64_t{kCrossEntropyHeldThreads} * kCrossEntropyPerThread;

// ---- embedding backward: one block per (run of equal ids, column chunk) -------
constexpr int kEmbeddingColumns = 256;

// ---- attention ------------------------------------------------------------------
// Tiles of kAttnTile queries x kAttnTile keys; kAttnWarps warps per block, each
// owning kAttnTile / kAttnWarps query rows (scores: lane = key; outputs: lane =
// head-dim column). Head dims are padded up to a compiled width.
constexpr int kAttnTile = 32;
constexpr int kAttnWarps = 8;
constexpr int kAttnRowsPerWarp = kAttnTile / kAttnWarps;
constexpr int64_t kAttnMaxHeadDim = 128;

// The compiled head-dim width serving d (32, 64 or 128); 0 when unsupported.
HG_HD constexpr int attention_width(int64_t d) {
  return d <= 0 || d > kAttnMaxHeadDim ? 0 : d <= 32 ? 32 : d <= 64 ? 64 : 128;
}

// Rows read with lane = key (k, and v in backward) are read as float4 and
// padded by 4 floats: a row stride of w + 4 words puts the 8 lanes of each
// 16-byte access phase on distinct banks, and keeps rows 16-byte aligned.
constexpr int kAttnKeyPad = 4;
// Rows of the [32 queries, 32 keys] probability / ds tiles: 16-byte aligned
// so that a lane reads four keys' values in one access.
constexpr int kAttnScoreStride = kAttnTile + 4;

// Shared memory (bytes) of each kernel at width w.
HG_HD constexpr size_t attention_forward_smem(int w) {
  return sizeof(float) * (kAttnTile * w                    // q
                          + kAttnTile * (w + kAttnKeyPad)  // k (lane = key)
                          + kAttnTile * w                  // v (lane = column)
                          + kAttnTile * kAttnScoreStride); // p
}
HG_HD constexpr size_t attention_backward_smem(int w) {
  return sizeof(float) * (2 * kAttnTile * w                    // q, dout
                          + 2 * kAttnTile * (w + kAttnKeyPad)  // k, v (lane = key)
                          + 2 * kAttnTile * kAttnScoreStride   // p, ds
                          + 2 * kAttnTile);                    // lse, delta
}

// Query tiles per (batch, head): attention grids are [batch * heads * tiles].
HG_HD constexpr int64_t attention_tiles(int64_t t) { return ceil_div(t, kAttnTile); }

struct AttnTask {
  int64_t batch = 0, head = 0, tile = 0;
};

// Block index -> work. Under the causal mask the last tiles do the most work,
// so they are handed out first (the tail of the grid is then short tiles).
HG_HD inline AttnTask attention_task(int64_t block, int64_t heads, int64_t tiles) {
  AttnTask t;
  const int64_t per_batch = heads * tiles;
  t.batch = block / per_batch;
  const int64_t rest = block % per_batch;
  t.tile = tiles - 1 - rest / heads;
  t.head = rest % heads;
  return t;
}

// ---- attention on the tensor cores (attention_mma.cu) -----------------------------
// BF16 mma.sync m16n8k16 tiles with FP32 accumulation: each warp owns 16 rows
// (queries in forward and dQ, keys in dK/dV; 32 in the forward, below) of a
// block's 16 x warps. More
// warps per block means fewer reloads of the other side's tiles (each block
// streams them once), fewer means more blocks per SM: kMmaWarps is the
// default, HESSGPT_ATTN_WARPS=4|8 picks at run time (A/B timings). Operands
// sit in shared memory as BF16 rows padded by 8 elements (16 bytes), which
// spreads a fragment load's 8 row reads over distinct banks. The inner tile
// (keys per dQ step, queries per dK/dV step) is 64 at head widths up to 64 and
// 32 at 128, which keeps the score, dP and the two accumulators in registers;
// forward steps over 64 keys.
//
// Forward rows per warp: one m16 tile loads each K and V fragment for one
// product; two share it, which halves the fragment loads (shared-memory
// traffic and issue slots) per product at the cost of twice the score and
// output registers (widths up to 64, 4 warps: 128-row blocks, the packed
// copies' row padding). HESSGPT_ATTN_ROWS=16|32 picks at run time; 16 is the
// default: on an H200 at model1's shapes 32 rows (234 registers, 2 blocks per
// SM) took 0.598 ms per forward against 0.567 for 16 (128 registers, 4 blocks).
constexpr int kMmaWarps = 4;
constexpr int kMmaPad = 8;
constexpr int kMmaForwardKeys = 64;
constexpr int kMmaTwoTileWidth = 64;

HG_HD constexpr int attention_mma_inner(int w) { return w <= 64 ? 64 : 32; }
HG_HD constexpr int64_t attention_mma_tiles(int64_t t, int rows) { return ceil_div(t, rows); }

// Shared memory (bytes, 2 per BF16 element) of each kernel at width w with
// `rows` rows per block (16 x warps, or 32 x warps in the forward); the tiles
// streamed in a loop are double buffered (cp.async fills one while the warps
// read the other).
HG_HD constexpr size_t attention_mma_forward_smem(int w, int rows) {
  return 2 * static_cast<size_t>(rows * (w + kMmaPad)                          // q
                                 + 2 * 2 * kMmaForwardKeys * (w + kMmaPad));   // k, v
}
HG_HD constexpr size_t attention_mma_dkdv_smem(int w, int rows) {
  const int bq = attention_mma_inner(w);
  return 2 * static_cast<size_t>(2 * rows * (w + kMmaPad)            // k, v
                                 + 2 * 2 * bq * (w + kMmaPad))       // q, dout
         + sizeof(float) * 2 * 2 * static_cast<size_t>(bq);          // lse, delta
}
HG_HD constexpr size_t attention_mma_dq_smem(int w, int rows) {
  const int bk = attention_mma_inner(w);
  return 2 * static_cast<size_t>(2 * rows * (w + kMmaPad)            // q, dout
                                 + 2 * 2 * bk * (w + kMmaPad));      // k, v
}

// Packed BF16 copies the tensor-core kernels read: per (batch, head) a
// [Tp, W] block of rows (the products that run over the rows read them
// through ldmatrix.trans); T is padded with zeros to a multiple of
// kMmaPackRows (the largest tile), d to the width W. Every tile is then a
// plain run of 16-byte rows that cp.async copies without bounds checks.
// Offsets are in bytes into one scratch block; kAbsent marks a copy the pass
// does not use. Forward reads q, k and v; backward dout too.
constexpr int64_t kMmaPackRows = 128;

// m16 tiles per warp (1 or 2) the forward uses at width w with `warps` per
// block when `wanted` are asked for: 2 only where the block stays within
// kMmaPackRows rows and the width within kMmaTwoTileWidth (registers).
HG_HD constexpr int attention_mma_forward_tiles(int w, int warps, int wanted) {
  return wanted >= 2 && w <= kMmaTwoTileWidth && 32 * warps <= kMmaPackRows ? 2 : 1;
}

constexpr size_t kAbsent = ~size_t{0};

struct AttnPackLayout {
  int w = 0;
  int64_t tqp = 0, tkp = 0;
  size_t q = kAbsent, k = kAbsent, v = kAbsent, dout = kAbsent;
  size_t bytes = 0;
};

inline AttnPackLayout attention_pack_layout(int64_t b, int64_t tq, int64_t tk, int64_t h,
                                            int64_t kv, int64_t d, bool backward) {
  AttnPackLayout p;
  p.w = attention_width(d);
  p.tqp = round_up(tq, kMmaPackRows);
  p.tkp = round_up(tk, kMmaPackRows);
  const size_t q_bytes = 2 * static_cast<size_t>(b * h * p.tqp * p.w);
  const size_t k_bytes = 2 * static_cast<size_t>(b * kv * p.tkp * p.w);
  const auto take = [&](size_t bytes) {
    const size_t at = p.bytes;
    p.bytes += (bytes + 255) / 256 * 256;
    return at;
  };
  p.q = take(q_bytes);
  p.k = take(k_bytes);
  p.v = take(k_bytes);
  if (backward) p.dout = take(q_bytes);
  return p;
}

// ---- matrix products: row-major requests on a column-major library ----------------
// C[M,N] = op(A) op(B) in row-major storage is C^T = op(B)^T op(A)^T in the
// column-major view of the same memory, where a row-major X[r, c] reads as the
// column-major X^T[c, r] with leading dimension c. So the library multiplies
// "first" = B by "second" = A, and a requested transpose stays a transpose.
struct GemmPlan {
  int64_t m = 0, n = 0, k = 0;                 // column-major problem: C'[m,n] = op1(first) op2(second)
  bool trans_first = false, trans_second = false;
  int64_t first_rows = 0, first_cols = 0;      // stored (column-major) shape of first (= B)
  int64_t second_rows = 0, second_cols = 0;    // stored shape of second (= A)
  int64_t ld_first = 0, ld_second = 0, ld_c = 0;
};

// m, n, k of the row-major request; lda/ldb/ldc are the row lengths (cols())
// of the row-major a, b, c.
inline GemmPlan plan_row_major_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                    int64_t lda, int64_t ldb, int64_t ldc) {
  GemmPlan p;
  p.m = n;
  p.n = m;
  p.k = k;
  p.trans_first = trans_b;
  p.trans_second = trans_a;
  p.first_rows = trans_b ? k : n;
  p.first_cols = trans_b ? n : k;
  p.second_rows = trans_a ? m : k;
  p.second_cols = trans_a ? k : m;
  p.ld_first = ldb;
  p.ld_second = lda;
  p.ld_c = ldc;
  return p;
}

// BF16 copies of operands get a leading dimension that is a multiple of 8
// elements (16 bytes), which tensor-core kernels want (odd FFN widths).
constexpr int64_t kBf16LdAlign = 8;
inline int64_t bf16_leading_dim(int64_t cols) { return round_up(cols, kBf16LdAlign); }

// Whether an F32 product C[m, n] under BF16 is computed as its transpose
// (LtMatmul::runs_transposed): m not a multiple of 8, n one, and K at least
// 8 max(m, n), the shape of a weight gradient over the batch's tokens.
inline bool gemm_runs_transposed(int64_t m, int64_t n, int64_t k) {
  return m % kBf16LdAlign != 0 && n % kBf16LdAlign == 0 && k >= 8 * std::max(m, n);
}

}  // namespace hessgpt::cuda
