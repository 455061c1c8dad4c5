#!/usr/bin/env bash
# Replay throughput per dialect (docs/PERFORMANCE.md, "### Per dialect").
#
# Writes the same records in every dialect (tests/it/dialects.rs,
# write_bench_corpus) into a temporary folder, then replays each file
# RUNS times with the release binary and prints the medians of: the
# binary's own decode + order + detect seconds and MB/s (input bytes on
# disk per second), and the whole process's CPU seconds (user + sys, from
# /usr/bin/time: steadier than wall time on a shared machine).
# Usage: scripts/bench-dialects.sh [COPIES=800] [RUNS=3]
# Env: KEEP=1 keeps the corpus; CORPUS=dir reuses one.
set -euo pipefail
cd "$(dirname "$0")/.."
COPIES=${1:-800}
RUNS=${2:-3}
cargo build --release --example wsmwatch >&2
BIN=target/release/examples/wsmwatch
if [ -n "${CORPUS:-}" ]; then
  DIR=$CORPUS
else
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/wsmwatch-dialects.XXXXXX")
  [ -n "${KEEP:-}" ] || trap 'rm -rf "$DIR" "$DIR.time"' EXIT
  WSMWATCH_BENCH_DIR="$DIR" WSMWATCH_BENCH_COPIES="$COPIES" \
    cargo test -q --test it dialects::write_bench_corpus -- --ignored >&2
fi
cat "$DIR"/* > /dev/null
printf '| file | dialect | MB | records | median s | median MB/s | median CPU s | MB per CPU-s |\n|---|---|---|---|---|---|---|---|\n'
for f in "$DIR"/*; do
  secs=() mbs=() cpus=()
  for _ in $(seq 1 "$RUNS"); do
    out=$(/usr/bin/time -o "$DIR.time" -f '%U %S' "$BIN" replay --format json --no-progress "$f" 2>&1 >/dev/null)
    cpus+=("$(awk '{print $1 + $2}' "$DIR.time")")
    line=$(grep 'records/s' <<<"$out")
    secs+=("$(sed -n 's/.* in \([0-9.]*\) s:.*/\1/p' <<<"$line")")
    mbs+=("$(sed -n 's/.*records\/s, \([0-9.]*\) MB\/s.*/\1/p' <<<"$line")")
  done
  dialect=$(grep -m1 'files\?: ' <<<"$out" | sed 's/.*files\?: //')
  records=$(sed -n 's/.*files\?, \([0-9]*\) records.*/\1/p' <<<"$line")
  mb=$(awk -v b="$(stat -c %s "$f")" 'BEGIN{printf "%.1f", b/1e6}')
  med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
  cpu=$(med "${cpus[@]}")
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(basename "$f")" "$dialect" "$mb" "$records" \
    "$(med "${secs[@]}")" "$(med "${mbs[@]}")" "$cpu" "$(awk -v m="$mb" -v c="$cpu" 'BEGIN{printf "%.0f", m/c}')"
done
