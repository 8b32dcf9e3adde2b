#!/usr/bin/env python3
"""MAC flood: 1,000,000 random source addresses into bridge0 (maxaddr
100000) through a tap member, while a known flow between two fixed hosts
goes on. Checks that the cache stops at maxaddr, that the daemon's memory
stays bounded, and that the known flow keeps arriving where it should.
Writes $OUT (default bench/results/macflood.txt). Run: bash bench/macflood.sh"""
import os, random, socket, struct, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
FLOOD = int(os.environ.get("FLOOD", "1000000"))
MAXADDR = 100000
A, B = bytes.fromhex("02000000000a"), bytes.fromhex("02000000000b")
NOBODY = bytes.fromhex("020000000099")  # a unicast address no one has


def frame(dst, src, tag=b""):
    return dst + src + b"\x88\xb5" + tag.ljust(46, b"\0")


def send(sock, f):
    sock.sendall(struct.pack(">I", len(f)) + f)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as fh:
        return int(next(l for l in fh if l.startswith("VmRSS")).split()[1])


def main():
    tmp = tempfile.mkdtemp(prefix="ifnet-flood-")
    sockp = os.path.join(tmp, "ifnetd.sock")
    env = dict(os.environ, IFNET_SERVER=sockp)
    d = subprocess.Popen([os.path.join(BIN, "ifnetd"), "-f", "-s", sockp], stderr=subprocess.DEVNULL)
    try:
        while not os.path.exists(sockp):
            time.sleep(0.01)
        ifc = lambda *a: subprocess.run([os.path.join(BIN, "ifconfig"), *a], env=env, check=True)
        brc = lambda *a: subprocess.run([os.path.join(BIN, "brconfig"), *a], env=env, check=True,
                                        capture_output=True, text=True).stdout
        ifc("tap0", "create"); ifc("tap1", "create"); ifc("bridge0", "create")
        # The flood is unknown unicast, kept off tap1 (-discover) so that
        # what reaches tap1 measures the bridge, not tap1's reader.
        brc("bridge0", "add", "tap0", "add", "tap1", "maxaddr", str(MAXADDR), "-discover", "tap1", "up")
        t0 = socket.socket(socket.AF_UNIX); t0.connect(os.path.join(tmp, "tap0"))
        t1 = socket.socket(socket.AF_UNIX); t1.connect(os.path.join(tmp, "tap1"))
        time.sleep(0.2)
        send(t1, frame(A, B, b"hello"))  # the bridge learns B on tap1
        known = {"n": 0}
        stop = threading.Event()

        def reader():
            buf = b""
            t1.settimeout(0.5)
            while not stop.is_set():
                try:
                    data = t1.recv(1 << 20)
                except socket.timeout:
                    continue
                if not data:
                    return
                buf += data
                while len(buf) >= 4:
                    n = struct.unpack(">I", buf[:4])[0]
                    if len(buf) < 4 + n:
                        break
                    f = buf[4:4 + n]
                    buf = buf[4 + n:]
                    if f[:6] == B and f[6:12] == A:
                        known["n"] += 1

        th = threading.Thread(target=reader); th.start()
        rss0 = rss_kb(d.pid)
        rnd = random.Random(1)
        start = time.time()
        sent_known = 0
        batch = []
        for i in range(FLOOD):
            src = bytes([rnd.randrange(256) & 0xfe | 0x02]) + rnd.randbytes(5)  # unicast, local
            batch.append(struct.pack(">I", 60) + frame(NOBODY, src))
            if i % 1000 == 999:
                batch.append(struct.pack(">I", 60) + frame(B, A, b"known"))
                sent_known += 1
                t0.sendall(b"".join(batch)); batch = []
        if batch:
            t0.sendall(b"".join(batch))
        elapsed = time.time() - start
        time.sleep(1.0)
        stop.set(); th.join()
        rss1 = rss_kb(d.pid)
        entries = len([l for l in brc("bridge0", "addr").splitlines() if l.strip()])
        b_line = [l for l in brc("bridge0", "addr").splitlines() if "02:00:00:00:00:0b" in l]
        v = subprocess.run([os.path.join(BIN, "ifconfig"), "-v", "tap0"], env=env, capture_output=True, text=True).stdout
        lines = [
            f"# ifnet MAC flood, {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores",
            f"flood: {FLOOD} frames with random source MACs in {elapsed:.2f} s ({FLOOD / elapsed:,.0f} frames/s offered)",
            f"address cache entries after the flood: {entries} (maxaddr {MAXADDR})",
            f"host B still cached on tap1: {'yes: ' + b_line[0].strip() if b_line else 'NO'}",
            f"known flow A->B: {known['n']} of {sent_known} frames arrived on tap1",
            f"daemon RSS: {rss0} kB before, {rss1} kB after ({(rss1 - rss0) / 1024:.1f} MiB for the cache)",
            "tap0 counters: " + " / ".join(l.strip() for l in v.splitlines() if l.strip().startswith(("input", "output"))),
        ]
        out = "\n".join(lines) + "\n"
        path = os.environ.get("OUT") or os.path.join(ROOT, "bench", "results", "macflood.txt")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        open(path, "w").write(out)
        sys.stdout.write(out)
        ok = entries <= MAXADDR and b_line and known["n"] >= sent_known * 0.99
        sys.exit(0 if ok else 1)
    finally:
        d.terminate(); d.wait()


if __name__ == "__main__":
    main()
