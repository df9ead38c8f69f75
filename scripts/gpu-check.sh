#!/usr/bin/env bash
# The CUDA backend's check on a GPU machine: build, every GPU test (each op
# against the CPU backend, tensor-core attention at both block sizes, whole
# training steps of tiny and small, 100 steps of small against the CPU loss
# curve, GPU decoding against the CPU decoder), compute-sanitizer over the op
# tests, `bench ops` at model1's shapes, GPU decoding tokens/s, then training
# throughput of hessgpt on the GPU (BF16 products, selective recomputation)
# beside the same step in PyTorch (torch.compile + SDPA, BF16 autocast, fused AdamW), and
# one summary table at the end. The defaults fit one 10-minute device call.
#
# The device machine has CUDA, CMake, ninja and PyTorch but none of our Debian
# packages and no network: first run scripts/gpu-debs.sh on a Debian machine
# (it fills .gpu-debs/), then carry that folder. They are unpacked with
# `dpkg -x` into a private prefix ($PREFIX), never into /.
#
# Usage: scripts/gpu-check.sh [--configure-only] [--tests-only] [--bench-only] [--quick]
#   --configure-only  unpack and configure, then stop (works without a GPU)
#   --tests-only      build, tests and compute-sanitizer; no benchmarks
#   --bench-only      benchmarks only (a second call on a warm machine keeps the
#                     build folder, so only the benchmarks cost time)
#   --quick           the small preset only
# Environment (defaults in brackets):
#   LOGS [/tmp/gpu-check] logs and JSON; OUT (set by the device tool) packs them
#     into $OUT/gpu-check.tgz, one file to bring back; PREFIX [/tmp/hessgpt-prefix];
#     BUILD [build-gpu]; HESSGPT_CMAKE_ARGS; BUILD_TARGETS [hessgpt and the GPU
#     test binaries]; TEST_TIMEOUT / BENCH_TIMEOUT [150 / 200] seconds per test
#     binary / benchmark.
#   BENCH_MODELS ["model1 model2"]; BENCH_PRECISIONS [bf16] (fp32 too if wanted);
#     BENCH_FLAGS [--recompute] extra `bench train` flags; TORCH_MODELS [all]
#     models with a PyTorch baseline, SKIP_TORCH=1 for none; DECODE_MODELS
#     ["model1 model2"], "" for none. TORCH_PROFILE [1]: one more PyTorch step under
#     torch.profiler, its kernel time per category and top kernels in the table.
#   TORCH_FOREACH_AB [0]: PyTorch's step again with its default (foreach) AdamW
#     instead of the fused kernel the overview's stack uses (the baseline of the
#     first six GPU sessions' ratios).
#   BF16_ACTS_AB [1]: on every bench model, rows with --bf16-activations (BF16
#     product inputs, padded FFN) after BENCH_FLAGS and alone (no recomputation), and
#     (RECOMPUTE_MLP_AB [1]) with --recompute-mlp.
#   PROFILE_MODELS [model1]: `bench train --profile` with PROFILE_FLAGS
#     [--bf16-activations: all activations kept, as PyTorch keeps them], the device's
#     time per backend op (events around each), top rows in the table; with PyTorch's
#     profile, each product shape's time in both side by side.
#   NCU_ATTENTION [0]: Nsight Compute over the three tensor-core attention kernels at
#     model1's shapes (speed of light, occupancy, warp stalls, memory), report in $LOGS.
#   ATTN_ROWS_AB [1]: the attention rows of `bench ops` again with the forward's
#     32-row warps (HESSGPT_ATTN_ROWS=32; the default is 16).
#   FUSED_KV_AB [1]: a `bench train` row on AB_MODELS with k's and v's projection
#     backward as separate products (HESSGPT_FUSED_KV=0; fused is the default).
#   FUSED_QKV_AB [1]: the same with only k's and v's fused, q's product apart
#     (HESSGPT_FUSED_QKV=0; q, k, v fused is the default).
#   CUDNN_AB [1]: our attention kernels in place of cuDNN's fused attention (the
#     default; HESSGPT_ATTENTION=ours) in `bench ops` attention rows and as a
#     `bench train` row (with --bf16-activations) on AB_MODELS.
#   CUDNN_CONFIG_SWEEP [0]: each engine config cuDNN offers for the attention
#     backward (HESSGPT_CUDNN_BACKWARD_CONFIG=0..2; CUDNN_CONFIGS="FORWARD:1 ..." picks
#     others): the cuDNN test against the CPU under it, and model1's `bench ops`
#     attention rows. The forward (0.26 ms) already matches PyTorch's kernel.
#   ATT_GRADS_AB [1]: a `bench train` row on AB_MODELS with attention's gradients in
#     F32 (HESSGPT_BF16_ATTENTION_GRADS=0; BF16 is the default).
#   CE_AB [1]: the cross-entropy rows of `bench ops` again in two passes
#     (HESSGPT_CE_KERNEL=split), with a warp per row (=warp) and with a block per
#     row (=rows); the default is a cluster of blocks per row in one pass
#     (=cluster); and a `bench train` row on AB_MODELS with the two passes.
#   QK_ROWS_AB [1]: the QK-Norm rows of `bench ops` again with a warp per row
#     (HESSGPT_QK_NORM_ROWS=1; the default is a group of d / 8 lanes per row).
#   QK_PREFETCH_AB [1]: the QK-Norm rows of `bench ops` again without the
#     backward's L2 prefetch of each block's rows (HESSGPT_QK_NORM_PREFETCH=0).
#   HEAD_CHUNK_AB [1]: a `bench train` row on AB_MODELS with the head's logits in
#     chunks of 8192 rows (HESSGPT_HEAD_CHUNK_ROWS; the default is 256 MiB of logits:
#     4193 rows of BF16 at V = 32008): the dE product's F32 output read and written
#     half as often, +0.27 GB. HEAD_CHUNKS ["8192"]: the chunk sizes, a row each
#     (16384: +0.8 GB).
#   BF16_LOGITS_AB [1]: a `bench train` row on AB_MODELS with the training head's
#     logits in F32 and their gradient in a BF16 tensor of its own (HESSGPT_BF16_LOGITS=0;
#     the default has the product write BF16 logits and the cross-entropy its
#     gradient over them, 4193 rows a chunk).
#   WEIGHT_COPIES_AB [1]: a `bench train` row on AB_MODELS with each product
#     converting its F32 weight itself (HESSGPT_BF16_WEIGHT_COPIES=0; the default
#     converts each matrix once per pass into BF16 copies the products read).
#   JOINED_GATE_UP_AB [1]: a `bench train` row on AB_MODELS with gate and up
#     apart (HESSGPT_JOINED_GATE_UP=0; the default puts them side by side: one
#     product for both, one for dln, one for their weights' gradient).
#   BF16_DLN_AB [1]: a `bench train` row on AB_MODELS with dln in F32
#     (HESSGPT_BF16_DLN=0; the default writes it in BF16 where one product does).
#   BF16_QK_RAW_AB [1]: a `bench train` row on AB_MODELS with q and k before
#     QK-Norm in F32 (HESSGPT_BF16_QK_RAW=0; the default keeps them in BF16).
#   GEMV_AB [1]: each decode row again with the one-token products through cuBLASLt
#     (HESSGPT_GEMV=0; the default is the GEMV kernel).
#   PROLOGUE_AB [1]: each decode row again with the norms and SwiGLU as kernels of
#     their own (HESSGPT_GEMV_PROLOGUE=0; the default folds them into the GEMV).
#   SAMPLED_AB [1]: the BF16 decode row again with each token drawn at temperature 0.7
#     (generate's default) instead of greedily: the host's draw in the decode rate.
#   PDL_AB [1]: the decode rows (FP32 and BF16 weights) again with plain launches
#     (HESSGPT_CUDA_PDL=0; the default chains decoding's kernels: chained_launch.cuh).
#   DECODE_PROFILE [1]: each model's BF16 decode again with every op timed (bench
#     generate --profile: op by op, no graph), its top ops and the time between ops.
#   GRAPHS_AB [1]: each decode row again with the step's ops launched one by one
#     (HESSGPT_CUDA_GRAPHS=0; the default replays a CUDA graph of the step).
#   NORM_AB [1]: the RMSNorm and QK-Norm rows of `bench ops` again with the
#     generic kernels (HESSGPT_NORM_KERNELS=generic; the default holds rows in registers).
#   A/B rows, on AB_MODELS [model1]: BF16_FFN_AB=1 adds --bf16-ffn; ATTN_AB=1
#     the FP32 attention kernels (HESSGPT_ATTENTION=fp32); ATTN_WARPS_AB=1 8-warp
#     attention blocks (with a second `bench ops`); PAD_AB=1 no cuBLASLt K/N
#     padding; RECOMPUTE_AB=1 without BENCH_FLAGS; TRANSPOSE_AB [1] odd-row weight
#     gradients computed directly (HESSGPT_CUBLASLT_TRANSPOSE=0); TUNE_AB=1 cuBLASLt's candidates
#     timed per shape (HESSGPT_CUBLASLT_TUNE=verbose: the picks in the row's .err).
#   SKIP_SANITIZER=1; SANITIZER_FILTER [the op and attention tests].
#   COMMANDS_CHECK [1]: scripts/gpu-commands.sh, the commands end to end with
#     --device cuda against the CPU (~1-2 minutes; tests section; COMMANDS_TIMEOUT [240]).
set -uo pipefail
cd "$(dirname "$0")/.."

configure_only=0
quick=0
bench_only=0
tests_only=0
for arg in "$@"; do
  case "$arg" in
    --configure-only) configure_only=1 ;;
    --quick) quick=1 ;;
    --bench-only) bench_only=1 ;;
    --tests-only) tests_only=1 ;;
    *) echo "gpu-check: unknown argument $arg" >&2; exit 2 ;;
  esac
done

PACK_TO=${OUT:-}
OUT=${LOGS:-/tmp/gpu-check}
PREFIX=${PREFIX:-/tmp/hessgpt-prefix}
BUILD=${BUILD:-build-gpu}
# Each test binary and each benchmark is cut off after these many seconds, so
# that one hang costs one row of the table, not the device machine's lease.
TEST_TIMEOUT=${TEST_TIMEOUT:-150}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-200}
mkdir -p "$OUT"
LOG="$OUT/gpu-check.log"
: >"$LOG"
SUMMARY=()
failed=0

note() { echo "gpu-check: $*" | tee -a "$LOG"; }
row() { SUMMARY+=("$(printf '%-34s %-6s %s' "$1" "$2" "$3")"); [[ $2 == FAIL ]] && failed=1; return 0; }
print_summary() {
  echo
  echo "==================== gpu-check summary ===================="
  printf '%-34s %-6s %s\n' "step" "result" "detail"
  for r in "${SUMMARY[@]}"; do echo "$r"; done
  if [[ -n $PACK_TO ]]; then
    mkdir -p "$PACK_TO"; tar -czf "$PACK_TO/gpu-check.tgz" -C "$(dirname "$OUT")" "$(basename "$OUT")" 2>/dev/null
    echo "logs and JSON: $OUT (packed into $PACK_TO/gpu-check.tgz)"
  else
    echo "logs and JSON: $OUT"
  fi
}
trap print_summary EXIT

# ---- 1. the Debian packages, unpacked privately ----------------------------------
ARCH_LIB="$PREFIX/usr/lib/x86_64-linux-gnu"
if compgen -G ".gpu-debs/*.deb" >/dev/null; then
  mkdir -p "$PREFIX"
  for f in .gpu-debs/*.deb; do dpkg -x "$f" "$PREFIX" || { row "unpack .deb" FAIL "$f"; exit 1; }; done
  row "unpack .gpu-debs" ok "$(ls .gpu-debs/*.deb | wc -l) packages into $PREFIX"
  export LD_LIBRARY_PATH="$ARCH_LIB:$ARCH_LIB/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  PREFIX_ARGS=(
    "-DCMAKE_PREFIX_PATH=$PREFIX/usr"
    "-DOPENBLAS_LIBRARY=$ARCH_LIB/openblas-openmp/libopenblas.so"
    "-DCBLAS_INCLUDE_DIR=$PREFIX/usr/include/x86_64-linux-gnu/openblas-openmp"
  )
else
  row "unpack .gpu-debs" skip "no .gpu-debs/*.deb: using the system's packages"
  PREFIX_ARGS=()
fi

# ---- 2. the machine ----------------------------------------------------------------
# CUDA's tools may be off the PATH; cuBLASLt (opened at run time, headers at
# build time) may come only with PyTorch's pip packages.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
CUDA_ROOT=$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")
if [[ ! -f $CUDA_ROOT/include/cublasLt.h ]] || ! ls "$CUDA_ROOT"/lib64/libcublasLt.so.* >/dev/null 2>&1; then
  pip_cublas=$(python3 -c 'import nvidia.cublas as m, os; print(list(m.__path__)[0])' 2>/dev/null)
  if [[ -n $pip_cublas ]]; then
    export CPATH="$pip_cublas/include${CPATH:+:$CPATH}"
    export LD_LIBRARY_PATH="$pip_cublas/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    row "cuBLASLt" info "from $pip_cublas (not in $CUDA_ROOT)"
  else
    row "cuBLASLt" info "not found in $CUDA_ROOT nor in pip's nvidia-cublas"
  fi
fi
# cuDNN (the opt-in fused attention): headers at build time, the library at
# run time. Each from the toolkit, else PyTorch's nvidia-cudnn wheel; headers
# last from .gpu-debs/cudnn (scripts/gpu-debs.sh copies the toolkit's there).
cudnn_inc="" cudnn_lib=""
[[ -f $CUDA_ROOT/include/cudnn_graph.h ]] && cudnn_inc=$CUDA_ROOT/include
ls "$CUDA_ROOT"/lib64/libcudnn.so.9* >/dev/null 2>&1 && cudnn_lib=$CUDA_ROOT/lib64
site_dirs=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)
if [[ -z $cudnn_inc ]]; then
  h=$(find $site_dirs -path '*nvidia*' -name cudnn_graph.h 2>/dev/null | head -1)
  [[ -n $h ]] && cudnn_inc=$(dirname "$h")
  [[ -z $cudnn_inc && -f .gpu-debs/cudnn/include/cudnn_graph.h ]] && cudnn_inc=$PWD/.gpu-debs/cudnn/include
fi
if [[ -z $cudnn_lib ]]; then
  l=$(find $site_dirs -path '*nvidia*' -name 'libcudnn.so.9*' 2>/dev/null | head -1)
  [[ -n $l ]] && cudnn_lib=$(dirname "$l")
fi
if [[ -n $cudnn_inc && -n $cudnn_lib ]]; then
  export CUDNN_ROOT=$(dirname "$cudnn_inc")
  [[ $cudnn_lib != "$CUDA_ROOT/lib64" ]] && export LD_LIBRARY_PATH="$cudnn_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  row "cuDNN" info "headers $(grep -h 'define CUDNN_M[AI][JN]OR ' "$cudnn_inc"/cudnn_version*.h | awk '!seen[$2]++ {printf "%s.", $3}')x in $cudnn_inc, library $(ls "$cudnn_lib"/libcudnn.so.9* | head -1)"
else
  row "cuDNN" info "headers '${cudnn_inc}', library '${cudnn_lib}': incomplete, no fused cuDNN attention"
fi
if command -v nvidia-smi >/dev/null; then
  gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>>"$LOG" | head -1)
  row "GPU" info "${gpu:-none}"
else
  row "GPU" info "no nvidia-smi"
fi
row "nvcc" info "$(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo 'not found')"

# ---- 3. configure and build ----------------------------------------------------------
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# Only sm_90 machine code here (the GPU in hand); CI builds the PTX too.
if cmake -S . -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DHESSGPT_CUDA=ON \
    -DHESSGPT_BUILD_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES=90-real -DCMAKE_DISABLE_FIND_PACKAGE_dnnl=ON \
    "${PREFIX_ARGS[@]}" \
    ${HESSGPT_CMAKE_ARGS:-} >"$OUT/configure.log" 2>&1; then
  row "configure" ok "$(grep -m1 'CUDA backend' "$OUT/configure.log" | sed 's/^-- //'); $(grep -m1 'cuDNN' "$OUT/configure.log" | sed 's/^-- //')"
else
  row "configure" FAIL "see $OUT/configure.log"; tail -30 "$OUT/configure.log"; exit 1
fi
[[ $configure_only == 1 ]] && exit 0

start=$(date +%s)
if cmake --build "$BUILD" -j "$(nproc)" --target ${BUILD_TARGETS:-hessgpt test_backend test_model test_infer} \
    >"$OUT/build.log" 2>&1; then
  row "build" ok "$(( $(date +%s) - start )) s"
else
  row "build" FAIL "see $OUT/build.log"; grep -m20 -B2 -A6 'error' "$OUT/build.log"; exit 1
fi
HG="$BUILD/hessgpt"

backends=$("$HG" info --backends --json 2>&1)
echo "$backends" >"$OUT/backends.json"
if [[ $backends == *'"available":["cpu","cuda"]'* ]]; then
  row "info --backends" ok "$backends"
else
  row "info --backends" FAIL "$backends"; exit 1
fi

# ---- 4. tests ------------------------------------------------------------------------
# gtest prints "[  PASSED  ] N tests." and "[  FAILED  ] N tests" / "[  SKIPPED ] N tests".
gtest_row() {  # name, binary, filter, skips allowed (1) or a failure (0)
  local name=$1 bin=$2 filter=$3 may_skip=$4 log="$OUT/$(echo "$1" | tr -c 'a-zA-Z0-9\n' '_').log"
  local t0=$(date +%s)
  timeout -k 5 "$TEST_TIMEOUT" "$bin" --gtest_filter="$filter" --gtest_color=no >"$log" 2>&1
  local rc=$?
  [[ $rc == 124 ]] && echo "gpu-check: timed out after $TEST_TIMEOUT s" >>"$log"
  local passed=$(grep -o '\[  PASSED  \] [0-9]*' "$log" | grep -o '[0-9]*$')
  local skipped=$(grep -o '\[  SKIPPED \] [0-9]*' "$log" | grep -o '[0-9]*$')
  local failed_n=$(grep -o '\[  FAILED  \] [0-9]* test' "$log" | grep -o '[0-9]*' | head -1)
  local detail="${passed:-0} passed, ${failed_n:-0} failed, ${skipped:-0} skipped, $(( $(date +%s) - t0 )) s"
  if [[ $rc == 0 && ( $may_skip == 1 || ${skipped:-0} == 0 ) ]]; then row "$name" ok "$detail"; else row "$name" FAIL "$detail"; fi
  grep -E '^\[  FAILED  \] [A-Z]' "$log" | head -20 | sed 's/^/    /' | tee -a "$LOG"
  grep -E 'worst relative gap|^chained launches|^device sm_' "$log" | sed 's/^/    /' | tee -a "$LOG"
}

if [[ $bench_only == 0 ]]; then
gtest_row "test: launch config, registry" "$BUILD/tests/test_backend" 'CudaLaunchConfig.*:CudaBackendRegistry.*' 1
gtest_row "test: CUDA ops vs CPU" "$BUILD/tests/test_backend" 'CudaOps.*:CudaAttention.*' 0
gtest_row "test: model steps vs CPU" "$BUILD/tests/test_model" 'Presets/CudaModel.*' 0
gtest_row "test: GPU decoding vs CPU" "$BUILD/tests/test_infer" 'CudaDecode.*' 0
# cuDNN's fused attention (HESSGPT_ATTENTION=cudnn); the log says which plans
# it built, or why none.
HESSGPT_CUDNN_DEVICEPROP_OUT="$OUT/cudnn-deviceprop.json" \
  gtest_row "test: cuDNN fused attention" "$BUILD/tests/test_backend" 'CudnnAttention.*:CudnnSdpaGraphs.*' 0
while IFS= read -r line; do row "  cudnn" info "$line"; done \
  < <(grep -h 'attention: cuDNN' "$OUT/test__cuDNN_fused_attention.log" 2>/dev/null | head -6 | cut -c1-400)
# The model steps above ran cuDNN's attention wherever it takes the shape (the
# default); these run our kernels throughout.
row "  cudnn plans" info "$(grep -c 'attention: cuDNN fused' "$OUT/test__model_steps_vs_CPU.log" 2>/dev/null) built in the model steps"
HESSGPT_ATTENTION=ours gtest_row "test: model steps, our attention" "$BUILD/tests/test_model" 'Presets/CudaModel.*' 0
HESSGPT_BF16_ATTENTION_GRADS=0 gtest_row "test: model steps, F32 attention gradients" \
  "$BUILD/tests/test_model" 'Presets/CudaModel.*' 0
# The tensor-core attention at its other block size (HESSGPT_ATTN_WARPS).
export HESSGPT_ATTN_WARPS=8
gtest_row "test: attention, 8-warp blocks" "$BUILD/tests/test_backend" 'CudaAttention.*:CudaOps.Attention*' 0
unset HESSGPT_ATTN_WARPS

# A tool's verdict apart from the tests': --error-exitcode 9 marks what the
# sanitizer found; any other non-zero status is a failing test (its own row
# above says which) or the timeout (124).
VENDOR_KERNELS='cudnn_generated\|nvjet_\|cutlass\|xmma_'
sanitizer_row() {  # name, log, rc, detail when clean
  local name=$1 log=$2 rc=$3 clean=$4
  local summary=$(grep -o 'ERROR SUMMARY: [0-9]* errors\|RACECHECK SUMMARY: [0-9]* hazards' "$log" | tail -1)
  case $rc in
    0) row "$name" ok "$clean${summary:+: $summary}" ;;
    9) # Races reported only inside cuDNN's and cuBLAS's own kernels (their
       # wgmma/TMA pipelines) are theirs to answer, not a failure of ours.
       local ours=$(grep 'Race reported' "$log" | grep -cv "$VENDOR_KERNELS")
       if [[ $name == *racecheck* && $ours == 0 ]]; then
         row "$name" info "${summary}, all inside vendor kernels (cuDNN, cuBLAS), see $log"
       else
         row "$name" FAIL "${summary:-errors found}, see $log"
         grep -m10 -A4 'Invalid\|Error\|Race\|Hazard' "$log" | grep -v "$VENDOR_KERNELS" |
           sed 's/^/    /'
       fi ;;
    124) row "$name" FAIL "timed out after $TEST_TIMEOUT s" ;;
    *) row "$name" info "${summary:-no summary}; a test failed under it (exit $rc), see the test rows" ;;
  esac
}
if [[ ${SKIP_SANITIZER:-0} == 1 ]]; then
  row "compute-sanitizer" skip "SKIP_SANITIZER=1"
elif command -v compute-sanitizer >/dev/null; then
  log="$OUT/sanitizer.log"
  timeout -k 5 "$TEST_TIMEOUT" compute-sanitizer --tool memcheck --error-exitcode 9 "$BUILD/tests/test_backend" \
      --gtest_filter="${SANITIZER_FILTER:-CudaOps.*:CudaAttention.*}" --gtest_color=no >"$log" 2>&1
  sanitizer_row "compute-sanitizer memcheck" "$log" $? "${SANITIZER_FILTER:-CudaOps.*:CudaAttention.*}"
  log="$OUT/racecheck.log"
  timeout -k 5 "$TEST_TIMEOUT" compute-sanitizer --tool racecheck --error-exitcode 9 "$BUILD/tests/test_backend" \
      --gtest_filter="${SANITIZER_FILTER:-CudaOps.Attention*:CudaAttention.*:CudaOps.RmsNorm*:CudaOps.SoftcapAndFused*}" \
      --gtest_color=no >"$log" 2>&1
  sanitizer_row "compute-sanitizer racecheck" "$log" $? "${SANITIZER_FILTER:-attention, rmsnorm, cross-entropy}"
else
  row "compute-sanitizer" skip "not installed"
fi

# The commands a user runs, on the GPU beside the CPU (scripts/gpu-commands.sh):
# prepare, pretrain (FP32, a stop and resume, BF16), score, eval perplexity,
# greedy generate (FP32 and BF16 weights), LoRA + YaRN sft, merge, chat. The
# tokenizer is not built here (it needs npm): scripts/gpu-debs.sh carries it.
if [[ ${COMMANDS_CHECK:-1} == 1 ]]; then
  [[ -z ${HESSGPT_TOKENIZER:-} && -f .gpu-debs/mistral-tokenizer.model ]] &&
    export HESSGPT_TOKENIZER=$PWD/.gpu-debs/mistral-tokenizer.model
  log="$OUT/commands.log" t0=$(date +%s)
  timeout -k 5 "${COMMANDS_TIMEOUT:-240}" bash scripts/gpu-commands.sh --device cuda --reference cpu \
    --work "$OUT/commands" --hessgpt "$HG" >"$log" 2>&1
  rc=$?
  detail="$(grep -c '^PASS' "$log") passed, $(grep -c '^FAIL' "$log") failed, $(( $(date +%s) - t0 )) s"
  if [[ $rc == 0 ]]; then row "commands on the GPU vs CPU" ok "$detail"
  else row "commands on the GPU vs CPU" FAIL "$detail (exit $rc), see $log"; fi
  grep '^FAIL' "$log" | head -10 | cut -c1-300 | sed 's/^/    /' | tee -a "$LOG"
  rm -rf "$OUT/commands"  # checkpoints: not worth bringing back
fi
fi  # bench_only

# ---- 5. throughput ---------------------------------------------------------------------
# Peak GPU memory of a command: nvidia-smi sampled every 100 ms while it runs.
peak_mem_run() {  # outfile, command...
  local out=$1; shift
  local mem_log="$out.mem"
  (while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null; sleep 0.1; done) >"$mem_log" &
  local sampler=$!
  timeout -k 5 "$BENCH_TIMEOUT" "$@" >"$out" 2>"$out.err"
  local rc=$?
  [[ $rc == 124 ]] && echo "timed out after $BENCH_TIMEOUT s" >>"$out.err"
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  PEAK_MIB=$(sort -n "$mem_log" | tail -1)
  echo "$PEAK_MIB" >"$out.peak"
  return $rc
}
json_field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); v=d.get(sys.argv[2]); print('' if v is None else (f'{v:.4g}' if isinstance(v,float) else v))" "$1" "$2" 2>/dev/null; }

bench_row() {  # model batch seq steps precision label flags [env assignments...]
  local model=$1 batch=$2 seq=$3 steps=$4 precision=$5 label=$6 flags=$7; shift 7
  local out="$OUT/bench-$model-$label.json"
  if peak_mem_run "$out" env "$@" "$HG" bench train --device cuda --precision "$precision" --model "$model" \
      --batch "$batch" --seq "$seq" --steps "$steps" $flags --json; then
    # Which attention ran, where cuDNN's was asked for: its log lines say.
    local engine=""
    if grep -q 'attention: cuDNN fused' "$out.err" 2>/dev/null; then engine=", cuDNN attention"
    elif grep -q 'attention: cuDNN' "$out.err" 2>/dev/null; then engine=", cuDNN declined: our attention"
    fi
    row "hessgpt $model $label ${batch}x$seq" ok \
      "$(json_field "$out" tokens_per_s) tok/s, MFU $(json_field "$out" mfu) (PaLM's count $(json_field "$out" mfu_palm)), peak ${PEAK_MIB:-?} MiB$engine"
  else
    row "hessgpt $model $label ${batch}x$seq" FAIL "$(tail -1 "$out.err")"
  fi
}

# Each `bench train` row of a model against its baseline row (--bf16-activations with
# BENCH_FLAGS, no switch set) as ratios of tokens/s and peak memory: the decision
# each A/B row is for, in one place.
ab_summary() {  # model
  local base="$OUT/bench-$1-bf16-activations.json"
  [[ -s $base ]] || return 0
  python3 - "$base" "$OUT"/bench-"$1"-bf16-activations-*.json >"$base.ab" 2>>"$LOG" <<'PY' || return 0
import json, os, sys
def load(path):
    try:
        d = json.load(open(path))
    except (OSError, ValueError):
        return None, ""
    peak = open(path + ".peak").read().strip() if os.path.exists(path + ".peak") else ""
    return d, peak
base, base_peak = load(sys.argv[1])
if base:
    for path in sys.argv[2:]:
        d, peak = load(path)
        if not d:
            continue
        label = os.path.basename(path)[len("bench-"):-len(".json")]
        mem = f", peak {peak} against {base_peak} MiB" if peak and base_peak else ""
        print(f"A/B {label}|{d['tokens_per_s'] / base['tokens_per_s']:.3f}x the baseline's tok/s{mem}")
PY
  while IFS='|' read -r name detail; do row "  $name" info "$detail"; done <"$base.ab"
}

# Where a step's time goes, op by op, inside the step itself (bench train --profile).
profile_rows() {  # model batch seq
  local out="$OUT/profile-$1.json"
  if timeout -k 5 "$BENCH_TIMEOUT" "$HG" bench train --device cuda --precision bf16 --model "$1" \
      --batch "$2" --seq "$3" --steps 3 ${PROFILE_FLAGS---bf16-activations} --profile --json \
      >"$out" 2>"$out.err"; then
    python3 - "$out" >"$out.rows" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
step_ms = 1000.0 * d["seconds_per_step"]
for c, ms in d.get("profile_categories_ms", {}).items():
    print(f"part {c}|{ms:.2f} ms/step ({100 * ms / step_ms:.1f} %): beside the torch rows' parts")
ops = d.get("profile_ops_ms")
if ops is not None:
    print(f"all ops|{ops:.2f} ms/step of the device's time; {d['profile_between_ops_ms']:.2f} ms "
          f"between ops (idle: launches, host work)")
for e in d["profile"][:int(__import__("os").environ.get("PROFILE_ROWS", "18"))]:
    print(f"{e['op']}|{e['ms_per_step']:.2f} ms/step ({100 * e['ms_per_step'] / step_ms:.1f} %), "
          f"{e['calls_per_step']:g} calls, {e['shape']}")
PY
    while IFS='|' read -r name detail; do row "  $name" info "$detail"; done <"$out.rows"
    row "profile $1 ${2}x$3 (${PROFILE_FLAGS---bf16-activations})" ok \
      "$(json_field "$out" seconds_per_step) s/step profiled; see $out"
  else
    row "profile $1 ${2}x$3" FAIL "$(tail -1 "$out.err")"
  fi
}

# Each product shape's time per step in both profiles, side by side: m x n over k,
# each rounded up to 8 (our FFN tensors are 3416 wide where PyTorch's are 3413), the
# smaller of m and n first (a product and its transpose are the same work).
products_side_by_side() {  # ours torch
  python3 - "$1" "$2" >"$2.products" 2>>"$LOG" <<'PY' || return 0
import json, re, sys
ours, theirs = (json.load(open(p)) for p in sys.argv[1:3])
up = lambda x: (x + 7) // 8 * 8
table = {}
dims = lambda s: [int(x) for x in s.split(",")]
for e in ours.get("profile", []):
    if not e["op"].startswith("matmul"):
        continue
    m = re.match(r"\[([\d, ]+)\][^x]*?(\^T)? x \[([\d, ]+)\][^-]*-> \[([\d, ]+)\]", e["shape"])
    if not m:
        continue
    a, c = dims(m.group(1)), dims(m.group(4))
    k = a[0] if m.group(2) else a[-1]
    key = (*sorted((up(c[0]), up(c[-1]))), up(k))
    t = table.setdefault(key, [0.0, 0.0, 0.0, 0.0])
    t[0] += e["ms_per_step"]; t[1] += e["calls_per_step"]
for r in theirs.get("profile", {}).get("products", []):
    key = (*sorted((up(r["m"] * r["batch"]), up(r["n"]))), up(r["k"]))
    t = table.setdefault(key, [0.0, 0.0, 0.0, 0.0])
    t[2] += r["ms"]; t[3] += r["calls"]
rows = sorted(table.items(), key=lambda kv: -max(kv[1][0], kv[1][2]))
for (m, n, k), (o, oc, p, pc) in rows[:16]:
    print(f"products {m}x{n} over {k}|ours {o:.2f} ms ({oc:g} calls), torch {p:.2f} ms ({pc:g} calls)")
print(f"products, all shapes|ours {sum(t[0] for t in table.values()):.2f} ms, "
      f"torch {sum(t[2] for t in table.values()):.2f} ms per step")
PY
  while IFS='|' read -r name detail; do row "  $name" info "$detail"; done <"$2.products"
}

# PyTorch's step by kernel category and its top kernels (torch_train_step.py --profile),
# to set beside hessgpt's `bench train --profile` rows.
torch_profile_rows() {  # torch json
  python3 - "$1" >"$1.rows" 2>>"$LOG" <<'PY' || return 0
import json, sys
p = json.load(open(sys.argv[1])).get("profile")
if p:
    for c, ms in p["categories_ms"].items():
        print(f"torch {c}|{ms:.2f} ms ({100 * ms / p['total_ms']:.1f} % of {p['total_ms']:.1f} ms of kernels)")
    for t in p["top"][:10]:
        print(f"torch kernel {t['name'][:70]}|{t['ms']:.2f} ms, {t['calls']} calls, {t['category']}")
PY
  while IFS='|' read -r name detail; do row "  $name" info "$detail"; done <"$1.rows"
}

# The issue's figures: the baseline rows (and keep-all), then PyTorch's step in
# the same call, before any A/B row, so that a call cut short still has them.
headline_rows() {  # model batch seq steps
  local model=$1 batch=$2 seq=$3 steps=$4
  for precision in ${BENCH_PRECISIONS:-bf16}; do
    bench_row "$model" "$batch" "$seq" "$steps" "$precision" "$precision" "${BENCH_FLAGS---recompute}"
  done
  if [[ ${BF16_ACTS_AB:-1} == 1 ]]; then
    bench_row "$model" "$batch" "$seq" "$steps" bf16 bf16-activations \
      "${BENCH_FLAGS---recompute} --bf16-activations"
    # (With BENCH_FLAGS empty the row above keeps all already.)
    [[ -n ${BENCH_FLAGS---recompute} ]] &&
      bench_row "$model" "$batch" "$seq" "$steps" bf16 bf16-activations-keep-all "--bf16-activations"
  fi
  [[ ${SKIP_TORCH:-0} == 1 ]] && return 0
  [[ " ${TORCH_MODELS:-$model} " != *" $model "* ]] && return 0
  local tout="$OUT/torch-$model.json"
  if peak_mem_run "$tout" python3 bench/torch_train_step.py --device cuda --precision bf16 --compile \
      --head plain --model "$model" --batch "$batch" --seq "$seq" --steps "$steps" --warmup 3 \
      $([[ ${TORCH_PROFILE:-1} == 1 ]] && echo --profile) --json; then
    row "pytorch $model bf16 compile" ok \
      "$(json_field "$tout" tokens_per_s) tok/s, peak $(( $(json_field "$tout" peak_memory_bytes) / 1048576 )) MiB allocated, AdamW $(json_field "$tout" adamw)"
    torch_profile_rows "$tout"
  else
    row "pytorch $model bf16 compile" FAIL "$(tail -1 "$tout.err")"
  fi
  # PyTorch with its default (foreach) AdamW instead of the fused kernel: the
  # baseline of the first six GPU sessions' ratios.
  [[ ${TORCH_FOREACH_AB:-0} == 1 ]] || return 0
  local fout="$OUT/torch-$model-foreach.json"
  if peak_mem_run "$fout" python3 bench/torch_train_step.py --device cuda --precision bf16 --compile \
      --head plain --fused off --model "$model" --batch "$batch" --seq "$seq" --steps "$steps" \
      --warmup 3 --json; then
    row "pytorch $model bf16 compile, foreach AdamW" ok "$(json_field "$fout" tokens_per_s) tok/s"
  else
    row "pytorch $model bf16 compile, foreach AdamW" FAIL "$(tail -1 "$fout.err")"
  fi
}

ab_rows() {  # model batch seq steps
  local model=$1 batch=$2 seq=$3 steps=$4
  [[ ${BF16_ACTS_AB:-1} == 1 && ${RECOMPUTE_MLP_AB:-1} == 1 ]] &&
    bench_row "$model" "$batch" "$seq" "$steps" bf16 bf16-activations-recompute-mlp \
      "--bf16-activations --recompute-mlp"
  if [[ " ${AB_MODELS:-model1} " == *" $model "* ]]; then
  [[ ${BF16_FFN_AB:-0} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 bf16-ffn-storage \
      "${BENCH_FLAGS---recompute} --bf16-ffn"
  [[ ${ATTN_AB:-0} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 bf16-fp32-attention \
      "${BENCH_FLAGS---recompute}" HESSGPT_ATTENTION=fp32
  [[ ${PAD_AB:-0} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 bf16-no-padding \
      "${BENCH_FLAGS---recompute}" HESSGPT_CUBLASLT_PAD=0
  [[ ${ATTN_WARPS_AB:-0} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 bf16-attention-8-warps \
      "${BENCH_FLAGS---recompute}" HESSGPT_ATTN_WARPS=8
  [[ ${RECOMPUTE_AB:-0} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 bf16-keep-all ""
  [[ ${TRANSPOSE_AB:-1} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 bf16-activations-direct \
      "${BENCH_FLAGS---recompute} --bf16-activations" HESSGPT_CUBLASLT_TRANSPOSE=0
  [[ ${FUSED_KV_AB:-1} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 bf16-activations-separate-kv \
      "${BENCH_FLAGS---recompute} --bf16-activations" HESSGPT_FUSED_KV=0
  [[ ${FUSED_QKV_AB:-1} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 bf16-activations-kv-only \
      "${BENCH_FLAGS---recompute} --bf16-activations" HESSGPT_FUSED_QKV=0
  [[ ${CUDNN_AB:-1} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 bf16-activations-our-attention \
      "${BENCH_FLAGS---recompute} --bf16-activations" HESSGPT_ATTENTION=ours
  [[ ${ATT_GRADS_AB:-1} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 \
      bf16-activations-f32-attention-grads \
      "${BENCH_FLAGS---recompute} --bf16-activations" HESSGPT_BF16_ATTENTION_GRADS=0
  local rows
  [[ ${HEAD_CHUNK_AB:-1} == 1 ]] && for rows in ${HEAD_CHUNKS:-8192}; do
    bench_row "$model" "$batch" "$seq" "$steps" bf16 "bf16-activations-head-$rows" \
      "${BENCH_FLAGS---recompute} --bf16-activations" "HESSGPT_HEAD_CHUNK_ROWS=$rows"
  done
  [[ ${CE_AB:-1} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 \
      bf16-activations-split-cross-entropy "${BENCH_FLAGS---recompute} --bf16-activations" \
      HESSGPT_CE_KERNEL=split
  [[ ${BF16_LOGITS_AB:-1} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 \
      bf16-activations-f32-logits "${BENCH_FLAGS---recompute} --bf16-activations" \
      HESSGPT_BF16_LOGITS=0
  [[ ${WEIGHT_COPIES_AB:-1} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 \
      bf16-activations-weights-converted-per-product \
      "${BENCH_FLAGS---recompute} --bf16-activations" HESSGPT_BF16_WEIGHT_COPIES=0
  [[ ${JOINED_GATE_UP_AB:-1} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 \
      bf16-activations-gate-up-apart "${BENCH_FLAGS---recompute} --bf16-activations" \
      HESSGPT_JOINED_GATE_UP=0
  [[ ${BF16_DLN_AB:-1} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 \
      bf16-activations-f32-dln "${BENCH_FLAGS---recompute} --bf16-activations" HESSGPT_BF16_DLN=0
  [[ ${BF16_QK_RAW_AB:-1} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 \
      bf16-activations-f32-qk-raw "${BENCH_FLAGS---recompute} --bf16-activations" \
      HESSGPT_BF16_QK_RAW=0
  [[ ${TUNE_AB:-0} == 1 ]] && bench_row "$model" "$batch" "$seq" "$steps" bf16 bf16-activations-tuned \
      "${BENCH_FLAGS---recompute} --bf16-activations" HESSGPT_CUBLASLT_TUNE=verbose
  fi
  ab_summary "$model"
}

# Each of our rows as a ratio of PyTorch's, and the products side by side
# (once the profile rows have run).
torch_report() {  # model
  local model=$1 tout="$OUT/torch-$1.json"
  [[ -s $tout ]] || return 0
  [[ -s $OUT/profile-$model.json ]] && products_side_by_side "$OUT/profile-$model.json" "$tout"
  local ours
  for ours in "$OUT"/bench-"$model"-bf16*.json; do
    [[ -s $ours ]] || continue
    local label=${ours#"$OUT"/bench-"$model"-}
    python3 - "$ours" "$tout" <<'PY' >>"$LOG" 2>&1 && row "  ratio ${label%.json} / pytorch" info "$(tail -1 "$LOG")"
import json, sys
ours, theirs = (json.load(open(p)) for p in sys.argv[1:3])
print(f"{ours['tokens_per_s'] / theirs['tokens_per_s']:.2f}x")
PY
  done
}

# Where a step's time goes: each op alone at model1's (or small's) shapes, BF16 products.
# A labelled run is an A/B: only the rows matching OPS_MATCH [attention] go in the table.
ops_rows() {  # model batch seq [label env assignments...]
  local out="$OUT/ops-$1${4:+-$4}.json"
  if timeout -k 5 "$BENCH_TIMEOUT" env "${@:5}" "$HG" bench ops --device cuda --precision bf16 --model "$1" --batch "$2" --seq "$3" \
      ${OPS_ONLY:+--only "$OPS_ONLY"} --json \
      >"$out" 2>"$out.err"; then
    OPS_MATCH=${OPS_MATCH:-${4:+attention}} python3 - "$out" >"$out.rows" <<'PY'
import json, os, re, sys
d = json.load(open(sys.argv[1]))
for op in d["ops"]:
    if not re.match(os.environ.get("OPS_MATCH", ""), op["op"]):
        continue
    rate = f"{op['tflops_per_s']:.1f} TFLOP/s" if op["tflops_per_s"] > 0 else f"{op['gbytes_per_s']:.0f} GB/s"
    print(f"{op['op']}|{op['ms']:.3f} ms, {rate}, {op['shape']}")
PY
    while IFS='|' read -r name detail; do row "  $name" info "$detail"; done <"$out.rows"
    while IFS= read -r line; do row "  cudnn" info "$line"; done \
      < <(grep -h 'attention: cuDNN' "$out.err" 2>/dev/null | head -2 | cut -c1-300)
    row "ops $1 ${2}x$3 (bf16 products${4:+, $4})" ok "see $out"
  else
    row "ops $1 ${2}x$3" FAIL "$(tail -1 "$out.err")"
  fi
}

# KV-cache decoding on the GPU: greedy, 128 prompt + 128 new tokens, the
# matrices in FP32 (bits 32) or BF16 (16).
decode_row() {  # model bits [label VAR=value...]; DECODE_ARGS: more bench flags
  local model=$1 bits=$2 label=${3:-} out="$OUT/decode-$1-$2${3:+-$3}.json"
  # shellcheck disable=SC2086  # DECODE_ARGS is split into flags on purpose
  if env "${@:4}" timeout -k 5 "$BENCH_TIMEOUT" "$HG" bench generate --device cuda --model "$model" \
      --bits "$bits" --prompt-len 128 --gen 128 ${DECODE_ARGS:-} --json >"$out" 2>"$out.err"; then
    row "decode $model bits $bits (128+128)${label:+ $label}" ok "$(json_field "$out" decode_tokens_per_s) tok/s decode, \
$(json_field "$out" prefill_tokens_per_s) tok/s prefill, $(json_field "$out" decode_weight_gb_per_s) GB/s of weights, \
$(json_field "$out" decode_path)"
  else
    row "decode $model bits $bits${label:+ $label}" FAIL "$(tail -1 "$out.err")"
  fi
}

# Where a decoded token's time goes (bench generate --profile): the BF16 row
# again, op by op with every op timed; the top ops and the gaps between ops.
decode_profile_rows() {  # model bits
  local out="$OUT/decode-$1-$2-profiled.json"
  DECODE_ARGS="--profile" decode_row "$1" "$2" profiled || return 0
  [[ -s $out ]] || return 0
  python3 - "$out" <<'PY' >"$out.rows" 2>>"$LOG" || return 0
import json, sys
d = json.load(open(sys.argv[1]))
print(f"all ops|{d['profile_ops_ms']:.3f} ms a token, {d['profile_between_ops_ms']:.3f} ms between ops")
for part, ms in d["profile_categories_ms"].items():
    print(f"part {part}|{ms:.3f} ms a token")
for op in d["profile"][:10]:
    print(f"{op['op']}|{op['ms_per_token']:.4f} ms a token, {op['calls_per_token']:.0f} calls, {op['shape']}")
PY
  while IFS='|' read -r name detail; do row "  $name" info "$detail"; done <"$out.rows"
}

[[ $tests_only == 1 ]] && exit $failed
# The issue's figures first (model1, then model2), so that a lease cut short
# still has them; small last, as a quick cross-check of a smaller shape.
# BENCH_MODELS picks others (e.g. the ones a cut-short run did not reach).
models=${BENCH_MODELS:-model1 model2}
[[ $quick == 1 ]] && models=small
bench_shape() {  # model -> batch seq steps
  case $1 in small|tiny) echo 16 1024 10 ;; *) echo 32 1024 5 ;; esac
}
for m in $models; do headline_rows "$m" $(bench_shape "$m"); done
[[ " $models " == *" model1 "* ]] && ops_rows model1 32 1024
[[ " $models " == *" model1 "* && ${ATTN_ROWS_AB:-1} == 1 ]] && ops_rows model1 32 1024 attention-32-rows HESSGPT_ATTN_ROWS=32 HESSGPT_ATTENTION=ours
[[ " $models " == *" model1 "* && ${CUDNN_AB:-1} == 1 ]] && ops_rows model1 32 1024 our-attention HESSGPT_ATTENTION=ours
if [[ " $models " == *" model1 "* && ${CUDNN_CONFIG_SWEEP:-0} == 1 ]]; then
  for pass in ${CUDNN_CONFIGS:-BACKWARD:0 BACKWARD:1 BACKWARD:2}; do
    var=HESSGPT_CUDNN_${pass%%:*}_CONFIG i=${pass##*:}
    label="cudnn-${pass%%:*}-config-$i"; label=${label,,}
    export "$var=$i"
    gtest_row "test: $label" "$BUILD/tests/test_backend" 'CudnnAttention.FusedAttentionMatchesCpu' 0
    unset "$var"
    grep -h -m2 'attention: cuDNN fused' "$OUT/test__${label//-/_}.log" | cut -c1-300 | sed 's/^/    /' | tee -a "$LOG"
    OPS_ONLY='attention (fwd|bwd) \((all bf16|bf16 inputs)\)' ops_rows model1 32 1024 "$label" "$var=$i"
  done
fi
[[ " $models " == *" model1 "* && ${CE_AB:-1} == 1 ]] &&
  OPS_MATCH='softcap cross' OPS_ONLY='softcap cross' ops_rows model1 32 1024 split-cross-entropy \
    HESSGPT_CE_KERNEL=split
[[ " $models " == *" model1 "* && ${CE_AB:-1} == 1 ]] &&
  OPS_MATCH='softcap cross' ops_rows model1 32 1024 warp-cross-entropy HESSGPT_CE_KERNEL=warp
[[ " $models " == *" model1 "* && ${CE_AB:-1} == 1 ]] &&
  OPS_MATCH='softcap cross' OPS_ONLY='softcap cross' ops_rows model1 32 1024 rows-cross-entropy \
    HESSGPT_CE_KERNEL=rows
[[ " $models " == *" model1 "* && ${QK_ROWS_AB:-1} == 1 ]] &&
  OPS_MATCH='qk-norm' OPS_ONLY='qk-norm' ops_rows model1 32 1024 qk-norm-warp-rows HESSGPT_QK_NORM_ROWS=1
[[ " $models " == *" model1 "* && ${QK_PREFETCH_AB:-1} == 1 ]] &&
  OPS_MATCH='qk-norm' OPS_ONLY='qk-norm' ops_rows model1 32 1024 qk-norm-no-prefetch \
    HESSGPT_QK_NORM_PREFETCH=0
[[ " $models " == *" model1 "* && ${NORM_AB:-1} == 1 ]] &&
  OPS_MATCH='rmsnorm|qk-norm' ops_rows model1 32 1024 generic-norms HESSGPT_NORM_KERNELS=generic

# Why the attention kernels run as fast as they do: one launch of each, profiled
# (a tool that cannot read the counters, as under gVisor, gives an info row).
ncu_attention_rows() {
  if ! command -v ncu >/dev/null; then row "ncu attention" skip "ncu not on PATH"; return; fi
  local kernel out
  for kernel in mma_forward_kernel mma_dkdv_kernel mma_dq_kernel; do
    out="$OUT/ncu-$kernel.txt"
    if timeout -k 5 "$BENCH_TIMEOUT" ncu --target-processes all -k "$kernel" --launch-count 1 \
        --section SpeedOfLight --section Occupancy --section WarpStateStats \
        --section MemoryWorkloadAnalysis "$HG" bench ops --device cuda --precision bf16 \
        --model model1 --batch 32 --seq 1024 --repeat 1 >"$out" 2>&1; then
      grep -E 'Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Registers Per Thread|Duration' \
        "$out" | sed -E 's/^ +//; s/ {2,}/ /g' | head -8 >"$out.rows"
      while IFS= read -r line; do row "  ncu $kernel" info "$line"; done <"$out.rows"
    else
      row "ncu $kernel" info "no report ($(tail -1 "$out")), see $out"
    fi
  done
}
[[ " $models " == *" model1 "* && ${NCU_ATTENTION:-0} == 1 ]] && ncu_attention_rows
[[ " $models " == *" model1 "* && ${ATTN_WARPS_AB:-0} == 1 ]] && ops_rows model1 32 1024 attention-8-warps HESSGPT_ATTN_WARPS=8 HESSGPT_ATTENTION=ours
for m in ${DECODE_MODELS-model1 model2}; do
  decode_row "$m" 32
  decode_row "$m" 16
  # The one-token products through cuBLASLt instead of the GEMV kernel.
  [[ ${GEMV_AB:-1} == 1 ]] && decode_row "$m" 32 cublaslt HESSGPT_GEMV=0
  # The step's ops launched one by one instead of a CUDA graph's replay.
  [[ ${GRAPHS_AB:-1} == 1 ]] && decode_row "$m" 32 no-graphs HESSGPT_CUDA_GRAPHS=0
  [[ ${PROLOGUE_AB:-1} == 1 ]] && decode_row "$m" 32 no-prologue HESSGPT_GEMV_PROLOGUE=0
  # Each token drawn at generate's default temperature: the host's draw included.
  [[ ${SAMPLED_AB:-1} == 1 ]] && DECODE_ARGS="--temperature 0.7" decode_row "$m" 16 temperature-0.7
  # Plain launches instead of chained ones (programmatic dependent launch).
  if [[ ${PDL_AB:-1} == 1 ]]; then
    decode_row "$m" 32 no-pdl HESSGPT_CUDA_PDL=0
    decode_row "$m" 16 no-pdl HESSGPT_CUDA_PDL=0
  fi
  [[ ${DECODE_PROFILE:-1} == 1 ]] && decode_profile_rows "$m" 16
done
for m in ${PROFILE_MODELS-model1}; do [[ " $models " == *" $m "* ]] && profile_rows "$m" 32 1024; done
for m in $models; do ab_rows "$m" $(bench_shape "$m"); done
for m in $models; do torch_report "$m"; done

exit $failed
