//! shmif benchmark (run by bench/shmif.sh): one writer process and one or
//! three reader processes on a bus, 64- and 1514-byte frames, against a
//! Unix datagram socket pair and a plain memcpy loop with the same frames;
//! then shmifdump's speed on a full bus.
//!
//! Usage: shmif_bench [DIR] (bus files go to DIR, default /dev/shm).

use ifnet::Kernel;
use ifnet::cloner::KernelEnv;
use ifnet::drivers::shmif::bus::{self, Batch, Bus, BusReader, Recv, Watch};
use ifnet::frame::Frame;
use ifnet::generic;
use ifnet::ioctl::{Request, iff};
use ifnet::shmifdump::{self as dump, Dumper};
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain clock_gettime into a local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wait until `due` (monotonic ns). Spinning keeps the rate smooth: a
/// sleeping sender oversleeps and then bursts, and a burst longer than the
/// ring (0.8 ms of 10 Gbit/s) laps the readers whatever they do.
fn pace(due: u64) {
    while now_ns() < due {
        std::hint::spin_loop();
    }
}

/// Remove a bus file and the ifnet peers' sidecar next to it.
fn remove_bus(path: &Path) {
    let _ = std::fs::remove_file(path);
    let mut side = path.as_os_str().to_owned();
    side.push(bus::WAKE_SUFFIX);
    let _ = std::fs::remove_file(side);
}

fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0x5au8; len];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[0xb2, 0xa0, 1, 2, 3, 4]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&seq.to_le_bytes());
    f
}

fn seq_of(f: &[u8]) -> u32 {
    u32::from_le_bytes(f[14..18].try_into().unwrap())
}

/// A child process running `f`, reporting a line back through a pipe.
struct Kid {
    pid: libc::pid_t,
    ready: std::fs::File,
    result: std::fs::File,
}

fn pipe() -> (std::fs::File, std::fs::File) {
    let (r, w) = nix::unistd::pipe().unwrap();
    (std::fs::File::from(r), std::fs::File::from(w))
}

/// Fork (the bench is single-threaded at that point) and run `f` in the
/// child: it signals readiness on one pipe and writes its result to another.
fn fork_kid(f: impl FnOnce(&mut dyn FnMut()) -> String) -> Kid {
    let (ready_r, mut ready_w) = pipe();
    let (res_r, mut res_w) = pipe();
    // SAFETY: no other threads exist in this process when we fork.
    match unsafe { libc::fork() } {
        0 => {
            drop(ready_r);
            drop(res_r);
            let out = f(&mut || {
                ready_w.write_all(b"r").unwrap();
            });
            let _ = res_w.write_all(out.as_bytes());
            drop(res_w);
            // SAFETY: leave the child without running the parent's atexit.
            unsafe { libc::_exit(0) };
        }
        pid => {
            drop(ready_w);
            drop(res_w);
            Kid {
                pid,
                ready: ready_r,
                result: res_r,
            }
        }
    }
}

impl Kid {
    fn wait_ready(&mut self) {
        let mut b = [0u8; 1];
        self.ready.read_exact(&mut b).unwrap();
    }

    fn result(mut self) -> String {
        let mut s = String::new();
        self.result.read_to_string(&mut s).unwrap();
        let mut st = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(self.pid, &mut st, 0) };
        s
    }
}

struct Row {
    what: String,
    size: usize,
    sent: u64,
    /// Frames per second, end to end (writer start to last frame received).
    fps: f64,
    /// Fraction of frames lost, worst reader.
    loss: f64,
    note: String,
}

impl Row {
    fn gbps(&self) -> f64 {
        self.fps * self.size as f64 * 8.0 / 1e9
    }
}

/// Reader: take frames until the last one (or a second of silence).
fn bus_reader(path: &Path, count: u32, ready: &mut dyn FnMut()) -> String {
    let bus = Bus::attach(path).unwrap();
    let watch = Watch::new(&bus).unwrap();
    let mut r = BusReader::at_end(&bus);
    let mut batch = Batch::new(32);
    let mut got = 0u64;
    let mut last_seen = Instant::now();
    ready();
    let mut last_ns = 0;
    'read: loop {
        let st = r.recv_batch(&bus, &mut batch, |_| true);
        for f in &batch.frames {
            got += 1;
            last_seen = Instant::now();
            if seq_of(batch.frame(f)) == count - 1 {
                last_ns = now_ns();
                break 'read;
            }
        }
        if st == Recv::Empty {
            if last_seen.elapsed() > Duration::from_secs(1) {
                break;
            }
            watch.wait(Duration::from_millis(10));
        }
    }
    format!("{got} {last_ns} {}", r.laps)
}

/// One writer process (this one) and `readers` reader processes on a bus.
/// `wbatch` frames per lock hold; `rate` paces the writer (frames/s).
fn run_bus(
    dir: &Path,
    size: usize,
    readers: usize,
    count: u32,
    wbatch: usize,
    rate: Option<f64>,
) -> Row {
    let path = dir.join(format!("bench-{}.bus", std::process::id()));
    remove_bus(&path);
    drop(Bus::attach(&path).unwrap());
    let mut kids: Vec<Kid> = (0..readers)
        .map(|_| {
            let p = path.clone();
            fork_kid(move |ready| bus_reader(&p, count, ready))
        })
        .collect();
    for k in &mut kids {
        k.wait_ready();
    }
    let bus = Bus::attach(&path).unwrap();
    let mut fs: Vec<Vec<u8>> = (0..wbatch).map(|_| frame(0, size)).collect();
    let start = now_ns();
    let mut seq = 0;
    while seq < count {
        let n = wbatch.min((count - seq) as usize);
        for (i, f) in fs[..n].iter_mut().enumerate() {
            f[14..18].copy_from_slice(&(seq + i as u32).to_le_bytes());
        }
        if wbatch == 1 {
            bus.send(&fs[0], 1).unwrap();
        } else {
            let refs: Vec<&[u8]> = fs[..n].iter().map(|f| &f[..]).collect();
            bus.send_batch(&refs, 1).unwrap();
        }
        seq += n as u32;
        if let Some(r) = rate {
            pace(start + (f64::from(seq) / r * 1e9) as u64);
        }
        // One wakeup write per batch of frames, as a NetBSD sender does.
        if seq % 64 < n as u32 {
            bus.wakeup().unwrap();
        }
    }
    bus.wakeup().unwrap();
    let wrote_ns = now_ns() - start;
    let mut worst = 0f64;
    let mut end = start + wrote_ns;
    let mut laps = 0;
    for k in kids {
        let r = k.result();
        let v: Vec<u64> = r.split_whitespace().map(|x| x.parse().unwrap()).collect();
        worst = worst.max(1.0 - v[0] as f64 / f64::from(count));
        end = end.max(v[1]);
        laps += v[2];
    }
    remove_bus(&path);
    let secs = (end - start) as f64 / 1e9;
    Row {
        what: format!(
            "shmif bus, 1 writer{}{}, {readers} reader{}",
            if wbatch > 1 {
                format!(" batch {wbatch}")
            } else {
                String::new()
            },
            rate.map_or(String::new(), |r| format!(" paced {:.2}M/s", r / 1e6)),
            if readers > 1 { "s" } else { "" }
        ),
        size,
        sent: u64::from(count),
        fps: f64::from(count) / secs,
        loss: worst,
        note: format!(
            "writer {:.2} Mpps; {laps} laps",
            f64::from(count) / (wrote_ns as f64 / 1e9) / 1e6
        ),
    }
}

/// The driver path: Kernel::send on shmif0 in one process, the receive
/// thread of shmif0 in another (counted by ipackets).
fn run_driver(dir: &Path, size: usize, count: u32, rate: Option<f64>) -> Row {
    let path = dir.join(format!("bench-drv-{}.bus", std::process::id()));
    remove_bus(&path);
    let ps = path.to_str().unwrap().to_string();
    let up = |k: &Kernel| {
        k.ioctl(Request::IfCreate {
            name: "shmif0".into(),
        })
        .unwrap();
        k.ioctl(Request::SetLinkStr {
            name: "shmif0".into(),
            linkstr: Some(ps.clone()),
        })
        .unwrap();
        k.ioctl(Request::SetIfFlags {
            name: "shmif0".into(),
            flags: iff::UP,
        })
        .unwrap();
    };
    let mut kid = fork_kid(|ready| {
        let k = generic::kernel(KernelEnv::default());
        up(&k);
        let port = k.port("shmif0").unwrap();
        ready();
        let mut last = 0;
        let mut t = Instant::now();
        let mut done_ns = 0;
        loop {
            let n = port.counters.snapshot().ipackets;
            if n >= u64::from(count) {
                done_ns = now_ns();
                break;
            }
            if n != last {
                last = n;
                t = Instant::now();
                done_ns = now_ns();
            } else if t.elapsed() > Duration::from_secs(1) {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let c = port.counters.snapshot();
        format!("{} {done_ns} {}", c.ipackets, c.iqdrops)
    });
    kid.wait_ready();
    let k = generic::kernel(KernelEnv::default());
    up(&k);
    let port = k.port("shmif0").unwrap();
    let mut f = frame(0, size);
    let start = now_ns();
    for seq in 0..count {
        f[14..18].copy_from_slice(&seq.to_le_bytes());
        port.output(&Frame::new(&f).unwrap()).unwrap();
        if let Some(r) = rate {
            pace(start + (f64::from(seq + 1) / r * 1e9) as u64);
        }
    }
    let wrote_ns = now_ns() - start;
    let r = kid.result();
    let v: Vec<u64> = r.split_whitespace().map(|x| x.parse().unwrap()).collect();
    drop(k);
    remove_bus(&path);
    let end = v[1].max(start + wrote_ns);
    Row {
        what: format!(
            "shmif driver, port.output -> rx thread{}",
            rate.map_or(String::new(), |r| format!(" paced {:.2}M/s", r / 1e6))
        ),
        size,
        sent: u64::from(count),
        fps: f64::from(count) / ((end - start) as f64 / 1e9),
        loss: 1.0 - v[0] as f64 / f64::from(count),
        note: format!("{} laps", v[2]),
    }
}

fn run_socketpair(size: usize, count: u32) -> Row {
    let (a, b) = UnixDatagram::pair().unwrap();
    let mut kid = fork_kid(|ready| {
        let mut buf = vec![0u8; 2048];
        ready();
        let mut got = 0u64;
        b.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        while let Ok(n) = b.recv(&mut buf) {
            got += 1;
            if seq_of(&buf[..n]) == count - 1 {
                break;
            }
        }
        format!("{got} {}", now_ns())
    });
    kid.wait_ready();
    drop(b);
    let mut f = frame(0, size);
    let start = now_ns();
    for seq in 0..count {
        f[14..18].copy_from_slice(&seq.to_le_bytes());
        a.send(&f).unwrap();
    }
    let r = kid.result();
    let v: Vec<u64> = r.split_whitespace().map(|x| x.parse().unwrap()).collect();
    Row {
        what: "unix datagram socket pair".into(),
        size,
        sent: u64::from(count),
        fps: f64::from(count) / ((v[1] - start) as f64 / 1e9),
        loss: 1.0 - v[0] as f64 / f64::from(count),
        note: String::new(),
    }
}

fn run_memcpy(size: usize, count: u32) -> Row {
    let mut ring = vec![0u8; bus::DATASIZE as usize];
    let mut f = frame(0, size);
    let mut off = 0usize;
    let start = now_ns();
    for seq in 0..count {
        f[14..18].copy_from_slice(&seq.to_le_bytes());
        if off + size > ring.len() {
            off = 0;
        }
        ring[off..off + size].copy_from_slice(&f);
        off += size;
    }
    std::hint::black_box(&ring);
    let secs = (now_ns() - start) as f64 / 1e9;
    Row {
        what: "memcpy loop into a 1 MiB ring".into(),
        size,
        sent: u64::from(count),
        fps: f64::from(count) / secs,
        loss: 0.0,
        note: String::new(),
    }
}

/// shmifdump on a full 1 MiB bus: the library walk with pcap (in memory),
/// and the whole program writing a pcap file.
fn run_dump(dir: &Path, size: usize) -> String {
    let path = dir.join(format!("bench-dump-{}.bus", std::process::id()));
    remove_bus(&path);
    let bus = Bus::attach(&path).unwrap();
    for seq in 0..(3 * bus::DATASIZE as usize / size) as u32 {
        bus.send(&frame(seq, size), 1).unwrap();
    }
    bus.wakeup().unwrap();
    let img = std::fs::read(&path).unwrap();
    let mut pcap: Vec<u8> = Vec::with_capacity(4 << 20);
    let mut lines: Vec<u8> = Vec::with_capacity(4 << 20);
    let iters = 200;
    let t = Instant::now();
    let mut frames = 0;
    for _ in 0..iters {
        pcap.clear();
        lines.clear();
        let mut out = Dumper::new(
            Box::new(&mut lines),
            "sink",
            Some((Box::new(&mut pcap), "pcap", false)),
        )
        .unwrap();
        dump::dump_image("bus", &img, false, &mut out).unwrap();
        frames = out.printed;
    }
    let lib = (img.len() * iters) as f64 / t.elapsed().as_secs_f64() / 1e9;
    let exe = std::env::current_exe().unwrap();
    let shmifdump = exe.parent().unwrap().parent().unwrap().join("shmifdump");
    let out = dir.join(format!("bench-dump-{}.pcap", std::process::id()));
    let runs = 50;
    let time = |args: &[&str]| {
        let t = Instant::now();
        for _ in 0..runs {
            let st = std::process::Command::new(&shmifdump)
                .args(args)
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
        }
        t.elapsed().as_secs_f64() / f64::from(runs)
    };
    // `-h` reads only the header: process start and exit.
    let base = time(&["-h", path.to_str().unwrap()]);
    let per = time(&["-p", out.to_str().unwrap(), path.to_str().unwrap()]);
    remove_bus(&path);
    let _ = std::fs::remove_file(&out);
    format!(
        "shmifdump, full 1 MiB bus of {size}-byte frames ({frames} frames): library walk to text and pcap in memory {lib:.2} GB/s; \
         whole program (exec, read, text to /dev/null, pcap file) {:.2} ms = {:.2} GB/s, \
         of which process start {:.2} ms (shmifdump -h): dump work {:.2} GB/s",
        per * 1e3,
        img.len() as f64 / per / 1e9,
        base * 1e3,
        img.len() as f64 / (per - base).max(1e-6) / 1e9
    )
}

/// How a peer of `run_wake_rtt` wakes the other and waits for it.
#[derive(Clone, Copy)]
enum Wakeup {
    /// NetBSD's: a write to the file, seen through inotify.
    File,
    /// The ifnet peers' futex word.
    Futex,
}

/// Send one frame and wake the other side; then wait for its frame.
/// Returns false after a second without one.
fn ping_once(
    bus: &Bus,
    watch: &Watch,
    r: &mut BusReader,
    buf: &mut [u8],
    how: Wakeup,
    f: &[u8],
    me: u64,
) -> bool {
    let word = bus.wake_word().expect("no sidecar");
    bus.send(f, me).unwrap();
    match how {
        Wakeup::File => bus.wakeup_file().unwrap(),
        Wakeup::Futex => bus.wakeup_ifnet(),
    }
    let t = Instant::now();
    loop {
        let seen = word.seq().load(std::sync::atomic::Ordering::SeqCst);
        match r.recv(bus, buf, |h| h.sender != me) {
            Recv::Frame { .. } => return true,
            Recv::Empty => {}
            // Our own frame, skipped: look again before sleeping.
            _ => continue,
        }
        if t.elapsed() > Duration::from_secs(1) {
            return false;
        }
        match how {
            Wakeup::File => watch.wait(Duration::from_millis(100)),
            Wakeup::Futex => word.wait(seen, Duration::from_millis(100)),
        }
    }
}

/// Round trips of a 64-byte frame between two processes, each asleep
/// until the other's wakeup: the wakeup's own cost, without a daemon.
fn run_wake_rtt(dir: &Path, how: Wakeup, trips: u32) -> String {
    let path = dir.join(format!("bench-wake-{}.bus", std::process::id()));
    remove_bus(&path);
    let f = frame(0, 64);
    let bus = Bus::attach(&path).unwrap();
    let kid = {
        let f = f.clone();
        let path = path.clone();
        fork_kid(move |ready| {
            let bus = Bus::attach(&path).unwrap();
            let watch = Watch::new(&bus).unwrap();
            let mut r = BusReader::at_end(&bus);
            let mut buf = vec![0u8; 1514];
            ready();
            // Answer every frame with one of ours.
            let mut n = 0;
            let word = bus.wake_word().expect("no sidecar");
            while n < trips {
                let seen = word.seq().load(std::sync::atomic::Ordering::SeqCst);
                match r.recv(&bus, &mut buf, |h| h.sender != 2) {
                    Recv::Frame { .. } => {
                        n += 1;
                        bus.send(&f, 2).unwrap();
                        match how {
                            Wakeup::File => bus.wakeup_file().unwrap(),
                            Wakeup::Futex => bus.wakeup_ifnet(),
                        }
                    }
                    Recv::Empty => match how {
                        Wakeup::File => watch.wait(Duration::from_millis(100)),
                        Wakeup::Futex => word.wait(seen, Duration::from_millis(100)),
                    },
                    _ => {}
                }
            }
            String::new()
        })
    };
    let mut kid = kid;
    kid.wait_ready();
    let watch = Watch::new(&bus).unwrap();
    let mut r = BusReader::at_end(&bus);
    let mut buf = vec![0u8; 1514];
    let mut rtts = Vec::with_capacity(trips as usize);
    for _ in 0..trips {
        let t = now_ns();
        if !ping_once(&bus, &watch, &mut r, &mut buf, how, &f, 1) {
            break;
        }
        rtts.push(now_ns() - t);
    }
    let lost = trips as usize - rtts.len();
    // SAFETY: our own child, stuck if a trip was lost.
    if lost > 0 {
        unsafe { libc::kill(kid.pid, libc::SIGKILL) };
    }
    kid.result();
    remove_bus(&path);
    rtts.sort_unstable();
    let pct = |p: usize| {
        rtts.get(rtts.len().saturating_sub(1) * p / 100)
            .map_or(0.0, |&ns| ns as f64 / 1e3)
    };
    format!(
        "wakeup round trip between two processes over a bus, {}: {trips} trips, p50 {:.1} us, p99 {:.1} us{}",
        match how {
            Wakeup::File => "file write + inotify (NetBSD's)",
            Wakeup::Futex => "futex word (ifnet peers')",
        },
        pct(50),
        pct(99),
        if lost > 0 {
            format!(", {lost} LOST")
        } else {
            String::new()
        }
    )
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "/dev/shm".into()));
    // SHMIF_BENCH_ONLY=wake: the wakeup round trips alone; =driver: the
    // paced driver rows alone (short runs on a shared machine).
    let only = std::env::var("SHMIF_BENCH_ONLY").unwrap_or_default();
    let wake: Vec<String> = if only.is_empty() || only == "wake" {
        [Wakeup::File, Wakeup::Futex, Wakeup::File, Wakeup::Futex]
            .map(|how| run_wake_rtt(&dir, how, 20_000))
            .into()
    } else {
        Vec::new()
    };
    if only == "wake" {
        for w in &wake {
            println!("{w}");
        }
        return;
    }
    if only == "driver" {
        println!(
            "{:<50} {:>5} {:>9} {:>8} {:>8} {:>7}  note",
            "path", "bytes", "frames", "Mpps", "Gbit/s", "loss%"
        );
        for (size, count, rate) in [
            (64, 3_000_000, 1.5e6),
            (1514, 1_000_000, 10e9 / (1514.0 * 8.0)),
        ] {
            let r = run_driver(&dir, size, count, Some(rate));
            println!(
                "{:<50} {:>5} {:>9} {:>8.3} {:>8.2} {:>7.3}  {}",
                r.what,
                r.size,
                r.sent,
                r.fps / 1e6,
                r.gbps(),
                r.loss * 100.0,
                r.note
            );
        }
        return;
    }
    let mut rows = Vec::new();
    for (size, count) in [(64usize, 3_000_000u32), (1514, 1_000_000)] {
        let sock = run_socketpair(size, count);
        // The targets: 1.5 Mpps at 64 bytes, 10 Gbit/s at 1514, and twice
        // the socket pair; paced rows show the loss when readers keep up.
        let target = if size == 64 {
            1.5e6
        } else {
            10e9 / (1514.0 * 8.0)
        };
        let twice = 2.0 * sock.fps;
        rows.push(run_bus(&dir, size, 1, count, 1, None));
        rows.push(run_bus(&dir, size, 1, count, 32, None));
        rows.push(run_bus(&dir, size, 1, count, 1, Some(target)));
        rows.push(run_bus(&dir, size, 1, count, 1, Some(twice)));
        rows.push(run_bus(&dir, size, 3, count, 1, None));
        rows.push(run_bus(&dir, size, 3, count, 1, Some(target)));
        rows.push(run_driver(&dir, size, count, None));
        rows.push(run_driver(&dir, size, count, Some(target)));
        rows.push(sock);
        rows.push(run_memcpy(size, count));
    }
    println!(
        "{:<50} {:>5} {:>9} {:>8} {:>8} {:>7}  note",
        "path", "bytes", "frames", "Mpps", "Gbit/s", "loss%"
    );
    for r in &rows {
        println!(
            "{:<50} {:>5} {:>9} {:>8.3} {:>8.2} {:>7.3}  {}",
            r.what,
            r.size,
            r.sent,
            r.fps / 1e6,
            r.gbps(),
            r.loss * 100.0,
            r.note
        );
    }
    for size in [1514, 64] {
        println!("{}", run_dump(&dir, size));
    }
    for w in &wake {
        println!("{w}");
    }
}
