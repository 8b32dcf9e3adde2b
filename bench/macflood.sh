#!/usr/bin/env bash
# One command: a 1,000,000-address MAC flood against a bridge with
# maxaddr 100000; figures to OUT (default bench/results/macflood.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bins
python3 bench/macflood.py
