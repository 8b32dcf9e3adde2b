//! 802.1D spanning tree between real daemons and with the Linux kernel's
//! bridge (issue 18).
//!
//! The loop: two ifnetd, each with `bridge0` joining `shmif0` (bus 1),
//! `shmif1` (bus 2) and `shmif2`, an edge of its own (bus A, bus B) that
//! holds its IP address. Buses 1 and 2 join the two bridges twice: a
//! physical loop.

use crate::common;

use common::{
    Daemon, Netns, can_netadmin, sh, tcp_transfer_intact, unique, virt_in_ns, wait_until,
};
use ifnet::client::Client;
use ifnet::drivers::shmif::bus::{Bus, BusReader, Recv};
use ifnet::ioctl::{Errno, Ioctl, Reply, Request};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// hellotime 1 fwddelay 4 maxage 6: the 802.1D bound on convergence is
/// 2 × forward delay + max age.
const TIMERS: [&str; 7] = ["bridge0", "hellotime", "1", "fwddelay", "4", "maxage", "6"];
const BOUND: u64 = 2 * 4 + 6;

/// (member, state) of every `stp` member, from `brconfig bridge0`.
fn stp_states(d: &Daemon) -> Vec<(String, String)> {
    let (out, err, rc) = d.brconfig(&["bridge0"]);
    assert_eq!(rc, 0, "{err}");
    let mut v = Vec::new();
    let mut member = String::new();
    for l in out.lines() {
        if let Some(m) = l.strip_prefix("\t\t")
            && !m.starts_with('\t')
            && m.contains(" flags=")
        {
            member = m.split(' ').next().unwrap().to_string();
        } else if l.starts_with("\t\t\tport ") && l.contains(" path cost ") {
            v.push((member.clone(), l.rsplit(' ').next().unwrap().to_string()));
        }
    }
    v
}

fn count(states: &[(String, String)], s: &str) -> usize {
    states.iter().filter(|(_, x)| x == s).count()
}

fn converged(ds: &[&Daemon]) -> bool {
    ds.iter()
        .flat_map(|d| stp_states(d))
        .all(|(_, s)| s == "forwarding" || s == "blocking")
}

fn brconfig_ok(d: &Daemon, args: &[&str]) {
    let (out, err, rc) = d.brconfig(args);
    assert_eq!((out.as_str(), err.as_str(), rc), ("", "", 0), "{args:?}");
}

/// `brconfig -v bridge0`'s root port line.
fn root_port(d: &Daemon) -> String {
    let (out, _, _) = d.brconfig(&["-v", "bridge0"]);
    let l = out
        .lines()
        .find(|l| l.contains("root port "))
        .unwrap_or_else(|| panic!("{out}"));
    l.rsplit(' ').next().unwrap().to_string()
}

fn ping(d: &Daemon, dst: &str, timeout_ms: u32) -> bool {
    let mut c = Client::connect(&d.sock).unwrap();
    let dst: IpAddr = dst.parse().unwrap();
    match c.ioctl(Request::Echo {
        dst,
        scope: None,
        ident: 18,
        seq: 1,
        len: 56,
        timeout_ms,
    }) {
        Ok(Reply::Echo { from, .. }) => from == dst,
        Err(Errno::ETIMEDOUT) | Err(Errno::EHOSTUNREACH) => false,
        r => panic!("{r:?}"),
    }
}

/// Ping until an answer comes, for at most `secs` (ARP may need a retry
/// while a port comes up).
fn ping_within(d: &Daemon, dst: &str, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if ping(d, dst, 1000) {
            return true;
        }
    }
    false
}

struct Loop {
    a: Daemon,
    b: Daemon,
    dir: tempfile::TempDir,
}

impl Loop {
    fn bus(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn new(stp: bool) -> Loop {
        let l = Loop {
            a: Daemon::start(),
            b: Daemon::start(),
            dir: tempfile::tempdir().unwrap(),
        };
        for (d, edge, ip) in [
            (&l.a, "busA", "10.18.0.1/24"),
            (&l.b, "busB", "10.18.0.2/24"),
        ] {
            for (i, bus) in ["bus1", "bus2", edge].iter().enumerate() {
                let name = format!("shmif{i}");
                let path = l.bus(bus);
                d.ok(&[&name, "create", "linkstr", path.to_str().unwrap(), "up"]);
            }
            d.ok(&["shmif2", "inet", ip]);
            d.ok(&["bridge0", "create"]);
            brconfig_ok(
                d,
                &["bridge0", "add", "shmif0", "add", "shmif1", "add", "shmif2"],
            );
            brconfig_ok(d, &TIMERS);
            if stp {
                brconfig_ok(d, &["bridge0", "stp", "shmif0", "stp", "shmif1"]);
            }
        }
        // A is the root whatever the MACs.
        brconfig_ok(&l.a, &["bridge0", "priority", "4096"]);
        brconfig_ok(&l.a, &["bridge0", "up"]);
        brconfig_ok(&l.b, &["bridge0", "up"]);
        l
    }

    /// Put one broadcast frame on bus A and count its copies on `bus` for
    /// `d`, or until there are more than `enough`: (copies seen, times the
    /// reader was lapped by a flood).
    fn broadcast_copies(&self, bus: &str, d: Duration, enough: usize) -> (usize, u64) {
        let watch = Bus::attach(&self.bus(bus)).unwrap();
        let mut reader = BusReader::at_end(&watch);
        let src = [0x02, 0x18, 0x18, 0, 0, 1];
        let mut f = [[0xff; 6], src].concat();
        f.extend_from_slice(&[0x88, 0xb5]); // local experimental type
        f.resize(60, 0x18);
        Bus::attach(&self.bus("busA"))
            .unwrap()
            .send(&f, 0x1818)
            .unwrap();
        let end = Instant::now() + d;
        let (mut n, mut buf) = (0, vec![0u8; 65536]);
        while Instant::now() < end && n <= enough && reader.laps == 0 {
            match reader.recv(&watch, &mut buf, |_| true) {
                Recv::Frame { hdr, .. } => {
                    let b = &buf[..hdr.len as usize];
                    if b.len() >= 12 && b[6..12] == src {
                        n += 1;
                    }
                }
                Recv::Empty => std::thread::sleep(Duration::from_millis(5)),
                _ => {}
            }
        }
        (n, reader.laps)
    }
}

#[test]
fn a_loop_of_ifnet_bridges_blocks_one_port() {
    let l = Loop::new(true);
    let t0 = Instant::now();
    wait_until(BOUND + 2, "the loop to converge", || {
        converged(&[&l.a, &l.b])
    });
    eprintln!("converged in {:?}", t0.elapsed());
    let (sa, sb) = (stp_states(&l.a), stp_states(&l.b));
    assert_eq!(sa.len() + sb.len(), 4, "{sa:?} {sb:?}");
    assert_eq!(
        count(&sa, "blocking") + count(&sb, "blocking"),
        1,
        "{sa:?} {sb:?}"
    );
    // The root (A) forwards on both; B blocks the port that is not its
    // root port.
    assert_eq!(count(&sa, "forwarding"), 2, "{sa:?}");
    let (va, _, _) = l.a.brconfig(&["-v", "bridge0"]);
    let (vb, _, _) = l.b.brconfig(&["-v", "bridge0"]);
    let root_of = |v: &str| {
        v.lines()
            .find(|x| x.contains("root id "))
            .map(|x| x.split(' ').nth(2).unwrap().to_string())
    };
    assert_eq!(root_of(&va), root_of(&vb), "{va}\n{vb}");
    assert!(va.contains("root id 1000."), "{va}");
    assert!(va.contains("root path cost 0 root port none"), "{va}");
    assert!(vb.contains("root path cost 55 root port shmif"), "{vb}");

    // One broadcast in: one copy on each bus, no more.
    for bus in ["bus1", "bus2"] {
        let (n, laps) = l.broadcast_copies(bus, Duration::from_millis(1500), 1);
        assert_eq!((n, laps), (1, 0), "copies of one broadcast on {bus}");
    }
    assert!(ping_within(&l.a, "10.18.0.2", 5), "ping across the loop");

    // Take down A's member on the bus where B's root port is: B hears no
    // more hellos there, ages them out (max age) and moves its root port
    // to the blocked one, which forwards 2 × forward delay later.
    let rp = root_port(&l.b);
    l.a.ok(&[&rp, "down"]);
    let t1 = Instant::now();
    wait_until(BOUND + 2, "B's blocked port to forward", || {
        count(&stp_states(&l.b), "forwarding") == 2
    });
    let took = t1.elapsed();
    eprintln!("reconverged in {took:?}");
    assert_ne!(root_port(&l.b), rp);
    // B may still send to A's address out of its former root port until
    // the topology change ages it out (forward delay): allow for that.
    assert!(ping_within(&l.a, "10.18.0.2", 10), "ping after the failure");
}

#[test]
fn a_loop_without_stp_multiplies_a_broadcast() {
    let l = Loop::new(false);
    // Stop counting at the 11th copy and kill the storm at once: the
    // machine is shared.
    let (n, laps) = l.broadcast_copies("bus1", Duration::from_millis(2000), 10);
    drop(l);
    assert!(n > 10 || laps > 0, "{n} copies, {laps} laps: no storm?");
}

/// The Linux bridge's view: (port, state) from `bridge link`.
fn linux_states(ns: &Netns) -> Vec<(String, String)> {
    ns.exec("bridge link")
        .lines()
        .filter_map(|l| {
            let port = l.split(": ").nth(1)?.split(['@', ':']).next()?.to_string();
            let state = l.split(" state ").nth(1)?.split(' ').next()?.to_string();
            Some((port, state))
        })
        .collect()
}

/// A bridge id as Linux's sysfs spells it: `1000.b20ada0b0e01`.
fn linux_id(brconfig_id: &str) -> String {
    brconfig_id.replace(':', "")
}

fn ns_ping(ns: &Netns, dst: &str) -> bool {
    std::process::Command::new("ip")
        .args(["netns", "exec", &ns.0, "ping", "-c", "1", "-W", "1", dst])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// An ifnet bridge and a Linux kernel bridge (kernel STP, `stp_state 1`,
/// in a namespace) joined twice: virt0 and virt1, each on a host TAP
/// that is a port of the Linux bridge. The one with priority 4096 must
/// become the root of both; the other blocks one of its two ports.
fn interop(linux_root: bool) {
    if !can_netadmin() {
        return;
    }
    let ns = Netns::new();
    let (lp, ip_) = if linux_root {
        (4096, 32768)
    } else {
        (32768, 4096)
    };
    ns.exec(&format!(
        "ip link add br0 type bridge stp_state 1 forward_delay 400 hello_time 100 \
         max_age 600 priority {lp} && ip link set br0 up && ip addr add 10.19.0.1/24 dev br0"
    ));
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let mut taps = Vec::new();
    for i in 0..2 {
        let tap = unique("ift");
        let virt = format!("virt{i}");
        d.ok(&[&virt, "create", "linkstr", &tap, "up"]);
        sh(&format!("ip link set {tap} netns {}", ns.0));
        ns.exec(&format!("ip link set {tap} master br0 up"));
        taps.push(tap);
    }
    let bus = dir.path().join("edge");
    d.ok(&["shmif0", "create", "linkstr", bus.to_str().unwrap(), "up"]);
    d.ok(&["shmif0", "inet", "10.19.0.2/24"]);
    // A host behind the ifnet bridge, for TCP across both bridges.
    let host = Netns::new();
    virt_in_ns(&d, "virt2", &host, "10.19.0.3/24");
    d.ok(&["bridge0", "create"]);
    brconfig_ok(
        &d,
        &[
            "bridge0", "add", "virt0", "add", "virt1", "add", "shmif0", "add", "virt2",
        ],
    );
    brconfig_ok(&d, &["bridge0", "stp", "virt0", "stp", "virt1"]);
    brconfig_ok(&d, &TIMERS);
    brconfig_ok(&d, &["bridge0", "priority", &ip_.to_string(), "up"]);

    let settled = || {
        let ours = stp_states(&d);
        let theirs = linux_states(&ns);
        ours.len() == 2
            && theirs.len() == 2
            && ours
                .iter()
                .chain(&theirs)
                .all(|(_, s)| s == "forwarding" || s == "blocking")
            && count(&ours, "blocking") + count(&theirs, "blocking") == 1
    };
    wait_until(BOUND + 4, "ifnet and Linux to agree on a tree", settled);
    let (v, _, _) = d.brconfig(&["-v", "bridge0"]);
    let field = |after: &str| {
        v.split(after)
            .nth(1)
            .and_then(|r| r.split([' ', '\n']).next())
            .unwrap_or_else(|| panic!("{v}"))
            .to_string()
    };
    let (our_root, our_id) = (field("root id "), field("bridge id "));
    let linux_root_id = ns.exec("cat /sys/class/net/br0/bridge/root_id");
    let linux_bridge_id = ns.exec("cat /sys/class/net/br0/bridge/bridge_id");
    assert_eq!(linux_id(&our_root), linux_root_id.trim(), "{v}");
    let (ours, theirs) = (stp_states(&d), linux_states(&ns));
    if linux_root {
        assert_eq!(linux_root_id.trim(), linux_bridge_id.trim());
        assert_eq!(count(&ours, "blocking"), 1, "{ours:?}");
    } else {
        assert_eq!(our_root, our_id, "{v}");
        assert_eq!(count(&theirs, "blocking"), 1, "{theirs:?}");
    }
    let ok = (0..10).any(|_| ns_ping(&ns, "10.19.0.2"));
    assert!(ok, "ping across");
    let port = if linux_root { 5181 } else { 5182 };
    tcp_transfer_intact(&host, &ns, "10.19.0.1", port, 8, dir.path());

    // Take the forwarding link of the non-root side out of the Linux
    // bridge; its blocked link must take over.
    let forwarding_tap = if linux_root {
        let port = ours.iter().find(|(_, s)| s == "forwarding").unwrap();
        taps[if port.0 == "virt0" { 0 } else { 1 }].clone()
    } else {
        theirs
            .iter()
            .find(|(_, s)| s == "forwarding")
            .unwrap()
            .0
            .clone()
    };
    ns.exec(&format!("ip link set {forwarding_tap} nomaster"));
    let t = Instant::now();
    wait_until(BOUND + 4, "the blocked link to forward", || {
        if linux_root {
            count(&stp_states(&d), "blocking") == 0
                && stp_states(&d).iter().all(|(_, s)| s == "forwarding")
        } else {
            linux_states(&ns).iter().all(|(_, s)| s == "forwarding")
        }
    });
    eprintln!("reconverged in {:?}", t.elapsed());
    let ok = (0..10).any(|_| ns_ping(&ns, "10.19.0.2"));
    assert!(ok, "ping after the failure");
    tcp_transfer_intact(&host, &ns, "10.19.0.1", port + 10, 2, dir.path());
}

#[test]
fn linux_bridge_as_root() {
    interop(true);
}

#[test]
fn ifnet_bridge_as_root_of_a_linux_bridge() {
    interop(false);
}

/// A BPDU flood on one `stp` member (a client writing configuration
/// BPDUs to tap0 as fast as it can, 100k/s and more) does not stall
/// forwarding between the other members: 1,000 frames tap1 → tap2 all
/// arrive while it lasts, and the tree counted the BPDUs.
#[test]
fn a_bpdu_flood_does_not_stall_other_members() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let d = Daemon::start();
    for i in ["tap0", "tap1", "tap2", "bridge0"] {
        d.ok(&[i, "create"]);
    }
    brconfig_ok(
        &d,
        &[
            "bridge0", "add", "tap0", "tap1", "tap2", "stp", "tap0", "up",
        ],
    );
    let run = d.run_dir();
    let mut flood = UnixStream::connect(run.join("tap0")).unwrap();
    let mut c1 = UnixStream::connect(run.join("tap1")).unwrap();
    let mut c2 = UnixStream::connect(run.join("tap2")).unwrap();
    wait_until(5, "taps up", || {
        ["tap0", "tap1", "tap2"]
            .iter()
            .all(|t| d.ifconfig(&[t]).0.contains("<UP,"))
    });
    // A configuration BPDU from a would-be root of priority 0.
    let mut bpdu = vec![0x01, 0x80, 0xc2, 0, 0, 0, 0x02, 0, 0, 0, 0xf1, 1, 0, 38];
    bpdu.extend([0x42, 0x42, 0x03, 0, 0, 0, 0, 0]);
    bpdu.extend([0, 0, 0x02, 0, 0, 0, 0xf1, 1, 0, 0, 0, 0]);
    bpdu.extend([0, 0, 0x02, 0, 0, 0, 0xf1, 1, 0x80, 0x01]);
    // Message age 0, max age 20 s, hello 2 s, forward delay 15 s (1/256 s).
    bpdu.extend([0, 0, 20, 0, 2, 0, 15, 0]);
    bpdu.resize(60, 0);
    let mut rec = (bpdu.len() as u32).to_be_bytes().to_vec();
    rec.extend(&bpdu);
    let burst: Vec<u8> = rec.repeat(256);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooder = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if flood.write_all(&burst).is_err() {
                    break;
                }
                sent.fetch_add(256, Ordering::Relaxed);
            }
        })
    };
    // Meanwhile tap1's client sends 1,000 frames that tap2 floods out.
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    for n in 0u32..1000 {
        let mut f = vec![0xff; 6];
        f.extend([0x02, 0, 0, 0, 0xf1, 2, 0x88, 0xb5]);
        f.extend(n.to_be_bytes());
        f.resize(100, 0);
        c1.write_all(&(f.len() as u32).to_be_bytes()).unwrap();
        c1.write_all(&f).unwrap();
    }
    c2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = 0;
    while got < 1000 {
        let mut len = [0u8; 4];
        if c2.read_exact(&mut len).is_err() {
            break;
        }
        let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
        c2.read_exact(&mut f).unwrap();
        if f.len() == 100 && f[12..14] == [0x88, 0xb5] {
            got += 1;
        }
    }
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    let flooded = sent.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    assert_eq!(got, 1000, "frames tap1 → tap2 during the flood ({took:?})");
    let (out, _, _) = d.brconfig(&["-v", "bridge0"]);
    let config_in: u64 = out
        .split("config in ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(config_in > 1000, "{out}");
    eprintln!("BPDU flood: {flooded:.0}/s offered; 1000 frames across in {took:?}");
}
