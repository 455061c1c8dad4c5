#!/usr/bin/env bash
# Fuzz smoke run for CI: builds every cargo-fuzz target and runs each for a
# few seconds from the committed seeds (and ../shared's real files when
# present). Fails on any crash, hang (>10 s) or allocation over 2 GiB.
#
#   .ci/fuzz-smoke.sh [SECONDS]    default 5 s per target
#
# Toolchain: nightly when the machine has it (the image ships one), else
# the stable toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz only needs
# -Zsanitizer, which stable accepts that way). FUZZ_TOOLCHAIN=stable
# forces the latter. No sanitizer in the smoke run: it halves the cold build, and the
# code under test is safe Rust; the long runs (fuzz/run.sh) use ASan.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
secs=${1:-5}
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (crates.io)"
    cargo install cargo-fuzz --locked --version '^0.13' 2>&1 | tail -2
fi
cargo fuzz --version
FUZZ_SANITIZER=none fuzz/run.sh "$secs"
echo "fuzz smoke done in $(( $(date +%s) - start )) s"
