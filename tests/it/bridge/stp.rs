//! The spanning tree on the data plane, in process: BPDUs from a better
//! bridge make one member the root port and block the other; frames and
//! learning follow the states; bad BPDUs are counted and change nothing.

use super::*;
use ifnet::drivers::bridge::bpdu::{BpduRepr, ConfigBpdu};

/// A configuration BPDU from bridge 1000.02:00:00:00:00:99, the root,
/// sent from its port `port`, with a 1 s forward delay.
fn superior(port: u16) -> Vec<u8> {
    let c = ConfigBpdu {
        root_id: 0x1000_0200_0000_0099,
        root_path_cost: 0,
        bridge_id: 0x1000_0200_0000_0099,
        port_id: port,
        message_age: 0,
        max_age: 20 * 256,
        hello_time: 2 * 256,
        forward_delay: 256,
        topology_change: false,
        topology_change_ack: false,
    };
    BpduRepr::Config(c).frame([2, 0, 0, 0, 0, 0x99]).to_vec()
}

/// (state of shmif0, state of shmif1), and the `-v` lines.
fn states(net: &Net) -> (String, String, String) {
    let out = net.ok("-v bridge0");
    let state = |m: &str| {
        let i = out.find(&format!("\t\t{m} flags=")).unwrap();
        let line = out[i..].lines().nth(1).unwrap();
        line.rsplit(' ').next().unwrap().to_string()
    };
    (state("shmif0"), state("shmif1"), out)
}

fn tree_line(out: &str, what: &str) -> String {
    out.lines().find(|l| l.contains(what)).unwrap().to_string()
}

#[test]
fn root_port_forwards_the_other_blocks() {
    let net = Net::bridged(3);
    net.ok("bridge0 stp shmif0 stp shmif1");
    let (s0, s1, out) = states(&net);
    assert_eq!(
        (s0.as_str(), s1.as_str()),
        ("listening", "listening"),
        "{out}"
    );
    assert!(out.contains("root path cost 0 root port none"), "{out}");
    net.inject("shmif0", &superior(0x8001));
    net.inject("shmif1", &superior(0x8002));
    let (s0, s1, out) = states(&net);
    assert_eq!(
        (s0.as_str(), s1.as_str()),
        ("listening", "blocking"),
        "{out}"
    );
    assert!(
        out.contains("\t\troot id 1000.02:00:00:00:00:99 root path cost 55 root port shmif0\n"),
        "{out}"
    );

    // Blocked: nothing forwarded, nothing learned; the root port is not
    // forwarding yet either.
    let (a, b) = (host(0xa), host(0xb));
    let f = frame(BCAST, a, 1);
    net.inject("shmif1", &f);
    assert_eq!(net.arrived(3, &f), Vec::<String>::new());
    let f = frame(BCAST, b, 2);
    net.inject("shmif2", &f);
    assert_eq!(net.arrived(3, &f), Vec::<String>::new());
    assert!(!net.addr().contains(&ntoa(&a)));

    // The root's forward delay (1 s), twice: the root port forwards.
    crate::common::wait_until(5, "shmif0 to forward", || states(&net).0 == "forwarding");
    let f = frame(BCAST, b, 3);
    net.inject("shmif2", &f);
    assert_eq!(net.arrived(3, &f), vec!["shmif0".to_string()]);
    let f = frame(b, a, 4);
    net.inject("shmif1", &f);
    assert_eq!(net.arrived(3, &f), Vec::<String>::new());
    let f = frame(BCAST, a, 5);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(3, &f), vec!["shmif2".to_string()]);
    assert!(net.addr().contains(&ntoa(&a)));

    // -stp: shmif1 is a plain member again and forwards at once; the
    // tree starts over (as NetBSD's), so shmif0 listens again.
    net.ok("bridge0 -stp shmif1");
    assert_eq!(states(&net).0, "listening");
    let f = frame(BCAST, b, 6);
    net.inject("shmif2", &f);
    assert_eq!(net.arrived(3, &f), vec!["shmif1".to_string()]);
}

#[test]
fn bad_bpdus_are_counted_and_change_nothing() {
    let net = Net::bridged(2);
    net.ok("bridge0 stp shmif0 stp shmif1");
    net.inject("shmif0", &superior(0x8001));
    net.inject("shmif1", &superior(0x8002));
    let before = states(&net);
    let good = superior(0x8001);
    let with = |i: usize, v: u8| {
        let mut f = good.clone();
        f[i] = v;
        f
    };
    let mut bad = vec![
        good[..14 + 20].to_vec(), // truncated
        with(13, 20),             // length too short for a configuration
        with(12, 0x08),           // an Ethernet II type, not a length
        with(14, 0xaa),           // SNAP, not the spanning tree SAP
        with(18, 1),              // protocol id
        with(19, 2),              // RSTP
        with(20, 0x02),           // type
    ];
    // Random bytes after the BPDU address.
    let mut x = 0x1818_u32;
    for n in 0..50 {
        let mut f = BPDU_DST.to_vec();
        f.extend((0..14 + n).map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        }));
        if BpduRepr::from_frame(&Frame::new(&f).unwrap()).is_err() {
            bad.push(f);
        }
    }
    for f in &bad {
        net.inject("shmif1", f);
        net.inject("shmif0", f);
    }
    let after = states(&net);
    let out = &after.2;
    assert_eq!((&before.0, &before.1), (&after.0, &after.1), "{out}");
    let tree = |o: &str| tree_line(o, "root id");
    assert_eq!(tree(&before.2), tree(out));
    assert!(
        tree_line(out, "bad ").ends_with(&format!("bad {}", 2 * bad.len())),
        "{out}"
    );
    // An oversized BPDU (padding up to 1500 bytes) is no bad one.
    let mut long = good.clone();
    long.resize(1514, 0);
    net.inject("shmif0", &long);
    let out = states(&net).2;
    assert!(tree_line(&out, "bad ").ends_with(&format!("bad {}", 2 * bad.len())));
}
