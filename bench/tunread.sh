#!/usr/bin/env bash
# One command: what a read of a host TAP costs its reader, per frame, with
# one read(2) per frame (as virt reads) and with io_uring's multishot read
# (many frames per system call). Two child processes flood the TAP with
# 64-byte UDP datagrams; examples/tunread.rs reads for SECS seconds and
# reports its CPU time per frame. The two ways take turns, REPS times, in
# a network namespace of their own; the report gives the medians and the
# ratio. Writes OUT (default bench/results/tunread.txt). Needs root.
# Environment: REPS (5), SECS (3), OUT (see bench/lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_init tunread --root
REPS=${REPS:-5} SECS=${SECS:-3}
cargo build --release --quiet --example tunread
NS=iftr$$
netns "$NS"
for r in $(seq "$REPS"); do
    for m in read uring; do
        echo "rep $r/$REPS: $m" >&2
        ip netns exec "$NS" target/release/examples/tunread "$m" "$SECS" >> "$R/runs.txt"
    done
done
python3 - "$R/runs.txt" "$REPS" "$SECS" <<'PY' | tee "$OUT"
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    w = line.split()
    f = dict(zip(w[1::2], map(float, w[2::2])))
    runs.setdefault(w[0], []).append(f)
def med(m, k): return statistics.median(r[k] for r in runs[m])
print("tunread bench: reading a TAP flooded with 64-byte UDP, median of %s runs of %s s" % (sys.argv[2], sys.argv[3]))
print("%-6s %10s %14s %16s %8s" % ("way", "kpps", "ns CPU/frame", "frames/syscall", "CPU"))
for m in ("read", "uring"):
    print("%-6s %10.0f %14.0f %16.1f %8.2f" % (m, med(m, "kpps"), med(m, "ns_per_frame"), med(m, "frames_per_call"), med(m, "cpu")))
print("uring/read: CPU per frame %.2fx" % (med("uring", "ns_per_frame") / med("read", "ns_per_frame")))
PY
