//! Hostile writers of a bus file (issue 12, items 2 and 6): they may cost
//! that bus its traffic, never the daemon or its other interfaces.

use crate::common;

use common::*;
use memmap2::MmapRaw;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn ifping(d: &Daemon, args: &[&str]) -> (String, String, i32) {
    run(d.cmd(env!("CARGO_BIN_EXE_ifping")).args(args))
}

/// A shmif host on `bus` with an IPv4 address, waited out of DAD.
fn bus_host(bus: &Path, v4: &str) -> Daemon {
    let d = Daemon::start();
    d.ok(&["shmif0", "create"]);
    d.ok(&["shmif0", "linkstr", bus.to_str().unwrap()]);
    d.ok(&["shmif0", "inet", v4]);
    d.ok(&["shmif0", "up"]);
    d.ok(&["-w", "5"]);
    d
}

/// Item 6: one 4-byte write of a wild `first` (0xfffffff0 at offset 16).
/// The next writer finds the header impossible and repairs it: pings
/// come back within a couple of seconds.
#[test]
fn a_wild_first_is_repaired_by_the_next_writer() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus");
    let a = bus_host(&bus, "10.0.12.1/24");
    let _b = bus_host(&bus, "10.0.12.2/24");
    let (out, err, rc) = ifping(&a, &["-c", "1", "-W", "2", "10.0.12.2"]);
    assert_eq!(rc, 0, "{out}{err}");
    let f = std::fs::OpenOptions::new().write(true).open(&bus).unwrap();
    f.write_all_at(&0xffff_fff0u32.to_ne_bytes(), 16).unwrap();
    let t = Instant::now();
    loop {
        let (_, _, rc) = ifping(&a, &["-c", "1", "-W", "1", "10.0.12.2"]);
        if rc == 0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "no ping through the bus 3 s after its first was made wild"
        );
    }
    eprintln!("wild first: ping again after {:?}", t.elapsed());
    let mut h = [0u8; 4];
    f.read_exact_at(&mut h, 16).unwrap_or_else(|_| {
        std::fs::File::open(&bus)
            .unwrap()
            .read_exact_at(&mut h, 16)
            .unwrap()
    });
    assert!(u32::from_ne_bytes(h) <= (1 << 20) - 32, "first still wild");
}

/// Item 2's attacker: a peer that maps the bus, keeps the lock word at 1
/// and bumps `gen` every 200 µs, so it never looks dead.
struct Locker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Locker {
    fn start(bus: &Path) -> Locker {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(bus)
            .unwrap();
        f.set_len(1 << 20).unwrap();
        // A bus: magic, and `first` where a fresh one has it.
        f.write_all_at(&0xca11_d054u32.to_ne_bytes(), 0).unwrap();
        f.write_all_at(&((1u32 << 20) - 32).to_ne_bytes(), 16)
            .unwrap();
        let map = MmapRaw::map_raw(&f).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let _f = f;
            // SAFETY: offsets 8 and 24 of a 1 MiB shared mapping that
            // lives as long as this thread, aligned for their types.
            let (generation, lock) = unsafe {
                (
                    &*(map.as_mut_ptr().add(8) as *const AtomicU64),
                    &*(map.as_mut_ptr().add(24) as *const AtomicU32),
                )
            };
            while !s.load(Ordering::Relaxed) {
                lock.store(1, Ordering::Relaxed);
                generation.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
            lock.store(0, Ordering::Relaxed);
        });
        Locker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Item 2: while a live-looking peer holds a bus's lock forever, the
/// daemon answers other clients, attaching to that bus fails in bounded
/// time, an interface on another bus keeps working and SIGTERM stops the
/// daemon.
#[test]
fn a_lock_held_forever_costs_only_its_bus() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    let evil = dir.path().join("evil");
    let mut a = bus_host(&good, "10.0.13.1/24");
    let _b = bus_host(&good, "10.0.13.2/24");
    // shmif1 on the bus before the attack, up, with an address.
    a.ok(&["shmif1", "create"]);
    a.ok(&["shmif1", "linkstr", evil.to_str().unwrap()]);
    a.ok(&["shmif1", "inet", "10.0.14.1/24"]);
    a.ok(&["shmif1", "up"]);
    let locker = Locker::start(&evil);
    std::thread::sleep(Duration::from_millis(50));

    // Attach another interface to the hostile bus, from one client...
    a.ok(&["shmif2", "create"]);
    let attach = {
        let mut c = a.cmd(IFCONFIG);
        c.args(["shmif2", "linkstr", evil.to_str().unwrap()]);
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = run(&mut c);
            (r, t.elapsed())
        })
    };
    // ...while another is answered at once, again and again.
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let (out, err, rc) = a.ifconfig(&["-l"]);
        worst = worst.max(t.elapsed());
        assert_eq!(rc, 0, "{out}{err}");
        assert!(out.contains("shmif2"), "{out}");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("ifconfig -l during the attack: worst {worst:?}");
    assert!(
        worst < Duration::from_millis(100),
        "ifconfig -l took {worst:?}"
    );
    // Traffic on the hostile bus is dropped, the daemon's own is not.
    let (_, _, rc) = ifping(&a, &["-c", "1", "-W", "1", "10.0.14.2"]);
    assert_ne!(rc, 0);
    let (out, err, rc) = ifping(&a, &["-c", "5", "-i", "0.1", "-W", "2", "10.0.13.2"]);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.contains("5 packets received"), "{out}");
    let ((out, err, rc), took) = attach.join().unwrap();
    eprintln!("linkstr to the locked bus: rc {rc} after {took:?}: {err}");
    assert!(took < Duration::from_secs(5), "linkstr took {took:?}");
    assert_ne!(rc, 0, "attached through a lock held forever?\n{out}{err}");

    // SIGTERM stops the daemon while the attack goes on, and while a
    // client waits to attach to the hostile bus.
    a.ok(&["shmif3", "create"]);
    let mut waiting = a
        .cmd(IFCONFIG)
        .args(["shmif3", "linkstr", evil.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut child = a.child.take().unwrap();
    let t = Instant::now();
    // SAFETY: plain kill(2) of a process we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    while child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "ifnetd ignored SIGTERM for 2 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("SIGTERM during the attack: gone after {:?}", t.elapsed());
    let _ = waiting.wait();
    drop(locker);
}

/// Item 12: a frame on the bus from before the interface came up (here
/// a dead predecessor's DAD probe for the same address) is not evidence
/// of a duplicate: the address comes out of DAD clean.
#[test]
fn a_probe_from_before_up_is_no_duplicate() {
    use ifnet::drivers::shmif::bus::Bus;
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus");
    let d = bus_host(&bus, "10.0.13.1/24");
    d.ok(&["shmif0", "down"]);
    // who-has 10.0.13.1 tell 0.0.0.0, from another host's MAC.
    let mut probe = vec![0xff; 6];
    probe.extend([0x02, 0, 0, 0, 0x13, 1, 0x08, 0x06]);
    probe.extend([0, 1, 0x08, 0, 6, 4, 0, 1]);
    probe.extend([0x02, 0, 0, 0, 0x13, 1, 0, 0, 0, 0]);
    probe.extend([0, 0, 0, 0, 0, 0, 10, 0, 13, 1]);
    probe.resize(60, 0);
    Bus::attach(&bus).unwrap().send(&probe, 0x5eed).unwrap();
    d.ok(&["shmif0", "up"]);
    // DAD runs at up (3 probes, 50 ms apart) and ends.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (out, _, _) = d.ifconfig(&["shmif0"]);
        let line = out.lines().find(|l| l.contains("inet 10.0.13.1")).unwrap();
        assert!(!line.contains("DUPLICATED"), "{out}");
        if line.contains("flags 0x0") {
            break;
        }
        assert!(Instant::now() < deadline, "DAD never ended: {out}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Item 14: a bus file on a full file system is refused at linkstr with
/// ENOSPC (its blocks are allocated when attaching), not attached and
/// later reported as "truncated".
#[test]
fn a_bus_on_a_full_file_system_is_refused() {
    if !can_netadmin() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=512k tmpfs {}",
        mnt.display()
    ));
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .args(["-l"])
                .arg(&self.0)
                .status();
        }
    }
    let _u = Umount(mnt.clone());
    let d = Daemon::start();
    d.ok(&["shmif0", "create"]);
    let bus = mnt.join("bus");
    let (out, err, rc) = d.ifconfig(&["shmif0", "linkstr", bus.to_str().unwrap()]);
    assert_eq!(
        (out.as_str(), err.as_str(), rc),
        ("", "ifconfig: SIOCSLINKSTR: No space left on device\n", 1)
    );
    let (out, _, _) = d.ifconfig(&["shmif0"]);
    assert!(!out.contains("linkstr:"), "{out}");
}
