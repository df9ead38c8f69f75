#include "backend/cuda/matmul_lt.h"

#include <cublasLt.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "backend/cuda/cublaslt_api.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch_config.h"

namespace hessgpt::cuda {
namespace {

// Hopper's recommended cuBLASLt workspace.
constexpr size_t kWorkspaceBytes = size_t{32} << 20;
// HESSGPT_CUBLASLT_TUNE: the heuristic's candidates timed, kTuneRuns runs each
// into a scratch output of at most kMaxTunedOutputBytes (larger outputs keep
// the heuristic's first choice).
constexpr int kCandidates = 8;
constexpr int kTuneRuns = 3;
constexpr size_t kMaxTunedOutputBytes = size_t{64} << 20;

int alignment_of(const void* p) {
  const auto u = reinterpret_cast<uintptr_t>(p);
  for (int a = 16; a > 1; a /= 2)
    if (u % static_cast<uintptr_t>(a) == 0) return a;
  return 1;
}

}  // namespace

struct LtMatmul::Handle {
  cublasLtHandle_t lt = nullptr;
};

struct LtMatmul::Plan {
  GemmPlan shape;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t first = nullptr, second = nullptr, out = nullptr;
  cublasLtMatmulAlgo_t algo{};
  std::vector<cublasLtMatmulAlgo_t> candidates;  // the heuristic's, its first choice first
  bool tuned = false;
  ~Plan() {
    const CublasLtApi* lt = cublaslt_if_loaded();  // a plan exists only once it is loaded
    if (!lt) return;
    if (first) lt->matrix_layout_destroy(first);
    if (second) lt->matrix_layout_destroy(second);
    if (out) lt->matrix_layout_destroy(out);
    if (op) lt->matmul_desc_destroy(op);
  }
};

LtMatmul::LtMatmul() : handle_(std::make_unique<Handle>()) {
  HG_CUBLAS_CHECK(cublaslt().create(&handle_->lt));
  const char* pad = std::getenv("HESSGPT_CUBLASLT_PAD");
  pad_ = !(pad && std::string_view(pad) == "0");
  const char* tune_env = std::getenv("HESSGPT_CUBLASLT_TUNE");
  const std::string_view tune = tune_env ? tune_env : "0";
  if (tune != "0" && tune != "1" && tune != "verbose")
    HG_FAIL("HESSGPT_CUBLASLT_TUNE must be 0, 1 or verbose (got '", tune, "')");
  tune_ = tune != "0";
  tune_verbose_ = tune == "verbose";
}

LtMatmul::~LtMatmul() {
  plans_.clear();
  // Errors are ignored here: a destructor must not throw, and a failing
  // device has reported itself at the last checked call already.
  if (workspace_) cudaFree(workspace_);
  if (handle_->lt) cublaslt_if_loaded()->destroy(handle_->lt);
}

LtMatmul::Plan& LtMatmul::plan(const Key& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  const auto [bf16, out_bf16, trans_a, trans_b, m, n, k, lda, ldb, ldc, align_a, align_b,
              align_c] = key;
  const CublasLtApi& lt = cublaslt();
  auto p = std::make_unique<Plan>();
  p->shape = plan_row_major_gemm(trans_a, trans_b, m, n, k, lda, ldb, ldc);
  const GemmPlan& g = p->shape;
  const cudaDataType_t in_type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  HG_CUBLAS_CHECK(lt.matmul_desc_create(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_first = g.trans_first ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = g.trans_second ? CUBLAS_OP_T : CUBLAS_OP_N;
  HG_CUBLAS_CHECK(lt.matmul_desc_set_attribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first,
                                                 sizeof(op_first)));
  HG_CUBLAS_CHECK(lt.matmul_desc_set_attribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second,
                                                 sizeof(op_second)));
  HG_CUBLAS_CHECK(lt.matrix_layout_create(&p->first, in_type, static_cast<uint64_t>(g.first_rows),
                                             static_cast<uint64_t>(g.first_cols), g.ld_first));
  HG_CUBLAS_CHECK(lt.matrix_layout_create(&p->second, in_type,
                                             static_cast<uint64_t>(g.second_rows),
                                             static_cast<uint64_t>(g.second_cols), g.ld_second));
  const cudaDataType_t out_type = out_bf16 ? CUDA_R_16BF : CUDA_R_32F;
  HG_CUBLAS_CHECK(lt.matrix_layout_create(&p->out, out_type, static_cast<uint64_t>(g.m),
                                             static_cast<uint64_t>(g.n), g.ld_c));

  cublasLtMatmulPreference_t pref = nullptr;
  HG_CUBLAS_CHECK(lt.preference_create(&pref));
  const uint64_t ws = kWorkspaceBytes;
  // The library's A is our B (first) and its B our A (second).
  const uint32_t al_first = static_cast<uint32_t>(align_b), al_second = static_cast<uint32_t>(align_a);
  const uint32_t al_c = static_cast<uint32_t>(align_c);
  // Split-K may add its partial sums in the output's type (in place, or in an
  // output-typed workspace): for a BF16 output that is a rounding per partial,
  // several BF16 steps off the product (seen at K = 37 on an H200). Partial sums
  // in F32 only; an F32 output allows every scheme, all of them F32. (Should no
  // algorithm qualify, the query is repeated with every scheme allowed.)
  const uint32_t f32_sums = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
  const uint32_t any_sums = CUBLASLT_REDUCTION_SCHEME_MASK;
  cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
  int found = 0;
  const auto query = [&](const uint32_t& reductions) {
    cublasStatus_t st = lt.preference_set_attribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                                    &reductions, sizeof(reductions));
    if (st == CUBLAS_STATUS_SUCCESS)
      st = lt.algo_get_heuristic(handle_->lt, p->op, p->first, p->second, p->out, p->out,
                                 pref, tune_ ? kCandidates : 1, results, &found);
    return st;
  };
  const cublasStatus_t status = [&] {
    cublasStatus_t st = lt.preference_set_attribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    if (st == CUBLAS_STATUS_SUCCESS)
      st = lt.preference_set_attribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                &al_first, sizeof(al_first));
    if (st == CUBLAS_STATUS_SUCCESS)
      st = lt.preference_set_attribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                &al_second, sizeof(al_second));
    if (st == CUBLAS_STATUS_SUCCESS)
      st = lt.preference_set_attribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                &al_c, sizeof(al_c));
    if (st == CUBLAS_STATUS_SUCCESS)
      st = lt.preference_set_attribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                &al_c, sizeof(al_c));
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    st = query(out_bf16 ? f32_sums : any_sums);
    const bool none = (st == CUBLAS_STATUS_SUCCESS && found == 0) || st == CUBLAS_STATUS_NOT_SUPPORTED;
    return none && out_bf16 ? query(any_sums) : st;
  }();
  lt.preference_destroy(pref);
  HG_CUBLAS_CHECK(status);
  if (found == 0)
    HG_FAIL("cuBLASLt has no algorithm for a ", bf16 ? "BF16" : "FP32", " product of [", m, ", ",
            k, "] x [", k, ", ", n, "] (transposes ", trans_a, ", ", trans_b, ")");
  for (int i = 0; i < found; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS) p->candidates.push_back(results[i].algo);
  p->algo = results[0].algo;
  return *plans_.emplace(key, std::move(p)).first->second;
}

void LtMatmul::tune(Plan& p, const void* first, const void* second, size_t out_bytes,
                    cudaStream_t stream) {
  p.tuned = true;
  const GemmPlan& g = p.shape;
  const size_t bytes = out_bytes * static_cast<size_t>(g.ld_c) * static_cast<size_t>(g.n);
  if (p.candidates.size() < 2 || bytes > kMaxTunedOutputBytes) return;
  const CublasLtApi& lt = cublaslt();
  void* out = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  HG_CUDA_CHECK(cudaMalloc(&out, bytes));
  HG_CUDA_CHECK(cudaEventCreate(&start));
  HG_CUDA_CHECK(cudaEventCreate(&stop));
  const float alpha = 1.0f, beta = 0.0f;
  const auto launch = [&](const cublasLtMatmulAlgo_t& algo) {
    return lt.matmul(handle_->lt, p.op, &alpha, first, p.first, second, p.second, &beta, out,
                     p.out, out, p.out, &algo, workspace_, workspace_bytes_, stream);
  };
  float best_ms = 0.0f, first_ms = 0.0f;
  size_t best = 0;
  for (size_t i = 0; i < p.candidates.size(); ++i) {
    if (launch(p.candidates[i]) != CUBLAS_STATUS_SUCCESS) continue;  // untimed: first-launch costs
    HG_CUDA_CHECK(cudaEventRecord(start, stream));
    for (int r = 0; r < kTuneRuns; ++r) HG_CUBLAS_CHECK(launch(p.candidates[i]));
    HG_CUDA_CHECK(cudaEventRecord(stop, stream));
    HG_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    HG_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (i == 0) first_ms = ms;
    if (i == 0 || ms < best_ms) best_ms = ms, best = i;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  HG_CUDA_CHECK(cudaFree(out));
  p.algo = p.candidates[best];
  if (tune_verbose_)
    std::fprintf(stderr, "cuBLASLt tuned [%lld x %lld] x [%lld x %lld]: candidate %zu of %zu, %.3f ms"
                 " (the heuristic's first: %.3f ms)\n", static_cast<long long>(g.m),
                 static_cast<long long>(g.k), static_cast<long long>(g.k),
                 static_cast<long long>(g.n), best + 1, p.candidates.size(),
                 best_ms / kTuneRuns, first_ms / kTuneRuns);
}

const void* LtMatmul::prepare(int slot, const LtOperand& x, bool bf16_math, int64_t rows,
                             int64_t ld, cudaStream_t stream) {
  if (!bf16_math) {
    if (!x.bf16) return x.data;
    auto* wide = static_cast<float*>(
        scratch_[slot].get(sizeof(float) * static_cast<size_t>(x.rows * x.ld)));
    widen_bf16(wide, static_cast<const uint16_t*>(x.data), x.rows * x.ld, stream);
    return wide;
  }
  if (x.bf16 && ld == x.ld && rows == x.rows && alignment_of(x.data) == 16) return x.data;
  auto* copy = static_cast<uint16_t*>(
      scratch_[slot].get(sizeof(uint16_t) * static_cast<size_t>(rows * ld)));
  if (x.bf16)
    to_bf16(copy, ld, rows, static_cast<const uint16_t*>(x.data), x.ld, x.rows, x.ld, stream);
  else
    to_bf16(copy, ld, rows, static_cast<const float*>(x.data), x.ld, x.rows, x.ld, stream);
  return copy;
}

bool LtMatmul::runs_transposed(bool bf16_math, int64_t m, int64_t n, int64_t k) const {
  if (!bf16_math || !pad_ || !gemm_runs_transposed(m, n, k)) return false;
  const char* e = std::getenv("HESSGPT_CUBLASLT_TRANSPOSE");
  return !(e && std::string_view(e) == "0");
}

bool LtMatmul::will_stage(bool bf16_math, int64_t n) const {
  return bf16_math && pad_ && n % kBf16LdAlign != 0;
}

void LtMatmul::run(bool bf16, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                   const LtOperand& a, const LtOperand& b, float alpha, float beta, float* c,
                   int64_t ldc, cudaStream_t stream, uint16_t* c_bf16, const float* c_in) {
  if (!workspace_) {
    HG_CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
    workspace_bytes_ = kWorkspaceBytes;
  }
  if (runs_transposed(bf16, m, n, k) && !c_bf16 && !c_in) {
    // C^T = op(B)^T op(A)^T into scratch, its width m padded to 8 as a staged
    // output's would be (the extra columns, from A's padding, are not merged),
    // then added into c a tile at a time.
    const int64_t mp = round_up(m, kBf16LdAlign);
    auto* t = static_cast<float*>(scratch_[3].get(sizeof(float) * static_cast<size_t>(n * mp)));
    run(bf16, !trans_b, !trans_a, n, mp, k, b, a, alpha, 0.0f, t, mp, stream);
    merge_transposed(c, ldc, t, mp, m, n, beta, stream);
    return;
  }
  // An output width that is not a multiple of 8 (the FFN's 3413) picks slow
  // kernels even with an aligned output (tried on an H200: 77-90 TFLOP/s), so
  // under BF16 the product is computed 8-aligned into a staging buffer, B's
  // extra rows or columns being zeros, and merged into c: c = staged + beta c.
  // A BF16 output (c_bf16, beta 0) is written by cuBLASLt as BF16, into c
  // itself when its rows are 16-byte aligned, else staged and compacted.
  const bool pad_n = will_stage(bf16, n);
  HG_CHECK(!c_in || (!pad_n && !c_bf16 && beta == 1.0f), "a separate addend needs an unstaged F32 output");
  const int64_t np = pad_n ? round_up(n, kBf16LdAlign) : n;
  const bool out_bf16 = c_bf16 != nullptr && bf16;
  const bool stage_out =
      pad_n || (c_bf16 && !out_bf16) || (out_bf16 && (ldc != n || ldc % kBf16LdAlign != 0 || alignment_of(c_bf16) != 16));
  const size_t out_bytes = out_bf16 ? sizeof(uint16_t) : sizeof(float);
  void* out = stage_out ? scratch_[2].get(out_bytes * static_cast<size_t>(m * np))
                        : (out_bf16 ? static_cast<void*>(c_bf16) : static_cast<void*>(c));
  const int64_t ld_out = stage_out ? np : ldc;
  int64_t lda = a.ld, ldb = b.ld;
  const void* first = nullptr;
  const void* second = nullptr;
  if (bf16) {
    // K rounded up with zeros (columns where K is the stored row length, rows
    // where it is the row count): the products are unchanged, and an odd K
    // such as the FFN width 3413 no longer rules out the fast kernels.
    const int64_t kp = pad_ ? round_up(k, kBf16LdAlign) : k;
    const int64_t a_rows16 = trans_a ? kp : a.rows, b_rows16 = trans_b ? std::max(b.rows, np) : kp;
    // B's stored rows are N long unless it is transposed (then they are K long
    // and the padding of N is in its row count).
    lda = bf16_leading_dim(a.ld);
    ldb = bf16_leading_dim(trans_b ? b.ld : std::max(b.ld, np));
    second = prepare(0, a, true, a_rows16, lda, stream);
    first = prepare(1, b, true, b_rows16, ldb, stream);
    k = kp;
  } else {
    second = prepare(0, a, false, a.rows, a.ld, stream);
    first = prepare(1, b, false, b.rows, b.ld, stream);
  }
  const float beta_run = stage_out || out_bf16 ? 0.0f : beta;
  const CublasLtApi& lt = cublaslt();
  Plan& p = plan(Key{bf16, out_bf16, trans_a, trans_b, m, np, k, lda, ldb, ld_out,
                     alignment_of(second), alignment_of(first), alignment_of(out)});
  if (tune_ && !p.tuned) tune(p, first, second, out_bytes, stream);
  const void* addend = c_in ? static_cast<const void*>(c_in) : out;
  HG_CUBLAS_CHECK(lt.matmul(handle_->lt, p.op, &alpha, first, p.first, second, p.second,
                            &beta_run, addend, p.out, out, p.out, &p.algo, workspace_,
                            workspace_bytes_, stream));
  if (!stage_out) return;
  // (to_bf16 zeroes c's columns [n, ldc): the margin of a padded width.)
  if (out_bf16)
    to_bf16(c_bf16, ldc, m, static_cast<const uint16_t*>(out), ld_out, m, n, stream);
  else if (c_bf16)
    to_bf16(c_bf16, ldc, m, static_cast<const float*>(out), ld_out, m, n, stream);
  else
    merge_columns(c, ldc, static_cast<const float*>(out), ld_out, m, n, beta, stream);
}

}  // namespace hessgpt::cuda
