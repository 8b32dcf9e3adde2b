#!/usr/bin/env bash
# One command: the data-plane bridge benchmark. Two Linux network namespaces
# talk through a bridge, three ways in the same run:
#   ifnet   one ifnetd, bridge0 with members virt0 and virt1, whose host
#           TAPs sit in the two namespaces
#   kernel  a Linux bridge in a third namespace, veth pairs to the two
#   vde     vde_switch with two TAP ports (-t), the TAPs moved into the two
#           namespaces (vde_switch keeps them open; moving works)
# Measures iperf3 TCP, iperf3 UDP with 64-byte payloads (-b 0: as fast as
# the sender can), and ping RTT, each path in turn, REPS times (median
# reported). Writes OUT (default bench/results/bridge.txt). Needs root.
# Cleans up.
# Environment: REPS (3), SECS (5, per iperf3 run), PINGS (300), OUT, BIN
# (see bench/lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_init bridge --root
command -v vde_switch >/dev/null || { echo "bridge bench: vde_switch missing (apt-get install vde-switch)" >&2; exit 1; }
REPS=${REPS:-3} SECS=${SECS:-5} PINGS=${PINGS:-300}

P=ifb$$                                   # prefix of every name (<= 10 chars)
NS_I1=${P}i1 NS_I2=${P}i2                 # ifnet
NS_K1=${P}k1 NS_K2=${P}k2 NS_KB=${P}kb    # kernel bridge
NS_V1=${P}v1 NS_V2=${P}v2                 # vde
TAP_I0=${P}it0 TAP_I1=${P}it1 TAP_V1=${P}vt1 TAP_V2=${P}vt2
export IFNET_SERVER=unix://$W/ifnetd.sock
netns "$NS_I1" "$NS_I2" "$NS_K1" "$NS_K2" "$NS_KB" "$NS_V1" "$NS_V2"
# vde_switch's TAPs, if they never reached their namespaces.
on_exit 'ip link del "$TAP_V1" 2>/dev/null; ip link del "$TAP_V2" 2>/dev/null'

# (1) ifnet: bridge0 = virt0 + virt1; the host TAPs go to the namespaces.
ifconfig virt0 create; ifconfig virt0 linkstr "$TAP_I0"
ifconfig virt1 create; ifconfig virt1 linkstr "$TAP_I1"
ifconfig bridge0 create
brconfig bridge0 add virt0 add virt1 up
ifconfig virt0 up; ifconfig virt1 up
ip link set "$TAP_I0" netns "$NS_I1"; ip link set "$TAP_I1" netns "$NS_I2"
host "$NS_I1" "$TAP_I0" 10.77.0.1/24; host "$NS_I2" "$TAP_I1" 10.77.0.2/24

# (2) kernel: br0 in its own namespace, a veth pair to each side.
ip -n "$NS_KB" link add br0 type bridge
ip -n "$NS_KB" link set br0 up
for i in 1 2; do
    ns=${P}k$i
    ip -n "$NS_KB" link add p$i type veth peer name e$i netns "$ns"
    ip -n "$NS_KB" link set p$i master br0 up
    host "$ns" e$i 10.77.0.$i/24
done

# (3) vde: vde_switch makes and holds the two TAPs; move them.
vde_switch -t "$TAP_V1" -t "$TAP_V2" -d -s "$W/vde.ctl" -M "$W/vde.mgmt" -p "$W/vde.pid"
for _ in $(seq 50); do ip link show "$TAP_V2" >/dev/null 2>&1 && break; sleep 0.1; done
ip link set "$TAP_V1" netns "$NS_V1"; ip link set "$TAP_V2" netns "$NS_V2"
host "$NS_V1" "$TAP_V1" 10.77.0.1/24; host "$NS_V2" "$TAP_V2" 10.77.0.2/24

PATHS="ifnet kernel vde"
dev1() { case $1 in ifnet) echo "$TAP_I0";; kernel) echo e1;; vde) echo "$TAP_V1";; esac; }
dev2() { case $1 in ifnet) echo "$TAP_I1";; kernel) echo e2;; vde) echo "$TAP_V2";; esac; }
# Where frames are lost: the sender's device (tx_dropped), the
# receiver's device (rx_dropped), the receiver's socket (UDP RcvbufErrors).
counters() {
    local p=$1 a b
    a=$(ip netns exec "$(ns1 $p)" cat /sys/class/net/"$(dev1 $p)"/statistics/tx_dropped)
    b=$(ip netns exec "$(ns2 $p)" cat /sys/class/net/"$(dev2 $p)"/statistics/rx_dropped)
    echo "$a $b $(ip netns exec "$(ns2 $p)" awk '/^Udp:/ { if (h) { print $6 } else { h = 1 } }' /proc/net/snmp)"
}
ns1() { case $1 in ifnet) echo "$NS_I1";; kernel) echo "$NS_K1";; vde) echo "$NS_V1";; esac; }
ns2() { case $1 in ifnet) echo "$NS_I2";; kernel) echo "$NS_K2";; vde) echo "$NS_V2";; esac; }

# Servers (pids kept for cleanup), links warmed up (ARP, bridge learning).
for p in $PATHS; do
    ip netns exec "$(ns2 $p)" iperf3 -s -D -B 10.77.0.2 -I "$W/iperf-$p.pid"
done
sleep 0.5
for p in $PATHS; do wait_ping "$(ns1 $p)" 10.77.0.2 "$p path"; done

# The switch's CPU time (user+system, all threads) around each iperf3 run.
IFNETD_PID=$(daemon_pid "$W/ifnetd.sock")
VDE_PID=$(cat "$W/vde.pid")
cpu() { # path: CPU ticks used so far by its switch process (none: kernel)
    local pid
    case $1 in ifnet) pid=$IFNETD_PID;; vde) pid=$VDE_PID;; *) echo 0; return;; esac
    awk '{ print $14 + $15 }' "/proc/$pid/stat"
}
getconf CLK_TCK > "$R/clk_tck"
for r in $(seq "$REPS"); do
    for p in $PATHS; do
        echo "rep $r/$REPS: $p" >&2
        # Not -q: every reply's time, for the percentiles.
        ip netns exec "$(ns1 $p)" ping -c "$PINGS" -i 0.02 10.77.0.2 > "$R/ping-$p-$r.txt"
        counters $p > "$R/tcp-$p-$r.cnt"
        c0=$(cpu $p)
        ip netns exec "$(ns1 $p)" iperf3 -c 10.77.0.2 -t "$SECS" -J > "$R/tcp-$p-$r.json"
        echo "$(( $(cpu $p) - c0 ))" > "$R/tcp-$p-$r.cpu"
        counters $p >> "$R/tcp-$p-$r.cnt"
        sleep 0.5
        counters $p > "$R/udp-$p-$r.cnt"
        c0=$(cpu $p)
        ip netns exec "$(ns1 $p)" iperf3 -c 10.77.0.2 -t "$SECS" -u -l 64 -b 0 -J > "$R/udp-$p-$r.json"
        echo "$(( $(cpu $p) - c0 ))" > "$R/udp-$p-$r.cpu"
        counters $p >> "$R/udp-$p-$r.cnt"
        sleep 0.5
    done
done
brconfig bridge0 > "$R/brconfig.txt" 2>&1 || true
ifconfig -v virt0 > "$R/virt0.txt" 2>&1 || true
ifconfig -v virt1 > "$R/virt1.txt" 2>&1 || true

python3 bench/bridge.py "$R" "$REPS" "$SECS" "$PINGS" | tee "$OUT"
