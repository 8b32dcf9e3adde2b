#!/usr/bin/env bash
# The whole test suite: lint, unit and integration tests, man pages, and the
# short smoke versions of the fuzzers. Run from anywhere: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
echo "== fmt"; cargo fmt --all -- --check
echo "== clippy"; cargo clippy --all-targets --quiet -- -D warnings
echo "== man"; for m in man/*.[1-8]; do mandoc -Tlint -W warning "$m"; done
echo "== tests"; cargo test --quiet 2>&1 | tee target/test.log
grep -q "test result: ok" target/test.log
