#!/usr/bin/env bash
# One command: the routing benchmark. Namespace A (10.71.1.0/24) talks to
# namespace B (10.71.2.0/24) through a router, two ways in the same run:
#   ifnet   one ifnetd with virt0 (A's side) and virt1 (B's side),
#           net.inet.ip.forwarding=1
#   linux   a Linux namespace with ip_forward=1 and a veth pair to each
# Measures iperf3 TCP, iperf3 UDP with 64-byte payloads (-b 0), and ping
# RTT, each path in turn, REPS times (the median of the runs; for RTT the
# median of every reply of the runs, which the stray slow replies of a
# shared machine move least), and the share of A's UDP datagrams that A's
# own device dropped: a TAP drops what its reader does not take in time
# (Linux's tun has no flow control), a veth hands them to the router in
# the sender's own system call. UDP-64 is measured once more with the
# processes placed on CPUs by hand, both paths alike (see place below).
# Writes OUT (default bench/results/route.txt). Needs root. Cleans up.
# Environment: REPS (3), SECS (5, per iperf3 run), PINGS (200), OUT, BIN
# (see bench/lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_init route --root
REPS=${REPS:-3} SECS=${SECS:-5} PINGS=${PINGS:-200}

P=ifr$$
NS_IA=${P}ia NS_IB=${P}ib NS_LA=${P}la NS_LB=${P}lb NS_LR=${P}lr
TAP_A=${P}ta TAP_B=${P}tb
export IFNET_SERVER=unix://$W/ifnetd.sock
netns "$NS_IA" "$NS_IB" "$NS_LA" "$NS_LB" "$NS_LR"

# (1) ifnet as the router.
ifconfig virt0 create; ifconfig virt0 linkstr "$TAP_A"; ifconfig virt0 up
ifconfig virt1 create; ifconfig virt1 linkstr "$TAP_B"; ifconfig virt1 up
ifconfig virt0 inet 10.71.1.1/24; ifconfig virt1 inet 10.71.2.1/24
ifnet-tools sysctl -w net.inet.ip.forwarding=1 >/dev/null
ip link set "$TAP_A" netns "$NS_IA"; ip link set "$TAP_B" netns "$NS_IB"
host "$NS_IA" "$TAP_A" 10.71.1.2/24 10.71.1.1
host "$NS_IB" "$TAP_B" 10.71.2.2/24 10.71.2.1

# (2) Linux as the router.
linux_router "$NS_LR" "$NS_LA" "$NS_LB" 10.71

PATHS="ifnet linux"
nsa() { case $1 in ifnet) echo "$NS_IA";; linux) echo "$NS_LA";; esac; }
nsb() { case $1 in ifnet) echo "$NS_IB";; linux) echo "$NS_LB";; esac; }
# A's own device, where a router too slow for A's sends drops them.
deva() { case $1 in ifnet) echo "$TAP_A";; linux) echo ea;; esac; }
txdrop() { # PATH: A's device's frames dropped on sending, so far
    ip netns exec "$(nsa "$1")" cat "/sys/class/net/$(deva "$1")/statistics/tx_dropped"
}
for p in $PATHS; do
    ip netns exec "$(nsb $p)" iperf3 -s -D -B 10.71.2.2 -I "$W/iperf-$p.pid"
done
for p in $PATHS; do wait_ping "$(nsa $p)" 10.71.2.2 "$p path"; done
# UDP-64 once more with the processes placed by hand: the router and B's
# receiver on CPU 0, A's sender on CPU 1. Three busy processes share two
# CPUs here, and where the scheduler puts them moves UDP-64 more than
# anything in the router (Linux's router runs inside the sender's system
# call: it is always where the sender is).
ALL=0-$(($(nproc) - 1))
place() { # PATH CPUS: pin the path's router (ifnetd) and receiver to CPUS
    [ "$1" = ifnet ] && taskset -apc "$2" "$(daemon_pid "$W/ifnetd.sock")" >/dev/null
    taskset -pc "$2" "$(cat "$W/iperf-$1.pid")" >/dev/null
}
for r in $(seq "$REPS"); do
    for p in $PATHS; do
        echo "rep $r/$REPS: $p" >&2
        ip netns exec "$(nsa $p)" ping -c "$PINGS" -i 0.02 10.71.2.2 > "$R/ping-$p-$r.txt"
        # The router's own address, answered by its host side: how fast a
        # thread of the router wakes on this machine now.
        ip netns exec "$(nsa $p)" ping -c "$PINGS" -i 0.02 10.71.1.1 > "$R/pingr-$p-$r.txt"
        ip netns exec "$(nsa $p)" iperf3 -c 10.71.2.2 -t "$SECS" -J > "$R/tcp-$p-$r.json"
        sleep 0.5
        d0=$(txdrop $p)
        ip netns exec "$(nsa $p)" iperf3 -c 10.71.2.2 -t "$SECS" -u -l 64 -b 0 -J > "$R/udp-$p-$r.json"
        echo $(($(txdrop $p) - d0)) > "$R/udpdrop-$p-$r.txt"
        sleep 0.5
        if [ "$(nproc)" -ge 2 ]; then
            place $p 0
            ip netns exec "$(nsa $p)" taskset -c 1 iperf3 -c 10.71.2.2 -t "$SECS" -u -l 64 -b 0 -J > "$R/udpp-$p-$r.json"
            place $p "$ALL"
            sleep 0.5
        fi
    done
done
ifnet-tools netstat -s -f inet > "$R/netstat-s.txt" 2>&1 || true

python3 - "$R" "$REPS" "$PATHS" <<'PY' | tee "$OUT"
import json, re, statistics, sys
R, reps, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def med(xs): return statistics.median(xs) if xs else float("nan")
# Datagrams received per second (thousands), from an iperf3 UDP summary.
def kpps(s): return s["packets"] * (1 - s["lost_percent"] / 100) / s["seconds"] / 1e3
res = {}
for p in paths:
    tcp, udp, rtt, rttr, drop, placed = [], [], [], [], [], []
    for r in range(1, reps + 1):
        j = json.load(open(f"{R}/tcp-{p}-{r}.json"))
        tcp.append(j["end"]["sum_received"]["bits_per_second"] / 1e9)
        j = json.load(open(f"{R}/udp-{p}-{r}.json"))
        s = j["end"]["sum"]
        udp.append(kpps(s))
        try:
            placed.append(kpps(json.load(open(f"{R}/udpp-{p}-{r}.json"))["end"]["sum"]))
        except FileNotFoundError:
            pass
        # Of what A's iperf3 sent, the share its own device dropped.
        d = int(open(f"{R}/udpdrop-{p}-{r}.txt").read())
        drop.append(100 * d / max(s["packets"], 1))
        # Each reply's time: the median of all is what a shared machine's
        # stray slow ones move least.
        for f, v in (("ping", rtt), ("pingr", rttr)):
            t = re.findall(r"time=([\d.]+) ms", open(f"{R}/{f}-{p}-{r}.txt").read())
            v.extend(float(x) * 1000 for x in t)
    res[p] = (med(tcp), med(udp), med(rtt), med(rttr), med(drop), med(placed))
print("route bench: A -> router -> B, median of %d (a shared machine)" % reps)
print("%-6s %12s %14s %10s %18s %16s %14s" % ("path", "TCP Gbit/s", "UDP-64 kpps", "RTT p50 us", "to router p50 us", "UDP drop at A %", "placed kpps"))
for p in paths:
    t, u, r, rr, d, pl = res[p]
    print("%-6s %12.2f %14.1f %10.0f %18.0f %16.1f %14.1f" % (p, t, u, r, rr, d, pl))
i, l = res["ifnet"], res["linux"]
print("ifnet/linux: TCP %.2fx, UDP-64 %.2fx, RTT %.2fx" % (i[0] / l[0], i[1] / l[1], i[2] / l[2]))
print("ifnet/linux, placed (router and B on CPU 0, A on CPU 1): UDP-64 %.2fx" % (i[5] / l[5]))
PY
