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
# One build of every target (fuzz/target, kept between runs), then each
# binary run directly: `cargo fuzz run` per target re-checks the build.
echo "== fuzz build"
cargo fuzz build
bin=fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release
# As many targets at once as there are CPUs (FUZZ_JOBS): each still gets
# about a CPU for its SECONDS.
JOBS=${FUZZ_JOBS:-$(nproc)}
smoke() {
    local t=$1 log
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log=$(mktemp)
    if ! "$bin/$t" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$SECONDS_EACH" \
            "fuzz/corpus/$t" >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz: $t failed; a crashing input is in fuzz/artifacts/$t" >&2
        rm -f "$log"
        return 1
    fi
    echo "== fuzz $t (${SECONDS_EACH}s): $(grep -E "^Done" "$log" || true)"
    rm -f "$log"
}
fail=0 running=0
for t in $(cargo fuzz list); do
    if (( running >= JOBS )); then
        wait -n || fail=1
        running=$((running - 1))
    fi
    smoke "$t" &
    running=$((running + 1))
done
while (( running > 0 )); do
    wait -n || fail=1
    running=$((running - 1))
done
exit "$fail"
