#!/usr/bin/env bash
# One command: where a routed round trip's time goes. Namespace A pings
# namespace B through ifnetd as the router (virt0, virt1, forwarding on;
# the set-up of bench/route.sh), and through a Linux namespace router, at
# two ping intervals, four ways:
#   default       as a user runs it
#   one CPU       ifnetd's threads and ping held on CPU 0 (taskset): no
#                 wakeup crosses CPUs
#   spin 10 ms    IFNET_SPIN_US=10000: the router's thread stays awake
#                 between pings that come within 10 ms
#   linux         the Linux router, ping unpinned
# On a virtual machine, waking a thread that sleeps on the other vCPU
# costs tens of microseconds; the rows show how much of ifnet's round trip
# that is. Writes OUT (default bench/results/wake.txt). Needs root.
# Cleans up.
# Environment: PINGS (300 per row), OUT, BIN (see bench/lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_init wake --root
PINGS=${PINGS:-300}

P=ifw$$
NS_A=${P}a NS_B=${P}b NS_LA=${P}la NS_LB=${P}lb NS_LR=${P}lr
netns "$NS_A" "$NS_B" "$NS_LA" "$NS_LB" "$NS_LR"

# A router daemon; $1 names it, the rest is its environment.
router() {
    local sock=$W/$1.sock
    shift
    env "$@" ifnetd -s "$sock" >/dev/null 2>&1
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
    export IFNET_SERVER=unix://$sock
    ifconfig virt0 create linkstr "${P}ta" up; ifconfig virt1 create linkstr "${P}tb" up
    ifconfig virt0 inet 10.73.1.1/24; ifconfig virt1 inet 10.73.2.1/24
    ifnet-tools sysctl -w net.inet.ip.forwarding=1 >/dev/null
    ip link set "${P}ta" netns "$NS_A"; ip link set "${P}tb" netns "$NS_B"
    host "$NS_A" "${P}ta" 10.73.1.2/24 10.73.1.1
    host "$NS_B" "${P}tb" 10.73.2.2/24 10.73.2.1
    wait_ping "$NS_A" 10.73.2.2 "the router ifnetd"
    daemon_pid "$sock"
}
stop() { ifnetd --stop -s "$W/$1.sock" >/dev/null 2>&1; unset IFNET_SERVER; }

linux_router "$NS_LR" "$NS_LA" "$NS_LB" 10.73
# Neighbours resolved before the first row, as router() does for ifnet's.
wait_ping "$NS_LA" 10.73.2.2 "the Linux router"

ping_to() { # out-file ns [taskset...]: PINGS pings at the interval $IV
    local out=$1 ns=$2; shift 2
    ip netns exec "$ns" "$@" ping -c "$PINGS" -i "$IV" 10.73.2.2 > "$R/$out"
}
for IV in 0.005 0.02; do
    echo "interval $IV" >&2
    pid=$(router plain)
    ping_to "default-$IV" "$NS_A" env
    taskset -a -p -c 0 "$pid" >/dev/null
    ping_to "onecpu-$IV" "$NS_A" taskset -c 0
    stop plain
    router spin IFNET_SPIN_US=10000 >/dev/null
    ping_to "spin-$IV" "$NS_A" env
    stop spin
    ping_to "linux-$IV" "$NS_LA" env
done

python3 - "$R" "$PINGS" <<'PY' | tee "$OUT"
import os, platform, re, statistics, sys, time
R, pings = sys.argv[1], sys.argv[2]
def rtts(f):
    t = sorted(float(x) * 1000 for x in re.findall(r"time=([\d.]+) ms", open(f"{R}/{f}").read()))
    return t
print(f"# ifnet wake benchmark, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
      f"{os.cpu_count()} cores, Linux {platform.release()}")
print(f"# bash bench/wake.sh: A -> router -> B, {pings} pings per row")
print(f"{'interval':>9} {'router':34} {'p50 us':>7} {'avg us':>7} {'p99 us':>7} {'vs linux p50':>13}")
rows = [("default", "ifnetd, as a user runs it"), ("onecpu", "ifnetd and ping on CPU 0"),
        ("spin", "ifnetd, IFNET_SPIN_US=10000"), ("linux", "Linux namespace router")]
for iv in ("0.005", "0.02"):
    lin = statistics.median(rtts(f"linux-{iv}"))
    for key, what in rows:
        t = rtts(f"{key}-{iv}")
        p50 = statistics.median(t)
        print(f"{iv + ' s':>9} {what:34} {p50:7.0f} {sum(t) / len(t):7.0f} "
              f"{t[max(0, int(len(t) * 0.99) - 1)]:7.0f} {p50 / lin:12.2f}x")
PY
