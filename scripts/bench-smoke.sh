#!/usr/bin/env bash
# A smoke run of the benchmarks at tiny sizes: every path is set up,
# measured and reported; the figures mean nothing. Reports go to a temporary
# directory (OUT), never over bench/results. Fails if a bench fails or its
# report lacks its summary lines. Needs root (network namespaces): without
# it, skipped, or failed with CI=true as the tests do. The slow ones (stp,
# scale, soak, vm) are not run. Environment: BIN (prebuilt binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    if [ "${CI:-}" = true ]; then echo "bench smoke: run as root (network namespaces)" >&2; exit 1; fi
    echo "bench smoke: skipped (not root; the benches need network namespaces)"
    exit 0
fi
# One build for every bench.
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --bins
    export BIN=$PWD/target/release
fi
export REPS=1 SECS=1 PINGS=10 FLOOD=1 N=10 IDLE=1
D=$(mktemp -d /tmp/ifnet-bench-smoke.XXXXXX)
trap 'rm -rf "$D"' EXIT
trap 'exit 130' INT TERM

# Run bench/NAME.sh; its report must have every LINE and no "nan".
bench() { # NAME LINE...
    local name=$1 start=$SECONDS line
    shift
    if ! OUT=$D/$name.txt bash "bench/$name.sh" >"$D/$name.log" 2>&1; then
        tail -20 "$D/$name.log" >&2
        echo "bench smoke: $name failed" >&2
        return 1
    fi
    for line in "$@"; do
        if ! grep -qF -- "$line" "$D/$name.txt"; then
            cat "$D/$name.txt" >&2
            echo "bench smoke: $name: no \"$line\" in its report" >&2
            return 1
        fi
    done
    if grep -qw nan "$D/$name.txt"; then
        cat "$D/$name.txt" >&2
        echo "bench smoke: $name: a figure is nan" >&2
        return 1
    fi
    echo "== bench $name ($((SECONDS - start)) s): $(grep -F -- "$1" "$D/$name.txt" | head -1)"
}

fail=0
bench route "ifnet/linux: TCP" || fail=1
bench bridge "TCP throughput (Gbit/s)" "ping RTT avg (us)" || fail=1
bench vxlan "TCP client->server (Gbit/s)" "ping RTT avg (us)" || fail=1
bench ping "ratios of avg RTT" "replies/s ratio daemon/Linux" || fail=1
bench wake "0.005 s Linux namespace router" "0.02 s Linux namespace router" || fail=1
bench reactor "bridge0 TCP" "bridge1 TCP" || fail=1
bench tunread "uring/read: CPU per frame" || fail=1
bench threads "10 shmif + 10 tap + 10 virt up: threads" || fail=1
exit "$fail"
