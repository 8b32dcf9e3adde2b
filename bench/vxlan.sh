#!/usr/bin/env bash
# One command: the vxlan benchmark. Two hosts (network namespaces) on one
# VXLAN segment (VNI 42, port 4789) over a veth underlay, three ways in the
# same run:
#   linux   a Linux kernel vxlan at both ends; iperf3 runs on them
#   mixed   ifnetd at the client's end (bridge0 = vxlan0 + virt0, the
#           virt's host TAP in the client's namespace), Linux at the other
#   ifnet   ifnetd at both ends, each with bridge0 = vxlan0 + virt0
# Each ifnetd runs in a namespace of its own (its VTEP), so the client's
# traffic crosses a host TAP, the daemon and the underlay. Measures iperf3
# TCP both ways (-R: the server sends), iperf3 UDP with 64-byte payloads
# (-b 0), and ping RTT, each path in turn, REPS times (median reported),
# and writes OUT (default bench/results/vxlan.txt)
# with the ratios to the Linux pair. Needs root. Cleans up.
# Environment: REPS (3), SECS (5, per iperf3 run), PINGS (200), OUT, BIN
# (see bench/lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_init vxlan --root
REPS=${REPS:-3} SECS=${SECS:-5} PINGS=${PINGS:-200}

P=ivx$$                                  # prefix of every name (<= 10 chars)
# Per path: c (client host), s (server host), and for ifnet ends the
# daemon's namespace (cd, sd) holding the VTEP.
netns "${P}lc" "${P}ls" "${P}mc" "${P}mcd" "${P}ms" "${P}ic" "${P}icd" "${P}is" "${P}isd"

underlay() { # nsA nsB: a veth pair, 10.88.0.1 on A, 10.88.0.2 on B
    ip link add u1 netns "$1" type veth peer name u2 netns "$2"
    host "$1" u1 10.88.0.1/24
    host "$2" u2 10.88.0.2/24
}
linux_vtep() { # ns local remote overlay-addr
    ip -n "$1" link add vx0 type vxlan id 42 local "$2" remote "$3" dstport 4789 dev u${2##*.}
    host "$1" vx0 "$4/24"
    # Over a veth no NIC finishes the inner checksums the kernel leaves.
    ip netns exec "$1" ethtool -K vx0 tx off >/dev/null
}
ifnet_vtep() { # daemon-ns host-ns local remote overlay-addr
    local sock=$W/$1.sock tap=${1}t
    ip netns exec "$1" ifnetd -s "$sock" >/dev/null 2>&1
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
    export IFNET_SERVER=unix://$sock
    ifconfig vxlan0 create vxlanid 42 vxlanlocal "$3" vxlanremote "$4" up
    ifconfig virt0 create linkstr "$tap" mtu 1450 up
    ifconfig bridge0 create mtu 1450
    brconfig bridge0 add vxlan0 add virt0 up
    ip -n "$1" link set "$tap" netns "$2"
    ip -n "$2" addr add "$5/24" dev "$tap"; ip -n "$2" link set "$tap" mtu 1450 up
    unset IFNET_SERVER
}

# (1) linux: vx0 at both ends.
underlay "${P}lc" "${P}ls"
linux_vtep "${P}lc" 10.88.0.1 10.88.0.2 10.99.0.1
linux_vtep "${P}ls" 10.88.0.2 10.88.0.1 10.99.0.2
# (2) mixed: ifnetd for the client, Linux for the server.
underlay "${P}mcd" "${P}ms"
ifnet_vtep "${P}mcd" "${P}mc" 10.88.0.1 10.88.0.2 10.99.0.1
linux_vtep "${P}ms" 10.88.0.2 10.88.0.1 10.99.0.2
# (3) ifnet: ifnetd at both ends.
underlay "${P}icd" "${P}isd"
ifnet_vtep "${P}icd" "${P}ic" 10.88.0.1 10.88.0.2 10.99.0.1
ifnet_vtep "${P}isd" "${P}is" 10.88.0.2 10.88.0.1 10.99.0.2

PATHS="linux mixed ifnet"
cns() { case $1 in linux) echo "${P}lc";; mixed) echo "${P}mc";; ifnet) echo "${P}ic";; esac; }
sns() { case $1 in linux) echo "${P}ls";; mixed) echo "${P}ms";; ifnet) echo "${P}is";; esac; }
for p in $PATHS; do
    ip netns exec "$(sns $p)" iperf3 -s -D -B 10.99.0.2 -I "$W/iperf-$p.pid"
done
sleep 0.5
for p in $PATHS; do wait_ping "$(cns $p)" 10.99.0.2 "the $p path"; done

for r in $(seq "$REPS"); do
    for p in $PATHS; do
        echo "rep $r/$REPS: $p" >&2
        ip netns exec "$(cns $p)" ping -c "$PINGS" -i 0.02 -q 10.99.0.2 > "$R/ping-$p-$r.txt"
        ip netns exec "$(cns $p)" iperf3 -c 10.99.0.2 -t "$SECS" -J > "$R/tcp-$p-$r.json"
        sleep 0.5
        ip netns exec "$(cns $p)" iperf3 -c 10.99.0.2 -t "$SECS" -R -J > "$R/tcpr-$p-$r.json"
        sleep 0.5
        ip netns exec "$(cns $p)" iperf3 -c 10.99.0.2 -t "$SECS" -u -l 64 -b 0 -J > "$R/udp-$p-$r.json"
        sleep 0.5
    done
done

python3 - "$R" "$REPS" "$SECS" "$PINGS" <<'EOF' | tee "$OUT"
import json, os, platform, re, statistics, sys, time
raw, reps, secs, pings = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
paths = ["linux", "mixed", "ifnet"]
def tcp(p, r, kind="tcp"):
    return json.load(open(f"{raw}/{kind}-{p}-{r}.json"))["end"]["sum_received"]["bits_per_second"] / 1e9
def tcpr(p, r):
    return tcp(p, r, "tcpr")
def udp(p, r):
    e = json.load(open(f"{raw}/udp-{p}-{r}.json"))["end"]["sum_received"]
    return (e["packets"] - e["lost_packets"]) / float(secs) / 1e3
def rtt(p, r):
    m = re.search(r"= [\d.]+/([\d.]+)/", open(f"{raw}/ping-{p}-{r}.txt").read())
    return float(m.group(1)) * 1000
rows = [("TCP client->server (Gbit/s)", tcp, "{:.3f}"),
        ("TCP server->client (Gbit/s)", tcpr, "{:.3f}"), ("UDP-64 received (kpps)", udp, "{:.1f}"),
        ("ping RTT avg (us)", rtt, "{:.0f}")]
print(f"# ifnet vxlan benchmark, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
      f"{os.cpu_count()} cores, Linux {platform.release()}")
print("# bash bench/vxlan.sh: two namespaces on one VXLAN segment over a veth underlay:")
print("#   (linux) Linux vxlan <-> Linux vxlan, (mixed) ifnetd bridge0(vxlan0, virt0) <-> Linux vxlan,")
print("#   (ifnet) ifnetd <-> ifnetd; Linux ends with tx checksum offload off (veth underlay);")
print(f"#   iperf3 -t {secs} TCP (and -R: the server sends); iperf3 -u -l 64 -b 0; ping -c {pings} -i 0.02; median of {reps} runs")
print(f"{'metric':28}{'linux':>10}{'mixed':>10}{'ifnet':>10}{'mixed/lin':>11}{'ifnet/lin':>11}")
for name, f, fmt in rows:
    v = {p: statistics.median(f(p, r) for r in range(1, reps + 1)) for p in paths}
    print(f"{name:28}" + "".join(f"{fmt.format(v[p]):>10}" for p in paths)
          + f"{v['mixed'] / v['linux']:>11.2f}{v['ifnet'] / v['linux']:>11.2f}")
EOF
