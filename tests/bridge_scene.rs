//! A bridge between two real media: two Linux network namespaces, each on
//! a virt(4) of one ifnetd, bridged by bridge0 (configured with brconfig's
//! library entry point over the control socket). Needs root and
//! /dev/net/tun; skipped elsewhere, required in CI.

mod common;

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
