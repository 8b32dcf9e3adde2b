#!/usr/bin/env bash
# One command: the ping benchmark, every path in the same run:
#   (a) daemon to daemon over a shmif bus: ifping in daemon A to daemon B
#   (b) Linux namespace to a daemon through virt: ping in the namespace to
#       the inet address of daemon A's virt0, whose host TAP is in it
#       (and, for reference, ifping from daemon A back to the namespace)
#   (c) Linux to Linux over a kernel bridge (veth pairs, bridge in a third
#       namespace)
#   (e) namespace to namespace across two daemons joined by a bus: a
#       namespace behind daemon A's bridge1(virt1, shmif1) pings one behind
#       daemon B's bridge1(virt1, shmif1), the two shmif1 on a second bus;
#       against two namespaces joined by two Linux bridges and a veth
#   (d) ping -f from the namespace to the daemon, against ping -f to the
#       Linux peer over the kernel bridge: echo replies per second; also
#       with -l 32 (32 requests in flight) to see whether the daemon's
#       limit of 20,000 echo replies/s (burst one second) is reached
# Writes OUT (default bench/results/ping.txt). Needs root. Cleans up.
# Environment: REPS (3), PINGS (300, at -i 0.01), FLOOD (5 s per flood),
# OUT, BIN (see bench/lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_init ping --root
REPS=${REPS:-3} PINGS=${PINGS:-300} FLOOD=${FLOOD:-5}

P=ifp$$                                   # prefix of every name (<= 10 chars)
NS_V=${P}v NS_K1=${P}k1 NS_K2=${P}k2 NS_KB=${P}kb TAP=${P}t0
NS_E1=${P}e1 NS_E2=${P}e2 NS_L1=${P}l1 NS_L2=${P}l2 NS_LB=${P}lb
BUSDIR=/dev/shm; [ -d "$BUSDIR" ] || BUSDIR=$W
BUS=$BUSDIR/$P.bus BUS2=$BUSDIR/$P.bus2
A=unix://$W/a.sock B=unix://$W/b.sock
on_exit 'rm -f "$BUS" "$BUS2" "$BUS.ifnet-wake" "$BUS2.ifnet-wake"'
netns "$NS_V" "$NS_K1" "$NS_K2" "$NS_KB" "$NS_E1" "$NS_E2" "$NS_L1" "$NS_L2" "$NS_LB"

# (a) two daemons on one bus
n=0
for IFNET_SERVER in "$A" "$B"; do
    export IFNET_SERVER; n=$((n + 1))
    ifconfig shmif0 create
    ifconfig shmif0 linkstr "$BUS"
    ifconfig shmif0 inet 10.78.0.$n/24 up
done
# (b) daemon A's virt0 with an address, its host TAP in a namespace
export IFNET_SERVER=$A
ifconfig virt0 create
ifconfig virt0 linkstr "$TAP"
ifconfig virt0 inet 10.79.0.1/24 up
ip link set "$TAP" netns "$NS_V"
host "$NS_V" "$TAP" 10.79.0.2/24
# (e) a namespace behind each daemon, the daemons' bridges joined by BUS2
n=0
for IFNET_SERVER in "$A" "$B"; do
    export IFNET_SERVER; n=$((n + 1)); ns=${P}e$n
    ifconfig shmif1 create; ifconfig shmif1 linkstr "$BUS2"; ifconfig shmif1 up
    ifconfig virt1 create; ifconfig virt1 linkstr "${P}e$n"; ifconfig virt1 up
    ifconfig bridge1 create; brconfig bridge1 add shmif1 add virt1 up
    ip link set "${P}e$n" netns "$ns"
    host "$ns" "${P}e$n" "10.81.0.$n/24"
done
export IFNET_SERVER=$A
IFNET_SERVER=$A ifconfig -w 15
IFNET_SERVER=$B ifconfig -w 15
# (e) Linux: two bridges joined by a veth, a namespace on each
for i in 1 2; do
    ip -n "$NS_LB" link add lb$i type bridge; ip -n "$NS_LB" link set lb$i up
    ip -n "$NS_LB" link add q$i type veth peer name f$i netns "${P}l$i"
    ip -n "$NS_LB" link set q$i master lb$i up
    host "${P}l$i" f$i "10.82.0.$i/24"
done
ip -n "$NS_LB" link add j1 type veth peer name j2
ip -n "$NS_LB" link set j1 master lb1 up; ip -n "$NS_LB" link set j2 master lb2 up
# (c) kernel bridge
ip -n "$NS_KB" link add br0 type bridge
ip -n "$NS_KB" link set br0 up
for i in 1 2; do
    ns=${P}k$i
    ip -n "$NS_KB" link add p$i type veth peer name e$i netns "$ns"
    ip -n "$NS_KB" link set p$i master br0 up
    host "$ns" e$i "10.80.0.$i/24"
done
sleep 1   # the namespace's own DAD and router solicitations settle

# Warm up every path (ARP, learning); a path that does not answer fails.
IFNET_SERVER=$A ifping -c 3 -i 0.1 -q 10.78.0.2 >/dev/null
wait_ping "$NS_V" 10.79.0.1 "(b) namespace -> daemon"
IFNET_SERVER=$A ifping -c 3 -i 0.1 -q 10.79.0.2 >/dev/null
wait_ping "$NS_K1" 10.80.0.2 "(c) kernel bridge"
wait_ping "$NS_E1" 10.81.0.2 "(e) two daemons' bridges"
wait_ping "$NS_L1" 10.82.0.2 "(e) two Linux bridges"

drops() { IFNET_SERVER=$A ifconfig -v virt0 | sed -n 's/.*, \([0-9]*\) queue drops\{0,1\}.*/\1/p' | head -1; }
for r in $(seq "$REPS"); do
    echo "rep $r/$REPS" >&2
    # Not -q: every reply's time, for the percentiles.
    IFNET_SERVER=$A ifping -c "$PINGS" -i 0.01 10.78.0.2 > "$R/a-$r.txt"
    ip netns exec "$NS_V" ping -c "$PINGS" -i 0.01 10.79.0.1 > "$R/b-$r.txt"
    IFNET_SERVER=$A ifping -c "$PINGS" -i 0.01 10.79.0.2 > "$R/b2-$r.txt"
    ip netns exec "$NS_K1" ping -c "$PINGS" -i 0.01 10.80.0.2 > "$R/c-$r.txt"
    ip netns exec "$NS_E1" ping -c "$PINGS" -i 0.01 10.81.0.2 > "$R/e-$r.txt"
    ip netns exec "$NS_L1" ping -c "$PINGS" -i 0.01 10.82.0.2 > "$R/el-$r.txt"
    for l in 1 32; do
        sleep 1.2   # the daemon's burst allowance refills
        d0=$(drops); d0=${d0:-0}
        ip netns exec "$NS_V" ping -f -l $l -w "$FLOOD" -q 10.79.0.1 > "$R/fd$l-$r.txt" || true
        d1=$(drops); d1=${d1:-0}
        echo "virt0 queue drops during flood: $((d1 - d0))" >> "$R/fd$l-$r.txt"
        ip netns exec "$NS_K1" ping -f -l $l -w "$FLOOD" -q 10.80.0.2 > "$R/fk$l-$r.txt" || true
    done
done

python3 bench/ping.py "$R" "$REPS" "$PINGS" "$FLOOD" | tee "$OUT"
