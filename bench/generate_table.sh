#!/usr/bin/env bash
# Decode/prefill tokens/s of `hessgpt bench generate` for model1 and model2
# shapes (random weights) at every weight precision, with the bandwidth bound.
# Usage: bench/generate_table.sh [HESSGPT] [THREADS] [PROMPT_LEN] [GEN]
# Environment: BITS (default "32 16 8 4"), MODELS (default "model2 model1"),
# BENCH_ARGS (extra flags, e.g. --per-op-decode for the A/B of the decode path).
# On a shared machine run it nice'd and compare fractions of the bound from
# the same run; the bound (best of 5 probe passes) is optimistic under load.
set -euo pipefail
BIN=${1:-build/hessgpt}
THREADS=${2:-2}
P=${3:-64}
N=${4:-32}
# OpenMP's wait policy is left as the caller has it (libgomp's default: spin a
# while, then sleep), as `hessgpt generate` runs; OMP_WAIT_POLICY=passive puts
# a futex wake into each of decode's 4 barriers per layer.
echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg) OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-default}"
for model in ${MODELS:-model2 model1}; do
  for bits in ${BITS:-32 16 8 4}; do
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
    "$BIN" bench generate --model "$model" --bits "$bits" --prompt-len "$P" --gen "$N" \
      --threads "$THREADS" --json ${BENCH_ARGS:-}
  done
done
echo "# end load: $(cut -d' ' -f1-3 /proc/loadavg)"
