//! A bridge between two real media: two Linux network namespaces, each on
//! a virt(4) of one ifnetd, bridged by bridge0 (configured with brconfig's
//! library entry point over the control socket). Needs root and
//! /dev/net/tun; skipped elsewhere, required in CI.

mod common;

use common::*;
use ifnet::client::Client;

fn virt_in_ns(d: &Daemon, virt: &str, ns: &Netns, host_addr: &str) -> String {
    let tap = unique("ifb");
    d.ok(&[virt, "create"]);
    d.ok(&[virt, "linkstr", &tap]);
    d.ok(&[virt, "up"]);
    sh(&format!("ip link set {tap} netns {}", ns.0));
    ns.exec(&format!(
        "ip addr add {host_addr} dev {tap} && ip link set {tap} up"
    ));
    tap
}

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
    let sum = dir.path().join("sum");
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
    ns2.exec(&format!(
        "python3 -c 'import socket,hashlib\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind((\"10.0.3.2\",5002));s.listen(1);s.settimeout(30)\nc,_=s.accept();c.settimeout(30);h=hashlib.sha256()\nwhile True:\n  b=c.recv(65536)\n  if not b: break\n  h.update(b)\nopen(\"{0}.tmp\",\"w\").write(h.hexdigest())\nimport os;os.rename(\"{0}.tmp\",\"{0}\")' >/dev/null 2>&1 &",
        sum.display()
    ));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let sent = ns1.exec(
        "python3 -c 'import socket,hashlib,os\nd=os.urandom(4<<20);s=socket.create_connection((\"10.0.3.2\",5002),timeout=20);s.sendall(d);s.close();print(hashlib.sha256(d).hexdigest())'",
    );
    wait_until(30, "the receiver's checksum", || sum.exists());
    let got = std::fs::read_to_string(&sum).unwrap();
    assert_eq!(sent.trim(), got.trim(), "4 MiB arrived intact");

    // Without the bridge the namespaces are cut off again.
    brconfig(&d, "bridge0 delete virt1");
    let out = ns1.exec("ping -c 1 -W 1 10.0.3.2 || true");
    assert!(out.contains("0 received"), "{out}");
    let (ifc, _, _) = d.ifconfig(&["virt1"]);
    assert!(ifc.contains("flags=0x8843<"), "{ifc}");
}
