#!/usr/bin/env bash
# Two bridges at once in one ifnetd: bridge0 = virt0 + virt1 and bridge1 =
# virt2 + virt3, each between two namespaces, iperf3 TCP through both at
# the same time. Reports each bridge's throughput and the CPU each busy
# thread of the daemon used: the two bridges' members are two groups, on two threads.
# Needs root. Environment: SECS (5).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "reactor bench: run as root (network namespaces)" >&2; exit 1; }
cargo build --release --quiet --bins
B=$PWD/target/release
SECS=${SECS:-5}
W=$(mktemp -d /tmp/ifnet-reactor.XXXXXX)
P=ifr$$
export IFNET_SERVER=unix://$W/ifnetd.sock
cleanup() {
    set +e
    for f in "$W"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
    "$B/ifnetd" --stop -s "$W/ifnetd.sock" >/dev/null 2>&1
    for i in 0 1 2 3; do ip netns del "${P}n$i" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT
"$B/ifnetd" -s "$W/ifnetd.sock"
PID=$(ss -xlpn | awk -v s="$W/ifnetd.sock" '$5 == s' | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)
for i in 0 1 2 3; do
    ns=${P}n$i tap=${P}t$i
    ip netns add "$ns"; ip -n "$ns" link set lo up
    "$B/ifconfig" "virt$i" create; "$B/ifconfig" "virt$i" linkstr "$tap"
done
for b in 0 1; do
    "$B/ifconfig" "bridge$b" create
    "$B/brconfig" "bridge$b" add "virt$((2 * b))" add "virt$((2 * b + 1))" up
done
for i in 0 1 2 3; do
    "$B/ifconfig" "virt$i" up
    ip link set "${P}t$i" netns "${P}n$i"
    ip -n "${P}n$i" addr add "10.78.$((i / 2)).$((i % 2 + 1))/24" dev "${P}t$i"
    ip -n "${P}n$i" link set "${P}t$i" up
done
for b in 0 1; do
    ip netns exec "${P}n$((2 * b + 1))" iperf3 -s -D -B "10.78.$b.2" -I "$W/iperf$b.pid"
done
sleep 0.5
for b in 0 1; do
    ip netns exec "${P}n$((2 * b))" ping -c 3 -i 0.1 -q "10.78.$b.2" >/dev/null
done
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
echo "# ifnet two bridges at once, $(date -u '+%Y-%m-%d %H:%M:%S') UTC, $(nproc) cores, iperf3 -t $SECS TCP through each"
for b in 0 1; do
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("bridge%s TCP %.3f Gbit/s" % (sys.argv[2], d["end"]["sum_received"]["bits_per_second"] / 1e9))' "$W/tcp$b.json" "$b"
done
# Every thread that used at least 1% of a core.
join "$W/t0" "$W/t1" | awk -v s="$SECS" '{ p = ($3 - $2) / 1e7 / s; if (p >= 1) printf "thread %s CPU %.0f%% of a core\n", $1, p }'
"$B/brconfig" bridge0 >/dev/null
