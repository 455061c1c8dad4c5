#!/usr/bin/env bash
# Idempotent, non-interactive setup of the Windows cross toolchain on Debian:
#  1. Debian's rustc-web/cargo-web/rust-web-src/rust-web-clippy, the mingw-w64
#     linker and wine64 (apt, only if something is missing);
#  2. `rustup toolchain link` of that toolchain (it ships rust-src, so
#     `-Z build-std` can build std for x86_64-pc-windows-gnu);
#  3. a headless Wine prefix;
#  4. the bcryptprimitives.dll shim (.ci/wine/bcryptprimitives.c): Wine 8 has
#     no bcryptprimitives.dll, and Rust's std imports ProcessPrng from it.
# Safe to run repeatedly; runs as root with CI=true and no stdin.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=windows-env.sh
. "$REPO_ROOT/.ci/windows-env.sh"

SECONDS=0
missing=()
for p in "${WIN_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "debian packages present"
fi

# The prefix is the directory holding bin/rustc of the rustc-web package
# (/usr on bookworm), which must also hold lib/rustlib/src for build-std.
rustc_path=$(dpkg -L rustc-web | grep -E '/bin/rustc$' | head -n1)
prefix=$(dirname "$(dirname "$rustc_path")")
for f in bin/rustc bin/cargo lib/rustlib/src/rust/library/Cargo.lock; do
    [ -e "$prefix/$f" ] || { log "toolchain prefix $prefix lacks $f"; exit 1; }
done
rustup toolchain link "$WIN_TOOLCHAIN" "$prefix"
log "toolchain $WIN_TOOLCHAIN -> $prefix: $(rustup run "$WIN_TOOLCHAIN" rustc --version)"
rustup run "$WIN_TOOLCHAIN" cargo clippy --version >/dev/null

WINE=$(win_wine)
WINESERVER=$(win_wineserver)
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    log "creating wine prefix $WINEPREFIX"
    mkdir -p "$WINEPREFIX"
    "$WINE" wineboot -i </dev/null >/dev/null 2>&1 || true
    "$WINESERVER" -w
fi
[ -d "$WINEPREFIX/drive_c/windows/system32" ] || { log "wine prefix $WINEPREFIX is not initialised"; exit 1; }

shim_src="$REPO_ROOT/.ci/wine/bcryptprimitives.c"
shim_dll="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
shim_stamp="$WINEPREFIX/.wsmwatch-bcryptprimitives.sha256"
want=$(sha256sum "$shim_src" | cut -d' ' -f1)
if [ ! -f "$shim_dll" ] || [ "$(cat "$shim_stamp" 2>/dev/null)" != "$want" ]; then
    log "building bcryptprimitives.dll shim"
    tmp=$(mktemp -d)
    x86_64-w64-mingw32-gcc -O2 -s -shared -Wl,--kill-at -o "$tmp/bcryptprimitives.dll" "$shim_src" -ladvapi32
    install -m 0644 "$tmp/bcryptprimitives.dll" "$shim_dll"
    echo "$want" >"$shim_stamp"
    rm -rf "$tmp"
fi
log "setup done in ${SECONDS}s"
