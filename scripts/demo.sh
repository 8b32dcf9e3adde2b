#!/usr/bin/env bash
# The demo: two virtual kernels (ifnetd) share one shmif bus. Each bridges
# the bus to a virt interface whose host TAP sits in its own Linux network
# namespace. The namespaces ping each other and move a file over TCP
# through both daemons and the bus; the daemons then ping each other with
# no namespace at all; shmifdump | tcpdump shows what crossed the bus.
# Needs root (namespaces, TAPs): run it as root, or as a user who may sudo,
# and it builds as that user and asks sudo for the rest. Cleans up after
# itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != --built ]; then
    bash scripts/deps.sh
    cargo build --release --quiet --bins
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "demo: needs root (network namespaces), and there is no sudo" >&2; exit 1; }
        exec sudo bash "$0" --built
    fi
fi
# IFNET_BIN: another build's binaries (the test suite runs the demo so).
PATH="${IFNET_BIN:-$PWD/target/release}:$PATH"

W=$(mktemp -d /tmp/ifnet-demo.XXXXXX)
ID=$$
NS1=ifdemo1-$ID NS2=ifdemo2-$ID TAP0=ifdtap0-$ID TAP1=ifdtap1-$ID
A=unix://$W/a.sock B=unix://$W/b.sock
cleanup() {
    IFNET_SERVER=$A ifnetd --stop 2>/dev/null || true
    IFNET_SERVER=$B ifnetd --stop 2>/dev/null || true
    ip netns del "$NS1" 2>/dev/null || true
    ip netns del "$NS2" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# A command on one daemon, labelled with the host it runs on.
on() {
    local host=$1; shift
    local sock; if [ "$host" = A ]; then sock=$A; else sock=$B; fi
    printf '[host %s] $ %s\n' "$host" "$*"
    IFNET_SERVER=$sock "$@"
}

say "Host A (IFNET_SERVER=$A): the first ifconfig starts its ifnetd"
on A ifconfig virt0 create
on A ifconfig virt0 linkstr "$TAP0"         # the host TAP (default: tap0)
on A ifconfig shmif0 create
on A ifconfig shmif0 linkstr "$W/bus0"
on A ifconfig bridge0 create
on A brconfig bridge0 add virt0 shmif0 up
on A ifconfig virt0 up
on A ifconfig shmif0 up

say "Host B (IFNET_SERVER=$B), on the same bus"
on B ifconfig virt1 create
on B ifconfig virt1 linkstr "$TAP1"
on B ifconfig shmif0 create
on B ifconfig shmif0 linkstr "$W/bus0"
on B ifconfig bridge0 create
on B brconfig bridge0 add virt1 shmif0 up
on B ifconfig virt1 up
on B ifconfig shmif0 up

say "Linux namespaces behind each host TAP"
ip netns add "$NS1"; ip netns add "$NS2"
ip link set "$TAP0" netns "$NS1"; ip link set "$TAP1" netns "$NS2"
ip -n "$NS1" addr add 10.9.0.1/24 dev "$TAP0"; ip -n "$NS1" link set "$TAP0" up
ip -n "$NS2" addr add 10.9.0.2/24 dev "$TAP1"; ip -n "$NS2" link set "$TAP1" up
run ip netns exec "$NS1" ping -c 3 -i 0.2 10.9.0.2

say "The bus, read back by tcpdump"
run sh -c "shmifdump -p - $W/bus0 2>/dev/null | tcpdump -n -r - 2>/dev/null | grep ICMP | head -6"

say "TCP through both daemons and the bus (iperf3, 3 s)"
ip netns exec "$NS2" iperf3 -s -1 -D -B 10.9.0.2
sleep 0.5
ip netns exec "$NS1" iperf3 -c 10.9.0.2 -t 3 | tail -4

say "The bridges learned where each host is"
on A brconfig bridge0

say "The daemons themselves are hosts: addresses on the bus, ping from inside"
on A ifconfig shmif0 inet 10.0.0.1/24
on B ifconfig shmif0 inet 10.0.0.2/24
# Duplicate address detection as NetBSD runs it: three probes 1-2 s apart,
# then 2 s; up to 7 s before the addresses are usable.
on A ifconfig -w 10
on B ifconfig -w 10
on A ifping -c 3 -i 0.2 10.0.0.2
on A ifconfig -v shmif0

say "Done; cleaning up"
