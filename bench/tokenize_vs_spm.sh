#!/usr/bin/env bash
# Tokens per second of `hessgpt tokenize` next to SentencePiece's own
# spm_encode, same model, same file, same run. Both encode line by line and
# print ids; the script checks that their outputs are identical and that our
# overhead stays under 10 % (exit status 1 otherwise).
#
# usage: bench/tokenize_vs_spm.sh [BUILD_DIR] [FILE]
#   BUILD_DIR  default: build (needs BUILD_DIR/hessgpt and BUILD_DIR/data/mistral-tokenizer.model)
#   FILE       default: ~64 MiB of text assembled from this machine's Python sources,
#              licences and the tokenizer test corpus (valid UTF-8, prose + code)
# env: REPEATS (default 3; the best time of each tool counts), THREADS (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
file=${2:-}
repeats=${REPEATS:-3}
threads=${THREADS:-1}
hessgpt=$build/hessgpt
model=$build/data/mistral-tokenizer.model
for f in "$hessgpt" "$model"; do
  [[ -e $f ]] || { echo "missing $f: build the hessgpt target first" >&2; exit 2; }
done
command -v spm_encode >/dev/null || { echo "spm_encode missing (Debian package sentencepiece)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ -z $file ]]; then
  file=$work/input.txt
  target=$((64 * 1024 * 1024))
  {
    cat tests/tokenizer/corpus/*.txt
    find /usr/share/common-licenses -type f | sort | xargs cat
    find /usr/lib/python3* -name '*.py' -size -200k 2>/dev/null | sort | xargs cat
  } | iconv -f UTF-8 -t UTF-8 -c > "$work/seed.txt"  # drop invalid UTF-8: spm_encode repairs it differently
  while (( $(stat -c %s "$file" 2>/dev/null || echo 0) < target )); do cat "$work/seed.txt" >> "$file"; done
  head -c "$target" "$file" > "$work/cut.txt" && mv "$work/cut.txt" "$file"
fi

now() { date +%s.%N; }
best_spm=999999 best_ours=999999
for ((i = 1; i <= repeats; i++)); do
  t0=$(now); spm_encode --model "$model" --output_format=id < "$file" > "$work/spm.ids"; t1=$(now)
  "$hessgpt" tokenize --tokenizer "$model" --threads "$threads" < "$file" > "$work/ours.ids"; t2=$(now)
  best_spm=$(echo "$t0 $t1 $best_spm" | awk '{d=$2-$1; print (d<$3)?d:$3}')
  best_ours=$(echo "$t1 $t2 $best_ours" | awk '{d=$2-$1; print (d<$3)?d:$3}')
done

tokens=$(wc -w < "$work/spm.ids")
lines=$(wc -l < "$file")
bytes=$(stat -c %s "$file")
if cmp -s "$work/spm.ids" "$work/ours.ids"; then same="identical"; else same="DIFFERENT"; fi
awk -v tok="$tokens" -v lines="$lines" -v bytes="$bytes" -v s="$best_spm" -v o="$best_ours" \
    -v same="$same" -v threads="$threads" -v repeats="$repeats" 'BEGIN {
  printf "input: %.1f MiB, %d lines, %d tokens (outputs %s); best of %d runs\n", bytes / 1048576, lines, tok, same, repeats
  printf "spm_encode:               %7.3f s  %12.0f tokens/s\n", s, tok / s
  printf "hessgpt tokenize (%d thr): %7.3f s  %12.0f tokens/s\n", threads, o, tok / o
  printf "overhead: %+.1f %% (time ratio %.3f; limit +10 %%)\n", (o / s - 1) * 100, o / s
  exit (same == "identical" && (threads > 1 || o / s < 1.10)) ? 0 : 1
}'
