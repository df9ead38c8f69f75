#!/usr/bin/env bash
# scripts/gpu-commands.sh with the CPU as both devices: every check passes, and
# its comparisons do fail on values that differ (a check that cannot fail would
# pass a broken GPU too).
# Usage: gpu_commands_test.sh HESSGPT_BINARY SOURCE_DIR
set -euo pipefail
HG=$1 SRC=$2
SCRIPT=$SRC/scripts/gpu-commands.sh
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "gpu_commands_test: $*" >&2; exit 1; }

# The comparisons alone, on made-up values.
FAILURES=0 PYTHON=python3
for f in pass fail close same; do
  body=$(sed -n "/^$f() {/,/^}/p" "$SCRIPT")
  [[ -n $body ]] || fail "no function $f in $SCRIPT"
  eval "$body"
done
[[ $(close t 2.0 2.001 1e-3) == PASS* ]] || fail "close: 5e-4 apart should pass at 1e-3"
[[ $(close t 2.0 2.01 1e-3) == FAIL* ]] || fail "close: 5e-3 apart should fail at 1e-3"
[[ $(close t 2.0 2.0 0) == PASS* ]] || fail "close: equal values should pass at 0"
[[ $(close t nan 2.0 1) == FAIL* ]] || fail "close: NaN should fail"
[[ $(close t "" 2.0 1) == FAIL* ]] || fail "close: a missing value should fail"
[[ $(same t "[1, 2]" "[1, 2]") == PASS* ]] || fail "same: equal lists should pass"
[[ $(same t "[1, 2]" "[1, 3]") == FAIL* ]] || fail "same: different lists should fail"
[[ $(same t "" "") == FAIL* ]] || fail "same: two missing values should fail"

# The whole script, the CPU on both sides.
if ! bash "$SCRIPT" --device cpu --reference cpu --work "$WORK/run" --hessgpt "$HG" >"$WORK/log" 2>&1; then
  cat "$WORK/log" >&2
  fail "gpu-commands.sh failed on the CPU"
fi
cat "$WORK/log"
n=$(grep -c '^PASS' "$WORK/log")
[[ $n -ge 18 ]] || fail "only $n checks passed (18 expected)"
echo "gpu_commands_test: ok"
