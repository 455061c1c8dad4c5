#!/usr/bin/env bash
# Replay throughput benchmark (docs/PERFORMANCE.md, "## Replay").
#
# Builds a large EVTX corpus by copying the real files of
# ../shared/datasets/evtx-attack-samples COPIES times into a temporary
# folder (never into the repo), then measures on the same corpus:
#   1. wsmwatch replay (decode + order + detect), with peak RSS;
#   2. the evtx crate's own parse rate (every record rendered to JSON, its
#      multithreaded chunk parsing) = the floor to approach;
#   3. the same plus serde_json::Value per record (what Sigma-over-EVTX
#      tools do before matching).
# Usage: scripts/bench-replay.sh [COPIES=1600] [DATASETS=../shared/datasets]
# Env: KEEP=1 keeps the corpus; CORPUS=dir reuses one.
set -euo pipefail
cd "$(dirname "$0")/.."
COPIES=${1:-1600}
DATASETS=${2:-../shared/datasets}
SRC="$DATASETS/evtx-attack-samples"
[ -d "$SRC" ] || { echo "SKIPPED: $SRC not found" >&2; exit 0; }

cargo build --release --example wsmwatch --example evtx_raw >&2
BIN=target/release/examples

if [ -z "${CORPUS:-}" ]; then
  CORPUS=$(mktemp -d "${TMPDIR:-/tmp}/wsmwatch-corpus.XXXXXX")
  [ -n "${KEEP:-}" ] || trap 'rm -rf "$CORPUS"' EXIT
  for i in $(seq 1 "$COPIES"); do
    d="$CORPUS/$((i % 64))"
    mkdir -p "$d"
    for f in "$SRC"/*.evtx; do cp "$f" "$d/$i-$(basename "$f")"; done
  done
fi
echo "corpus: $CORPUS: $(find "$CORPUS" -name '*.evtx' | wc -l) files, $(du -sb "$CORPUS" | cut -f1) bytes" >&2
# Warm the page cache so every run reads from memory.
cat "$CORPUS"/*/*.evtx > /dev/null

rss() { grep 'Maximum resident' "$1" | awk '{printf "%.0f MB", $NF/1024}'; }
T=$(mktemp)
echo "== wsmwatch replay"
/usr/bin/time -v "$BIN/wsmwatch" replay --no-progress --format json "$CORPUS" \
  > /dev/null 2> "$T" || true
grep -E '^wsmwatch: (replay read|summary)' "$T"
echo "peak RSS: $(rss "$T"); wall: $(grep 'Elapsed (wall' "$T" | awk '{print $NF}')"
echo "== evtx crate, JSON"
/usr/bin/time -v "$BIN/evtx_raw" "$CORPUS" 2> "$T"
echo "peak RSS: $(rss "$T")"
echo "== evtx crate, JSON + serde_json::Value"
/usr/bin/time -v "$BIN/evtx_raw" --value "$CORPUS" 2> "$T"
echo "peak RSS: $(rss "$T")"
rm -f "$T"
