#!/usr/bin/env bash
# Threads, memory and idle CPU of a daemon with many interfaces: N (1000)
# shmif interfaces up on N buses, then 10 shmif + 10 tap + 10 virt (virt
# needs root: skipped otherwise). Threads are counted in all and less the
# IP presence's ("inet-*", one per interface with an address: the IPv6
# link-local each gets on up). Idle CPU: the run time of the daemon's
# threads (schedstat, ns) over 10 s, in all and less inet-*. One command;
# prints a report and writes it to OUT (default bench/results/threads.txt).
# Environment: N (1000), IDLE (10 s), OUT, BIN (see bench/lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_init threads
N=${N:-1000} IDLE=${IDLE:-10}
# virt's host TAPs, should one outlive its daemon.
on_exit 'ip link show | grep -o "ifth$$[0-9]*" | sort -u | while read -r t; do ip link del "$t"; done 2>/dev/null'
daemon() { # name: start a daemon on $W/name.sock, print its pid
    ifnetd -s "$W/$1.sock"
    daemon_pid "$W/$1.sock"
}
threads() { # pid: "all less-inet"
    local all=0 inet=0 c
    for t in /proc/"$1"/task/*; do
        all=$((all + 1)); c=$(cat "$t/comm" 2>/dev/null || true)
        case $c in inet-*) inet=$((inet + 1));; esac
    done
    echo "$all $((all - inet))"
}
ticks() { # pid: "all less-inet" CPU ns so far
    local all=0 other=0 c v
    for t in /proc/"$1"/task/*; do
        v=$(awk '{ print $1 }' "$t/schedstat" 2>/dev/null || echo 0)
        c=$(cat "$t/comm" 2>/dev/null || true)
        all=$((all + v)); case $c in inet-*) ;; *) other=$((other + v));; esac
    done
    echo "$all $other"
}
ifc() { IFNET_SERVER=unix://$W/$S.sock ifconfig "$@"; }

{
echo "# ifnet threads, $(date -u '+%Y-%m-%d %H:%M:%S') UTC, $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
S=big; PID=$(daemon big)
for i in $(seq 0 $((N - 1))); do
    ifc "shmif$i" create; ifc "shmif$i" linkstr "$W/bus$i"; ifc "shmif$i" up
done
sleep 2 # DAD of the link-local addresses
read -r all less <<<"$(threads "$PID")"
echo "$N shmif up on $N buses: threads $less (all: $all, with one inet-* per interface)"
echo "$N shmif up on $N buses: RSS $(awk '/VmRSS/ {print $2}' "/proc/$PID/status") kB"
read -r a0 o0 <<<"$(ticks "$PID")"; sleep "$IDLE"; read -r a1 o1 <<<"$(ticks "$PID")"
awk -v n="$N" -v a=$((a1 - a0)) -v o=$((o1 - o0)) -v s="$IDLE" 'BEGIN {
    printf "%s shmif idle CPU: %.2f%% of a core less inet-* (all: %.2f%%)\n", n, o / 1e7 / s, a / 1e7 / s }'
ifnetd --stop -s "$W/big.sock" >/dev/null 2>&1 || true

S=mix; PID=$(daemon mix)
for i in $(seq 0 9); do
    ifc "shmif$i" create; ifc "shmif$i" linkstr "$W/mbus$i"; ifc "shmif$i" up
    ifc "tap$i" create; ifc "tap$i" up
    if [ "$(id -u)" -eq 0 ] && [ -e /dev/net/tun ]; then
        ifc "virt$i" create; ifc "virt$i" linkstr "ifth$$$i"; ifc "virt$i" up
    fi
done
read -r all less <<<"$(threads "$PID")"
echo "10 shmif + 10 tap + 10 virt up: threads $less (all: $all)"
} | tee "$OUT"
