#!/usr/bin/env bash
# One command: the ping benchmark, every path in the same run:
#   (a) daemon to daemon over a shmif bus: ifping in daemon A to daemon B
#   (b) Linux namespace to a daemon through virt: ping in the namespace to
#       the inet address of daemon A's virt0, whose host TAP is in it
#       (and, for reference, ifping from daemon A back to the namespace)
#   (c) Linux to Linux over a kernel bridge (veth pairs, bridge in a third
#       namespace)
#   (d) ping -f from the namespace to the daemon, against ping -f to the
#       Linux peer over the kernel bridge: echo replies per second; also
#       with -l 32 (32 requests in flight) to see whether the daemon's
#       limit of 20,000 echo replies/s (burst one second) is reached
# Writes bench/results/ping.txt. Needs root. Cleans up.
# Environment: REPS (3), PINGS (300, at -i 0.01), FLOOD (5 s per flood).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "ping bench: run as root (network namespaces)" >&2; exit 1; }
bash scripts/deps.sh
cargo build --release --quiet --bins
PATH="$PWD/target/release:$PATH"
REPS=${REPS:-3} PINGS=${PINGS:-300} FLOOD=${FLOOD:-5}

W=$(mktemp -d /tmp/ifnet-ping.XXXXXX)
P=ifp$$                                   # prefix of every name (<= 10 chars)
NS_V=${P}v NS_K1=${P}k1 NS_K2=${P}k2 NS_KB=${P}kb TAP=${P}t0
BUSDIR=/dev/shm; [ -d "$BUSDIR" ] || BUSDIR=$W
BUS=$BUSDIR/$P.bus
A=unix://$W/a.sock B=unix://$W/b.sock
cleanup() {
    set +e
    ifnetd --stop -s "$W/a.sock" >/dev/null 2>&1
    ifnetd --stop -s "$W/b.sock" >/dev/null 2>&1
    for ns in $NS_V $NS_K1 $NS_K2 $NS_KB; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$W" "$BUS"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for ns in $NS_V $NS_K1 $NS_K2 $NS_KB; do
    ip netns add "$ns"; ip -n "$ns" link set lo up
done

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
ip -n "$NS_V" addr add 10.79.0.2/24 dev "$TAP"; ip -n "$NS_V" link set "$TAP" up
IFNET_SERVER=$A ifconfig -w 5
IFNET_SERVER=$B ifconfig -w 5
# (c) kernel bridge
ip -n "$NS_KB" link add br0 type bridge
ip -n "$NS_KB" link set br0 up
for i in 1 2; do
    ns=${P}k$i
    ip -n "$NS_KB" link add p$i type veth peer name e$i netns "$ns"
    ip -n "$NS_KB" link set p$i master br0 up
    ip -n "$ns" addr add 10.80.0.$i/24 dev e$i; ip -n "$ns" link set e$i up
done
sleep 1   # the namespace's own DAD and router solicitations settle

# Warm up every path (ARP, learning); a path that does not answer fails.
IFNET_SERVER=$A ifping -c 3 -i 0.1 -q 10.78.0.2 >/dev/null
ip netns exec "$NS_V" ping -c 3 -i 0.1 -q 10.79.0.1 >/dev/null
IFNET_SERVER=$A ifping -c 3 -i 0.1 -q 10.79.0.2 >/dev/null
ip netns exec "$NS_K1" ping -c 3 -i 0.1 -q 10.80.0.2 >/dev/null

R=$W/raw; mkdir -p "$R"
drops() { IFNET_SERVER=$A ifconfig -v virt0 | sed -n 's/.*, \([0-9]*\) queue drops\{0,1\}.*/\1/p' | head -1; }
for r in $(seq "$REPS"); do
    echo "rep $r/$REPS" >&2
    IFNET_SERVER=$A ifping -c "$PINGS" -i 0.01 -q 10.78.0.2 > "$R/a-$r.txt"
    ip netns exec "$NS_V" ping -c "$PINGS" -i 0.01 -q 10.79.0.1 > "$R/b-$r.txt"
    IFNET_SERVER=$A ifping -c "$PINGS" -i 0.01 -q 10.79.0.2 > "$R/b2-$r.txt"
    ip netns exec "$NS_K1" ping -c "$PINGS" -i 0.01 -q 10.80.0.2 > "$R/c-$r.txt"
    for l in 1 32; do
        sleep 1.2   # the daemon's burst allowance refills
        d0=$(drops); d0=${d0:-0}
        ip netns exec "$NS_V" ping -f -l $l -w "$FLOOD" -q 10.79.0.1 > "$R/fd$l-$r.txt" || true
        d1=$(drops); d1=${d1:-0}
        echo "virt0 queue drops during flood: $((d1 - d0))" >> "$R/fd$l-$r.txt"
        ip netns exec "$NS_K1" ping -f -l $l -w "$FLOOD" -q 10.80.0.2 > "$R/fk$l-$r.txt" || true
    done
done

mkdir -p bench/results
python3 bench/ping.py "$R" "$REPS" "$PINGS" "$FLOOD" | tee bench/results/ping.txt
