//! A bridge between two real media: two Linux network namespaces, each on
//! a virt(4) of one ifnetd, bridged by bridge0 (configured with brconfig's
//! library entry point over the control socket). Needs root and
//! /dev/net/tun; skipped elsewhere, required in CI.

use crate::common;

use common::*;
use ifnet::client::Client;

fn brconfig(d: &Daemon, line: &str) -> String {
    let mut c = Client::connect(&d.sock).unwrap();
    let args: Vec<String> = line.split_whitespace().map(String::from).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let rc = ifnet::brconfig::main_with(&args, &mut c, &mut out, &mut err);
    let err = String::from_utf8_lossy(&err);
    assert_eq!((rc, err.as_ref()), (0, ""), "brconfig {line}");
    String::from_utf8(out).unwrap()
}

fn mac_in_ns(ns: &Netns, dev: &str) -> String {
    let out = ns.exec(&format!("cat /sys/class/net/{dev}/address"));
    out.trim().to_string()
}

#[test]
fn namespaces_talk_across_a_bridge_of_two_virts() {
    if !can_netadmin() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start();
    let (ns1, ns2) = (Netns::new(), Netns::new());
    let tap1 = virt_in_ns(&d, "virt0", &ns1, "10.0.3.1/24");
    let tap2 = virt_in_ns(&d, "virt1", &ns2, "10.0.3.2/24");
    d.ok(&["bridge0", "create"]);
    brconfig(&d, "bridge0 add virt0 add virt1 up");

    let out = ns1.exec("ping -c 3 -i 0.2 -W 2 10.0.3.2");
    assert!(out.contains("3 received"), "{out}");
    let addr = brconfig(&d, "bridge0 addr");
    assert!(
        addr.contains(&format!("{} virt0 ", mac_in_ns(&ns1, &tap1))),
        "{addr}"
    );
    assert!(
        addr.contains(&format!("{} virt1 ", mac_in_ns(&ns2, &tap2))),
        "{addr}"
    );
    let (ifc, _, _) = d.ifconfig(&["virt0"]);
    assert!(
        ifc.contains("flags=0x8943<UP,BROADCAST,RUNNING,PROMISC,SIMPLEX,MULTICAST>"),
        "{ifc}"
    );

    // A TCP transfer with a checksum at both ends: whatever a busy member
    // drops, TCP repairs, and nothing arrives corrupted.
    tcp_transfer_intact(&ns1, &ns2, "10.0.3.2", 5002, 4, dir.path());

    // Without the bridge the namespaces are cut off again.
    brconfig(&d, "bridge0 delete virt1");
    let out = ns1.exec("ping -c 1 -W 1 10.0.3.2 || true");
    assert!(out.contains("0 received"), "{out}");
    let (ifc, _, _) = d.ifconfig(&["virt1"]);
    assert!(ifc.contains("flags=0x8843<"), "{ifc}");
}

/// Frames over 2000 bytes that reach `tap` in `ns` while `f` runs: TCP
/// super-frames, which only exist when offloads carried them.
fn big_frames_seen(ns: &Netns, tap: &str, scratch: &std::path::Path, f: impl FnOnce()) -> usize {
    let pcap = scratch.join(format!("{tap}.pcap"));
    let mut dump = std::process::Command::new("ip")
        .args([
            "netns", "exec", &ns.0, "tcpdump", "-i", tap, "-U", "-nn", "-w",
        ])
        .arg(&pcap)
        .args(["greater", "2000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // tcpdump says "listening on" once its capture is open.
    let mut err = std::io::BufReader::new(dump.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    assert!(line.contains("listening on"), "{line}");
    f();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dump.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    dump.wait().unwrap();
    let out = sh(&format!(
        "tcpdump -nn -r {} 2>/dev/null | wc -l",
        pcap.display()
    ));
    out.trim().parse().unwrap()
}

/// IFF_VNET_HDR offloads: TCP super-frames from one namespace reach the
/// other through virt → bridge → virt as they are; with segmentation
/// turned off on the receiving member (`-tso4`) the bridge cuts them into
/// MTU-sized frames itself. The data arrives intact either way, and the
/// counters count frames as they would be on a wire.
#[test]
fn tcp_super_frames_cross_the_bridge() {
    if !can_netadmin() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start();
    let (ns1, ns2) = (Netns::new(), Netns::new());
    virt_in_ns(&d, "virt0", &ns1, "10.0.4.1/24");
    let tap2 = virt_in_ns(&d, "virt1", &ns2, "10.0.4.2/24");
    d.ok(&["bridge0", "create"]);
    brconfig(&d, "bridge0 add virt0 add virt1 up");
    let (ifc, _, _) = d.ifconfig(&["virt1"]);
    assert!(ifc.contains("\tcapabilities=7fc80<TSO4,"), "{ifc}");
    assert!(ifc.contains("\tenabled=7fc80<TSO4,"), "{ifc}");
    let out = ns1.exec("ping -c 2 -i 0.2 -W 2 10.0.4.2");
    assert!(out.contains("2 received"), "{out}");

    let big = big_frames_seen(&ns2, &tap2, dir.path(), || {
        tcp_transfer_intact(&ns1, &ns2, "10.0.4.2", 5003, 8, dir.path())
    });
    assert!(big > 0, "no super-frames reached {tap2}");

    d.ok(&["virt1", "-tso4", "-tso6"]);
    let (ifc, _, _) = d.ifconfig(&["virt1"]);
    assert!(ifc.contains("\tenabled=3fc00<TCP4CSUM_Rx,"), "{ifc}");
    let before = d.ifconfig(&["-v", "virt1"]).0;
    let big = big_frames_seen(&ns2, &tap2, dir.path(), || {
        tcp_transfer_intact(&ns1, &ns2, "10.0.4.2", 5004, 8, dir.path())
    });
    assert_eq!(big, 0, "super-frames reached {tap2} with -tso4");
    // 8 MiB in frames of at most 1448 payload bytes: at least 5794 of them.
    let opackets = |s: &str| -> u64 {
        let l = s.lines().find(|l| l.contains("output:")).unwrap();
        l.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let sent = opackets(&d.ifconfig(&["-v", "virt1"]).0) - opackets(&before);
    assert!(sent >= 5794, "virt1 counted {sent} output frames");
}
