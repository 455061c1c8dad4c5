# shellcheck shell=bash
# Common environment for the Windows cross build (x86_64-pc-windows-gnu) on
# Debian, run under Wine. Sourced by windows-setup.sh and windows-test.sh.
# Every variable can be overridden from the caller's environment.

WIN_TARGET=x86_64-pc-windows-gnu
# rustup name under which Debian's rustc-web/cargo-web toolchain is linked.
WIN_TOOLCHAIN=${WSMWATCH_WIN_TOOLCHAIN:-debian-rust-web}
# Debian packages: compiler, std sources for -Z build-std, clippy, the mingw
# linker, and 64-bit Wine (no wine32, no wine-mono/gecko needed).
WIN_PACKAGES=(rustc-web cargo-web rust-web-src rust-web-clippy gcc-mingw-w64-x86-64 wine64)

export WINEPREFIX=${WSMWATCH_WINEPREFIX:-${HOME:-/root}/.wine-wsmwatch}
export WINEDEBUG=${WINEDEBUG:--all}
# Never ask to install wine-mono or wine-gecko (no display, no network).
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-mscoree,mshtml=}
# Headless: Wine must not try to reach an X server.
unset DISPLAY WAYLAND_DISPLAY

win_wine() {
    # Debian's wine64 package installs the loader here and only the `wine`
    # package adds /usr/bin/wine; accept either.
    if command -v wine64 >/dev/null 2>&1; then command -v wine64
    elif [ -x /usr/lib/wine/wine64 ]; then echo /usr/lib/wine/wine64
    elif command -v wine >/dev/null 2>&1; then command -v wine
    else return 1; fi
}

win_wineserver() {
    if command -v wineserver >/dev/null 2>&1; then command -v wineserver
    elif [ -x /usr/lib/wine/wineserver64 ]; then echo /usr/lib/wine/wineserver64
    elif [ -x /usr/lib/wine/wineserver ]; then echo /usr/lib/wine/wineserver
    else return 1; fi
}

win_cargo_env() {
    export RUSTC_BOOTSTRAP=1
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
    CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=$(win_wine)
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER
    # Keep the Windows build out of the Linux target dir.
    export CARGO_TARGET_DIR=${WSMWATCH_WIN_TARGET_DIR:-$REPO_ROOT/target/windows}
}

log() { printf '[windows %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
