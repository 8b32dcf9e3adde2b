#!/usr/bin/env bash
# One command: build release, run the shmif benchmark, write
# OUT (default bench/results/shmif.txt). Bus files go to /dev/shm (tmpfs)
# unless $1 names another directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin shmifdump --example shmif_bench
OUT=${OUT:-bench/results/shmif.txt}
mkdir -p "$(dirname "$OUT")"
{
    echo "# shmif benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r)"
    echo "# bench/shmif.sh: target/release/examples/shmif_bench ${1:-/dev/shm}"
    target/release/examples/shmif_bench "${1:-/dev/shm}"
} | tee "$OUT"
