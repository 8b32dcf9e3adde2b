#!/usr/bin/env bash
# Two bridges at once in one ifnetd: bridge0 = virt0 + virt1 and bridge1 =
# virt2 + virt3, each between two namespaces, iperf3 TCP through both at
# the same time. Reports each bridge's throughput and the CPU each busy
# thread of the daemon used: the two bridges' members are two groups, on two threads.
# Needs root. Writes OUT (default bench/results/reactor.txt).
# Environment: SECS (5), OUT, BIN (see bench/lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_init reactor --root
SECS=${SECS:-5}
P=ifr$$
export IFNET_SERVER=unix://$W/ifnetd.sock
ifnetd -s "$W/ifnetd.sock"
PID=$(daemon_pid "$W/ifnetd.sock")
netns "${P}n0" "${P}n1" "${P}n2" "${P}n3"
for i in 0 1 2 3; do
    ifconfig "virt$i" create; ifconfig "virt$i" linkstr "${P}t$i"
done
for b in 0 1; do
    ifconfig "bridge$b" create
    brconfig "bridge$b" add "virt$((2 * b))" add "virt$((2 * b + 1))" up
done
for i in 0 1 2 3; do
    ifconfig "virt$i" up
    ip link set "${P}t$i" netns "${P}n$i"
    host "${P}n$i" "${P}t$i" "10.78.$((i / 2)).$((i % 2 + 1))/24"
done
for b in 0 1; do
    ip netns exec "${P}n$((2 * b + 1))" iperf3 -s -D -B "10.78.$b.2" -I "$W/iperf$b.pid"
done
sleep 0.5
for b in 0 1; do wait_ping "${P}n$((2 * b))" "10.78.$b.2" "bridge$b"; done
ticks() { # per thread: "name/tid ns-on-cpu"
    for t in /proc/"$PID"/task/*; do
        echo "$(cat "$t/comm")/${t##*/} $(awk '{ print $1 }' "$t/schedstat")"
    done | sort
}
ticks > "$W/t0"
for b in 0 1; do
    ip netns exec "${P}n$((2 * b))" iperf3 -c "10.78.$b.2" -t "$SECS" -J > "$W/tcp$b.json" &
done
wait
ticks > "$W/t1"
{
echo "# ifnet two bridges at once, $(date -u '+%Y-%m-%d %H:%M:%S') UTC, $(nproc) cores, iperf3 -t $SECS TCP through each"
for b in 0 1; do
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("bridge%s TCP %.3f Gbit/s" % (sys.argv[2], d["end"]["sum_received"]["bits_per_second"] / 1e9))' "$W/tcp$b.json" "$b"
done
# Every thread that used at least 1% of a core.
join "$W/t0" "$W/t1" | awk -v s="$SECS" '{ p = ($3 - $2) / 1e7 / s; if (p >= 1) printf "thread %s CPU %.0f%% of a core\n", $1, p }'
} | tee "$OUT"
brconfig bridge0 >/dev/null
