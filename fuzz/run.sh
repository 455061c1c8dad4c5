#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the
# other, single process (one core: the machine is shared), and prints one
# summary line per target. Exit status 1 if any target found a crash, hang or
# excessive allocation (artifacts/<target>/).
#
#   fuzz/run.sh [SECONDS] [TARGET...]      default 60 s, every target
#   FUZZ_RUNS=10000000 fuzz/run.sh 1800    stop at 10 M executions (or time)
#   FUZZ_SANITIZER=none fuzz/run.sh 5      no ASan (faster build and runs)
#   FUZZ_TOOLCHAIN=stable fuzz/run.sh 5    stable rustc + RUSTC_BOOTSTRAP=1
#
# Corpora: fuzz/corpus/<target> (kept between runs, git-ignored) is read and
# grown; fuzz/seeds/<target> (committed, see seeds.sh) and real evidence from
# ../shared (copied at run time to target/shared-seeds, never committed) are
# read only.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
runs=${FUZZ_RUNS:--1}
sanitizer=${FUZZ_SANITIZER:-address}

# cargo-fuzz needs unstable rustc flags (-Zsanitizer). Use nightly when the
# machine has it; otherwise let the stable toolchain accept them
# (FUZZ_TOOLCHAIN=stable forces that, FUZZ_TOOLCHAIN=nightly the other).
tcname=${FUZZ_TOOLCHAIN:-auto}
if [ "$tcname" = auto ]; then
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then tcname=nightly; else tcname=stable; fi
fi
tc=("+$tcname")
[ "$tcname" = nightly ] || export RUSTC_BOOTSTRAP=1
echo "fuzz toolchain: $(rustc "${tc[@]}" --version)${RUSTC_BOOTSTRAP:+ with RUSTC_BOOTSTRAP=1}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

all=$(cargo "${tc[@]}" fuzz list)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets <<<"$all"

# Seeds from the real evidence beside the repo, when it is there.
shared=${WSMWATCH_DATASETS:-../../shared/datasets}
ss=target/shared-seeds
if [ -d "$shared" ]; then
    python3 - "$shared" "$ss" <<'PY'
import os, shutil, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
def d(t):
    p = os.path.join(out, t); os.makedirs(p, exist_ok=True); return p
ev = os.path.join(src, "evtx-attack-samples")
for f in ("LM_PowershellRemoting_sysmon_1_wsmprovhost.evtx", "LM_winrm_exec_sysmon_1_winrshost.evtx"):
    if os.path.exists(os.path.join(ev, f)):
        shutil.copy(os.path.join(ev, f), d("evtx_file"))
        # evtx_template: [definition offset u32][value offset u16] + chunk 0,
        # pointing at the first record's template instance (record header
        # 24 bytes at chunk offset 512, then 0x0f 01 01 00, 0x0c, u8, id u32).
        data = open(os.path.join(ev, f), "rb").read()
        chunk = data[4096:4096 + 65536]
        if len(chunk) == 65536 and chunk[:8] == b"ElfChnk\0":
            head = chunk[546:550] + (536).to_bytes(2, "little")
            with open(os.path.join(d("evtx_template"), f + ".chunk0"), "wb") as o:
                o.write(head + chunk)
z = os.path.join(src, "otrf", "covenant_com_wsman_automation.zip")
if os.path.exists(z):
    shutil.copy(z, d("jsonlog_zip"))
# A few real lines of each wanted event id, one seed each.
want = {b'"EventID":1,': 0, b'"EventID":5,': 0, b'"EventID":4688,': 0, b'"EventID":4689,': 0}
for name in ("covenant_psremoting_command.zip", "empire_psremoting_stager.zip"):
    p = os.path.join(src, "otrf", name)
    if not os.path.exists(p):
        continue
    with zipfile.ZipFile(p) as zf:
        for m in zf.namelist():
            for i, line in enumerate(zf.read(m).splitlines()):
                for k in want:
                    if k in line and want[k] < 8:
                        want[k] += 1
                        with open(os.path.join(d("jsonlog_lines"), f"{name}-{i}"), "wb") as f:
                            f.write(line + b"\n")
PY
fi

# One build for all targets (cargo-fuzz builds one or all).
cargo "${tc[@]}" fuzz build -O -s "$sanitizer" 2>&1 | grep -Ev '^\s+(Compiling|Downloaded|Downloading)' || true

status=0
printf '%-14s %12s %9s %7s %7s %7s %7s %s\n' target execs exec/s cov ft corpus rss_mb result
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t" "$ss/$t"
    log="artifacts/$t.log"
    set +e
    cargo "${tc[@]}" fuzz run -O -s "$sanitizer" "$t" "corpus/$t" "seeds/$t" "$ss/$t" -- \
        -max_total_time="$secs" -runs="$runs" -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -timeout=10 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    # The summary must print whatever the log holds (a crash while loading
    # the corpus leaves no status line): no `set -e` until it is out.
    stat() { awk -v k="stat::$1:" '$1 == k { v = $2 } END { print v }' "$log"; }
    execs=$(stat number_of_executed_units)
    eps=$(stat average_exec_per_sec)
    rss=$(stat peak_rss_mb)
    last=$(grep -aE '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    if [ $rc -eq 0 ]; then res=ok; else res="FAILED (rc $rc, see fuzz/$log)"; status=1; fi
    printf '%-14s %12s %9s %7s %7s %7s %7s %s\n' "$t" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$res"
    set -e
done
exit $status
