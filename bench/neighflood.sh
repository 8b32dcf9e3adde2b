#!/usr/bin/env bash
# One command: a neighbour flood of FLOOD frames (default 5,000,000) of
# ARP requests and neighbour solicitations, each from a new source, into a
# release ifnetd through a tap; the daemon's RSS before and after goes to
# OUT (default bench/results/neighflood.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
export FLOOD=${FLOOD:-5000000}
out=${OUT:-bench/results/neighflood.txt}
{
    echo "# bash bench/neighflood.sh  ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs)"
    cargo test --release --quiet --test it neighbour_flood -- --nocapture 2>&1 | grep "neighbour flood:"
} | tee "$out"
