#!/usr/bin/env bash
# Regenerates fuzz/seeds/<target>/ (committed): the ETW golden vectors and
# the demo recording come from the test suite's own builders, the rest from
# seeds.py. Real evidence is not copied here; run.sh reads it at run time.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf seeds
python3 seeds.py seeds
WSMWATCH_FUZZ_SEEDS="$PWD/seeds" cargo test --manifest-path ../Cargo.toml --lib write_fuzz_seeds -- --ignored --quiet
ls seeds | while read -r t; do echo "$t: $(ls "seeds/$t" | wc -l) seeds"; done
