#!/usr/bin/env bash
# Training throughput of hessgpt against the same step in PyTorch (Debian's
# python3-torch, CPU) on this machine, in the same run, as a ratio; plus our
# achieved GFLOP/s as a fraction of OpenBLAS's large-SGEMM GFLOP/s.
# Usage: bench/train_vs_torch.sh [BUILD_DIR] [MODEL] [BATCH] [SEQ] [THREADS] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}; MODEL=${2:-small}; BATCH=${3:-8}; SEQ=${4:-256}; THREADS=${5:-2}; STEPS=${6:-3}
HG="$BUILD/hessgpt"
PY=/usr/bin/python3

ours=() bf16=() theirs=()
for round in 1 2; do  # interleaved, so all see the same machine load
  ours+=("$("$HG" bench train --model "$MODEL" --batch "$BATCH" --seq "$SEQ" --threads "$THREADS" --steps "$STEPS" --json)")
  bf16+=("$("$HG" bench train --model "$MODEL" --batch "$BATCH" --seq "$SEQ" --threads "$THREADS" --steps "$STEPS" --precision bf16 --json 2>/dev/null || echo '{}')")
  theirs+=("$($PY bench/torch_train_step.py --model "$MODEL" --batch "$BATCH" --seq "$SEQ" --threads "$THREADS" --steps "$STEPS" --json)")
done
sgemm=$("$BUILD/bench/ops_bench" --benchmark_filter="BM_SgemmLarge/$THREADS/" --benchmark_format=json 2>/dev/null)

$PY - "$sgemm" "${ours[@]}" "${bf16[@]}" "${theirs[@]}" <<'PYEOF'
import json, sys
sgemm = json.loads(sys.argv[1])["benchmarks"][0]["GFLOP/s"] / 1e9
runs = [json.loads(a) for a in sys.argv[2:]]
ours, bf16, theirs = runs[0:2], runs[2:4], runs[4:6]
best = lambda rs, k="tokens_per_s": max((r.get(k, 0) for r in rs), default=0)
o, b, t = best(ours), best(bf16), best(theirs)
gf, gb = best(ours, "gflops_per_s"), best(bf16, "gflops_per_s")
print(f"hessgpt fp32 : {o:9.1f} tokens/s  ({gf:.1f} GFLOP/s)  {o / t:.2f}x PyTorch")
if b:
    print(f"hessgpt bf16 : {b:9.1f} tokens/s  ({gb:.1f} GFLOP/s)  {b / t:.2f}x PyTorch")
print(f"pytorch fp32 : {t:9.1f} tokens/s  (torch {theirs[0].get('torch', '?')})")
print(f"SGEMM        : {sgemm:.1f} GFLOP/s (OpenBLAS, 2048^3): fp32 engine at {gf / sgemm:.0%} of it")
print(json.dumps({"hessgpt_tokens_per_s": o, "hessgpt_bf16_tokens_per_s": b, "torch_tokens_per_s": t,
                  "ratio": o / t, "ratio_bf16": b / t if b else None,
                  "hessgpt_gflops_per_s": gf, "sgemm_gflops_per_s": sgemm}))
PYEOF
