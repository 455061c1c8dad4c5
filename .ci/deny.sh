#!/usr/bin/env bash
# Dependency policy check (deny.toml): licenses, bans (duplicates warn) and
# sources (crates.io only), for wsmwatch and for the fuzz crate. Installs
# cargo-deny from crates.io when missing (measured: about 6-14 min cold on
# the 2-core machine, see docs/RELIABILITY.md).
#
# Advisories need the RustSec database, a git clone from GitHub. Where that
# clone fails (this workplace: only package registries are reachable) the
# section is reported NOT CHECKED and does not fail the run; where it
# succeeds, an advisory fails the run like any other check.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
if ! cargo deny --version >/dev/null 2>&1; then
    echo "installing cargo-deny (crates.io)"
    cargo install --locked cargo-deny --version '^0.20' 2>&1 | tail -2
fi
cargo deny --version

echo "--- wsmwatch: licenses bans sources"
cargo deny --config deny.toml check licenses bans sources
echo "--- fuzz crate: licenses bans sources"
cargo deny --manifest-path fuzz/Cargo.toml --config deny.toml check licenses bans sources

echo "--- advisories"
set +e
out=$(cargo deny --config deny.toml check advisories 2>&1)
rc=$?
set -e
if [ $rc -eq 0 ]; then
    echo "$out" | tail -1
    echo "advisories ok"
elif grep -q "failed to fetch advisory database" <<<"$out"; then
    echo "advisories NOT CHECKED: the RustSec database (a GitHub clone) is unreachable here:"
    grep -m1 "failed to fetch advisory database" <<<"$out" | sed 's/^.*\[ERROR\] /  /'
else
    echo "$out"
    exit $rc
fi
echo "deny done in $(( $(date +%s) - start )) s"
