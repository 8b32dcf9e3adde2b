//! Jumbo frames through a bridge, built in the order NetBSD's rules make
//! natural: the bridge's MTU (never checked against members), the members'
//! (up to 9000 where the medium carries it), then the members are added
//! (refused unless their MTU is the bridge's).

use crate::common;

use common::{Daemon, Netns};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn rx_bytes(ns: &Netns, dev: &str) -> u64 {
    ns.exec(&format!("cat /sys/class/net/{dev}/statistics/rx_bytes"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn jumbo_bridge_in_the_natural_order() {
    if !common::can_netadmin() {
        return;
    }
    let d = Daemon::start();
    let ns = Netns::new();
    let host = common::virt_in_ns(&d, "virt0", &ns, "10.9.1.1/24");
    ns.exec(&format!("ip link set {host} mtu 9000"));
    d.ok(&["tap0", "create"]);
    d.ok(&["bridge0", "create"]);
    d.ok(&["bridge0", "mtu", "9000"]);
    d.ok(&["virt0", "mtu", "9000"]);
    d.ok(&["tap0", "mtu", "9000"]);
    let (_, err, rc) = d.brconfig(&["bridge0", "add", "virt0", "add", "tap0", "up"]);
    assert_eq!((err.as_str(), rc), ("", 0));
    let (out, _, _) = d.ifconfig(&["bridge0"]);
    assert!(
        out.starts_with("bridge0: flags=0x41<UP,RUNNING> mtu 9000\n"),
        "{out}"
    );
    let mut c = UnixStream::connect(d.run_dir().join("tap0")).unwrap();

    // Namespace to tap0: a 9014-byte frame (ping -s 8972, not fragmented).
    ns.exec(&format!(
        "ip neigh add 10.9.1.2 lladdr 02:00:00:00:00:02 dev {host} && ping -c 1 -W 1 -s 8972 -M do 10.9.1.2 >/dev/null; true"
    ));
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no 9014-byte frame on tap0");
        let mut len = [0u8; 4];
        c.read_exact(&mut len).expect("a frame on tap0");
        let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
        c.read_exact(&mut f).unwrap();
        if f.len() == 9014 && f[..6] == [2, 0, 0, 0, 0, 2] {
            break;
        }
    }

    // tap0 to the namespace: a 9014-byte broadcast frame.
    let before = rx_bytes(&ns, &host);
    let mut f = vec![0x5a; 9014];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    c.write_all(&(f.len() as u32).to_be_bytes()).unwrap();
    c.write_all(&f).unwrap();
    common::wait_until(5, "the frame in the namespace", || {
        rx_bytes(&ns, &host) >= before + 9014
    });
}

/// What a medium cannot carry is refused: the shmif bus holds frames of
/// at most 1514 bytes, virt's host TAP takes 9000.
#[test]
fn mtu_limits_of_the_media() {
    let d = Daemon::start();
    d.ok(&["shmif0", "create"]);
    d.ok(&["virt0", "create"]);
    for (args, refused) in [
        (["shmif0", "mtu", "1501"], true),
        (["shmif0", "mtu", "1500"], false),
        (["virt0", "mtu", "9001"], true),
        (["virt0", "mtu", "9000"], false),
    ] {
        let (_, err, _) = d.ifconfig(&args);
        assert_eq!(!err.is_empty(), refused, "ifconfig {args:?}: {err}");
    }
}
