#!/usr/bin/env bash
# One command: a QEMU guest (scripts/guest.sh, virtio-net-pci) reached from
# a namespace two ways, side by side in the same run:
#   ifnet   -netdev stream on tap0; bridge0 = tap0 + virt0, virt0's host
#           TAP in the namespace
#   kernel  -netdev tap,vnet_hdr=off (the like-for-like path: a stream
#           carries no offloads) on a Linux bridge in a namespace, a veth
#           pair to the client's namespace
# Measures ping RTT and iperf3 TCP down (namespace -> guest) and up (-R),
# REPS times each (median reported), with iperf3's retransmits and, for
# ifnet, tap0's output errors (frames the client queue dropped; the sum
# over every run, both ways).
# Writes OUT (default bench/results/vm.txt). Needs root. Cleans up.
# Environment: REPS (3), SECS (5, per iperf3 run), PINGS (200),
# ACCEL (tcg; kvm where it works), OUT, BIN (see bench/lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_init vm --root
REPS=${REPS:-3} SECS=${SECS:-5} PINGS=${PINGS:-200} ACCEL=${ACCEL:-tcg}
G=target/guest-bench
GUEST_TOOLS=iperf3 timeout 300 bash scripts/guest.sh "$G"

P=ifv$$                                   # prefix of every name (<= 10 chars)
NS_I=${P}i NS_K=${P}k NS_KB=${P}b
TAP_I=${P}t
export IFNET_SERVER=unix://$W/ifnetd.sock
netns "$NS_I" "$NS_K" "$NS_KB"

# boot NAME NETDEV... : start a serving guest in the background; its
# console goes to $W/NAME.console.
boot() {
    local name=$1 ip=$2; shift 2
    qemu-system-x86_64 -nodefaults -display none -no-reboot \
        -machine accel="$ACCEL" -m 256 -smp 1 \
        -kernel "$G/vmlinuz" -initrd "$G/initramfs.gz" \
        -append "console=ttyS0 quiet panic=-1 guest_ip=$ip/24 guest_peer=${ip%.*}.1 serve=1" \
        -serial "file:$W/$name.console" -pidfile "$W/$name.pid" \
        "$@" -device virtio-net-pci,netdev=n0 </dev/null >/dev/null 2>&1 &
}
serving() { # name: wait until the guest serves iperf3
    for _ in $(seq 600); do
        grep -q "guest: serving" "$W/$1.console" 2>/dev/null && return
        grep -q "guest: no iperf3" "$W/$1.console" 2>/dev/null && break
        sleep 0.1
    done
    echo "vm bench: the $1 guest did not come up:" >&2; cat "$W/$1.console" >&2; exit 1
}

# (1) ifnet: bridge0 = virt0 + tap0; virt0's host TAP in NS_I.
ifconfig virt0 create; ifconfig virt0 linkstr "$TAP_I"; ifconfig virt0 up
ifconfig tap0 create
ifconfig bridge0 create
brconfig bridge0 add virt0 add tap0 up
ip link set "$TAP_I" netns "$NS_I"
host "$NS_I" "$TAP_I" 10.78.0.1/24
boot ifnet 10.78.0.2 -netdev "stream,id=n0,server=off,addr.type=unix,addr.path=$W/ifnetd.sock.d/tap0"

# (2) kernel: QEMU's own TAP in NS_KB on br0, a veth pair to NS_K.
ip -n "$NS_KB" link add br0 type bridge
ip -n "$NS_KB" link set br0 up
ip -n "$NS_KB" link add p1 type veth peer name e1 netns "$NS_K"
ip -n "$NS_KB" link set p1 master br0 up
host "$NS_K" e1 10.79.0.1/24
ip netns exec "$NS_KB" bash -c "$(declare -f boot); W=$W G=$G ACCEL=$ACCEL; boot kernel 10.79.0.2 -netdev tap,id=n0,ifname=qt0,script=no,downscript=no,vnet_hdr=off"
for _ in $(seq 100); do ip -n "$NS_KB" link show qt0 >/dev/null 2>&1 && break; sleep 0.1; done
ip -n "$NS_KB" link set qt0 master br0 up

serving ifnet; serving kernel
ns() { case $1 in ifnet) echo "$NS_I";; kernel) echo "$NS_K";; esac; }
guest() { case $1 in ifnet) echo 10.78.0.2;; kernel) echo 10.79.0.2;; esac; }
for p in ifnet kernel; do wait_ping "$(ns $p)" "$(guest $p)" "the $p guest"; done

oerrors() { ifconfig -v tap0 | awk '/output:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^errors?/) print $i }' | head -1; }
for r in $(seq "$REPS"); do
    for p in ifnet kernel; do
        echo "rep $r/$REPS: $p" >&2
        ip netns exec "$(ns $p)" ping -c "$PINGS" -i 0.02 -q "$(guest $p)" > "$R/ping-$p-$r.txt"
        for dir in down up; do
            flag=""; [ $dir = up ] && flag=-R
            e0=$(oerrors)
            ip netns exec "$(ns $p)" iperf3 -c "$(guest $p)" -t "$SECS" $flag -J > "$R/$dir-$p-$r.json"
            [ $p = ifnet ] && echo "$(( $(oerrors) - ${e0:-0} ))" > "$R/$dir-$p-$r.drops"
            sleep 0.5
        done
    done
done
ifconfig -v tap0 > "$R/tap0.txt" 2>&1 || true

python3 - "$R" "$REPS" "$SECS" "$PINGS" "$ACCEL" <<'EOF' | tee "$OUT"
import json, re, statistics, sys
R, reps, secs, pings, accel = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def med(xs): return statistics.median(xs) if xs else float("nan")
print(f"vm bench: guest virtio-net-pci, accel {accel}, {reps} reps, iperf3 {secs} s, {pings} pings; medians")
print(f"{'path':8} {'down Gbit/s':>12} {'retr':>6} {'up Gbit/s':>10} {'retr':>6} {'rtt ms':>8} {'tap drops':>10}")
row = {}
for p in ("ifnet", "kernel"):
    out = {}
    for d in ("down", "up"):
        bps, retr, drops = [], [], []
        for r in range(1, reps + 1):
            j = json.load(open(f"{R}/{d}-{p}-{r}.json"))
            bps.append(j["end"]["sum_received"]["bits_per_second"] / 1e9)
            retr.append(j["end"]["sum_sent"].get("retransmits", 0))
            try: drops.append(int(open(f"{R}/{d}-{p}-{r}.drops").read()))
            except (OSError, ValueError): pass
        out[d] = (med(bps), med(retr), sum(drops) if drops else None)
    rtt = []
    for r in range(1, reps + 1):
        m = re.search(r"= [\d.]+/([\d.]+)/", open(f"{R}/ping-{p}-{r}.txt").read())
        if m: rtt.append(float(m.group(1)))
    row[p] = (out, med(rtt))
    drops = [x for x in (out["down"][2], out["up"][2]) if x is not None]
    print(f"{p:8} {out['down'][0]:12.2f} {out['down'][1]:6.0f} {out['up'][0]:10.2f} {out['up'][1]:6.0f} {med(rtt):8.3f} {(sum(drops) if drops else '-'):>10}")
i, k = row["ifnet"], row["kernel"]
print(f"ifnet/kernel: down {i[0]['down'][0] / k[0]['down'][0]:.2f}x, up {i[0]['up'][0] / k[0]['up'][0]:.2f}x, rtt {i[1] / k[1]:.2f}x")
EOF
