#!/usr/bin/env python3
"""Table for bench/bridge.sh: reads the raw iperf3 JSON and ping outputs in
RAWDIR and prints the results (medians over REPS runs) with ratios.
Usage: bridge.py RAWDIR REPS SECS PINGS
"""
import json, os, platform, re, statistics, sys, time

raw, reps, secs, pings = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
PATHS = ["ifnet", "kernel", "vde"]


def tcp(p, r):
    e = json.load(open(os.path.join(raw, f"tcp-{p}-{r}.json")))["end"]
    return e["sum_received"]["bits_per_second"] / 1e9


def udp(p, r):
    e = json.load(open(os.path.join(raw, f"udp-{p}-{r}.json")))["end"]
    rx, tx = e["sum_received"], e["sum_sent"]
    got = rx["packets"] - rx["lost_packets"]
    return {
        "rx": got / rx["seconds"] / 1e3,
        "tx": tx["packets"] / tx["seconds"] / 1e3,
        "loss": 100.0 * rx["lost_packets"] / rx["packets"] if rx["packets"] else 100.0,
    }


def ping(p, r):
    t = open(os.path.join(raw, f"ping-{p}-{r}.txt")).read()
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", t)
    return [float(x) * 1e3 for x in m.groups()]  # us: min avg max mdev


med = statistics.median
res = {}
for p in PATHS:
    u = [udp(p, r) for r in range(1, reps + 1)]
    pg = [ping(p, r) for r in range(1, reps + 1)]
    res[p] = {
        "tcp": med(tcp(p, r) for r in range(1, reps + 1)),
        "tcp_all": [tcp(p, r) for r in range(1, reps + 1)],
        "udp_rx": med(x["rx"] for x in u),
        "udp_all": [x["rx"] for x in u],
        "udp_tx": med(x["tx"] for x in u),
        "udp_loss": med(x["loss"] for x in u),
        "rtt_min": med(x[0] for x in pg),
        "rtt_avg": med(x[1] for x in pg),
        "rtt_all": [x[1] for x in pg],
        "rtt_max": med(x[2] for x in pg),
    }

rows = [
    ("TCP throughput (Gbit/s)", "tcp", "{:.3f}"),
    ("UDP-64 received (kpps)", "udp_rx", "{:.1f}"),
    ("UDP-64 sent (kpps)", "udp_tx", "{:.1f}"),
    ("UDP-64 loss (%)", "udp_loss", "{:.1f}"),
    ("ping RTT min (us)", "rtt_min", "{:.0f}"),
    ("ping RTT avg (us)", "rtt_avg", "{:.0f}"),
    ("ping RTT max (us)", "rtt_max", "{:.0f}"),
]
i, k, v = res["ifnet"], res["kernel"], res["vde"]
out = [
    f"# ifnet bridge benchmark, {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, "
    f"{os.cpu_count()} cores, Linux {platform.release()}",
    "# bash bench/bridge.sh: two namespaces through (ifnet) ifnetd bridge0 = virt0 + virt1,",
    "#   (kernel) a Linux bridge with veth pairs, (vde) vde_switch -t TAP1 -t TAP2;",
    f"#   iperf3 -t {secs} TCP; iperf3 -t {secs} -u -l 64 -b 0; ping -c {pings} -i 0.02;",
    f"#   median of {reps} runs, paths taken in turn within each run",
    f"{'metric':<26} {'ifnet':>9} {'kernel':>9} {'vde':>9} {'ifnet/vde':>10} {'ifnet/kern':>10}",
]
for name, key, fmt in rows:
    ratio = lambda a, b: f"{a / b:.2f}" if b else "-"
    out.append(
        f"{name:<26} {fmt.format(i[key]):>9} {fmt.format(k[key]):>9} {fmt.format(v[key]):>9}"
        f" {ratio(i[key], v[key]):>10} {ratio(i[key], k[key]):>10}"
    )
out.append("runs: " + "; ".join(
    f"{p} TCP " + "/".join(f"{x:.2f}" for x in res[p]["tcp_all"])
    + " UDP " + "/".join(f"{x:.0f}" for x in res[p]["udp_all"])
    + " RTT " + "/".join(f"{x:.0f}" for x in res[p]["rtt_all"])
    for p in PATHS))


def verdict(ok):
    return "met" if ok else "NOT met"


out += [
    "targets (issue): "
    f"TCP >= 3x VDE: {i['tcp'] / v['tcp']:.2f}x {verdict(i['tcp'] >= 3 * v['tcp'])}; "
    f"UDP-64 >= 1.3x VDE: {i['udp_rx'] / v['udp_rx']:.2f}x {verdict(i['udp_rx'] >= 1.3 * v['udp_rx'])}; "
    f"RTT <= VDE: {i['rtt_avg']:.0f} vs {v['rtt_avg']:.0f} us {verdict(i['rtt_avg'] <= v['rtt_avg'])}",
]
sys.stdout.write("\n".join(out) + "\n")
