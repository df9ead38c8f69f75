#!/usr/bin/env bash
# The end-to-end job on the bundled demo corpus, as far as the product goes
# today: prepare both corpora with the Mistral tokenizer, pretrain a small
# Model 1 (prose) and Model 2 (code) shape on them, plot the runs, and score
# held-out text before and after training. Re-runnable: finished stages are
# reused (prepare keeps a folder with a manifest; pretrain resumes or skips).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
HG="$BUILD/hessgpt"
OUT=${DEMO_OUT:-runs/demo}
THREADS=${THREADS:-$(nproc)}
STEPS=${DEMO_STEPS:-80}
mkdir -p "$OUT"
start=$(date +%s)

stage() { printf '\n== %s ==\n' "$*"; }

stage "1/4 prepare the demo corpora (Model 1: prose, Model 2: code)"
for part in model1 model2; do
  if [[ -f "$OUT/data/$part/manifest.json" ]]; then
    echo "reusing $OUT/data/$part (manifest present)"
  else
    "$HG" prepare --preset "demo-$part" --out "$OUT/data/$part" --seq-len 256 \
      --chunk-tokens 2000000 --max-tokens 4000000 --threads "$THREADS"
  fi
done

stage "2/4 pretrain small Model 1 and Model 2 shapes ($STEPS steps each)"
for part in model1 model2; do
  "$HG" pretrain --model small --data "$OUT/data/$part" --out "$OUT/$part" \
    --steps "$STEPS" --batch 8 --accum 1 --seq 256 --lr 2e-3 \
    --eval-every 20 --eval-batches 8 --save-every 20 --log-every 10 --threads "$THREADS"
done

stage "3/4 plots"
for part in model1 model2; do "$HG" plot "$OUT/$part"; done

stage "4/4 held-out text: loss before and after training"
"$HG" init --model small --seed 1234 --out "$OUT/init" 2>/dev/null
score() {  # checkpoint, text
  local ids
  ids=$(printf '%s\n' "$2" | "$HG" tokenize | tr ' ' ',')
  "$HG" score --checkpoint "$1" --ids "1,$ids" --json --threads "$THREADS"
}
prose="The capital of the country lies on the northern coast, where the river meets the sea."
code='def mean(values):
    return sum(values) / len(values)'
code_line=$(printf '%s' "$code" | tr '\n' ' ')
printf '%-8s %-10s %s\n' model text "loss (init -> trained)"
for pair in "model1:prose" "model2:code"; do
  part=${pair%%:*}; kind=${pair##*:}
  text=$prose; [[ $kind == code ]] && text=$code_line
  before=$(score "$OUT/init" "$text" | sed -E 's/.*"loss":([0-9.]+).*/\1/')
  after=$(score "$OUT/$part/final" "$text" | sed -E 's/.*"loss":([0-9.]+).*/\1/')
  printf '%-8s %-10s %.3f -> %.3f\n' "$part" "$kind" "$before" "$after"
done

echo
echo "done in $(( $(date +%s) - start )) s; runs, checkpoints and plots (metrics.svg) are in $OUT/"
