#!/usr/bin/env python3
"""Table for bench/ping.sh: reads the raw ping/ifping outputs in RAWDIR and
prints RTT min/avg/max (medians over REPS runs) and flood replies/s.
Usage: ping.py RAWDIR REPS PINGS FLOOD
"""
import os, platform, re, statistics, sys, time

raw, reps, pings, flood = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
med = statistics.median


def parse(name):
    t = open(os.path.join(raw, name)).read()
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", t)
    sent, got = int(m.group(1)), int(m.group(2))
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", t)
    rtt = [float(x) * 1e3 for x in m.groups()] if m else [float("nan")] * 4
    m = re.search(r"time (\d+)ms", t)
    secs = int(m.group(1)) / 1e3 if m and int(m.group(1)) > 0 else flood
    m = re.search(r"queue drops during flood: (-?\d+)", t)
    drops = int(m.group(1)) if m else None
    times = sorted(float(x) * 1e3 for x in re.findall(r"time=([\d.]+) ms", t))
    pct = lambda q: times[min(len(times) - 1, int(q * len(times)))] if times else float("nan")
    return {"sent": sent, "got": got, "rtt": rtt, "secs": secs, "drops": drops,
            "p50": pct(0.5), "p99": pct(0.99)}


def runs(prefix):
    return [parse(f"{prefix}-{r}.txt") for r in range(1, reps + 1)]


out = [
    f"# ifnet ping benchmark, {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, "
    f"{os.cpu_count()} cores, Linux {platform.release()}",
    f"# bash bench/ping.sh: {pings} pings at -i 0.01 per path and run; median of {reps} runs",
    f"{'RTT (us)':<58} {'min':>6} {'p50':>6} {'p99':>6} {'avg':>6} {'max':>6} {'loss':>5}",
]
rtt = {}
for key, label in [
    ("a", "(a) daemon -> daemon over shmif bus (ifping)"),
    ("b", "(b) namespace -> daemon via virt (ping)"),
    ("b2", "    daemon -> namespace via virt (ifping), reference"),
    ("c", "(c) namespace -> namespace over kernel bridge (ping)"),
    ("e", "(e) ns -> ns across two daemons' bridges joined by a bus"),
    ("el", "    ns -> ns across two Linux bridges joined by a veth"),
]:
    rs = runs(key)
    mn, av, mx = (med(x["rtt"][i] for x in rs) for i in range(3))
    p50, p99 = med(x["p50"] for x in rs), med(x["p99"] for x in rs)
    lost = sum(x["sent"] - x["got"] for x in rs)
    rtt[key] = av
    out.append(f"{label:<58} {mn:>6.0f} {p50:>6.0f} {p99:>6.0f} {av:>6.0f} {mx:>6.0f} {lost:>5}")
out.append(
    f"ratios of avg RTT: (a)/(c) {rtt['a'] / rtt['c']:.2f}, (b)/(c) {rtt['b'] / rtt['c']:.2f}, "
    f"(e)/(e Linux) {rtt['e'] / rtt['el']:.2f}"
)
out += [
    "",
    f"flood (ping -f -w {flood:g} from a namespace)      {'sent':>8} {'replies':>8} {'replies/s':>10} {'lost%':>6} {'avg us':>7} {'virt0 qdrops':>12}",
]
rate = {}
for key, label in [
    ("fd1", "ping -f        -> daemon via virt"),
    ("fk1", "ping -f        -> Linux over kernel bridge"),
    ("fd32", "ping -f -l 32  -> daemon via virt"),
    ("fk32", "ping -f -l 32  -> Linux over kernel bridge"),
]:
    rs = runs(key)
    r = sorted(rs, key=lambda x: x["got"] / x["secs"])[len(rs) // 2]  # the median run
    rate[key] = r["got"] / r["secs"]
    lost = 100.0 * (r["sent"] - r["got"]) / r["sent"] if r["sent"] else 0.0
    dr = "" if r["drops"] is None else str(r["drops"])
    out.append(
        f"{label:<46} {r['sent']:>8} {r['got']:>8} {rate[key]:>10.0f} {lost:>6.2f} {r['rtt'][1]:>7.0f} {dr:>12}"
    )
out.append(
    f"replies/s ratio daemon/Linux: ping -f {rate['fd1'] / rate['fk1']:.2f}, ping -f -l 32 {rate['fd32'] / rate['fk32']:.2f}"
)
allowed = 20000 * (flood + 1)  # 20,000/s plus the one-second burst
verdicts = []
for key, label in [("fd1", "ping -f"), ("fd32", "ping -f -l 32")]:
    rs = runs(key)
    drops = sum(x["drops"] or 0 for x in rs)
    best = max(x["got"] for x in rs)
    hit = drops > 0 or best >= 0.95 * allowed
    verdicts.append(
        f"{label}: {'REACHED' if hit else 'not reached'} "
        f"(best {best} replies of at most {allowed:.0f}; virt0 queue drops (echo limit or stack queue full) in {reps} runs: {drops})"
    )
out.append(
    "daemon echo limit, 20,000 replies/s with a burst of one second "
    f"(at most {allowed:.0f} replies in {flood:g} s = {allowed / flood:.0f}/s):"
)
out += ["  " + v for v in verdicts]
sys.stdout.write("\n".join(out) + "\n")
