#!/usr/bin/env python3
"""Control-plane benchmark: ifnet's ifconfig against iproute2's ip, same run.

1. A query: `ifconfig lo0` against a running ifnetd, and `ip link show lo`
   in a fresh network namespace; median of N runs each.
2. A 1000-command script: 250 x (create, add address, delete address,
   destroy) as separate processes, against ifnetd with ifconfig and against
   a namespace with `ip link add/ip addr add/ip addr del/ip link del` on
   ifb interfaces (this kernel has no dummy module).
Writes the figures to $OUT (default bench/results/ifconfig.txt).
"""
import os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
N_QUERY = int(os.environ.get("N_QUERY", "300"))
N_SCRIPT = 250  # x4 commands = 1000


def run(argv, env=None):
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)


def timed(argv, env=None):
    t = time.perf_counter()
    run(argv, env)
    return time.perf_counter() - t


def script_time(cmds, env=None):
    t = time.perf_counter()
    for c in cmds:
        run(c, env)
    return time.perf_counter() - t


def main():
    tmp = tempfile.mkdtemp(prefix="ifnet-bench-")
    sock = os.path.join(tmp, "ifnetd.sock")
    env = dict(os.environ, IFNET_SERVER=sock, IFNET_NO_AUTOSTART="1")
    ns = f"ifnetbench{os.getpid()}"
    run([os.path.join(BIN, "ifnetd"), "-s", sock])
    run(["ip", "netns", "add", ns])
    try:
        ifc = os.path.join(BIN, "ifconfig")
        ipns = ["ip", "-n", ns]
        # Warm up both (page cache, first connection).
        for _ in range(20):
            run([ifc, "lo0"], env)
            run(ipns + ["link", "show", "lo"])
        q_ifnet, q_ip = [], []
        for _ in range(N_QUERY):  # interleaved, so drift hits both alike
            q_ifnet.append(timed([ifc, "lo0"], env))
            q_ip.append(timed(ipns + ["link", "show", "lo"]))

        ifnet_cmds, ip_cmds = [], []
        for i in range(N_SCRIPT):
            a = f"10.{i // 250}.{i % 250}.1"
            ifnet_cmds += [
                [ifc, f"lo{i + 1}", "create"],
                [ifc, f"lo{i + 1}", "inet", f"{a}/24", "alias"],
                [ifc, f"lo{i + 1}", "inet", a, "-alias"],
                [ifc, f"lo{i + 1}", "destroy"],
            ]
            ip_cmds += [
                ipns + ["link", "add", f"dum{i}", "type", "ifb"],
                ipns + ["addr", "add", f"{a}/24", "dev", f"dum{i}"],
                ipns + ["addr", "del", f"{a}/24", "dev", f"dum{i}"],
                ipns + ["link", "del", f"dum{i}"],
            ]
        s_ifnet = script_time(ifnet_cmds, env)
        s_ip = script_time(ip_cmds)
    finally:
        subprocess.run([os.path.join(BIN, "ifnetd"), "--stop", "-s", sock])
        subprocess.run(["ip", "netns", "del", ns])

    med_ifnet, med_ip = statistics.median(q_ifnet), statistics.median(q_ip)
    lines = [
        f"# ifnet control-plane benchmark, {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores",
        f"{'what':<44} {'ifnet':>10} {'ip':>10} {'ratio':>7}",
        f"{'query median (ms), ifconfig lo0 / ip link show lo':<44} {med_ifnet*1e3:>10.3f} {med_ip*1e3:>10.3f} {med_ifnet/med_ip:>7.2f}",
        f"{'query p90 (ms)':<44} {statistics.quantiles(q_ifnet, n=10)[-1]*1e3:>10.3f} {statistics.quantiles(q_ip, n=10)[-1]*1e3:>10.3f}",
        f"{'1000-command script (s)':<44} {s_ifnet:>10.3f} {s_ip:>10.3f} {s_ifnet/s_ip:>7.2f}",
        f"targets: query ratio <= 1.5, script ratio <= 1.5",
    ]
    out = "\n".join(lines) + "\n"
    path = os.environ.get("OUT") or os.path.join(ROOT, "bench", "results", "ifconfig.txt")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(out)
    sys.stdout.write(out)


if __name__ == "__main__":
    main()
