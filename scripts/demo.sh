#!/usr/bin/env bash
# `make demo`: the end-to-end job on the bundled data, run by `hessgpt demo`
# (prepare -> pretrain -> synth routing -> routing SFT of both models ->
# held-out evaluation; see src/cli/cmd_demo.cpp). Finished stages are reused
# when run again. Environment: DEMO_OUT (folder, default runs/demo),
# DEMO_SIZE (full | tiny), THREADS (default: all cores), DEMO_ARGS (more flags,
# e.g. --fresh).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ARGS=(--out "${DEMO_OUT:-runs/demo}" --size "${DEMO_SIZE:-full}")
[[ -n "${THREADS:-}" ]] && ARGS+=(--threads "$THREADS")
# shellcheck disable=SC2206
[[ -n "${DEMO_ARGS:-}" ]] && ARGS+=($DEMO_ARGS)
exec "$BUILD/hessgpt" demo "${ARGS[@]}"
