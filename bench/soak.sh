#!/usr/bin/env bash
# Soak: iperf3 through two daemons, their bridges and a shmif bus for
# DURATION seconds (default 600), sampling each daemon's RSS and open
# descriptors every 10 s. Reports growth and stalls (iperf3 seconds with
# no data). Needs root. Figures to OUT (default bench/results/soak.txt).
# Usage: bash bench/soak.sh [DURATION]. Environment: OUT, BIN (see
# bench/lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_init soak --root
DURATION=${1:-600}
NS1=ifsk1-$$ NS2=ifsk2-$$ T0=ifskt0-$$ T1=ifskt1-$$
netns "$NS1" "$NS2"
# Stop iperf3 (client and server) on exit: the client outlives its namespace.
on_exit 'for ns in "$NS1" "$NS2"; do ip netns pids "$ns" | xargs -r kill; done 2>/dev/null'
for s in a b; do
    export IFNET_SERVER=unix://$W/$s.sock
    if [ $s = a ]; then v=virt0 t=$T0; else v=virt1 t=$T1; fi
    ifconfig "$v" create; ifconfig "$v" linkstr "$t"
    ifconfig shmif0 create; ifconfig shmif0 linkstr "$W/bus"
    ifconfig bridge0 create; brconfig bridge0 add "$v" add shmif0 up
    ifconfig "$v" up; ifconfig shmif0 up
done
ip link set "$T0" netns "$NS1"; ip link set "$T1" netns "$NS2"
host "$NS1" "$T0" 10.66.0.1/24
host "$NS2" "$T1" 10.66.0.2/24
wait_ping "$NS1" 10.66.0.2 "the path through both daemons"
pa=$(daemon_pid "$W/a.sock"); pb=$(daemon_pid "$W/b.sock")
sample() { echo "$(awk '/VmRSS/ {print $2}' /proc/$1/status) $(ls /proc/$1/fd | wc -l)"; }
ip netns exec "$NS2" iperf3 -s -1 -D -B 10.66.0.2
sleep 0.5
ip netns exec "$NS1" iperf3 -c 10.66.0.2 -t "$DURATION" -i 1 --forceflush > "$W/iperf.log" &
ip_pid=$!
: > "$W/samples"
for ((t = 0; t <= DURATION; t += 10)); do
    echo "$t $(sample "$pa") $(sample "$pb")" >> "$W/samples"
    sleep 10
    kill -0 "$ip_pid" 2>/dev/null || break
done
wait "$ip_pid" || true
stalls=$(grep -cE "sec +0\.00 Bytes" "$W/iperf.log" || true)
avg=$(grep -E "sender$" "$W/iperf.log" | awk '{print $7, $8}')
{
echo "# ifnet soak, $(date -u '+%Y-%m-%d %H:%M:%S') UTC, $(nproc) cores, ${DURATION} s of iperf3 TCP"
echo "# through virt0 -> bridge0 -> shmif0 -> bus -> shmif0 -> bridge0 -> virt1 (two daemons)"
echo "average throughput: $avg; one-second intervals with no data: $stalls"
awk 'NR == 1 { a0 = $2; af = $3; b0 = $4; bf = $5 } { a1 = $2; af1 = $3; b1 = $4; bf1 = $5; if ($2 > am) am = $2; if ($4 > bm) bm = $4 }
     END { printf "daemon A: RSS %d -> %d kB (max %d), fds %d -> %d\n", a0, a1, am, af, af1;
           printf "daemon B: RSS %d -> %d kB (max %d), fds %d -> %d\n", b0, b1, bm, bf, bf1 }' "$W/samples"
echo "samples (t, A rss kB, A fds, B rss kB, B fds):"
sed 's/^/  /' "$W/samples"
} | tee "$OUT"
