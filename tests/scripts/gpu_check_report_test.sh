#!/usr/bin/env bash
# scripts/gpu-check.sh's report steps, run here on CPU outputs of the same
# commands, so that a script error cannot waste a GPU session: the script
# parses; the products side by side (ours from `bench train --profile`,
# PyTorch's from torch_train_step.py --profile) find matching shapes; the A/B
# summary gives each row's ratio and skips a broken JSON; the PyTorch report
# gives our rows as ratios of its step and the products beside ours; the decode
# profile rows read `bench generate --profile` (run on the CPU here); racecheck's
# reports inside vendor kernels alone are not a failure, one in ours is.
# Usage: gpu_check_report_test.sh HESSGPT_BINARY SOURCE_DIR TORCH_PYTHON
set -euo pipefail
HG=$1 SRC=$2 TORCH_PY=${3:-}
SCRIPT=$SRC/scripts/gpu-check.sh
bash -n "$SCRIPT"

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
LOG=$OUT/log
ROWS=$OUT/rows
row() { printf '%s|%s|%s\n' "$1" "$2" "$3" >>"$ROWS"; }
fail() { echo "gpu_check_report_test: $*" >&2; cat "$ROWS" >&2 2>/dev/null || true; exit 1; }
eval "$(grep '^VENDOR_KERNELS=' "$SCRIPT")"
for f in products_side_by_side ab_summary sanitizer_row torch_report json_field decode_row \
    decode_profile_rows; do
  body=$(sed -n "/^$f() {/,/^}/p" "$SCRIPT")
  [[ $f == json_field ]] && body=$(grep "^$f() {" "$SCRIPT")
  [[ -n $body ]] || fail "no function $f in $SCRIPT"
  eval "$body"
done

# A/B ratios: 147.8k against 140k is 1.056x; the broken row is skipped.
echo '{"tokens_per_s": 140000}' >"$OUT/bench-m-bf16-activations.json"
echo 32600 >"$OUT/bench-m-bf16-activations.json.peak"
echo '{"tokens_per_s": 147800}' >"$OUT/bench-m-bf16-activations-keep-all.json"
echo 42300 >"$OUT/bench-m-bf16-activations-keep-all.json.peak"
echo '{"tokens_' >"$OUT/bench-m-bf16-activations-broken.json"
: >"$ROWS"
ab_summary m
grep -q '^  A/B m-bf16-activations-keep-all|info|1.056x the baseline.s tok/s, peak 42300 against 32600 MiB$' "$ROWS" ||
  fail "A/B row missing or wrong"
[[ $(wc -l <"$ROWS") == 1 ]] || fail "the broken JSON gave a row"

# Products side by side: tiny's q projection forward, [32, 64] x [64, 64]^T, is
# in both profiles (PyTorch's where its python has torch).
"$HG" bench train --model tiny --batch 2 --seq 16 --steps 1 --warmup 1 --profile --json \
  >"$OUT/ours.json" 2>>"$LOG"
torch=0
if [[ -n $TORCH_PY ]] && "$TORCH_PY" -c "import torch" 2>/dev/null; then
  "$TORCH_PY" "$SRC/bench/torch_train_step.py" --model tiny --batch 2 --seq 16 --steps 1 \
    --warmup 1 --threads 1 --profile --json >"$OUT/torch.json" 2>>"$LOG"
  torch=1
else
  echo '{"profile": {"products": []}}' >"$OUT/torch.json"
fi
: >"$ROWS"
products_side_by_side "$OUT/ours.json" "$OUT/torch.json"
grep -q '^  products 32x64 over 64|info|ours [0-9.]* ms ([1-9][0-9]* calls)' "$ROWS" ||
  fail "no row for the 32 x 64 products over 64"
if [[ $torch == 1 ]]; then
  grep -q '^  products 32x64 over 64|info|ours .*, torch [0-9.]* ms ([1-9][0-9]* calls)$' "$ROWS" ||
    fail "PyTorch's 32 x 64 products over 64 not matched"
fi
grep -q '^  products, all shapes|info|ours ' "$ROWS" || fail "no total row"

# The PyTorch report, run after the A/B rows: our rows as ratios of its step
# (a stub stands in for it where this python has no torch).
[[ $torch == 1 ]] || echo '{"tokens_per_s": 1000, "profile": {"products": []}}' >"$OUT/torch.json"
mkdir "$OUT/report"
cp "$OUT/ours.json" "$OUT/report/profile-m.json"
cp "$OUT/ours.json" "$OUT/report/bench-m-bf16-activations.json"
cp "$OUT/torch.json" "$OUT/report/torch-m.json"
: >"$ROWS"
(OUT=$OUT/report torch_report m)
grep -q '^  ratio bf16-activations / pytorch|info|[0-9]*\.[0-9][0-9]x$' "$ROWS" ||
  fail "no ratio row against PyTorch"
grep -q '^  products, all shapes|info|ours ' "$ROWS" || fail "the report has no products table"

# The decode profile: the BF16 decode row with every op timed, its parts and top
# ops (decode_row runs `--device cuda`: a wrapper turns it into the CPU here).
printf '#!/usr/bin/env bash\nexec "%s" "${@//cuda/cpu}"\n' "$HG" >"$OUT/hg-on-cpu"
chmod +x "$OUT/hg-on-cpu"
mkdir "$OUT/decode"
: >"$ROWS"
(HG=$OUT/hg-on-cpu OUT=$OUT/decode BENCH_TIMEOUT=120 decode_profile_rows tiny 16)
grep -q '^decode tiny bits 16 (128+128) profiled|ok|[0-9.e+]* tok/s decode, .*, backend-ops$' "$ROWS" ||
  fail "no profiled decode row"
grep -q '^  all ops|info|[0-9.]* ms a token, -\?[0-9.]* ms between ops$' "$ROWS" ||
  fail "no ops-per-token row"
grep -q '^  part products|info|[0-9.]* ms a token$' "$ROWS" || fail "no products part row"
grep -q '^  attention_decode|info|[0-9.]* ms a token, 2 calls, q \[1, 64\], cache \[257, 2, 16\]$' \
  "$ROWS" || fail "no attention_decode row"

# Racecheck: hazards in cuDNN's and cuBLAS's kernels only, then one in ours.
race() { echo "========= Error: Race reported between Read access at $1+0x2f0"; }
{ race cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_kernel0_0
  race nvjet_sm90_tss_64x8_64x16_4x1_v_bz_TNT
  echo "========= RACECHECK SUMMARY: 2 hazards displayed (2 errors, 0 warnings)"; } >"$OUT/race.log"
: >"$ROWS"
sanitizer_row "compute-sanitizer racecheck" "$OUT/race.log" 9 clean >/dev/null
grep -q '^compute-sanitizer racecheck|info|RACECHECK SUMMARY: 2 hazards, all inside vendor' \
  "$ROWS" ||
  fail "vendor-only hazards not told apart"
race '_ZN7hessgpt4cuda12rmsnorm_kernelEv' >>"$OUT/race.log"
: >"$ROWS"
sanitizer_row "compute-sanitizer racecheck" "$OUT/race.log" 9 clean >/dev/null
grep -q '^compute-sanitizer racecheck|FAIL|' "$ROWS" || fail "a hazard in our kernel passed"
echo "gpu_check_report_test: ok"
