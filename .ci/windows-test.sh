#!/usr/bin/env bash
# Cross-build, lint and test wsmwatch for x86_64-pc-windows-gnu under Wine.
# Run .ci/windows-setup.sh first (idempotent). Steps:
#  1. release build of `--example wsmwatch` (the .exe a user runs);
#  2. clippy --all-targets -D warnings for the Windows target;
#  3. all test binaries (unit + integration) built for Windows, run by Wine;
#  4. objdump -p: the release .exe imports only Windows system DLLs; it is
#     at most 5 MB and carries the Event Log message table (.rsrc).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=windows-env.sh
. "$REPO_ROOT/.ci/windows-env.sh"
win_cargo_env
cd "$REPO_ROOT"

wcargo() { rustup run "$WIN_TOOLCHAIN" cargo "$@"; }
if ! rustup run "$WIN_TOOLCHAIN" rustc --version >/dev/null 2>&1 || [ ! -f "$WINEPREFIX/system.reg" ]; then
    log "toolchain $WIN_TOOLCHAIN or wine prefix $WINEPREFIX missing: run .ci/windows-setup.sh first"
    exit 1
fi
BUILD_STD=(-Z build-std --target "$WIN_TARGET")

# Keep one wineserver alive for all test binaries (saves ~1 s per process);
# stop it on exit.
WINESERVER=$(win_wineserver)
# Boot the prefix once with stdio on /dev/null: Wine's helper processes
# (services.exe, winedevice.exe, ...) inherit the stdio of the first Wine
# process and would otherwise hold a pipe open after the tests end.
"$WINESERVER" -p 30 </dev/null >/dev/null 2>&1 || true
"$(win_wine)" wineboot </dev/null >/dev/null 2>&1 || true
trap '"$WINESERVER" -k >/dev/null 2>&1 || true' EXIT

t0=$SECONDS
log "release build: --example wsmwatch"
wcargo build "${BUILD_STD[@]}" --release --example wsmwatch
exe="$CARGO_TARGET_DIR/$WIN_TARGET/release/examples/wsmwatch.exe"
[ -f "$exe" ] || { log "missing $exe"; exit 1; }
t_build=$((SECONDS - t0))

t0=$SECONDS
log "clippy --all-targets -D warnings ($WIN_TARGET)"
wcargo clippy "${BUILD_STD[@]}" --all-targets -- -D warnings
t_clippy=$((SECONDS - t0))

t0=$SECONDS
log "tests under wine ($(win_wine))"
# tests/it/cli.rs runs the example binary from target/.../debug/examples.
wcargo build "${BUILD_STD[@]}" --examples
# Every unit and integration test binary; doc tests stay with the Linux run
# (rustdoc cross-testing with -Z build-std is not worth the time here).
test_log=$(mktemp)
# Output goes to a file, not a pipe (see the wineboot note above).
set +e
wcargo test "${BUILD_STD[@]}" --lib --bins --tests >"$test_log" 2>&1 </dev/null
test_rc=$?
set -e
cat "$test_log"
t_test=$((SECONDS - t0))
passed=$(sed -n 's/^test result: .*[^0-9]\([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\1/p' "$test_log" | awk '{s+=$1} END {print s+0}')
failed=$(sed -n 's/^test result: .*[^0-9]\([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\2/p' "$test_log" | awk '{s+=$1} END {print s+0}')
rm -f "$test_log"
echo "windows-wine: $passed passed, $failed failed"
if [ "$test_rc" -ne 0 ]; then log "tests under wine failed (exit $test_rc)"; exit "$test_rc"; fi
if [ "$passed" -eq 0 ]; then log "no test ran under wine"; exit 1; fi

log "import check: $exe"
# Windows system DLLs the .exe may import; anything else (libgcc_s_seh-1.dll,
# libwinpthread-1.dll, libstdc++-6.dll, ...) means it is not self-contained.
allowed='^(kernel32|kernelbase|ntdll|advapi32|sechost|msvcrt|ucrtbase|userenv|ws2_32|bcrypt|bcryptprimitives|user32|shell32|ole32|oleaut32|psapi|secur32|crypt32|tdh|dbghelp|iphlpapi|synchronization|api-ms-win-[a-z0-9-]+)\.dll$'
mapfile -t dlls < <(x86_64-w64-mingw32-objdump -p "$exe" | sed -n 's/^[[:space:]]*DLL Name: //p' | tr 'A-Z' 'a-z' | sort -u)
[ ${#dlls[@]} -gt 0 ] || { log "objdump found no imports in $exe"; exit 1; }
bad=0
for d in "${dlls[@]}"; do
    if [[ "$d" =~ $allowed ]]; then log "  import ok: $d"; else log "  NON-SYSTEM import: $d"; bad=1; fi
done
[ $bad -eq 0 ] || { log "release .exe is not self-contained"; exit 1; }

# Issue 14: the stripped release .exe a responder carries is at most 5 MB
# (5,000,000 bytes), and it holds the Event Log message table (build.rs).
size=$(stat -c %s "$exe")
log "release .exe size: $size bytes (limit 5000000)"
[ "$size" -le 5000000 ] || { log "release .exe is over 5 MB"; exit 1; }
x86_64-w64-mingw32-objdump -h "$exe" | grep -q '\.rsrc' \
    || { log "release .exe has no resource section: the Event Log message table is missing"; exit 1; }

log "done: release build ${t_build}s, clippy ${t_clippy}s, tests ${t_test}s; exe $(du -h "$exe" | cut -f1)"
