#!/usr/bin/env bash
# Decode/prefill tokens/s of `hessgpt bench generate` for model1 and model2
# shapes (random weights) at every weight precision, with the bandwidth bound.
# Usage: bench/generate_table.sh [HESSGPT] [THREADS] [PROMPT_LEN] [GEN]
set -euo pipefail
BIN=${1:-build/hessgpt}
THREADS=${2:-2}
P=${3:-64}
N=${4:-32}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
for model in model2 model1; do
  for bits in 32 16 8 4; do
    "$BIN" bench generate --model "$model" --bits "$bits" --prompt-len "$P" --gen "$N" \
      --threads "$THREADS" --json
  done
done
echo "# end load: $(cut -d' ' -f1-3 /proc/loadavg)"
