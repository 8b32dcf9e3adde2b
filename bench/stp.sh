#!/usr/bin/env bash
# Spanning tree convergence: a loop of two ifnet bridges (two ifnetd, two
# shmif buses) against the same loop of two Linux kernel bridges (two
# namespaces, two veth pairs), with the same timers (hello 1 s, forward
# delay 4 s, max age 6 s; A has priority 4096 and is the root). Measured
# by polling the port states every 50 ms:
#   initial  from the bridges going up to one blocked port, the rest forwarding
#   down     B's root port goes down: B's blocked port forwards (802.1D: 2 × fwd delay)
#   silent   A's end of B's root link leaves A's bridge, B's end stays up:
#            B's blocked port forwards after its information ages out
#            (802.1D: max age + 2 × fwd delay)
# Needs root. Writes OUT (default bench/results/stp.txt).
# Environment: OUT, BIN (see bench/lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_init stp --root
P=ifs$$
# The Linux bridges' namespaces, made afresh by each linux_run; here so
# that they are deleted on exit (linux_run runs in a subshell).
netns "${P}a" "${P}b"
now() { date +%s.%N; }
since() { echo "$(now) $1" | awk '{ printf "%.2f", $1 - $2 }'; }
# wait_for CMD...: poll every 50 ms (at most 60 s) until CMD succeeds.
wait_for() {
    local end=$(( $(date +%s) + 60 ))
    until "$@"; do
        [ "$(date +%s)" -lt "$end" ] || { echo "stp bench: timed out: $*" >&2; exit 1; }
        sleep 0.05
    done
}

# ---- ifnet
ifc() { IFNET_SERVER=unix://$W/$1.sock ifconfig "${@:2}"; }
brc() { IFNET_SERVER=unix://$W/$1.sock brconfig "${@:2}"; }
# "member state" of the stp members of daemon $1
ifnet_states() {
    brc "$1" bridge0 | awk '/flags=/ && !/^bridge/ { m = $1 } /path cost/ { print m, $NF }'
}
ifnet_converged() {
    local s; s=$( (ifnet_states a; ifnet_states b) )
    [ "$(grep -c blocking <<<"$s")" -eq 1 ] && [ "$(grep -c forwarding <<<"$s")" -eq 3 ]
}
ifnet_b_all_forwarding() { [ "$(ifnet_states b | grep -c forwarding)" -eq 2 ]; }
ifnet_root_port() { brc b -v bridge0 | awk '/root port/ { print $NF }'; }
ifnet_setup() {
    for s in a b; do
        ifnetd -s "$W/$s.sock"
        for i in 0 1; do ifc "$s" "shmif$i" create linkstr "$W/bus$i" up; done
        ifc "$s" bridge0 create
        brc "$s" bridge0 add shmif0 add shmif1 stp shmif0 stp shmif1 hellotime 1 fwddelay 4 maxage 6
    done
    brc a bridge0 priority 4096
}
ifnet_run() { # $1: down|silent
    rm -f "$W"/bus*
    ifnet_setup
    local t; t=$(now)
    brc a bridge0 up; brc b bridge0 up
    wait_for ifnet_converged
    [ "$1" = down ] && echo "ifnet   initial $(since "$t") s"
    local rp; rp=$(ifnet_root_port)
    t=$(now)
    if [ "$1" = down ]; then ifc b "$rp" down; else brc a bridge0 delete "$rp"; fi
    wait_for ifnet_b_all_forwarding_or_one "$rp"
    echo "ifnet   $1 $(since "$t") s"
    for s in a b; do ifnetd --stop -s "$W/$s.sock" >/dev/null 2>&1; done
}
# B's other port forwards (the one not named $1)
ifnet_b_all_forwarding_or_one() {
    ifnet_states b | grep -v "^$1 " | grep -q forwarding
}

# ---- Linux
linux_states() { bridge -n "$P$1" link | sed -n 's/^[0-9]*: \([^@:]*\).* state \([a-z]*\).*/\1 \2/p'; }
linux_converged() {
    local s; s=$( (linux_states a; linux_states b) )
    [ "$(grep -c blocking <<<"$s")" -eq 1 ] && [ "$(grep -c forwarding <<<"$s")" -eq 3 ]
}
linux_root_port() {
    local n; n=$(ip netns exec "${P}b" cat /sys/class/net/br0/bridge/root_port)
    linux_states b | awk '{ print $1 }' | while read -r p; do
        if [ "$(ip netns exec "${P}b" cat "/sys/class/net/br0/brif/$p/port_no")" = "$(printf '0x%x' "$n")" ]; then
            echo "$p"
        fi
    done
}
linux_other_forwards() { linux_states b | grep -v "^$1 " | grep -q forwarding; }
linux_run() { # $1: down|silent
    for s in a b; do ip netns del "$P$s" 2>/dev/null || true; ip netns add "$P$s"; done
    for s in a b; do
        local prio=32768; [ "$s" = a ] && prio=4096
        ip -n "$P$s" link add br0 type bridge stp_state 1 forward_delay 400 hello_time 100 max_age 600 priority "$prio"
    done
    for i in 0 1; do
        ip -n "${P}a" link add "a$i" type veth peer name "b$i" netns "${P}b"
        ip -n "${P}a" link set "a$i" master br0 up
        ip -n "${P}b" link set "b$i" master br0 up
    done
    local t; t=$(now)
    for s in a b; do ip -n "$P$s" link set br0 up; done
    wait_for linux_converged
    [ "$1" = down ] && echo "linux   initial $(since "$t") s"
    local rp; rp=$(linux_root_port)
    t=$(now)
    if [ "$1" = down ]; then
        ip -n "${P}b" link set "$rp" down
    else
        ip -n "${P}a" link set "a${rp#b}" nomaster
    fi
    wait_for linux_other_forwards "$rp"
    echo "linux   $1 $(since "$t") s"
}

{
    echo "# spanning tree convergence, $(date -u '+%Y-%m-%d %H:%M:%S') UTC, $(nproc) cores, hello 1 fwddelay 4 maxage 6 (802.1D bounds: down 8 s, silent 14 s)"
    for k in down silent; do ifnet_run "$k"; linux_run "$k"; done
} | tee "$W/stp.txt"
mv "$W/stp.txt" "$OUT"   # only a complete run replaces OUT
