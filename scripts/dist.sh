#!/usr/bin/env bash
# A distributable wsmwatch: the release build with line tables (profile
# `dist`), split into the stripped binary and BINARY.debug beside it, linked
# by .gnu_debuglink (gdb, lldb, addr2line -e BINARY.debug, and WinDbg-less
# Windows tooling that reads DWARF find it).
#
#   scripts/dist.sh                              # this host's target
#   scripts/dist.sh x86_64-unknown-linux-musl    # static Linux
#   scripts/dist.sh x86_64-pc-windows-gnu        # via .ci/windows-env.sh
#
# Output: dist/TARGET/wsmwatch[.exe] and dist/TARGET/wsmwatch[.exe].debug.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO_ROOT"
target=${1:-$(rustc -vV | sed -n 's/^host: //p')}
objcopy=objcopy
exe=wsmwatch
case "$target" in
*windows-gnu)
    # shellcheck source=../.ci/windows-env.sh
    . "$REPO_ROOT/.ci/windows-env.sh"
    win_cargo_env
    objcopy=x86_64-w64-mingw32-objcopy
    exe=wsmwatch.exe
    rustup run "$WIN_TOOLCHAIN" cargo build -Z build-std --target "$target" --profile dist --example wsmwatch
    built="$CARGO_TARGET_DIR/$target/dist/examples/$exe"
    ;;
*)
    cargo build --target "$target" --profile dist --example wsmwatch
    built="target/$target/dist/examples/$exe"
    ;;
esac
out="dist/$target"
mkdir -p "$out"
cp "$built" "$out/$exe"
(
    cd "$out"
    "$objcopy" --only-keep-debug "$exe" "$exe.debug"
    "$objcopy" --strip-all "$exe"
    "$objcopy" --add-gnu-debuglink="$exe.debug" "$exe"
)
ls -l "$out/$exe" "$out/$exe.debug"
