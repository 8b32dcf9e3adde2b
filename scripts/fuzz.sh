#!/usr/bin/env bash
# Run every cargo-fuzz target for SECONDS each (default 60; CI runs a
# short smoke). Corpora live in fuzz/corpus/<target> and grow as it runs;
# a crash leaves its input in fuzz/artifacts/<target> and fails the run.
# cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP lets the stable
# toolchain build them (this machine has no other toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --quiet --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
for t in $targets; do
    mkdir -p "fuzz/corpus/$t"
    echo "== fuzz $t (${SECONDS_EACH}s)"
    log=$(mktemp)
    if ! cargo fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$SECONDS_EACH" >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz: $t failed; a crashing input is in fuzz/artifacts/$t" >&2
        exit 1
    fi
    grep -E "^Done" "$log" || true
    rm -f "$log"
done
