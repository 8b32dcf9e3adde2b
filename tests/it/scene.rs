//! End to end, with real processes and real Linux network stacks:
//! daemons on one shmif bus pinging each other, namespaces behind virt,
//! and the README's scene: virt → bridge → shmif → bus → shmif → bridge → virt.

use crate::common;

use common::*;
use std::path::Path;

/// The active MAC of an interface, read the way NetBSD's scripts do.
fn mac_of(d: &Daemon, ifname: &str) -> String {
    let (out, _, rc) = d.ifconfig(&[ifname]);
    assert_eq!(rc, 0);
    out.lines()
        .find_map(|l| l.trim().strip_prefix("address: "))
        .unwrap_or_else(|| panic!("no address line in {out}"))
        .to_string()
}

fn ifping(d: &Daemon, args: &[&str]) -> (String, String, i32) {
    run(d.cmd(env!("CARGO_BIN_EXE_ifping")).args(args))
}

/// A shmif host on `bus` with the given addresses, waited out of DAD.
fn bus_host(bus: &Path, v4: &str, v6: &str) -> Daemon {
    let d = Daemon::start();
    let bus = bus.to_str().unwrap();
    d.ok(&["shmif0", "create"]);
    d.ok(&["shmif0", "linkstr", bus]);
    d.ok(&["shmif0", "inet", v4]);
    d.ok(&["shmif0", "inet6", v6]);
    d.ok(&["shmif0", "up"]);
    d.ok(&["-w", "5"]);
    d
}

/// A bus file removed while daemons are attached: they keep their bus
/// (the mapping holds the file) and go on talking; a daemon attaching by
/// the same path afterwards gets a new, separate bus.
#[test]
fn an_unlinked_bus_keeps_its_peers() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus");
    let a = bus_host(&bus, "10.0.7.1/24", "fc00:7::1");
    let b = bus_host(&bus, "10.0.7.2/24", "fc00:7::2");
    let (out, err, rc) = ifping(&a, &["-c", "1", "-W", "2", "10.0.7.2"]);
    assert_eq!(rc, 0, "{out}{err}");
    std::fs::remove_file(&bus).unwrap();
    let (out, err, rc) = ifping(&a, &["-c", "2", "-i", "0.2", "-W", "2", "10.0.7.2"]);
    assert_eq!(rc, 0, "{out}{err}");
    let c = bus_host(&bus, "10.0.7.3/24", "fc00:7::3");
    let (out, _, rc) = ifping(&c, &["-c", "1", "-W", "1", "10.0.7.1"]);
    assert_eq!(rc, 2, "a newcomer is on another bus\n{out}");
    let (out, err, rc) = ifping(&b, &["-c", "1", "-W", "2", "10.0.7.1"]);
    assert_eq!(rc, 0, "{out}{err}");
}

#[test]
fn two_daemons_on_one_bus_ping_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus");
    let a = bus_host(&bus, "10.0.0.1/24", "fc00::1");
    let b = bus_host(&bus, "10.0.0.2/24", "fc00::2");
    let (mac_a, mac_b) = (mac_of(&a, "shmif0"), mac_of(&b, "shmif0"));

    let (out, err, rc) = ifping(&a, &["-c", "2", "-i", "0.2", "10.0.0.2"]);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.starts_with("PING 10.0.0.2 (10.0.0.2): 56 data bytes\n64 bytes from 10.0.0.2: icmp_seq=0 ttl=64 time="), "{out}");
    assert!(
        out.contains("2 packets transmitted, 2 packets received, 0.0% packet loss"),
        "{out}"
    );
    let (out, err, rc) = ifping(&b, &["-c", "2", "-i", "0.2", "fc00::1"]);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(
        out.contains("bytes from fc00::1, icmp_seq=0 hlim=64"),
        "{out}"
    );
    let (out, _, rc) = ifping(&b, &["-c", "1", "-i", "0.2", "-W", "1", "10.0.0.9"]);
    assert_eq!(rc, 2, "no reply: exit 2\n{out}");

    // What crossed the bus, read back by tcpdump. (smoltcp's ARP requests
    // carry ff:ff:ff:ff:ff:ff as target hardware address; NetBSD's zeros.)
    let dump = sh(&format!(
        "{SHMIFDUMP} -p - {} 2>/dev/null | tcpdump -n -e -r - 2>/dev/null",
        bus.display()
    ));
    for want in [
        format!(
            "{mac_a} > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.0.0.1 tell 10.0.0.1"
        ),
        format!(
            "{mac_b} > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.0.0.2 tell 10.0.0.2"
        ),
        format!(
            "{mac_a} > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.0.0.2 (ff:ff:ff:ff:ff:ff) tell 10.0.0.1"
        ),
        format!(
            "{mac_b} > {mac_a}, ethertype ARP (0x0806), length 42: Reply 10.0.0.2 is-at {mac_b}"
        ),
        format!(
            "{mac_a} > {mac_b}, ethertype IPv4 (0x0800), length 98: 10.0.0.1 > 10.0.0.2: ICMP echo request"
        ),
        format!(
            "{mac_b} > {mac_a}, ethertype IPv4 (0x0800), length 98: 10.0.0.2 > 10.0.0.1: ICMP echo reply"
        ),
        format!(
            "{mac_b} > {mac_a}, ethertype IPv6 (0x86dd), length 118: fc00::2 > fc00::1: ICMP6, echo request"
        ),
    ] {
        assert!(dump.contains(&want), "missing «{want}» in\n{dump}");
    }
}

#[test]
fn duplicate_address_on_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus");
    let _a = bus_host(&bus, "10.0.0.1/24", "fc00::1");
    // A whole second of DAD, as by default: time for the defence to cross.
    let b = Daemon::start_with(&[]);
    b.ok(&["shmif0", "create"]);
    b.ok(&["shmif0", "linkstr", bus.to_str().unwrap()]);
    b.ok(&["shmif0", "up"]);
    b.ok(&["shmif0", "inet", "10.0.0.1/24"]);
    b.ok(&["shmif0", "inet6", "fc00::1"]);
    wait_until(5, "DUPLICATED", || {
        let (out, _, _) = b.ifconfig(&["shmif0"]);
        out.contains("inet 10.0.0.1/24 broadcast 10.0.0.255 flags 0x2<DUPLICATED>")
            && out.contains("inet6 fc00::1/64 flags 0x4<DUPLICATED>")
    });
}

#[test]
fn namespace_pings_the_daemon_through_virt() {
    if !can_netadmin() {
        return;
    }
    let d = Daemon::start();
    let ns = Netns::new();
    let tap = virt_in_ns(&d, "virt0", &ns, "10.0.1.2/24");
    d.ok(&["virt0", "inet", "10.0.1.1/24"]);
    d.ok(&["-w", "5"]);
    let out = ns.exec("ping -c 2 -i 0.2 -W 2 10.0.1.1");
    assert!(out.contains("2 received"), "{out}");
    let neigh = ns.exec(&format!("ip neigh show dev {tap}"));
    let mac = mac_of(&d, "virt0");
    assert!(neigh.contains(&format!("10.0.1.1 lladdr {mac}")), "{neigh}");
    // And the other way, from inside the virtual kernel.
    let (out, err, rc) = ifping(&d, &["-c", "1", "10.0.1.2"]);
    assert_eq!(rc, 0, "{out}{err}");

    // One thread reads every virt's host TAP: another virt whose host TAP
    // is deleted underneath does not disturb this one.
    let ns2 = Netns::new();
    let tap2 = virt_in_ns(&d, "virt1", &ns2, "10.0.6.2/24");
    ns2.exec(&format!("ip link del {tap2}"));
    wait_until(5, "virt1's link down", || {
        d.ifconfig(&["virt1"]).0.contains("status: no carrier")
    });
    let out = ns.exec("ping -c 2 -i 0.2 -W 2 10.0.1.1");
    assert!(out.contains("2 received"), "{out}");
}

/// The README's scene: two daemons, each bridging a virt to a shared bus.
#[test]
fn namespaces_talk_across_two_daemons_and_a_bus() {
    if !can_netadmin() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus0");
    let bus = bus.to_str().unwrap();
    let (ns1, ns2) = (Netns::new(), Netns::new());
    let (a, b) = (Daemon::start(), Daemon::start());
    for (d, virt, ns, addr) in [
        (&a, "virt0", &ns1, "10.0.2.1/24"),
        (&b, "virt1", &ns2, "10.0.2.2/24"),
    ] {
        d.ok(&["shmif0", "create"]);
        d.ok(&["shmif0", "linkstr", bus]);
        virt_in_ns(d, virt, ns, addr);
        d.ok(&["bridge0", "create"]);
        let (out, err, rc) = d.brconfig(&["bridge0", "add", virt, "add", "shmif0", "up"]);
        assert_eq!((out.as_str(), err.as_str(), rc), ("", "", 0));
        d.ok(&["shmif0", "up"]);
    }
    let out = ns1.exec("ping -c 3 -i 0.2 -W 2 10.0.2.2");
    assert!(out.contains("3 received"), "{out}");
    // The echoes crossed the bus (before the transfer below fills the ring).
    let dump = sh(&format!(
        "{SHMIFDUMP} -p - {bus} 2>/dev/null | tcpdump -n -r - 2>/dev/null"
    ));
    assert!(
        dump.contains("10.0.2.1 > 10.0.2.2: ICMP echo request"),
        "{dump}"
    );
    assert!(
        dump.contains("10.0.2.2 > 10.0.2.1: ICMP echo reply"),
        "{dump}"
    );

    // A TCP transfer with a checksum at both ends.
    tcp_transfer_intact(&ns1, &ns2, "10.0.2.2", 5001, 8, dir.path());

    // The TCP segments are the newest frames on the bus.
    let dump = sh(&format!(
        "{SHMIFDUMP} -p - {bus} 2>/dev/null | tcpdump -n -r - 2>/dev/null"
    ));
    assert!(dump.contains("10.0.2.2.5001"), "TCP on the bus:\n{dump}");
}

/// Replacing, aliasing and deleting addresses changes what answers.
#[test]
fn address_changes_change_what_answers() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus");
    let a = bus_host(&bus, "10.0.3.1/24", "fc00:3::1");
    let b = bus_host(&bus, "10.0.3.2/24", "fc00:3::2");
    let answers = |ip: &str| ifping(&a, &["-c", "1", "-W", "1", ip]).2 == 0;
    assert!(answers("10.0.3.2"));
    // Without alias the first inet address is replaced.
    b.ok(&["shmif0", "inet", "10.0.3.3/24"]);
    b.ok(&["-w", "5"]);
    assert!(!answers("10.0.3.2"), "the replaced address is gone");
    assert!(answers("10.0.3.3"));
    b.ok(&["shmif0", "inet", "10.0.3.4/24", "alias"]);
    b.ok(&["-w", "5"]);
    assert!(answers("10.0.3.4") && answers("10.0.3.3"));
    b.ok(&["shmif0", "inet", "10.0.3.4", "-alias"]);
    assert!(!answers("10.0.3.4"), "deleted at once");
    b.ok(&["shmif0", "inet6", "fc00:3::2", "delete"]);
    assert!(!answers("fc00:3::2"));
    assert!(
        answers("10.0.3.3"),
        "the rest still answers: {}",
        b.ifconfig(&["shmif0"]).0
    );
}

/// The ARP frames on a bus, as (sender IP, target IP) of each request,
/// read from `shmifdump -p` as a NetBSD script reads `shmif_dumpbus`.
fn arp_requests_on(bus: &Path) -> Vec<([u8; 4], [u8; 4])> {
    let o = std::process::Command::new(SHMIFDUMP)
        .args(["-p", "-", bus.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let (b, mut off, mut out) = (&o.stdout, 24, Vec::new());
    while off + 16 <= b.len() {
        let len = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        let f = &b[off + 16..(off + 16 + len).min(b.len())];
        // Ethernet type ARP, operation request.
        if f.len() >= 42 && f[12..14] == [8, 6] && f[20..22] == [0, 1] {
            let ip = |o: usize| -> [u8; 4] { f[o..o + 4].try_into().unwrap() };
            out.push((ip(28), ip(38)));
        }
        off += 16 + len;
    }
    out
}

/// Issue 13 items 1, 2 and 4, on the wire, as NetBSD's t_dad.sh
/// (dad_basic): the first address, which brings shmif0 up, is not tried
/// (in_ifinit) but announced once (arp_ifinit); an alias is probed three
/// times `who-has A tell 0.0.0.0` (arp_dad_output), then announced
/// `who-has A tell A` twice (arp_dad_timer); down marks the addresses
/// DETACHED (in_if_link_down), up tries them all again (in_if_link_up).
#[test]
fn dad_on_the_bus_as_netbsd() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus");
    let d = Daemon::start_with(&["--retrans-timer", "100"]);
    d.ok(&["shmif0", "create"]);
    d.ok(&["shmif0", "linkstr", bus.to_str().unwrap()]);
    d.ok(&["shmif0", "inet", "10.0.0.1/24"]);
    let (out, _, _) = d.ifconfig(&["shmif0"]);
    assert!(
        out.contains("inet 10.0.0.1/24 broadcast 10.0.0.255 flags 0x0\n"),
        "{out}"
    );
    d.ok(&["shmif0", "inet", "10.0.0.2/24", "alias"]);
    d.ok(&["-w", "10"]);
    let (one, two) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let count = |v: &[([u8; 4], [u8; 4])], s: [u8; 4], t: [u8; 4]| {
        v.iter().filter(|&&x| x == (s, t)).count()
    };
    wait_until(5, "two announcements of the alias", || {
        count(&arp_requests_on(&bus), two, two) == 2
    });
    let arp = arp_requests_on(&bus);
    assert_eq!(count(&arp, [0; 4], two), 3, "probes of the alias: {arp:?}");
    assert_eq!(count(&arp, [0; 4], one), 0, "no DAD for the first address");
    assert_eq!(count(&arp, one, one), 1, "the first address announced");
    d.ok(&["shmif0", "down"]);
    let (out, _, _) = d.ifconfig(&["shmif0"]);
    assert!(
        out.contains("10.0.0.1/24 broadcast 10.0.0.255 flags 0x4<DETACHED>\n"),
        "{out}"
    );
    assert!(
        out.contains("10.0.0.2/24 broadcast 10.0.0.255 flags 0x4<DETACHED>\n"),
        "{out}"
    );
    assert!(out.contains("%shmif0/64 flags 0x8<DETACHED>"), "{out}");
    d.ok(&["shmif0", "up"]);
    d.ok(&["-w", "10"]);
    wait_until(5, "the addresses tried again", || {
        let arp = arp_requests_on(&bus);
        count(&arp, [0; 4], one) == 3 && count(&arp, [0; 4], two) == 6
    });
    let (out, _, _) = d.ifconfig(&["shmif0"]);
    assert!(
        !out.contains("DETACHED") && !out.contains("TENTATIVE"),
        "{out}"
    );
    // The link going down and up does the same (in_if_link_state_change).
    d.ok(&["shmif0", "media", "none"]);
    let (out, _, _) = d.ifconfig(&["shmif0"]);
    assert!(
        out.contains("10.0.0.1/24 broadcast 10.0.0.255 flags 0x4<DETACHED>\n"),
        "{out}"
    );
    d.ok(&["shmif0", "media", "auto"]);
    d.ok(&["-w", "10"]);
    wait_until(5, "the addresses tried on link up", || {
        count(&arp_requests_on(&bus), [0; 4], one) == 6
    });
}

/// Issue 13 item 1 on a bus: `ifconfig shmif0 inet A` on a fresh shmif,
/// then at once `ifping -c 1 -w 5 B`: the first address is usable at once
/// (in_ifinit tries DAD only on an interface already up and running), so
/// the ARP request and the echo go out and the reply comes back.
#[test]
fn the_first_address_pings_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus");
    let _b = bus_host(&bus, "10.0.8.2/24", "fc00:8::2");
    let a = Daemon::start_with(&[]);
    a.ok(&["shmif0", "create"]);
    a.ok(&["shmif0", "linkstr", bus.to_str().unwrap()]);
    a.ok(&["shmif0", "inet", "10.0.8.1/24"]);
    let (out, err, rc) = ifping(&a, &["-c", "1", "-w", "5", "10.0.8.2"]);
    assert_eq!(rc, 0, "{out}{err}");
    let arp = arp_requests_on(&bus);
    assert!(arp.contains(&([10, 0, 8, 1], [10, 0, 8, 2])), "{arp:?}");
}
