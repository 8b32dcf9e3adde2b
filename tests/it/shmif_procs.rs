//! shmif between processes: plain processes using the library on one bus
//! file exchange frames; writers hammer a bus; a peer dies holding the lock.

use crate::common;
use crate::shmif_util;

use ifnet::Kernel;
use ifnet::cloner::KernelEnv;
use ifnet::drivers::shmif::bus::{self, Bus, BusReader, Recv, Watch};
use ifnet::frame::Frame;
use ifnet::generic;
use ifnet::ioctl::{IfStatus, Reply, Request, iff};
use shmif_util::*;
use std::io::Write;
use std::time::{Duration, Instant};

fn attach(k: &Kernel, name: &str, bus: &str) {
    k.ioctl(Request::IfCreate { name: name.into() }).unwrap();
    k.ioctl(Request::SetLinkStr {
        name: name.into(),
        linkstr: Some(bus.into()),
    })
    .unwrap();
    k.ioctl(Request::SetIfFlags {
        name: name.into(),
        flags: iff::UP,
    })
    .unwrap();
}

fn status(k: &Kernel, name: &str) -> IfStatus {
    match k.ioctl(Request::GetIfConf {
        name: Some(name.into()),
    }) {
        Ok(Reply::IfConf(mut v)) => v.remove(0),
        r => panic!("{r:?}"),
    }
}

const BCAST: [u8; 6] = [0xff; 6];
const STRANGER: [u8; 6] = [0xb2, 0xa0, 0xde, 0xad, 0xbe, 0xef];

/// Child: one kernel with shmif0 on $BUS, peer number $IDX.
#[test]
#[ignore = "a child role, run by its parent test"]
fn role_peer() {
    if !is_child() {
        return;
    }
    let bus = std::env::var("BUS").unwrap();
    let idx: u8 = std::env::var("IDX").unwrap().parse().unwrap();
    let k = generic::kernel(KernelEnv::default());
    attach(&k, "shmif0", &bus);
    let rx = k.listen("shmif0").unwrap();
    let me = status(&k, "shmif0").lladdr.unwrap();
    tell(&format!("ready {}", mac_hex(&me)));
    let go = hear();
    let macs: Vec<[u8; 6]> = go.split_whitespace().skip(1).map(parse_mac).collect();
    let n = macs.len();
    k.send("shmif0", &frame(BCAST, me, idx, b'B', 0, 60))
        .unwrap();
    for (j, m) in macs.iter().enumerate() {
        if j != idx as usize {
            k.send("shmif0", &frame(*m, me, idx, b'U', j as u32, 100 + j))
                .unwrap();
        }
    }
    k.send("shmif0", &frame(STRANGER, me, idx, b'S', 0, 60))
        .unwrap();
    let expect = 2 * (n - 1);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < expect && Instant::now() < deadline {
        if let Ok(f) = rx.recv_timeout(Duration::from_millis(50))
            && ours(&f)
        {
            got.push(parse(&f));
        }
    }
    // Anything that should not come would come now.
    while let Ok(f) = rx.recv_timeout(Duration::from_millis(300)) {
        if ours(&f) {
            got.push(parse(&f));
        }
    }
    for (w, kind, seq) in got {
        tell(&format!("rx {w} {} {seq}", kind as char));
    }
    let s = status(&k, "shmif0");
    tell(&format!("counts {} {}", s.data.ipackets, s.data.opackets));
    tell("done");
}

#[test]
fn peers_exchange_frames() {
    if is_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus").to_str().unwrap().to_string();
    let n = 3;
    let mut kids: Vec<_> = (0..n)
        .map(|i| {
            spawn_role(
                "shmif_procs::role_peer",
                &[("BUS", bus.clone()), ("IDX", i.to_string())],
            )
        })
        .collect();
    let mut lines: Vec<Lines> = kids.iter_mut().map(Lines::new).collect();
    let macs: Vec<String> = lines
        .iter_mut()
        .map(|l| {
            l.next()
                .unwrap()
                .strip_prefix("ready ")
                .unwrap()
                .to_string()
        })
        .collect();
    let go = format!("go {}\n", macs.join(" "));
    for k in &mut kids {
        k.stdin.as_mut().unwrap().write_all(go.as_bytes()).unwrap();
    }
    for (i, l) in lines.iter_mut().enumerate() {
        let mut rx = Vec::new();
        let mut counts = String::new();
        while let Some(s) = l.next() {
            if s == "done" {
                break;
            }
            if let Some(c) = s.strip_prefix("counts ") {
                counts = c.to_string();
            } else {
                rx.push(s);
            }
        }
        rx.sort();
        let mut want = Vec::new();
        for j in 0..n {
            if j != i {
                want.push(format!("rx {j} B 0"));
                want.push(format!("rx {j} U {i}"));
            }
        }
        want.sort();
        // Broadcasts from every other peer, unicasts to this one only,
        // never its own frames nor the stranger's.
        assert_eq!(rx, want, "peer {i}");
        // At least our frames (a kernel may add neighbour discovery).
        let c: Vec<u64> = counts.split(' ').map(|x| x.parse().unwrap()).collect();
        assert!(
            c[0] >= 2 * (n as u64 - 1) && c[1] > n as u64,
            "peer {i} ipackets opackets {counts}"
        );
    }
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
}

/// Child: send $N broadcast frames as writer $ID through a kernel's shmif0.
#[test]
#[ignore = "a child role, run by its parent test"]
fn role_writer() {
    if !is_child() {
        return;
    }
    let bus = std::env::var("BUS").unwrap();
    let id: u8 = std::env::var("ID").unwrap().parse().unwrap();
    let n: u32 = std::env::var("N").unwrap().parse().unwrap();
    let k = generic::kernel(KernelEnv::default());
    attach(&k, "shmif0", &bus);
    let port = k.port("shmif0").unwrap();
    let me = status(&k, "shmif0").lladdr.unwrap();
    tell("ready");
    hear();
    for seq in 0..n {
        let f = frame(BCAST, me, id, b'H', seq, size_of(seq, id));
        port.output(&Frame::new(&f).unwrap()).unwrap();
    }
    tell(&format!("sent {n}"));
}

#[test]
fn writers_hammer_one_bus() {
    if is_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus");
    let bus_s = path.to_str().unwrap().to_string();
    let (writers, n) = (4u8, 20_000u32);
    // A kernel reader (the driver path) and a bare bus reader.
    let k = generic::kernel(KernelEnv::default());
    attach(&k, "shmif0", &bus_s);
    let bus = Bus::attach(&path).unwrap();
    let watch = Watch::new(&bus).unwrap();
    let mut reader = BusReader::at_end(&bus);
    let mut kids: Vec<_> = (0..writers)
        .map(|i| {
            spawn_role(
                "shmif_procs::role_writer",
                &[
                    ("BUS", bus_s.clone()),
                    ("ID", i.to_string()),
                    ("N", n.to_string()),
                ],
            )
        })
        .collect();
    let mut lines: Vec<Lines> = kids.iter_mut().map(Lines::new).collect();
    for l in &mut lines {
        assert_eq!(l.next().as_deref(), Some("ready"));
    }
    for k in &mut kids {
        k.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    }
    let mut buf = vec![0u8; 1514];
    let mut next = vec![0u32; writers as usize];
    let mut got = vec![0u64; writers as usize];
    let mut seen = vec![vec![false; n as usize]; writers as usize];
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut idle_after_done = 0;
    while Instant::now() < deadline {
        match reader.recv(&bus, &mut buf, |_| true) {
            Recv::Frame { hdr, .. } if !ours(&buf[..hdr.len as usize]) => {}
            Recv::Frame { hdr, .. } => {
                let (w, kind, seq) = parse(&buf[..hdr.len as usize]);
                assert_eq!(kind, b'H');
                assert_eq!(hdr.len as usize, size_of(seq, w));
                let w = w as usize;
                assert!(seq >= next[w], "writer {w}: seq {seq} after {}", next[w]);
                next[w] = seq + 1;
                got[w] += 1;
                seen[w][seq as usize] = true;
            }
            Recv::Empty => {
                if done == writers as usize {
                    idle_after_done += 1;
                    if idle_after_done > 3 {
                        break;
                    }
                }
                watch.wait(Duration::from_millis(20));
                done = 0;
                for k in kids.iter_mut() {
                    if let Ok(Some(st)) = k.try_wait() {
                        assert!(st.success());
                        done += 1;
                    }
                }
            }
            r => panic!("{r:?}"),
        }
    }
    let sent = u64::from(n) * u64::from(writers);
    let total: u64 = got.iter().sum();
    eprintln!(
        "hammer: got {total}/{sent}, laps {}, lost {} bytes",
        reader.laps, reader.lost_bytes
    );
    // What is missing was lost to laps (a writer that finished early can
    // have its last frames lapped by the others); the newest frame on the
    // bus, some writer's last, always arrives.
    assert!(next.contains(&n), "{next:?}");
    if reader.laps == 0 {
        assert!(next.iter().all(|&s| s == n), "{next:?}");
        assert_eq!(total, sent);
    } else {
        assert!(total < sent && reader.lost_bytes > 0);
        // The reported loss matches what really went missing (headers
        // included), give or take the frames in flight at each lap.
        let missing: u64 = (0..writers)
            .flat_map(|w| (0..n).map(move |s| (w, s)))
            .filter(|&(w, s)| !seen[w as usize][s as usize])
            .map(|(w, s)| size_of(s, w) as u64 + 24)
            .sum();
        let ratio = reader.lost_bytes as f64 / missing as f64;
        assert!(
            (0.8..1.25).contains(&ratio),
            "reported {} bytes lost, really {missing}",
            reader.lost_bytes
        );
    }
    // The kernel reader: received plus lapped-over adds up the same way.
    let port = k.port("shmif0").unwrap();
    let t = Instant::now();
    loop {
        let c = port.counters.snapshot();
        // (A kernel may add a few frames of its own: neighbour discovery.)
        if c.iqdrops == 0 && c.ipackets >= sent {
            break;
        }
        if c.iqdrops > 0 {
            assert!(c.ipackets < sent + 64);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "kernel reader stuck at {c:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Child: take the bus lock and never let go.
#[test]
#[ignore = "a child role, run by its parent test"]
fn role_locker() {
    if !is_child() {
        return;
    }
    let bus = Bus::attach(std::path::Path::new(&std::env::var("BUS").unwrap())).unwrap();
    std::mem::forget(bus.lock());
    tell("locked");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn lock_of_a_dead_peer_is_stolen() {
    if is_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus");
    let bus = Bus::attach(&path).unwrap();
    let mut reader = BusReader::at_end(&bus);
    let mut kid = spawn_role(
        "shmif_procs::role_locker",
        &[("BUS", path.to_str().unwrap().to_string())],
    );
    assert_eq!(Lines::new(&mut kid).next().as_deref(), Some("locked"));
    assert_eq!(bus.header().lock, 1);
    kid.kill().unwrap(); // SIGKILL between lock and unlock
    kid.wait().unwrap();
    let t = Instant::now();
    let f = frame(BCAST, [2; 6], 9, b'L', 1, 60);
    bus.send(&f, 5).unwrap();
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // Released the NetBSD way: the word is 0 again, and the bus works.
    assert_eq!(bus.header().lock, 0);
    let mut buf = vec![0u8; 1514];
    match reader.recv(&bus, &mut buf, |_| true) {
        Recv::Frame { hdr, .. } => assert_eq!(&buf[..hdr.len as usize], &f[..]),
        r => panic!("{r:?}"),
    }
    let t = Instant::now();
    bus.send(&f, 5).unwrap();
    assert!(t.elapsed() < Duration::from_millis(100));
}

/// Child: take the bus lock, stop itself (SIGSTOP, as Ctrl-Z or a
/// debugger would) while holding it, and when continued try to write a
/// frame under it and let it go.
#[test]
#[ignore = "a child role, run by its parent test"]
fn role_stopped_writer() {
    if !is_child() {
        return;
    }
    let bus = Bus::attach(std::path::Path::new(&std::env::var("BUS").unwrap())).unwrap();
    let g = bus.lock();
    tell("locked");
    nix::sys::signal::raise(nix::sys::signal::SIGSTOP).unwrap();
    let f = frame(BCAST, [3; 6], 7, b'Z', 0, 200);
    let r = bus.write_frame(&g, &f, 7, ifnet::drivers::shmif::bus::timestamp());
    drop(g);
    tell(&format!("wrote {r:?}"));
}

/// Issue 12 item 5: a writer stopped inside its critical section for
/// longer than the stale-lock time has its lock stolen. Resumed, it finds
/// it lost the lock, discards its write and releases nothing: the thief
/// still holds the lock (word 1, as NetBSD peers must see it), and the
/// bus holds exactly the thief's frames, intact. 50 runs at once, each on
/// a bus of its own (IFNET_STOP_RUNS for more).
#[test]
fn a_writer_resumed_after_losing_the_lock_corrupts_nothing() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if is_child() {
        return;
    }
    let runs: usize = std::env::var("IFNET_STOP_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let one = |i: usize| {
        let path = dir.path().join(format!("bus{i}"));
        let bus = Bus::attach(&path).unwrap();
        let mut reader = BusReader::at_end(&bus);
        let mut kid = spawn_role(
            "shmif_procs::role_stopped_writer",
            &[("BUS", path.to_str().unwrap().to_string())],
        );
        let mut lines = Lines::new(&mut kid);
        assert_eq!(lines.next().as_deref(), Some("locked"));
        let pid = Pid::from_raw(kid.id() as i32);
        // Stopped (state T) while holding the lock.
        let stopped = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('T')
            })
        };
        let t = Instant::now();
        while !stopped() {
            assert!(t.elapsed() < Duration::from_secs(10), "child never stopped");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The thief waits out STALE_LOCK, takes the lock and writes.
        let g = bus.lock();
        let mine = frame(BCAST, [2; 6], 9, b'T', i as u32, 300);
        bus.write_frame(&g, &mine, 9, ifnet::drivers::shmif::bus::timestamp())
            .unwrap();
        kill(pid, Signal::SIGCONT).unwrap();
        let said = lines.next();
        kid.wait().unwrap();
        assert_eq!(said.as_deref(), Some("wrote Err(Errno(105))"), "run {i}");
        assert!(
            g.held(),
            "run {i}: the late holder released the thief's lock"
        );
        assert_eq!(bus.header().lock, 1, "run {i}");
        drop(g);
        assert_eq!(bus.header().lock, 0, "run {i}");
        bus.send(&frame(BCAST, [2; 6], 9, b'T', 1000 + i as u32, 60), 9)
            .unwrap();
        let mut buf = vec![0u8; 1514];
        let mut got = Vec::new();
        loop {
            match reader.recv(&bus, &mut buf, |_| true) {
                Recv::Frame { hdr, .. } => got.push(parse(&buf[..hdr.len as usize])),
                Recv::Empty => break,
                r => panic!("run {i}: {r:?}"),
            }
        }
        assert_eq!(got, vec![(9, b'T', i as u32), (9, b'T', 1000 + i as u32)]);
    };
    std::thread::scope(|s| {
        for i in 0..runs {
            let one = &one;
            s.spawn(move || one(i));
        }
    });
}

/// An ARP request for `ip` from `mac`/`from` (the daemon answers it, so
/// frames flow both ways).
fn arp_request(mac: [u8; 6], from: [u8; 4], ip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&BCAST);
    f[6..12].copy_from_slice(&mac);
    f[12..22].copy_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&from);
    f[38..42].copy_from_slice(&ip);
    f
}

/// Read the bus up to its newest frame (peer 7's own skipped): whether an
/// ARP reply to `me` was among them.
fn arp_reply_read(reader: &mut BusReader, bus: &Bus, buf: &mut [u8], me: [u8; 6]) -> bool {
    loop {
        match reader.recv(bus, buf, |h| h.sender != 7) {
            Recv::Frame { hdr, .. } => {
                let f = &buf[..hdr.len as usize];
                if f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2] && f[0..6] == me {
                    return true;
                }
            }
            Recv::Empty => return false,
            _ => {}
        }
    }
}

/// A bus file truncated, to nothing or to a few bytes, while an ifnetd
/// reads and writes it flat out: the daemon never dies of SIGBUS. It gives
/// the bus up (link down, an error counted), keeps answering, and works on
/// a new bus.
#[test]
fn daemon_survives_its_bus_truncated() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    if is_child() {
        return;
    }
    let mut d = common::Daemon::start();
    let path = d.dir.path().join("bus");
    let p = path.to_str().unwrap().to_string();
    d.ok(&["shmif0", "create"]);
    let (me, daemon_ip) = (STRANGER, [10, 0, 9, 1]);
    let rounds = 40;
    for round in 0..rounds {
        d.ok(&["shmif0", "linkstr", &p]);
        if round == 0 {
            // (Kept across down and up.)
            d.ok(&["shmif0", "inet", "10.0.9.1/24"]);
        }
        d.ok(&["shmif0", "up"]);
        // A flood of ARP requests: the daemon's receive thread reads all
        // the time and its transmitter answers.
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (stop, path) = (stop.clone(), path.clone());
            std::thread::spawn(move || {
                let Ok(bus) = Bus::attach(&path) else { return };
                let req = arp_request(me, [10, 0, 9, 2], daemon_ip);
                let mut n = 0u32;
                // Until the bus is cut under us too (EIO).
                while !stop.load(Ordering::Relaxed) && bus.send(&req, 7).is_ok() {
                    n += 1;
                    if n.is_multiple_of(16) && bus.wakeup().is_err() {
                        break;
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(20 + round % 7));
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len([0, 100, 5000, 70_000][round as usize % 4])
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("round {round}: ifnetd died: {st}");
            }
            if d.ifconfig(&["-v", "shmif0"])
                .0
                .contains("\tlinkstate: down\n")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: the bus was not given up"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        let (out, err, rc) = d.ifconfig(&["-a"]);
        assert_eq!((err.as_str(), rc), ("", 0), "round {round}");
        assert!(out.contains(&format!("linkstr: {p}")), "{out}");
        d.ok(&["shmif0", "down"]);
        d.ok(&["shmif0", "-linkstr"]);
    }
    use ifnet::ioctl::Ioctl;
    let mut c = ifnet::client::Client::connect(&d.sock).unwrap();
    let Ok(Reply::IfConf(s)) = c.ioctl(Request::GetIfConf {
        name: Some("shmif0".into()),
    }) else {
        panic!("no shmif0")
    };
    // One error per loss at least (input, output, or both).
    assert!(
        s[0].data.ierrors + s[0].data.oerrors >= rounds,
        "{:?}",
        s[0].data
    );
    // A fresh bus: frames flow both ways again.
    let fresh = d.dir.path().join("fresh");
    d.ok(&["shmif0", "linkstr", fresh.to_str().unwrap()]);
    d.ok(&["shmif0", "up"]);
    let bus = Bus::attach(&fresh).unwrap();
    let mut reader = BusReader::at_end(&bus);
    let mut buf = vec![0u8; 1514];
    let deadline = Instant::now() + Duration::from_secs(10);
    'ask: loop {
        assert!(Instant::now() < deadline, "no ARP reply on the fresh bus");
        bus.send(&arp_request(me, [10, 0, 9, 2], daemon_ip), 7)
            .unwrap();
        bus.wakeup().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        if arp_reply_read(&mut reader, &bus, &mut buf, me) {
            break 'ask;
        }
    }
    assert!(d.child.as_mut().unwrap().try_wait().unwrap().is_none());
}

/// The wakeup NetBSD peers make: a write of the version word to the
/// bus file, nothing else (no futex, no sidecar).
fn netbsd_wakeup(path: &std::path::Path) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_at(&bus::VERSION.to_ne_bytes(), 4).unwrap();
}

/// The daemon's sidecar for the bus at `path`, checked to be a live one.
fn sidecar(path: &std::path::Path) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(bus::WAKE_SUFFIX);
    let s = std::path::PathBuf::from(s);
    let b = std::fs::read(&s).expect("no wakeup sidecar next to the bus");
    assert_eq!(b.len(), bus::WAKE_LEN);
    assert_eq!(b[0..4], bus::WAKE_MAGIC.to_ne_bytes());
    s
}

/// A daemon with shmif0 on a bus in its directory, with address `inet`
/// past DAD, and the futex sidecar it made next to the bus.
fn daemon_on_a_bus(env: &[(&str, &str)], inet: &str) -> (common::Daemon, std::path::PathBuf) {
    let d = common::Daemon::start_env(env);
    let path = d.dir.path().join("bus");
    d.ok(&["shmif0", "create"]);
    d.ok(&["shmif0", "linkstr", path.to_str().unwrap()]);
    d.ok(&["shmif0", "inet", inet, "up"]);
    let (_, e, rc) = d.ifconfig(&["-w", "10"]);
    assert_eq!(rc, 0, "DAD: {e}");
    sidecar(&path);
    (d, path)
}

/// A peer that speaks only NetBSD's wakeup protocol (a write to the
/// file, seen through inotify; it never looks at the ring unless woken,
/// and never touches the ifnet peers' futex word) and an ifnetd with the
/// futex fast path on exchange frames both ways: each ARP request it puts
/// on the bus is answered (on the daemon's receiving thread, the wakeup
/// write at once), and every answer comes with a wakeup that ends the
/// peer's wait before its timeout. Round trips far below the daemon's
/// 100 ms safety poll show that the peer's own write woke the daemon,
/// also while the daemon naps on the futex word: its nap is set long
/// (10 ms) here, and it is seen counted as a waiter on the word.
#[test]
fn a_netbsd_protocol_peer_and_ifnetd_wake_each_other() {
    if is_child() {
        return;
    }
    let (_d, path) = daemon_on_a_bus(&[("IFNET_NAP_US", "10000")], "10.0.8.1/24");
    let bus = Bus::attach(&path).unwrap();
    let waiters = bus.wake_word().expect("the sidecar").waiters();
    let watch = Watch::new(&bus).unwrap();
    let mut reader = BusReader::at_end(&bus);
    let mut buf = vec![0u8; 1514];
    let me = STRANGER;
    let timeout = Duration::from_secs(3);
    let mut rtts = Vec::new();
    let mut napped = 0;
    for round in 0..100 {
        let t0 = Instant::now();
        bus.send(&arp_request(me, [10, 0, 8, 2], [10, 0, 8, 1]), 7)
            .unwrap();
        netbsd_wakeup(&path);
        'wait: loop {
            let w = Instant::now();
            watch.wait(timeout);
            assert!(
                w.elapsed() < timeout,
                "round {round}: the answer did not wake the peer"
            );
            if arp_reply_read(&mut reader, &bus, &mut buf, me) {
                break 'wait;
            }
        }
        rtts.push(t0.elapsed());
        // Having answered, the daemon naps on the word for a while.
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(2) {
            if waiters.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                napped += 1;
                break;
            }
            std::hint::spin_loop();
        }
    }
    rtts.sort();
    assert!(
        rtts[rtts.len() / 2] < Duration::from_millis(20),
        "median round trip {:?}",
        rtts[rtts.len() / 2]
    );
    assert!(napped > 0, "the daemon never napped on the futex word");
}

/// A reader killed (a real process, SIGKILL) while counted as waiting on
/// the ifnet peers' futex word costs the next writer one wake system call
/// that wakes nobody, which takes it out of the count. Frames and answers
/// keep flowing both ways with the daemon, promptly, and a burst of sends
/// with wakeups is not held up.
#[test]
fn a_reader_killed_while_waiting_does_not_stall_writers() {
    use std::sync::atomic::Ordering::SeqCst;
    if is_child() {
        return;
    }
    let (mut d, path) = daemon_on_a_bus(&[], "10.0.9.1/24");
    let bus = Bus::attach(&path).unwrap();
    let word = bus.wake_word().expect("the sidecar").clone();
    // SAFETY: the child only touches the shared mapping and makes raw
    // system calls until it is killed.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        loop {
            word.wait(word.seq().load(SeqCst), Duration::from_secs(3600));
        }
    }
    // Counted and asleep in FUTEX_WAIT (system call 202 on x86-64).
    let deadline = Instant::now() + Duration::from_secs(10);
    let in_futex = || {
        std::fs::read_to_string(format!("/proc/{pid}/syscall"))
            .is_ok_and(|s| s.split_whitespace().next() == Some(&libc::SYS_futex.to_string()))
    };
    while !in_futex() {
        assert!(Instant::now() < deadline, "the child never waited");
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: our own child.
    unsafe {
        assert_eq!(libc::kill(pid, libc::SIGKILL), 0);
        let mut st = 0;
        assert_eq!(libc::waitpid(pid, &mut st, 0), pid);
        assert!(libc::WIFSIGNALED(st));
    }
    // It died counted (it counts itself before it sleeps; a wake since
    // would have had it count itself again before sleeping again).
    // Round trips with the daemon, both waking through both paths.
    let watch = Watch::new(&bus).unwrap();
    let mut reader = BusReader::at_end(&bus);
    let mut buf = vec![0u8; 1514];
    let mut rtts = Vec::new();
    for round in 0..50 {
        let t0 = Instant::now();
        bus.send(&arp_request(STRANGER, [10, 0, 9, 2], [10, 0, 9, 1]), 7)
            .unwrap();
        bus.wakeup().unwrap();
        loop {
            watch.wait(Duration::from_secs(3));
            assert!(t0.elapsed() < Duration::from_secs(3), "round {round}");
            if arp_reply_read(&mut reader, &bus, &mut buf, STRANGER) {
                break;
            }
        }
        rtts.push(t0.elapsed());
    }
    rtts.sort();
    assert!(
        rtts[rtts.len() / 2] < Duration::from_millis(20),
        "median round trip {:?}",
        rtts[rtts.len() / 2]
    );
    // A burst: every wakeup makes its (spurious) wake call, and returns.
    let t = Instant::now();
    let f = frame(BCAST, STRANGER, 1, b'K', 0, 60);
    for _ in 0..10_000 {
        bus.send(&f, 7).unwrap();
        bus.wakeup_ifnet();
    }
    bus.wakeup().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "10,000 sends took {:?}",
        t.elapsed()
    );
    // The dead reader's count went with the first wakeup (the daemon's
    // naps come and go: wait for a moment without one).
    let deadline = Instant::now() + Duration::from_secs(5);
    while word.waiters().load(SeqCst) != 0 {
        assert!(Instant::now() < deadline, "the count never went to 0");
        bus.wakeup_ifnet();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(d.child.as_mut().unwrap().try_wait().unwrap().is_none());
}
