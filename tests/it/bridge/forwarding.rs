//! Where frames go, checked on the wires and in `brconfig addr`.

use super::*;
use ifnet::ioctl::{Errno, IfData, iff};

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn learning_then_unicast_goes_to_one_port() {
    let net = Net::bridged(3);
    let (a, b) = (host(0xa), host(0xb));
    let f = frame(BCAST, a, 1);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif1", "shmif2"]));
    assert_eq!(
        net.addr(),
        format!("\t{} shmif0 1200 flags=0<>\n", ntoa(&a))
    );

    // b is unknown: flooded; a is known: only shmif0.
    let f = frame(a, b, 2);
    net.inject("shmif1", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif0"]));
    let f = frame(b, a, 3);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif1"]));
    let out = net.addr();
    assert_eq!(
        out,
        format!(
            "\t{} shmif1 1200 flags=0<>\n\t{} shmif0 1200 flags=0<>\n",
            ntoa(&b),
            ntoa(&a)
        )
    );
    // NetBSD's t_bridge greps for "$mac shmif0".
    assert!(out.contains(&format!("{} shmif0", ntoa(&a))));
}

#[test]
fn unknown_unicast_floods() {
    let net = Net::bridged(3);
    let f = frame(host(9), host(1), 1);
    net.inject("shmif1", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif0", "shmif2"]));
}

#[test]
fn station_moves() {
    let net = Net::bridged(3);
    let a = host(0xa);
    net.inject("shmif0", &frame(BCAST, a, 1));
    net.advance(100);
    net.inject("shmif2", &frame(BCAST, a, 2));
    assert_eq!(
        net.addr(),
        format!("\t{} shmif2 1200 flags=0<>\n", ntoa(&a))
    );
    let _ = (net.sent("shmif0"), net.sent("shmif1"), net.sent("shmif2"));
    let f = frame(a, host(0xb), 3);
    net.inject("shmif1", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif2"]));
}

#[test]
fn no_hairpin() {
    let net = Net::bridged(2);
    let (a, b) = (host(0xa), host(0xb));
    net.inject("shmif0", &frame(BCAST, a, 1));
    net.inject("shmif0", &frame(BCAST, b, 2));
    let _ = (net.sent("shmif0"), net.sent("shmif1"));
    let f = frame(b, a, 3);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(2, &f), Vec::<String>::new());
}

#[test]
fn maxaddr_1_learns_only_the_first() {
    let net = Net::bridged(2);
    net.ok("bridge0 maxaddr 1");
    net.inject("shmif0", &frame(BCAST, host(1), 1));
    net.inject("shmif1", &frame(BCAST, host(2), 2));
    let out = net.addr();
    assert_eq!(out.lines().count(), 1);
    assert_eq!(out, format!("\t{} shmif0 1200 flags=0<>\n", ntoa(&host(1))));
    // Not learned, so unknown: flooded.
    let _ = (net.sent("shmif0"), net.sent("shmif1"));
    let f = frame(host(2), host(1), 3);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(2, &f), names(&["shmif1"]));
    assert!(net.ok("bridge0").contains("max cache: 1,"));
}

#[test]
fn maxaddr_shrink_trims_newest_dynamic_first() {
    let net = Net::bridged(2);
    net.inject("shmif0", &frame(BCAST, host(1), 1));
    net.inject("shmif0", &frame(BCAST, host(2), 1));
    net.inject("shmif0", &frame(BCAST, host(3), 1));
    net.ok(&format!("bridge0 static shmif1 {}", ntoa(&host(4))));
    net.ok("bridge0 maxaddr 2");
    assert_eq!(
        net.addr(),
        format!(
            "\t{} shmif1 0 flags=1<STATIC>\n\t{} shmif0 1200 flags=0<>\n",
            ntoa(&host(4)),
            ntoa(&host(1))
        )
    );
}

#[test]
fn timeout_expires_entries_before_the_sweep() {
    let net = Net::bridged(3);
    net.ok("bridge0 timeout 10");
    let a = host(0xa);
    net.inject("shmif0", &frame(BCAST, a, 1));
    net.advance(4);
    assert_eq!(net.addr(), format!("\t{} shmif0 6 flags=0<>\n", ntoa(&a)));
    net.advance(6);
    assert_eq!(net.addr(), "");
    let _ = (net.sent("shmif0"), net.sent("shmif1"), net.sent("shmif2"));
    // Expired: flooded again, and learned afresh where it shows up next.
    let f = frame(a, host(0xb), 2);
    net.inject("shmif1", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif0", "shmif2"]));
    net.inject("shmif2", &frame(BCAST, a, 3));
    assert!(
        net.addr()
            .contains(&format!("{} shmif2 10 flags=0<>", ntoa(&a)))
    );
}

#[test]
fn timeout_zero_never_expires() {
    let net = Net::bridged(2);
    net.ok("bridge0 timeout 0");
    net.inject("shmif0", &frame(BCAST, host(1), 1));
    net.advance(1 << 30);
    assert_eq!(
        net.addr(),
        format!("\t{} shmif0 0 flags=0<>\n", ntoa(&host(1)))
    );
}

#[test]
fn statics_are_pinned_and_survive_flush() {
    let net = Net::bridged(3);
    let s = [0, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa];
    assert_eq!(net.ok("bridge0 static shmif2 00:aa:aa:aa:aa:aa"), "");
    net.inject("shmif0", &frame(BCAST, host(1), 1));
    // The static address shows up elsewhere: not moved.
    net.inject("shmif1", &frame(BCAST, s, 2));
    net.advance(5000);
    let _ = (net.sent("shmif0"), net.sent("shmif1"), net.sent("shmif2"));
    let f = frame(s, host(1), 3);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif2"]));
    let out = net.addr();
    assert!(
        out.contains("00:aa:aa:aa:aa:aa shmif2 0 flags=1<STATIC>"),
        "{out}"
    );

    net.ok("bridge0 flush");
    assert_eq!(net.addr(), "\t00:aa:aa:aa:aa:aa shmif2 0 flags=1<STATIC>\n");
    net.ok("bridge0 flushall");
    assert_eq!(net.addr(), "");
    net.ok("bridge0 static shmif2 00:aa:aa:aa:aa:aa deladdr 00:aa:aa:aa:aa:aa");
    assert_eq!(net.addr(), "");
}

#[test]
fn static_overrides_a_learned_entry() {
    let net = Net::bridged(2);
    net.inject("shmif0", &frame(BCAST, host(1), 1));
    net.ok(&format!("bridge0 static shmif1 {}", ntoa(&host(1))));
    assert_eq!(
        net.addr(),
        format!("\t{} shmif1 0 flags=1<STATIC>\n", ntoa(&host(1)))
    );
}

#[test]
fn protected_members_do_not_talk() {
    let net = Net::bridged(3);
    net.ok("bridge0 protect shmif0 protect shmif1");
    let status = net.ok("bridge0");
    assert!(
        status.contains("shmif0 flags=b<LEARNING,DISCOVER,PROTECTED>"),
        "{status}"
    );
    let (a, b, c) = (host(0xa), host(0xb), host(0xc));
    let f = frame(BCAST, a, 1);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif2"]));
    let f = frame(BCAST, b, 2);
    net.inject("shmif1", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif2"]));
    // Known unicast between the two protected ones: dropped.
    let f = frame(b, a, 3);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(3, &f), Vec::<String>::new());
    // The unprotected one reaches both.
    let f = frame(a, c, 4);
    net.inject("shmif2", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif0"]));
    let f = frame(c, a, 5);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif2"]));
    // -protect lifts it.
    net.ok("bridge0 -protect shmif1");
    let f = frame(b, a, 6);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif1"]));
}

#[test]
fn discover_off_gets_no_unknown_unicast() {
    let net = Net::bridged(3);
    net.ok("bridge0 -discover shmif1");
    assert!(net.ok("bridge0").contains("shmif1 flags=1<LEARNING>\n"));
    let f = frame(host(9), host(1), 1);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif2"]));
    // Broadcast ignores DISCOVER.
    let f = frame(BCAST, host(1), 2);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif1", "shmif2"]));
    // A known destination behind it is still reached.
    net.inject("shmif1", &frame(BCAST, host(9), 3));
    let _ = (net.sent("shmif0"), net.sent("shmif2"));
    let f = frame(host(9), host(1), 4);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif1"]));
}

#[test]
fn learn_off_learns_nothing_there() {
    let net = Net::bridged(2);
    net.ok("bridge0 -learn shmif0");
    assert!(net.ok("bridge0").contains("shmif0 flags=2<DISCOVER>\n"));
    net.inject("shmif0", &frame(BCAST, host(1), 1));
    net.inject("shmif1", &frame(BCAST, host(2), 1));
    assert_eq!(
        net.addr(),
        format!("\t{} shmif1 1200 flags=0<>\n", ntoa(&host(2)))
    );
    net.ok("bridge0 learn shmif0");
    net.inject("shmif0", &frame(BCAST, host(1), 1));
    assert_eq!(net.addr().lines().count(), 2);
}

#[test]
fn multicast_and_zero_sources_are_not_learned() {
    let net = Net::bridged(2);
    net.inject("shmif0", &frame(BCAST, [0x01, 0, 0x5e, 0, 0, 1], 1));
    net.inject("shmif0", &frame(BCAST, [0; 6], 1));
    assert_eq!(net.addr(), "");
}

#[test]
fn deleting_a_member_removes_its_entries_and_traffic() {
    let net = Net::bridged(3);
    net.inject("shmif1", &frame(BCAST, host(1), 1));
    net.inject("shmif2", &frame(BCAST, host(2), 1));
    net.ok(&format!("bridge0 static shmif1 {}", ntoa(&host(3))));
    net.ok("bridge0 delete shmif1");
    assert_eq!(
        net.addr(),
        format!("\t{} shmif2 1200 flags=0<>\n", ntoa(&host(2)))
    );
    // Out of promiscuous mode again.
    assert_eq!(net.flags("shmif1"), 0x8843);
    let _ = (net.sent("shmif0"), net.sent("shmif1"), net.sent("shmif2"));
    let f = frame(BCAST, host(4), 2);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif2"]));
    // And what shmif1 receives is its own business.
    let rx = net.k.listen("shmif1").unwrap();
    let f = frame(BCAST, host(1), 3);
    net.inject("shmif1", &f);
    assert_eq!(rx.try_recv().unwrap(), f);
    assert_eq!(net.arrived(3, &f), Vec::<String>::new());
}

#[test]
fn destroying_a_member_removes_its_entries() {
    let net = Net::bridged(3);
    net.inject("shmif1", &frame(BCAST, host(1), 1));
    net.inject("shmif2", &frame(BCAST, host(2), 1));
    net.destroy("shmif1");
    assert_eq!(
        net.addr(),
        format!("\t{} shmif2 1200 flags=0<>\n", ntoa(&host(2)))
    );
    assert!(!net.ok("bridge0").contains("shmif1"));
    // The name is free to come back and join again.
    net.ifconfig_create("shmif1");
    net.ok("bridge0 add shmif1");
}

#[test]
fn bridge_down_flushes_dynamic_entries_and_stops_forwarding() {
    let net = Net::bridged(2);
    net.inject("shmif0", &frame(BCAST, host(1), 1));
    net.ok(&format!("bridge0 static shmif1 {}", ntoa(&host(2))));
    net.ok("bridge0 down");
    assert_eq!(net.flags("bridge0"), 0);
    assert_eq!(
        net.addr(),
        format!("\t{} shmif1 0 flags=1<STATIC>\n", ntoa(&host(2)))
    );
    let _ = (net.sent("shmif0"), net.sent("shmif1"));
    let f = frame(BCAST, host(1), 2);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(2, &f), Vec::<String>::new());
    net.ok("bridge0 up");
    assert_eq!(net.flags("bridge0"), 0x41);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(2, &f), names(&["shmif1"]));
}

#[test]
fn destroying_the_bridge_releases_members() {
    let net = Net::bridged(2);
    assert_eq!(net.flags("shmif0"), 0x8943);
    net.destroy("bridge0");
    assert_eq!(net.flags("shmif0"), 0x8843);
    assert_eq!(net.flags("shmif1"), 0x8843);
    // Free to join a new bridge.
    net.ifconfig_create("bridge1");
    net.ok("bridge1 add shmif0 add shmif1");
}

#[test]
fn frames_for_a_member_are_delivered_there() {
    let net = Net::bridged(3);
    let rx1 = net.k.listen("shmif1").unwrap();
    let rx0 = net.k.listen("shmif0").unwrap();
    let f = frame(mac_of(1), host(1), 1);
    net.inject("shmif0", &f);
    assert_eq!(rx1.try_recv().unwrap(), f);
    assert!(rx0.try_recv().is_err());
    assert_eq!(net.arrived(3, &f), Vec::<String>::new());
    // The sender was learned on the way.
    assert_eq!(
        net.addr(),
        format!("\t{} shmif0 1200 flags=0<>\n", ntoa(&host(1)))
    );
    // Broadcasts reach the host side of every member, the receiving one
    // included (NetBSD's bridge_broadcast), and go out of the others.
    let f = frame(BCAST, host(1), 2);
    net.inject("shmif0", &f);
    assert_eq!(rx0.try_recv().unwrap(), f);
    assert_eq!(rx1.try_recv().unwrap(), f);
    assert_eq!(net.arrived(3, &f), names(&["shmif1", "shmif2"]));
    // Unknown unicast reaches no host side.
    let f = frame(host(9), host(1), 3);
    net.inject("shmif0", &f);
    assert!(rx0.try_recv().is_err() && rx1.try_recv().is_err());
}

#[test]
fn our_own_frames_coming_back_are_dropped() {
    let net = Net::bridged(3);
    let f = frame(BCAST, mac_of(2), 1);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(3, &f), Vec::<String>::new());
    assert_eq!(net.addr(), "");
}

#[test]
fn members_that_are_down_are_skipped() {
    let net = Net::bridged(3);
    net.down("shmif2");
    let f = frame(BCAST, host(1), 1);
    net.inject("shmif0", &f);
    assert_eq!(net.arrived(3, &f), names(&["shmif1"]));
    assert_eq!(net.ifstatus("shmif2").data.oerrors, 0);
}

#[test]
fn stp_bpdus_are_consumed_on_stp_members() {
    let net = Net::bridged(2);
    let bpdu = frame([0x01, 0x80, 0xc2, 0, 0, 0], host(1), 1);
    net.inject("shmif0", &bpdu);
    assert_eq!(net.arrived(2, &bpdu), names(&["shmif1"]));
    net.ok("bridge0 stp shmif0");
    net.inject("shmif0", &bpdu);
    assert_eq!(net.arrived(2, &bpdu), Vec::<String>::new());
}

#[test]
fn counters_are_exact_and_a_full_member_drops() {
    let net = Net::with_queue(2);
    net.setup(3);
    let f = frame(BCAST, host(1), 1);
    for _ in 0..3 {
        net.inject("shmif0", &f);
    }
    // shmif1 and shmif2 each took 2 and refused the third.
    let len = f.len() as u64;
    let d0 = net.ifstatus("shmif0").data;
    assert_eq!(
        d0,
        IfData {
            ipackets: 3,
            ibytes: 3 * len,
            imcasts: 3,
            noproto: 3,
            ..IfData::default()
        }
    );
    for m in ["shmif1", "shmif2"] {
        let d = net.ifstatus(m).data;
        assert_eq!(
            d,
            IfData {
                opackets: 2,
                obytes: 2 * len,
                omcasts: 2,
                oerrors: 1,
                // Their host sides took the broadcasts: nobody listens.
                noproto: 3,
                ..IfData::default()
            },
            "{m}"
        );
    }
    let b = net.ifstatus("bridge0").data;
    assert_eq!(
        b,
        IfData {
            ipackets: 3,
            ibytes: 3 * len,
            imcasts: 3,
            opackets: 4,
            obytes: 4 * len,
            omcasts: 4,
            oerrors: 2,
            ..IfData::default()
        }
    );
    // Draining shmif1 lets it take frames again; shmif2 stays full.
    assert_eq!(net.sent("shmif1").len(), 2);
    net.inject("shmif0", &f);
    assert_eq!(net.sent("shmif1").len(), 1);
    assert_eq!(net.ifstatus("shmif2").data.oerrors, 2);
}

#[test]
fn bridge_interface_as_ifconfig_sees_it() {
    let net = Net::bridged(1);
    let s = net.ifstatus("bridge0");
    assert_eq!(s.flags, iff::UP | iff::RUNNING);
    assert_eq!(s.mtu, 1500);
    assert_eq!(s.lladdr, None);
    assert!(s.inet6.is_empty());
    assert_eq!(net.ifstatus("shmif0").flags, 0x8943);
}

#[test]
fn real_clock_bridge_class_is_registered_first() {
    let k = ifnet::generic::kernel(ifnet::cloner::KernelEnv::default());
    match k.ioctl(ifnet::ioctl::Request::IfGCloners) {
        Ok(ifnet::ioctl::Reply::Cloners(c)) => {
            assert_eq!(c.first().map(String::as_str), Some("bridge"))
        }
        r => panic!("{r:?}"),
    }
    k.ioctl(ifnet::ioctl::Request::IfCreate {
        name: "bridge0".into(),
    })
    .unwrap();
}

#[test]
fn host_output_on_a_member_is_bridged() {
    let net = Net::bridged(3);
    // Broadcast from the host side of shmif0: every member's wire.
    let f = frame(BCAST, mac_of(0), 1);
    net.k.send("shmif0", &f).unwrap();
    assert_eq!(net.arrived(3, &f), names(&["shmif0", "shmif1", "shmif2"]));
    // Unknown unicast: likewise.
    let f = frame(host(1), mac_of(0), 2);
    net.k.send("shmif0", &f).unwrap();
    assert_eq!(net.arrived(3, &f), names(&["shmif0", "shmif1", "shmif2"]));
    // Nothing was learned from our own frames.
    assert_eq!(net.addr(), "");
    // Known: only where the station is.
    net.inject("shmif2", &frame(BCAST, host(1), 3));
    let _ = (net.sent("shmif0"), net.sent("shmif1"), net.sent("shmif2"));
    let f = frame(host(1), mac_of(0), 4);
    net.k.send("shmif0", &f).unwrap();
    assert_eq!(net.arrived(3, &f), names(&["shmif2"]));
    // A broadcast from the host on shmif0 reaches the host side of the
    // other members (not its own).
    let (rx0, rx1) = (
        net.k.listen("shmif0").unwrap(),
        net.k.listen("shmif1").unwrap(),
    );
    let f = frame(BCAST, mac_of(0), 6);
    net.k.send("shmif0", &f).unwrap();
    assert_eq!(rx1.try_recv().unwrap(), f);
    assert!(rx0.try_recv().is_err());
    assert_eq!(net.arrived(3, &f), names(&["shmif0", "shmif1", "shmif2"]));
    // Unknown unicast from the host ignores DISCOVER, as NetBSD's
    // bridge_output does.
    net.ok("bridge0 -discover shmif1");
    let f = frame(host(7), mac_of(0), 7);
    net.k.send("shmif0", &f).unwrap();
    assert_eq!(net.arrived(3, &f), names(&["shmif0", "shmif1", "shmif2"]));
    assert!(rx1.try_recv().is_err());
    // Bridge down: the member's own wire only.
    net.ok("bridge0 down");
    let f = frame(BCAST, mac_of(0), 5);
    net.k.send("shmif0", &f).unwrap();
    assert_eq!(net.arrived(3, &f), names(&["shmif0"]));
    // A member that is down cannot send.
    net.down("shmif1");
    assert_eq!(net.k.send("shmif1", &f), Err(Errno::ENETDOWN));
}

/// NetBSD PR#48104: a host behind shmif0 talks to the address of shmif1.
#[test]
fn a_station_reaches_the_other_members_host_side() {
    let net = Net::bridged(2);
    let rx1 = net.k.listen("shmif1").unwrap();
    let (h1, m1) = (host(1), mac_of(1));
    let request = frame(m1, h1, 1);
    net.inject("shmif0", &request);
    assert_eq!(rx1.try_recv().unwrap(), request);
    let reply = frame(h1, m1, 2);
    net.k.send("shmif1", &reply).unwrap();
    assert_eq!(net.arrived(2, &reply), names(&["shmif0"]));
}

/// Members' receive threads keep forwarding while the control plane adds,
/// deletes, flushes and reconfigures: no deadlock, no panic, no stale entry.
#[test]
fn forwarding_while_reconfiguring() {
    let net = std::sync::Arc::new(Net::bridged(4));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for u in 0..4u8 {
        let (net, stop) = (net.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let port = net.k.port(&format!("shmif{u}")).unwrap();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let f = frame(host((n % 7) as u8 + 1), host(u + 10), 0);
                port.input(&Frame::new(&f).unwrap());
                n += 1;
            }
        }));
    }
    for i in 0..200 {
        net.ok("bridge0 delete shmif3");
        net.ok("bridge0 add shmif3 maxaddr 3 -learn shmif1 learn shmif1 flush");
        if i % 10 == 0 {
            net.ok("bridge0 down up maxaddr 100");
        }
        // Drain the wires so transmit keeps working.
        for u in 0..4 {
            let _ = net.sent(&format!("shmif{u}"));
        }
    }
    net.ok("bridge0 delete shmif3");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(!net.addr().contains("shmif3"));
    // No entry for shmif3 is left over, even unlisted: the cache fills up
    // to exactly its size with what is listed.
    let listed = net.addr().lines().count();
    net.ok(&format!("bridge0 maxaddr {}", listed + 5));
    for n in 1..=5 {
        net.inject("shmif0", &frame(BCAST, host(100 + n), 0));
    }
    assert_eq!(net.addr().lines().count(), listed + 5);
}

#[derive(Debug, Clone)]
enum Op {
    /// A frame (any bytes) arrives on member `0`.
    Raw(u32, Vec<u8>),
    /// An Ethernet frame from station `1` to station `2` (0: broadcast)
    /// arrives on member `0`.
    Frame(u32, u8, u8),
    Advance(u64),
    Brconfig(String),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let member = 0..4u32;
    let cmd = prop::sample::select(vec![
        "flush",
        "flushall",
        "maxaddr 3",
        "maxaddr 100",
        "timeout 5",
        "timeout 0",
        "down",
        "up",
        "-learn shmif1",
        "learn shmif1",
        "-discover shmif2",
        "discover shmif2",
        "protect shmif0",
        "protect shmif3",
        "-protect shmif0",
        "static shmif2 02:00:00:00:00:03",
        "deladdr 02:00:00:00:00:03",
        "delete shmif3",
        "add shmif3",
        "stp shmif1",
        "-stp shmif1",
    ]);
    prop_oneof![
        (member.clone(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(m, b)| Op::Raw(m, b)),
        (member, 0..6u8, 0..6u8).prop_map(|(m, s, d)| Op::Frame(m, s, d)),
        (0..8u64).prop_map(Op::Advance),
        cmd.prop_map(|c| Op::Brconfig(c.to_string())),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Any mix of frames, time and configuration: no panic, the cache
    /// never outgrows its size, and every copy the bridge hands a member
    /// is counted once on each side.
    #[test]
    fn random_traffic_and_configuration(ops in proptest::collection::vec(op(), 1..60)) {
        let net = Net::with_queue(4);
        net.setup(4);
        let mut maxaddr = 100;
        for op in ops {
            match op {
                Op::Raw(m, bytes) => net.inject(&format!("shmif{m}"), &bytes),
                Op::Frame(m, s, d) => {
                    let dst = if d == 0 { BCAST } else { host(d) };
                    net.inject(&format!("shmif{m}"), &frame(dst, host(s), 0));
                }
                Op::Advance(t) => net.advance(t),
                Op::Brconfig(c) => {
                    let (rc, _, _) = net.brconfig(&format!("bridge0 {c}"));
                    proptest::prop_assert!(rc == 0 || rc == 1);
                    if rc == 0 && c.starts_with("maxaddr") {
                        maxaddr = c[8..].parse().unwrap();
                    }
                }
            }
            for u in 0..4 {
                let _ = net.sent(&format!("shmif{u}"));
            }
            let addr = net.addr();
            proptest::prop_assert!(addr.lines().count() <= maxaddr, "{addr}");
        }
        // The spanning tree sends BPDUs from the reactor thread, counted on
        // the member, then on the bridge: look between two of them.
        let counts = || {
            let b = net.ifstatus("bridge0").data;
            let (mut out, mut err) = (0, 0);
            for u in 0..4 {
                let d = net.ifstatus(&format!("shmif{u}")).data;
                out += d.opackets;
                err += d.oerrors;
            }
            ((b.opackets, b.oerrors), (out, err))
        };
        let mut c = counts();
        for _ in 0..100 {
            if c.0 == c.1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            c = counts();
        }
        proptest::prop_assert_eq!(c.0, c.1);
    }
}
