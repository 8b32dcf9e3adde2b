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


def cpu(kind, p, r):
    """The switch process's CPU use during a run, in % of one core."""
    if p == "kernel":
        return float("nan")
    ticks = int(open(os.path.join(raw, f"{kind}-{p}-{r}.cpu")).read())
    hz = int(open(os.path.join(raw, "clk_tck")).read())
    return 100.0 * ticks / hz / float(secs)


def tcp_txd(p, r):
    """Frames dropped by the sender's device (ns1) during the TCP run."""
    try:
        c = [list(map(int, l.split())) for l in open(os.path.join(raw, f"tcp-{p}-{r}.cnt"))]
        return c[1][0] - c[0][0]
    except (OSError, ValueError, IndexError):
        return float("nan")


def retrans(p, r):
    e = json.load(open(os.path.join(raw, f"tcp-{p}-{r}.json")))["end"]
    return e["sum_sent"].get("retransmits", 0)


def udp(p, r):
    e = json.load(open(os.path.join(raw, f"udp-{p}-{r}.json")))["end"]
    rx, tx = e["sum_received"], e["sum_sent"]
    got = rx["packets"] - rx["lost_packets"]
    sent = tx["packets"] or 1
    try:  # counters before and after: tx_dropped rx_dropped RcvbufErrors
        c = [list(map(int, l.split())) for l in open(os.path.join(raw, f"udp-{p}-{r}.cnt"))]
        txd, rxd, rcvbuf = (b - a for a, b in zip(c[0], c[1]))
    except (OSError, ValueError, IndexError):
        txd = rxd = rcvbuf = float("nan")
    return {
        "fwd": (tx["packets"] - txd) / tx["seconds"] / 1e3,
        "txd": 100.0 * txd / sent,
        "rxd": 100.0 * rxd / sent,
        "rcvbuf": 100.0 * rcvbuf / sent,
        "mid": 100.0 * (rx["lost_packets"] - txd - rxd - rcvbuf) / sent,
        "rx": got / rx["seconds"] / 1e3,
        "tx": tx["packets"] / tx["seconds"] / 1e3,
        "loss": 100.0 * rx["lost_packets"] / rx["packets"] if rx["packets"] else 100.0,
    }


def ping(p, r):
    t = open(os.path.join(raw, f"ping-{p}-{r}.txt")).read()
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", t)
    v = [float(x) * 1e3 for x in m.groups()]  # us: min avg max mdev
    times = sorted(float(x) * 1e3 for x in re.findall(r"time=([\d.]+) ms", t))
    pct = lambda q: times[min(len(times) - 1, int(q * len(times)))] if times else float("nan")
    return v + [pct(0.5), pct(0.99)]  # and p50 p99


med = statistics.median
res = {}
for p in PATHS:
    u = [udp(p, r) for r in range(1, reps + 1)]
    pg = [ping(p, r) for r in range(1, reps + 1)]
    res[p] = {
        "tcp": med(tcp(p, r) for r in range(1, reps + 1)),
        "tcp_rtx": med(retrans(p, r) for r in range(1, reps + 1)),
        "tcp_cpu": med(cpu("tcp", p, r) for r in range(1, reps + 1)),
        "udp_cpu": med(cpu("udp", p, r) for r in range(1, reps + 1)),
        "tcp_txd": med(tcp_txd(p, r) for r in range(1, reps + 1)),
        "tcp_all": [tcp(p, r) for r in range(1, reps + 1)],
        "udp_rx": med(x["rx"] for x in u),
        "udp_all": [x["rx"] for x in u],
        "udp_tx": med(x["tx"] for x in u),
        "udp_loss": med(x["loss"] for x in u),
        "udp_fwd": med(x["fwd"] for x in u),
        "udp_txd": med(x["txd"] for x in u),
        "udp_mid": med(x["mid"] for x in u),
        "udp_rxd": med(x["rxd"] for x in u),
        "udp_rcvbuf": med(x["rcvbuf"] for x in u),
        "rtt_min": med(x[0] for x in pg),
        "rtt_avg": med(x[1] for x in pg),
        "rtt_all": [x[1] for x in pg],
        "rtt_max": med(x[2] for x in pg),
        "rtt_p50": med(x[4] for x in pg),
        "rtt_p99": med(x[5] for x in pg),
    }

rows = [
    ("TCP throughput (Gbit/s)", "tcp", "{:.3f}"),
    ("TCP retransmits", "tcp_rtx", "{:.0f}"),
    ("TCP: ns1 dev tx_drop", "tcp_txd", "{:.0f}"),
    ("TCP: switch CPU (% core)", "tcp_cpu", "{:.0f}"),
    ("UDP-64 received (kpps)", "udp_rx", "{:.1f}"),
    ("UDP-64 sent (kpps)", "udp_tx", "{:.1f}"),
    ("UDP-64 into switch (kpps)", "udp_fwd", "{:.1f}"),
    ("UDP: switch CPU (% core)", "udp_cpu", "{:.0f}"),
    ("UDP-64 loss (%)", "udp_loss", "{:.1f}"),
    ("  of sent: ns1 dev tx_drop %", "udp_txd", "{:.1f}"),
    ("  residual (in switch) %", "udp_mid", "{:.1f}"),
    ("  ns2 dev rx_drop %", "udp_rxd", "{:.1f}"),
    ("  ns2 UDP RcvbufErrors %", "udp_rcvbuf", "{:.1f}"),
    ("ping RTT min (us)", "rtt_min", "{:.0f}"),
    ("ping RTT p50 (us)", "rtt_p50", "{:.0f}"),
    ("ping RTT p99 (us)", "rtt_p99", "{:.0f}"),
    ("ping RTT avg (us)", "rtt_avg", "{:.0f}"),
    ("ping RTT max (us)", "rtt_max", "{:.0f}"),
]
RATIOS = {"tcp", "udp_rx", "udp_tx", "udp_fwd", "rtt_min", "rtt_p50", "rtt_p99", "rtt_avg", "rtt_max"}
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
def show(fmt):
    """A formatter that prints a rounded-away negative zero as 0."""
    def f(x):
        if x != x:  # NaN: not applicable
            return "-"
        t = fmt.format(x)
        return t[1:] if t.startswith("-") and float(t) == 0 else t
    return f


for name, key, fmt in rows:
    fmt = show(fmt)
    ratio = lambda a, b: f"{a / b:.2f}" if b and key in RATIOS else "-"
    out.append(
        f"{name:<26} {fmt(i[key]):>9} {fmt(k[key]):>9} {fmt(v[key]):>9}"
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
for f in ("virt0.txt", "virt1.txt"):  # ifnet's own counters after the run
    try:
        lines = open(os.path.join(raw, f)).read().splitlines()
    except OSError:
        continue
    name = lines[0].split(":")[0] if lines else f
    out += [f"ifnetd {name} {l.strip()}" for l in lines if l.strip().startswith(("input:", "output:"))]
sys.stdout.write("\n".join(out) + "\n")
