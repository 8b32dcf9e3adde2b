#!/usr/bin/env bash
# One command: build release, run the control-plane benchmark, write
# OUT (default bench/results/ifconfig.txt). Needs root (network namespace
# for ip).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release --quiet --bins
python3 bench/ifconfig.py
