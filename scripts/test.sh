#!/usr/bin/env bash
# The whole test suite: lint, unit and integration tests, man pages, and a
# short smoke of the fuzzers and the benchmarks. Run from anywhere:
# bash scripts/test.sh (as root: the namespace and TAP tests need it, and
# with CI=true they fail rather than skip without it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# A clone must be complete: nothing may read files from beside the project.
echo "== self-contained"
if grep -rnI --exclude-dir=target --exclude-dir=.git --exclude-dir=corpus --exclude-dir=artifacts \
        -e '\.\./shared' . ; then
    echo "test: the lines above refer to a directory outside the project" >&2
    exit 1
fi
echo "== fmt"; cargo fmt --all -- --check
echo "== clippy"; cargo clippy --all-targets --quiet -- -D warnings
echo "== man"; for m in man/*.[1-8]; do mandoc -Tlint -W warning "$m"; done
echo "== tests"; cargo test --quiet 2>&1 | tee target/test.log
grep -q "test result: ok" target/test.log
# A short smoke of every fuzz target (long runs: bash scripts/fuzz.sh 600).
echo "== fuzz smoke"; bash scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
# Every benchmark path at tiny sizes (full runs: bash bench/NAME.sh).
echo "== bench smoke"; bash scripts/bench-smoke.sh
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' target/test.log
