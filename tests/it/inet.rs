//! The IP presence over a crossover cable between two in-process kernels:
//! ARP/NDP, echo both ways, DAD and duplicate detection. (Over real media
//! — a shmif bus between two ifnetd processes, virt to a Linux namespace —
//! in tests/scene.rs.)

use crate::common;

use common::cable::{Cables, Plug, plug};
use ifnet::Kernel;
use ifnet::cloner::{Cloners, DadTimers, KernelEnv};
use ifnet::ioctl::{Errno, In6AliasReq, InAliasReq, Reply, Request, iff};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Duplicate address detection with a 100 ms RetransTimer (NetBSD: 1 s).
fn fast_dad() -> DadTimers {
    DadTimers {
        retrans: Duration::from_millis(100),
        ..DadTimers::default()
    }
}

/// Two kernels whose `eth0`s are plugged into each other; a's MAC is
/// 02:00:00:00:01:00, b's 02:00:00:00:02:00.
fn cabled() -> (Kernel, Kernel) {
    cabled_with(fast_dad(), fast_dad())
}

fn cabled_with(dad_a: DadTimers, dad_b: DadTimers) -> (Kernel, Kernel) {
    let (to_b, to_a) = (Plug::default(), Plug::default());
    let kernel = |host, peer: &Plug, dad| {
        let k = Kernel::new(
            KernelEnv {
                dad,
                ..KernelEnv::default()
            },
            Cloners::new(vec![
                Box::new(ifnet::drivers::lo::LoClone),
                Box::new(Cables {
                    peers: vec![peer.clone()],
                    host,
                }),
            ]),
        );
        k.ioctl(Request::IfCreate {
            name: "eth0".into(),
        })
        .unwrap();
        k
    };
    let (a, b) = (kernel(1, &to_b, dad_a), kernel(2, &to_a, dad_b));
    plug(&to_b, &b, "eth0");
    plug(&to_a, &a, "eth0");
    (a, b)
}

fn add4(k: &Kernel, a: [u8; 4]) {
    let req = InAliasReq {
        addr: Ipv4Addr::from(a),
        mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        broadcast: None,
        dst: None,
        flags: 0,
    };
    k.ioctl(Request::AifAddr {
        name: "eth0".into(),
        req,
    })
    .unwrap();
}

fn add6(k: &Kernel, a: &str) {
    let req = In6AliasReq {
        addr: a.parse().unwrap(),
        prefixlen: 64,
        dst: None,
        flags: 0,
        pltime: u32::MAX,
        vltime: u32::MAX,
    };
    k.ioctl(Request::AifAddrIn6 {
        name: "eth0".into(),
        req,
    })
    .unwrap();
}

fn flags_of(k: &Kernel, ip: IpAddr) -> u32 {
    let Reply::IfConf(v) = k
        .ioctl(Request::GetIfConf {
            name: Some("eth0".into()),
        })
        .unwrap()
    else {
        panic!()
    };
    match ip {
        IpAddr::V4(ip) => v[0].inet.iter().find(|a| a.addr == ip).unwrap().flags,
        IpAddr::V6(ip) => v[0].inet6.iter().find(|a| a.addr == ip).unwrap().flags,
    }
}

fn wait_flags(k: &Kernel, ip: IpAddr, want: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while flags_of(k, ip) != want {
        assert!(
            Instant::now() < deadline,
            "{ip}: flags {:#x}, want {want:#x}",
            flags_of(k, ip)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ping(k: &Kernel, dst: IpAddr, seq: u16) -> Result<Reply, Errno> {
    k.ioctl(Request::Echo {
        dst,
        scope: None,
        ident: 77,
        seq,
        len: 56,
        timeout_ms: 2000,
    })
}

#[test]
fn echo_both_ways_v4_and_v6() {
    let (a, b) = cabled();
    add4(&a, [10, 0, 0, 1]);
    add4(&b, [10, 0, 0, 2]);
    add6(&a, "fc00::1");
    add6(&b, "fc00::2");
    let (a4, b4) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
    let (a6, b6): (IpAddr, IpAddr) = ("fc00::1".parse().unwrap(), "fc00::2".parse().unwrap());
    // The first address brought eth0 up: usable at once, as in_ifinit
    // tries DAD only on an interface already up and running. The next
    // one, added while up, is tentative.
    assert_eq!(flags_of(&a, a4), 0, "usable at once");
    assert_eq!(flags_of(&a, a6), 0x2, "TENTATIVE right after the add");
    for (k, ip, tentative) in [(&a, a4, 0), (&b, b4, 0), (&a, a6, 0), (&b, b6, 0)] {
        wait_flags(k, ip, tentative);
    }
    for seq in 0..3 {
        let r = ping(&a, b4, seq).unwrap();
        assert!(
            matches!(r, Reply::Echo { from, bytes: 64, ttl: 64, .. } if from == b4),
            "{r:?}"
        );
        let r = ping(&b, a6, seq).unwrap();
        assert!(
            matches!(r, Reply::Echo { from, bytes: 64, .. } if from == a6),
            "{r:?}"
        );
    }
    // Deleting the address stops the answers at once.
    b.ioctl(Request::DifAddr {
        name: "eth0".into(),
        addr: Ipv4Addr::new(10, 0, 0, 2),
    })
    .unwrap();
    let r = a.ioctl(Request::Echo {
        dst: b4,
        scope: None,
        ident: 77,
        seq: 9,
        len: 56,
        timeout_ms: 300,
    });
    assert_eq!(r, Err(Errno::ETIMEDOUT));
    // No route: not on any attached subnet.
    assert_eq!(
        ping(&a, IpAddr::from([192, 168, 9, 9]), 1),
        Err(Errno::EHOSTUNREACH)
    );
}

/// Our own address answers from inside the kernel while its interface is
/// up; down, the address is not ours (NetBSD's ip_input) and nothing
/// answers.
#[test]
fn own_address_answers_only_while_up() {
    let (a, _b) = cabled();
    add4(&a, [10, 0, 0, 1]);
    let own = IpAddr::from([10, 0, 0, 1]);
    let flags = |f| {
        a.ioctl(Request::SetIfFlags {
            name: "eth0".into(),
            flags: f,
        })
        .unwrap();
    };
    flags(iff::UP);
    let r = ping(&a, own, 0).unwrap();
    assert!(
        matches!(r, Reply::Echo { from, .. } if from == own),
        "{r:?}"
    );
    flags(0);
    let r = a.ioctl(Request::Echo {
        dst: own,
        scope: None,
        ident: 77,
        seq: 1,
        len: 56,
        timeout_ms: 100,
    });
    assert_eq!(r, Err(Errno::ETIMEDOUT));
}

#[test]
fn link_local_needs_scope() {
    let (a, b) = cabled();
    add6(&a, "fc00::1");
    add6(&b, "fc00::2");
    // b's modified EUI-64 from 02:00:00:00:02:00.
    let ll: Ipv6Addr = "fe80::ff:fe00:200".parse().unwrap();
    wait_flags(&b, IpAddr::V6(ll), 0);
    wait_flags(&a, "fc00::1".parse().unwrap(), 0);
    let req = |scope: Option<&str>| Request::Echo {
        dst: IpAddr::V6(ll),
        scope: scope.map(str::to_string),
        ident: 5,
        seq: 0,
        len: 8,
        timeout_ms: 2000,
    };
    assert_eq!(a.ioctl(req(None)), Err(Errno::EHOSTUNREACH));
    assert!(matches!(a.ioctl(req(Some("eth0"))), Ok(Reply::Echo { .. })));
}

/// Item 1 of issue 13: the first address is usable at once, so a ping
/// right after `ifconfig eth0 inet A` on both ends is answered.
#[test]
fn the_first_address_answers_at_once() {
    let (a, b) = cabled_with(DadTimers::default(), DadTimers::default());
    add4(&a, [10, 0, 0, 1]);
    add4(&b, [10, 0, 0, 2]);
    let r = ping(&a, IpAddr::from([10, 0, 0, 2]), 0);
    assert!(matches!(r, Ok(Reply::Echo { .. })), "{r:?}");
}

#[test]
fn duplicate_address_is_detected() {
    let (a, b) = cabled_with(fast_dad(), DadTimers::default());
    add4(&a, [10, 0, 0, 1]);
    add6(&a, "fc00::1");
    wait_flags(&a, "fc00::1".parse().unwrap(), 0);
    // Aliases added while up are tried, as in t_dad.sh's dad_duplicated.
    add4(&b, [10, 0, 0, 2]);
    add4(&b, [10, 0, 0, 1]);
    add6(&b, "fc00::1");
    wait_flags(&b, IpAddr::from([10, 0, 0, 1]), 0x2); // IN_IFF_DUPLICATED
    wait_flags(&b, "fc00::1".parse().unwrap(), 0x4); // IN6_IFF_DUPLICATED
    // The holder keeps its address.
    assert_eq!(flags_of(&a, IpAddr::from([10, 0, 0, 1])), 0);
}

/// Run ifping against kernel `k`: (exit code, stdout, stderr, time taken).
fn ifping(k: &Kernel, args: &[&str]) -> (i32, String, String, Duration) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let start = Instant::now();
    let connect = || -> ifnet::ping::Conn { Box::new(k.connection()) };
    let code = ifnet::ping::main_with(&args, &connect, &mut out, &mut err);
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (code, text(out), text(err), start.elapsed())
}

/// Issue 13 item 8: ifping takes host names, waits for the last reply as
/// NetBSD's ping.c doit() does (max(2 × the longest round trip, 10 × the
/// interval), bounded by -w), and refuses a link-local destination without
/// its scope as ping6 does.
#[test]
fn ifping_as_netbsd_ping() {
    let (a, _b) = cabled();
    add4(&a, [10, 0, 0, 1]);
    let (code, out, _, _) = ifping(&a, &["-c", "1", "localhost"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("PING localhost (127.0.0.1): 56 data bytes\n"),
        "{out}"
    );
    // Nobody at 10.0.0.9: ten intervals for the last reply, not 2 s.
    let (code, _, _, took) = ifping(&a, &["-c", "1", "-i", "0.3", "10.0.0.9"]);
    assert_eq!(code, 2);
    assert!(took >= Duration::from_millis(2900), "{took:?}");
    // -w bounds it.
    let (code, _, _, took) = ifping(&a, &["-c", "1", "-w", "1", "10.0.0.9"]);
    assert_eq!(code, 2);
    assert!(took < Duration::from_millis(1900), "{took:?}");
    let (code, out, err, _) = ifping(&a, &["-c", "1", "fe80::1"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (1, "", "ifping: UDP connect: No route to host\n")
    );
}
