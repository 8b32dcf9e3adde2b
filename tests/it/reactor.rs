//! The data plane's threads, seen from outside a real daemon: their number
//! stays bounded whatever the number of interfaces, and a shmif bus whose
//! lock a dead peer holds stalls neither the control plane nor the
//! forwarding of other interfaces. The namespace test needs root and
//! /dev/net/tun (required in CI).

use crate::common::*;
use ifnet::client::Client;
use ifnet::drivers::shmif::bus::{Bus, BusReader, Recv};
use ifnet::ioctl::{Ioctl, Request, iff};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Offset of the lock word in a bus header.
const LOCK_OFF: u64 = 24;

fn pid(d: &Daemon) -> u32 {
    d.child.as_ref().unwrap().id()
}

/// The daemon's threads, less the IP presence's (one per interface with
/// addresses, not the reactor's business), and all of them.
fn threads(pid: u32) -> (usize, usize) {
    let mut all = 0;
    let mut inet = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let comm = std::fs::read_to_string(t.unwrap().path().join("comm")).unwrap_or_default();
        all += 1;
        if comm.starts_with("inet-") {
            inet += 1;
        }
    }
    (all - inet, all)
}

fn req(c: &mut Client, r: Request) {
    let what = format!("{r:?}");
    c.ioctl(r).unwrap_or_else(|e| panic!("{what}: {e}"));
}

fn create_up(c: &mut Client, name: &str, linkstr: Option<&str>) {
    req(c, Request::IfCreate { name: name.into() });
    if let Some(l) = linkstr {
        req(
            c,
            Request::SetLinkStr {
                name: name.into(),
                linkstr: Some(l.into()),
            },
        );
    }
    req(
        c,
        Request::SetIfFlags {
            name: name.into(),
            flags: iff::UP,
        },
    );
}

/// A bus whose lock word is stuck at 1, as a peer that died holding it
/// leaves it.
fn stuck_bus(path: &Path) -> std::fs::File {
    drop(Bus::attach(path).unwrap());
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_at(&1u32.to_ne_bytes(), LOCK_OFF).unwrap();
    f
}

#[test]
fn threads_stay_few_whatever_the_interfaces() {
    let d = Daemon::start();
    let mut c = Client::connect(&d.sock).unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let before = threads(pid(&d)).0;
    for i in 0..100 {
        let bus = d.dir.path().join(format!("bus{i}"));
        create_up(&mut c, &format!("shmif{i}"), bus.to_str());
    }
    for i in 0..10 {
        create_up(&mut c, &format!("tap{i}"), None);
    }
    if can_netadmin() {
        for i in 0..10 {
            let tap = unique("ifr");
            create_up(&mut c, &format!("virt{i}"), Some(&tap));
        }
    }
    let (n, all) = threads(pid(&d));
    assert!(
        n <= cpus + 8,
        "{n} threads (of {all}; {before} before) for 120 interfaces on {cpus} CPUs"
    );
}

#[test]
fn a_stuck_bus_lock_stalls_no_other_client() {
    let d = Daemon::start();
    let path = d.dir.path().join("stuck");
    let _f = stuck_bus(&path);
    let mut c = Client::connect(&d.sock).unwrap();
    req(
        &mut c,
        Request::IfCreate {
            name: "shmif0".into(),
        },
    );
    let sock = d.sock.clone();
    let p = path.to_str().unwrap().to_string();
    // Attaching waits for the lock (and takes it from the dead peer after
    // a second) — without the table lock.
    let linkstr = std::thread::spawn(move || {
        let mut c = Client::connect(&sock).unwrap();
        let t = Instant::now();
        let r = c.ioctl(Request::SetLinkStr {
            name: "shmif0".into(),
            linkstr: Some(p),
        });
        (r, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut worst = Duration::ZERO;
    let mut c2 = Client::connect(&d.sock).unwrap();
    for _ in 0..5 {
        let t = Instant::now();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let rc = ifnet::ifconfig::main_with(&["-l".to_string()], &mut c2, &mut out, &mut err);
        worst = worst.max(t.elapsed());
        assert_eq!(rc, 0);
        assert!(String::from_utf8_lossy(&out).contains("shmif0"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (r, took) = linkstr.join().unwrap();
    r.unwrap();
    assert!(took >= Duration::from_millis(300), "linkstr took {took:?}");
    assert!(
        worst < Duration::from_millis(10),
        "ifconfig -l took {worst:?}"
    );
}

#[test]
fn forwarding_goes_on_beside_a_stuck_bus() {
    if !can_netadmin() {
        return;
    }
    let d = Daemon::start();
    let path = d.dir.path().join("stuck");
    let (ns1, ns2) = (Netns::new(), Netns::new());
    virt_in_ns(&d, "virt0", &ns1, "10.0.7.1/24");
    virt_in_ns(&d, "virt1", &ns2, "10.0.7.2/24");
    d.ok(&["shmif0", "create"]);
    d.ok(&["shmif0", "linkstr", path.to_str().unwrap()]);
    d.ok(&["shmif0", "up"]);
    d.ok(&["bridge0", "create"]);
    // shmif0 in the same bridge: the thread forwarding between the virts
    // also floods every broadcast onto the stuck bus.
    let (o, e, rc) = d.brconfig(&[
        "bridge0", "add", "virt0", "add", "virt1", "add", "shmif0", "up",
    ]);
    assert_eq!(rc, 0, "{o}{e}");
    let watch = Bus::attach(&path).unwrap();
    let mut reader = BusReader::at_end(&watch);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // Keep the lock stuck: the daemon takes it from the "dead" holder
    // after a second of standing still; it is stuck again at once.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let sticker = std::thread::spawn(move || {
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = f.write_at(&1u32.to_ne_bytes(), LOCK_OFF);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    std::thread::sleep(Duration::from_millis(50));
    // Broadcast pings go to the bus too (they wait there), unicast ones
    // only between the virts; each must be answered at once.
    let out = ns1
        .exec("ping -c 10 -i 0.1 -W 1 10.0.7.2; ping -b -c 3 -i 0.1 -W 1 10.0.7.255 2>&1 || true");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sticker.join().unwrap();
    assert!(out.contains("10 received"), "{out}");
    let max = out
        .lines()
        .find_map(|l| l.split(" = ").nth(1))
        .and_then(|v| v.split('/').nth(2))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::MAX);
    assert!(max < 200.0, "max RTT {max} ms: {out}");
    // What the bus could not take waited for it, without holding up the
    // forwarding: the three broadcast requests reach it, in order, once
    // the lock is taken from its "dead" holder.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut seqs, mut buf) = (Vec::new(), vec![0u8; 2048]);
    while seqs.len() < 3 && Instant::now() < deadline {
        match reader.recv(&watch, &mut buf, |_| true) {
            Recv::Frame { hdr, .. } => {
                let b = &buf[..hdr.len as usize];
                // IPv4 ICMP echo request to 10.0.7.255: its sequence number.
                if b.len() >= 42
                    && b[12..14] == [8, 0]
                    && b[23] == 1
                    && b[30..34] == [10, 0, 7, 255]
                    && b[34] == 8
                {
                    seqs.push(u16::from_be_bytes([b[40], b[41]]));
                }
            }
            Recv::Empty => std::thread::sleep(Duration::from_millis(5)),
            _ => {}
        }
    }
    assert_eq!(seqs, [1, 2, 3], "broadcast requests on the bus");
    assert_eq!(reader.laps, 0);
}

/// CPU time of a process (user and system), in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name: state is the first, utime the 12th.
    let rest = &s[s.rfind(')').unwrap() + 1..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|x| x.parse().unwrap())
        .collect();
    let tck = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap_or(100);
    (f[0] + f[1]) as f64 / tck as f64
}

/// With the reactor's spin forced on (`IFNET_SPIN_US`), a daemon with ten
/// interfaces with addresses, which has just carried round trips (the
/// spin on), uses under 1 % of a core once it has nothing to do: the
/// spin turns itself off after a few that find nothing.
#[test]
fn idle_daemon_with_the_spin_on_stays_idle() {
    let d = Daemon::start_env(&[("IFNET_SPIN_US", "200")]);
    let peer = Daemon::start();
    let bus = d.dir.path().join("bus");
    let bus = bus.to_str().unwrap();
    for i in 0..10 {
        let n = format!("shmif{i}");
        d.ok(&[&n, "create"]);
        d.ok(&[&n, "linkstr", bus]);
        d.ok(&[&n, "inet", &format!("10.93.{i}.1/24"), "up"]);
    }
    peer.ok(&["shmif0", "create"]);
    peer.ok(&["shmif0", "linkstr", bus]);
    peer.ok(&["shmif0", "inet", "10.93.0.2/24", "up"]);
    for x in [&d, &peer] {
        let (_, e, rc) = x.ifconfig(&["-w", "10"]);
        assert_eq!(rc, 0, "DAD: {e}");
    }
    let (o, e, rc) = run(d.cmd(env!("CARGO_BIN_EXE_ifping")).args([
        "-c",
        "100",
        "-i",
        "0.01",
        "-q",
        "10.93.0.2",
    ]));
    // Round trips happened (a loaded machine may drop a few: a frame
    // finds the bus lock held by a peer descheduled under it).
    let got: u32 = o
        .split(" packets received")
        .next()
        .and_then(|x| x.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(got >= 80, "ifping ({rc}): {o}{e}");
    let pid = pid(&d);
    std::thread::sleep(Duration::from_millis(500));
    let (c0, t0) = (cpu_secs(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(4));
    let share = (cpu_secs(pid) - c0) / t0.elapsed().as_secs_f64();
    assert!(
        share < 0.01,
        "idle daemon used {:.2} % of a core",
        share * 100.0
    );
}
