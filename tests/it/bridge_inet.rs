//! NetBSD's t_bridge `bridge_ipv4`, in process: two kernels with an IP
//! address each, cabled to the two members of a bridge in a third. Pings
//! fail before the bridge, work across it, and stop when the members are
//! deleted; the bridge host's members answer for their own addresses
//! from either side (`bridge_member_ipv4`).

use crate::common;

use common::cable::{Cables, Plug, plug};
use ifnet::Kernel;
use ifnet::cloner::{Cloners, DadTimers, KernelEnv};
use ifnet::drivers::bridge::BridgeClone;
use ifnet::drivers::lo::LoClone;
use ifnet::ioctl::{Errno, InAliasReq, Reply, Request, iff};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

fn kernel(host: u8, peers: Vec<Plug>) -> Kernel {
    let n = peers.len();
    // Duplicate address detection in 200 ms, not 1 s.
    let dad = DadTimers {
        retrans: Duration::from_millis(100),
        ..DadTimers::default()
    };
    let k = Kernel::new(
        KernelEnv {
            dad,
            ..KernelEnv::default()
        },
        Cloners::new(vec![
            Box::new(BridgeClone::default()),
            Box::new(LoClone),
            Box::new(Cables { peers, host }),
        ]),
    );
    for u in 0..n {
        let name = format!("eth{u}");
        k.ioctl(Request::IfCreate { name: name.clone() }).unwrap();
        k.ioctl(Request::SetIfFlags {
            name,
            flags: iff::UP,
        })
        .unwrap();
    }
    k
}

fn add4(k: &Kernel, name: &str, a: [u8; 4]) {
    let req = InAliasReq {
        addr: Ipv4Addr::from(a),
        mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        broadcast: None,
        dst: None,
        flags: 0,
    };
    k.ioctl(Request::AifAddr {
        name: name.into(),
        req,
    })
    .unwrap();
    // Wait for duplicate address detection to let it go.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let Ok(Reply::IfConf(v)) = k.ioctl(Request::GetIfConf {
            name: Some(name.into()),
        }) else {
            panic!()
        };
        if v[0]
            .inet
            .iter()
            .any(|i| i.addr == Ipv4Addr::from(a) && i.flags == 0)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{a:?} stays tentative");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ping(k: &Kernel, dst: [u8; 4], timeout_ms: u32) -> bool {
    let dst = IpAddr::from(dst);
    let r = k.ioctl(Request::Echo {
        dst,
        scope: None,
        ident: 7,
        seq: 1,
        len: 56,
        timeout_ms,
    });
    match r {
        Ok(Reply::Echo { from, .. }) => from == dst,
        Err(Errno::ETIMEDOUT) => false,
        r => panic!("{r:?}"),
    }
}

fn brconfig(k: &Kernel, line: &str) -> String {
    let args: Vec<String> = line.split_whitespace().map(String::from).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut ctl = k;
    let rc = ifnet::brconfig::main_with(&args, &mut ctl, &mut out, &mut err);
    assert_eq!(
        (rc, String::from_utf8_lossy(&err).as_ref()),
        (0, ""),
        "brconfig {line}"
    );
    String::from_utf8(out).unwrap()
}

#[test]
fn ping_across_the_bridge() {
    // host1 eth0 <-> bridge host eth0; bridge host eth1 <-> host3 eth0.
    let (to_br0, to_br1, to_h1, to_h3) = (
        Plug::default(),
        Plug::default(),
        Plug::default(),
        Plug::default(),
    );
    let h1 = kernel(1, vec![to_br0.clone()]);
    let br = kernel(2, vec![to_h1.clone(), to_h3.clone()]);
    let h3 = kernel(3, vec![to_br1.clone()]);
    plug(&to_br0, &br, "eth0");
    plug(&to_br1, &br, "eth1");
    plug(&to_h1, &h1, "eth0");
    plug(&to_h3, &h3, "eth0");
    add4(&h1, "eth0", [10, 0, 0, 1]);
    add4(&h3, "eth0", [10, 0, 0, 2]);

    assert!(!ping(&h1, [10, 0, 0, 2], 300), "no bridge yet");

    br.ioctl(Request::IfCreate {
        name: "bridge0".into(),
    })
    .unwrap();
    brconfig(&br, "bridge0 up add eth0 add eth1");
    assert!(ping(&h1, [10, 0, 0, 2], 2000));
    assert!(ping(&h3, [10, 0, 0, 1], 2000));
    let addr = brconfig(&br, "bridge0 addr");
    assert!(addr.contains("02:00:00:00:01:00 eth0 "), "{addr}");
    assert!(addr.contains("02:00:00:00:03:00 eth1 "), "{addr}");

    // The members' own addresses, from both sides of the bridge: ARP
    // broadcasts reach every member's host side, and frames for a member's
    // MAC are delivered to it whichever member they came in on (t_bridge
    // bridge_member_ipv4, NetBSD PR#48104).
    add4(&br, "eth0", [10, 0, 0, 11]);
    add4(&br, "eth1", [10, 0, 0, 12]);
    for (h, name) in [(&h1, "h1"), (&h3, "h3")] {
        for ip in [[10, 0, 0, 11], [10, 0, 0, 12]] {
            assert!(ping(h, ip, 2000), "{name} -> {ip:?}");
        }
    }

    brconfig(&br, "bridge0 delete eth0 delete eth1");
    assert_eq!(brconfig(&br, "bridge0 addr"), "");
    assert!(!ping(&h1, [10, 0, 0, 2], 300));
    assert!(!ping(&h3, [10, 0, 0, 1], 300));
}
