#!/usr/bin/env bash
# Replay throughput per dialect (docs/PERFORMANCE.md, "### Per dialect").
#
# Writes the same records in every dialect (tests/it/dialects.rs,
# write_bench_corpus) into a temporary folder, then replays each file
# RUNS times with the release binary and prints the median MB/s (input
# bytes on disk per second, decode + order + detect).
# Usage: scripts/bench-dialects.sh [COPIES=800] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
COPIES=${1:-800}
RUNS=${2:-3}
cargo build --release --example wsmwatch >&2
BIN=target/release/examples/wsmwatch
DIR=$(mktemp -d "${TMPDIR:-/tmp}/wsmwatch-dialects.XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$DIR"' EXIT
WSMWATCH_BENCH_DIR="$DIR" WSMWATCH_BENCH_COPIES="$COPIES" \
  cargo test -q --test it dialects::write_bench_corpus -- --ignored >&2
cat "$DIR"/* > /dev/null
printf '| file | dialect | MB | records | median s | median MB/s |\n|---|---|---|---|---|---|\n'
for f in "$DIR"/*; do
  secs=() mbs=()
  for _ in $(seq 1 "$RUNS"); do
    out=$("$BIN" replay --format json --no-progress "$f" 2>&1 >/dev/null)
    line=$(grep 'records/s' <<<"$out")
    secs+=("$(sed -n 's/.* in \([0-9.]*\) s:.*/\1/p' <<<"$line")")
    mbs+=("$(sed -n 's/.*records\/s, \([0-9.]*\) MB\/s.*/\1/p' <<<"$line")")
  done
  dialect=$(grep -m1 'files\?: ' <<<"$out" | sed 's/.*files\?: //')
  records=$(sed -n 's/.*files\?, \([0-9]*\) records.*/\1/p' <<<"$line")
  mb=$(awk -v b="$(stat -c %s "$f")" 'BEGIN{printf "%.1f", b/1e6}')
  med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
  printf '| %s | %s | %s | %s | %s | %s |\n' "$(basename "$f")" "$dialect" "$mb" "$records" "$(med "${secs[@]}")" "$(med "${mbs[@]}")"
done
