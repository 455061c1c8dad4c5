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

cargo build --release --example wsmwatch >&2
BIN=target/release/examples
# The evtx baseline is a bench target; find the binary cargo built.
RAW=$(cargo bench --no-run --bench evtx_raw --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$RAW" ] || { echo "could not build the evtx_raw bench" >&2; exit 1; }

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

RUNS=${RUNS:-3}
T=$(mktemp)
# Best of $RUNS by wall time; CPU = user + sys seconds (less sensitive to
# other load on a shared machine than wall time).
measure() {
  local name=$1; shift
  local best=""
  for _ in $(seq 1 "$RUNS"); do
    /usr/bin/time -f 'TIME %e %U %S %M' "$@" > "$T.out" 2> "$T" || true
    local line; line=$(grep '^TIME' "$T")
    local wall; wall=$(echo "$line" | awk '{print $2}')
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then
      best=$wall
      cp "$T" "$T.best"; cp "$T.out" "$T.bestout"
    fi
  done
  echo "== $name"
  grep -hE '^(wsmwatch: (replay read|summary)|evtx crate)' "$T.best" "$T.bestout" || true
  grep '^TIME' "$T.best" | awk '{printf "best of '"$RUNS"': wall %.2f s, cpu %.2f s, peak RSS %.0f MB\n", $2, $3 + $4, $5 / 1024}'
}
measure "wsmwatch replay" "$BIN/wsmwatch" replay --no-progress --format json "$CORPUS"
measure "evtx crate, JSON" "$RAW" "$CORPUS"
measure "evtx crate, JSON + serde_json::Value" "$RAW" --value "$CORPUS"
rm -f "$T" "$T.out" "$T.best" "$T.bestout"
