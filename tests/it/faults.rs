//! Faults: a daemon killed with traffic in flight, clients killed mid-way.

use crate::common;

use common::*;
use std::process::Command;

fn host_link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .output()
        .unwrap()
        .status
        .success()
}

/// The host TAPs a daemon made are gone when it dies by kill -9 (they are
/// not persistent: the kernel removes them with the daemon's last
/// descriptor), and a new daemon on the same socket makes them again.
#[test]
fn kill9_leaves_no_host_taps() {
    if !can_netadmin() {
        return;
    }
    let mut d = Daemon::start();
    let tap = unique("ifk");
    d.ok(&["virt0", "create"]);
    d.ok(&["virt0", "linkstr", &tap]);
    d.ok(&["virt0", "inet", "10.0.7.1/24"]);
    assert!(host_link_exists(&tap));
    // Traffic in flight: the host floods the TAP while the daemon dies.
    sh(&format!(
        "ip addr add 10.0.7.2/24 dev {tap} && ip link set {tap} up"
    ));
    let mut flood = Command::new("ping")
        .args(["-f", "-q", "-w", "3", "10.0.7.1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    d.kill9();
    wait_until(5, "the host TAP to go away", || !host_link_exists(&tap));
    let _ = flood.wait();
    d.spawn();
    d.ok(&["virt0", "create"]);
    d.ok(&["virt0", "linkstr", &tap]);
    d.ok(&["virt0", "up"]);
    assert!(host_link_exists(&tap));
    d.ok(&["virt0", "down"]);
    d.ok(&["virt0", "destroy"]);
    assert!(!host_link_exists(&tap));
}

/// A tool killed while waiting for its answer disturbs nobody.
#[test]
fn client_killed_mid_request() {
    let d = Daemon::start();
    d.ok(&["tap0", "create", "inet", "10.1.0.1/24"]);
    // ifping blocks in an Echo request that will time out (no one answers
    // on tap0); kill it there.
    let mut c = d
        .cmd(env!("CARGO_BIN_EXE_ifping"))
        .args(["-c", "1", "-W", "5", "10.1.0.9"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    c.kill().unwrap();
    let _ = c.wait();
    let (out, err, rc) = d.ifconfig(&["-l"]);
    assert_eq!((out.as_str(), err.as_str(), rc), ("lo0 tap0\n", "", 0));
    let (out, _, rc) = run(d
        .cmd(env!("CARGO_BIN_EXE_ifping"))
        .args(["-c", "1", "-W", "1", "10.1.0.9"]));
    assert_eq!(rc, 2, "the kernel still answers: no reply, exit 2\n{out}");
}
