//! netstat, arp, ndp, sysctl, ifmcstat and shmif_pcapin (the multi-call
//! `ifnet-tools`) against real daemons: exact output for a kernel with
//! lo0, two shmif on a bus, a bridge, inet and inet6 aliases and cache
//! entries learned by pinging a peer daemon on the bus; errors and exit
//! codes as NetBSD's tools (sbin/route/rtutil.c, usr.bin/netstat/if.c,
//! usr.sbin/arp/arp.c, usr.sbin/ndp/ndp.c, sbin/sysctl/sysctl.c,
//! usr.bin/shmif_pcapin/shmif_pcapin.c); and an ATF-shaped shell script
//! run through the NetBSD-named links of `ifnetd --env`.

use crate::common::{Daemon, IFNETD, SHMIFDUMP, run};
use std::path::PathBuf;

const TOOLS: &str = env!("CARGO_BIN_EXE_ifnet-tools");
const IFPING: &str = env!("CARGO_BIN_EXE_ifping");

/// `ifnet-tools TOOL ARGS` against `d`: (stdout, stderr, exit code).
fn tool(d: &Daemon, name: &str, args: &[&str]) -> (String, String, i32) {
    run(d.cmd(TOOLS).arg(name).args(args))
}

fn ping(d: &Daemon, dst: &str) {
    let (o, e, rc) = run(d.cmd(IFPING).args(["-c", "1", "-w", "5", dst]));
    assert_eq!(rc, 0, "ping {dst}: {o}{e}");
}

/// Kernel A: lo0, shmif0 (two inet, two inet6) and shmif1 on one bus,
/// bridge0; kernel B: shmif0 on the same bus, pinged from A so that A
/// learns it. Fixed link addresses make the link-local ones fixed too.
struct Scene {
    a: Daemon,
    b: Daemon,
    bus: PathBuf,
}

fn scene() -> Scene {
    let a = Daemon::start();
    let b = Daemon::start();
    let bus = a.dir.path().join("bus");
    let bus_s = bus.to_str().unwrap();
    for args in [
        &["shmif0", "create"][..],
        &["shmif0", "link", "b2:a0:00:00:00:01", "active"],
        &["shmif0", "linkstr", bus_s],
        &["shmif0", "inet", "10.0.0.1/24"],
        &["shmif0", "inet", "10.0.0.2/24", "alias"],
        &["shmif0", "inet6", "fc00::1/64"],
        &["shmif0", "inet6", "fc00::2/64", "alias"],
        &["shmif1", "create"],
        &["shmif1", "link", "b2:a0:00:00:00:02", "active"],
        &["shmif1", "linkstr", bus_s],
        &["shmif1", "inet", "10.0.1.1/24"],
        &["bridge0", "create"],
        &["bridge0", "up"],
        &["-w", "10"],
    ] {
        a.ok(args);
    }
    for args in [
        &["shmif0", "create"][..],
        &["shmif0", "link", "b2:a0:00:00:00:09", "active"],
        &["shmif0", "linkstr", bus_s],
        &["shmif0", "inet", "10.0.0.9/24"],
        &["shmif0", "inet6", "fc00::9/64"],
        &["-w", "10"],
    ] {
        b.ok(args);
    }
    ping(&a, "10.0.0.9");
    ping(&a, "fc00::9");
    Scene { a, b, bus }
}

/// The Expire column of ndp's lines counts down: replaced by `EXP`.
fn no_expire(s: &str) -> String {
    s.lines()
        .map(|l| {
            if l.starts_with("Neighbor") || l.len() < 77 {
                return l.to_string();
            }
            format!("{}EXP      {}", &l[..65], &l[74..])
        })
        .map(|l| l + "\n")
        .collect()
}

#[test]
fn netstat_routes_exact() {
    let s = scene();
    let (o, e, rc) = tool(&s.a, "netstat", &["-nr", "-f", "inet"]);
    assert_eq!((e.as_str(), rc), ("", 0));
    assert_eq!(
        o,
        "Routing tables

Internet:
Destination        Gateway            Flags    Refs      Use    Mtu Interface
10.0.0/24          link#2             UC          -        -      -  shmif0
10.0.0.1           link#2             UHl         -        -      -  lo0
10.0.0.2           link#2             UHl         -        -      -  lo0
10.0.1/24          link#3             UC          -        -      -  shmif1
10.0.1.1           link#3             UHl         -        -      -  lo0
127.0.0.1          lo0                UHl         -        -  33624  lo0
10.0.0.9           b2:a0:00:00:00:09  UHL         -        -      -  shmif0
"
    );
    let (o, _, rc) = tool(&s.a, "netstat", &["-rn"]);
    assert_eq!(rc, 0);
    let six = &o[o.find("\nInternet6:\n").unwrap()..];
    // The routes (the cache entries after them depend on what each
    // interface heard).
    let routes: String = six
        .lines()
        .filter(|l| !l.contains("UHL"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        routes,
        "
Internet6:
Destination                             Gateway                        Flags    Refs      Use    Mtu Interface
::1                                     lo0                            UHl         -        -  33624  lo0
fc00::/64                               link#2                         UC          -        -      -  shmif0
fc00::1                                 link#2                         UHl         -        -      -  lo0
fc00::2                                 link#2                         UHl         -        -      -  lo0
fe80::%lo0/64                           fe80::1                        U           -        -      -  lo0
fe80::1                                 lo0                            UHl         -        -      -  lo0
fe80::%shmif0/64                        link#2                         UC          -        -      -  shmif0
fe80::b0a0:ff:fe00:1                    link#2                         UHl         -        -      -  lo0
fe80::%shmif1/64                        link#3                         UC          -        -      -  shmif1
fe80::b0a0:ff:fe00:2                    link#3                         UHl         -        -      -  lo0
ff01:1::/32                             ::1                            UC          -        -  33624  lo0
ff01:2::/32                             link#2                         UC          -        -      -  shmif0
ff01:3::/32                             link#3                         UC          -        -      -  shmif1
ff02::%lo0/32                           ::1                            UC          -        -  33624  lo0
ff02::%shmif0/32                        link#2                         UC          -        -      -  shmif0
ff02::%shmif1/32                        link#3                         UC          -        -      -  shmif1
"
    );
    assert!(
        six.contains(
            "\nfc00::9                                 b2:a0:00:00:00:09              UHL         -        -      -  shmif0\n"
        ),
        "{six}"
    );
    // Without -n the columns are 18 wide and cut.
    let (o, _, _) = tool(&s.a, "netstat", &["-r", "-f", "inet6"]);
    assert!(
        o.contains(
            "\nfe80::%shmif0/64   link#2             UC          -        -      -  shmif0\n"
        ),
        "{o}"
    );
    // Errors: usage, a family netstat does not know.
    let (o, e, rc) = tool(&s.a, "netstat", &["-x"]);
    assert_eq!((o.as_str(), rc), ("", 1));
    assert!(e.starts_with("usage: netstat "), "{e}");
    let (_, e, rc) = tool(&s.a, "netstat", &["-r", "-f", "ipx"]);
    assert_eq!(
        (e.as_str(), rc),
        ("netstat: ipx: unknown address family\n", 1)
    );
    drop(s.b);
}

#[test]
fn netstat_interfaces_exact() {
    let s = scene();
    let (o, e, rc) = tool(&s.a, "netstat", &["-ni"]);
    assert_eq!((e.as_str(), rc), ("", 0));
    // Name, Mtu, Network and Address exactly; the counters are numbers
    // (what crossed the bus depends on timing).
    let cols: String = o
        .lines()
        .map(|l| format!("{}|\n", l[..44].trim_end()))
        .collect();
    assert_eq!(
        cols,
        "Name  Mtu   Network       Address|
lo0   33624 <Link>|
lo0   33624 127/8         127.0.0.1|
lo0   33624 ::1/128       ::1|
lo0   33624 fe80::%lo0/64 fe80::1%lo0|
shmif 1500  <Link>        b2:a0:00:00:00:01|
shmif 1500  10.0.0/24     10.0.0.1|
shmif 1500  10.0.0/24     10.0.0.2|
shmif 1500  fe80::%shmif0 fe80::b0a0:ff:fe0|
shmif 1500  fc00::/64     fc00::1|
shmif 1500  fc00::/64     fc00::2|
shmif 1500  <Link>        b2:a0:00:00:00:02|
shmif 1500  10.0.1/24     10.0.1.1|
shmif 1500  fe80::%shmif1 fe80::b0a0:ff:fe0|
bridg 1500  <Link>|
"
    );
    for l in o.lines().skip(1) {
        let n: Vec<&str> = l[44..].split_whitespace().collect();
        assert_eq!(n.len(), 5, "{l}");
        assert!(n.iter().all(|x| x.parse::<u64>().is_ok()), "{l}");
    }
    // lo0 saw nothing: the pings went to the peer.
    assert!(
        o.contains(
            "\nlo0   33624 <Link>                                 0     0        0     0     0\n"
        ),
        "{o}"
    );
    // -b: bytes.
    let (o, _, _) = tool(&s.a, "netstat", &["-bi", "-I", "lo0", "-f", "inet"]);
    assert_eq!(
        o,
        "Name  Mtu   Network       Address               Ibytes     Obytes\n\
         lo0   33624 127/8         127.0.0.1                  0          0\n"
    );
    // A down interface is starred; -I picks one.
    s.a.ok(&["shmif1", "down"]);
    let (o, _, rc) = tool(&s.a, "netstat", &["-n", "-I", "shmif1"]);
    assert_eq!(rc, 0);
    assert!(
        o.lines()
            .nth(1)
            .unwrap()
            .starts_with("shmif 1500  <Link>        b2:a0:00:00:00:02 "),
        "{o}"
    );
    let (o, _, _) = tool(&s.a, "netstat", &["-i", "-I", "bridge0"]);
    assert_eq!(
        o.lines().nth(1).unwrap(),
        "bridg 1500  <Link>                                 0     0        0     0     0"
    );
    let (_, e, rc) = tool(&s.a, "netstat", &["-I", "nope0"]);
    assert_eq!((e.as_str(), rc), ("netstat: nope0: unknown interface\n", 1));
    // -a: the multicast groups under the first address of each family.
    let (o, _, _) = tool(&s.a, "netstat", &["-nai", "-I", "shmif0", "-f", "inet"]);
    let cols: String = o
        .lines()
        .map(|l| format!("{}|\n", &l[..l.len().min(44)]))
        .collect();
    assert_eq!(
        cols,
        "Name  Mtu   Network       Address           |
shmif 1500  10.0.0/24     10.0.0.1          |
                          224.0.0.1         |
shmif 1500  10.0.0/24     10.0.0.2          |
"
    );
}

#[test]
fn arp_show_delete_flush() {
    let s = scene();
    let a = &s.a;
    assert_eq!(
        tool(a, "arp", &["-na"]),
        (
            "? (10.0.0.9) at b2:a0:00:00:00:09 on shmif0\n".into(),
            String::new(),
            0
        )
    );
    assert_eq!(
        tool(a, "arp", &["-n", "10.0.0.9"]),
        (
            "? (10.0.0.9) at b2:a0:00:00:00:09 on shmif0\n".into(),
            String::new(),
            0
        )
    );
    // The peer learned us from our request.
    assert_eq!(
        tool(&s.b, "arp", &["-an"]).0,
        "? (10.0.0.1) at b2:a0:00:00:00:01 on shmif0\n"
    );
    assert_eq!(
        tool(a, "arp", &["-n", "10.0.0.77"]),
        (
            String::new(),
            "arp: 10.0.0.77 (10.0.0.77) -- no entry\n".into(),
            1
        )
    );
    // -d is silent, and silent too for an entry that is not there.
    assert_eq!(
        tool(a, "arp", &["-d", "10.0.0.9"]),
        (String::new(), String::new(), 0)
    );
    assert_eq!(
        tool(a, "arp", &["-d", "10.0.0.9"]),
        (String::new(), String::new(), 0)
    );
    assert_eq!(tool(a, "arp", &["-na"]).0, "");
    // Learned again by the next ping; -v -d -a names each one gone.
    ping(a, "10.0.0.9");
    assert_eq!(
        tool(a, "arp", &["-v", "-d", "-a"]),
        ("(null) (10.0.0.9) deleted\n".into(), String::new(), 0)
    );
    assert_eq!(tool(a, "arp", &["-na"]).0, "");
    ping(a, "10.0.0.9");
    assert_eq!(
        tool(a, "arp", &["-dv", "10.0.0.9"]),
        ("10.0.0.9 (10.0.0.9) deleted\n".into(), String::new(), 0)
    );
    // The inet6 cache is another table.
    assert!(tool(a, "ndp", &["-n", "fc00::9"]).0.contains("fc00::9 "));
    // Usage and a name that does not resolve.
    let (o, e, rc) = tool(a, "arp", &[]);
    assert_eq!((o.as_str(), rc), ("", 1));
    assert!(e.starts_with("Usage: arp [-n] hostname\n"), "{e}");
    let (_, e, rc) = tool(a, "arp", &["-n", "no.such.host.invalid"]);
    assert_eq!(
        (e.as_str(), rc),
        ("arp: no.such.host.invalid: Unknown host\n", 1)
    );
}

const NDP_HEADER: &str =
    "Neighbor                                Linklayer Address  Netif Expire    S Fl\n";

#[test]
fn ndp_show_delete_flush() {
    let s = scene();
    let a = &s.a;
    let (o, e, rc) = tool(a, "ndp", &["-na"]);
    assert_eq!((e.as_str(), rc), ("", 0));
    let o = no_expire(&o);
    assert!(o.starts_with(NDP_HEADER), "{o}");
    assert!(
        o.contains(
            "\nfc00::9                                 b2:a0:00:00:00:09 shmif0 EXP       R \n"
        ),
        "{o}"
    );
    assert!(
        o.contains(
            "\nfe80::b0a0:ff:fe00:9%shmif0             b2:a0:00:00:00:09 shmif0 EXP       R \n"
        ),
        "{o}"
    );
    let (o, e, rc) = tool(a, "ndp", &["-n", "fc00::9"]);
    assert_eq!((e.as_str(), rc), ("", 0));
    assert_eq!(
        no_expire(&o),
        format!(
            "{NDP_HEADER}fc00::9                                 b2:a0:00:00:00:09 shmif0 EXP       R \n"
        )
    );
    // A zone picks the interface (makeaddr keeps the scope).
    let (o, _, rc) = tool(a, "ndp", &["-n", "fe80::b0a0:ff:fe00:9%shmif1"]);
    assert_eq!(rc, 0);
    assert_eq!(
        no_expire(&o),
        format!(
            "{NDP_HEADER}fe80::b0a0:ff:fe00:9%shmif1             b2:a0:00:00:00:09 shmif1 EXP       R \n"
        )
    );
    assert_eq!(
        tool(a, "ndp", &["-d", "fe80::b0a0:ff:fe00:9%shmif1"]).0,
        format!("{NDP_HEADER} (fe80::b0a0:ff:fe00:9%shmif1) deleted\n")
    );
    assert_eq!(tool(a, "ndp", &["-n", "fe80::b0a0:ff:fe00:9%shmif1"]).2, 1);
    assert_eq!(tool(a, "ndp", &["-n", "fe80::b0a0:ff:fe00:9%shmif0"]).2, 0);
    // -d: the header, then NetBSD's line with an empty name.
    assert_eq!(
        tool(a, "ndp", &["-d", "fc00::9"]),
        (
            format!("{NDP_HEADER} (fc00::9) deleted\n"),
            String::new(),
            0
        )
    );
    assert_eq!(
        tool(a, "ndp", &["-n", "fc00::9"]),
        (
            NDP_HEADER.into(),
            "ndp: fc00::9 (fc00::9) -- no entry\n".into(),
            1
        )
    );
    // -c flushes every entry, naming each; then only the header is left.
    let (o, _, rc) = tool(a, "ndp", &["-c"]);
    assert_eq!(rc, 0);
    assert!(
        o.contains("fe80::b0a0:ff:fe00:9%shmif0 (fe80::b0a0:ff:fe00:9%shmif0) deleted\n"),
        "{o}"
    );
    assert!(o.lines().all(|l| l.ends_with(" deleted")), "{o}");
    assert_eq!(tool(a, "ndp", &["-an"]).0, NDP_HEADER);
    // The ARP cache is another table.
    assert_eq!(
        tool(a, "arp", &["-na"]).0,
        "? (10.0.0.9) at b2:a0:00:00:00:09 on shmif0\n"
    );
    let (o, e, rc) = tool(a, "ndp", &["-a", "-c"]);
    assert_eq!((o.as_str(), rc), ("", 1));
    assert!(e.starts_with("Usage: ndp [-nt] hostname\n"), "{e}");
}

#[test]
fn sysctl_knobs() {
    let a = Daemon::start();
    let t = |args: &[&str]| tool(&a, "sysctl", args);
    assert_eq!(
        t(&["net.inet.ip.dad_count"]),
        ("net.inet.ip.dad_count = 3\n".into(), String::new(), 0)
    );
    assert_eq!(
        t(&["-n", "net.inet6.ip6.dad_count"]),
        ("1\n".into(), String::new(), 0)
    );
    assert_eq!(
        t(&["net.inet6.ip6"]).0,
        "net.inet6.ip6.forwarding = 0\nnet.inet6.ip6.hlim = 64\nnet.inet6.ip6.accept_rtadv = 0\n\
         net.inet6.ip6.dad_count = 1\nnet.inet6.ip6.auto_linklocal = 1\n"
    );
    assert_eq!(
        t(&["net.inet.ip.forwarding"]).0,
        "net.inet.ip.forwarding = 0\n"
    );
    // Errors as sysctl.c: the level where the name is not known, -w
    // missing, a read-only knob, not a number.
    assert_eq!(
        t(&["net.inet.x"]),
        (
            String::new(),
            "sysctl: third level name 'x' in 'net.inet.x' is invalid\n".into(),
            1
        )
    );
    assert_eq!(
        t(&["kern.hostname"]),
        (
            String::new(),
            "sysctl: top level name 'kern' in 'kern.hostname' is invalid\n".into(),
            1
        )
    );
    assert_eq!(
        t(&["-q", "net.inet.ip.nope"]),
        (String::new(), String::new(), 1)
    );
    assert_eq!(
        t(&["net.inet.ip.dad_count=1"]),
        (
            String::new(),
            "sysctl: Must specify -w to set variables\n".into(),
            1
        )
    );
    assert_eq!(
        t(&["-w", "net.inet.ip.ttl=1"]),
        (
            String::new(),
            "sysctl: net.inet.ip.ttl: Operation not permitted\n".into(),
            1
        )
    );
    assert_eq!(
        t(&["-w", "net.inet.ip.dad_count=abc"]),
        (String::new(), "sysctl: abc: not a number\n".into(), 1)
    );
    assert_eq!(
        t(&["-w", "net.inet.ip.dad_count=300"]),
        (
            String::new(),
            "sysctl: net.inet.ip.dad_count: Invalid argument\n".into(),
            1
        )
    );
    // Set at run time, and what the kernel does follows.
    assert_eq!(
        t(&[
            "-w",
            "net.inet.ip.dad_count=0",
            "net.inet6.ip6.auto_linklocal=0"
        ]),
        (
            "net.inet.ip.dad_count: 3 -> 0\nnet.inet6.ip6.auto_linklocal: 1 -> 0\n".into(),
            String::new(),
            0
        )
    );
    assert_eq!(t(&["-nw", "net.inet6.ip6.dad_count=2"]).0, "2\n");
    assert_eq!(t(&["-qw", "net.inet6.ip6.dad_count=1"]).0, "");
    assert_eq!(
        t(&["net.inet.ip.dad_count"]).0,
        "net.inet.ip.dad_count = 0\n"
    );
    let bus = a.dir.path().join("bus");
    a.ok(&["shmif0", "create"]);
    a.ok(&["shmif0", "linkstr", bus.to_str().unwrap()]);
    a.ok(&["shmif0", "up"]);
    // auto_linklocal 0: no link-local address on up (in6_ifattach).
    let (o, _, _) = a.ifconfig(&["shmif0"]);
    assert!(!o.contains("fe80"), "{o}");
    // dad_count 0: an alias added while up and running is not tentative.
    a.ok(&["shmif0", "inet", "10.0.0.1/24"]);
    a.ok(&["shmif0", "inet", "10.0.0.2/24", "alias"]);
    let (o, _, _) = a.ifconfig(&["shmif0"]);
    assert!(
        o.contains("inet 10.0.0.2/24 broadcast 10.0.0.255 flags 0x0\n"),
        "{o}"
    );
}

#[test]
fn ifmcstat_groups() {
    let s = scene();
    let (o, e, rc) = tool(&s.a, "ifmcstat", &[]);
    assert_eq!((e.as_str(), rc), ("", 0));
    // NetBSD's layout: the groups under the address that joined them
    // first (newest first), then the link-level ones, each address
    // printed with a colon after every byte as print_hwaddr does.
    assert_eq!(
        o,
        "lo0:
\tinet6 ::1
\t\tgroup ff02::1:ff00:1%lo0 refcount 2
\tinet6 fe80::1%lo0
\t\tgroup ff01::1%lo0 refcount 1
\t\tgroup ff02::1%lo0 refcount 1
shmif0:
\tinet6 fe80::b0a0:ff:fe00:1%shmif0
\t\tgroup ff01::1%shmif0 refcount 1
\t\tgroup ff02::1%shmif0 refcount 1
\t\tgroup ff02::1:ff00:1%shmif0 refcount 2
\tinet6 fc00::2
\t\tgroup ff02::1:ff00:2%shmif0 refcount 1
\tenaddr b2:a0:00:00:00:01: multicnt 4
\t\t33:33:ff:00:00:02: -- 33:33:ff:00:00:02: 1
\t\t33:33:00:00:00:01: -- 33:33:00:00:00:01: 2
\t\t33:33:ff:00:00:01: -- 33:33:ff:00:00:01: 1
\t\t01:00:5e:00:00:01: -- 01:00:5e:00:00:01: 1
shmif1:
\tinet6 fe80::b0a0:ff:fe00:2%shmif1
\t\tgroup ff01::1%shmif1 refcount 1
\t\tgroup ff02::1%shmif1 refcount 1
\t\tgroup ff02::1:ff00:2%shmif1 refcount 1
\tenaddr b2:a0:00:00:00:02: multicnt 3
\t\t33:33:00:00:00:01: -- 33:33:00:00:00:01: 2
\t\t33:33:ff:00:00:02: -- 33:33:ff:00:00:02: 1
\t\t01:00:5e:00:00:01: -- 01:00:5e:00:00:01: 1
bridge0:
"
    );
}

/// A pcap file of `frames`, as libpcap writes one.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut w = ifnet::pcap::PcapWriter::new(Vec::new(), false, 65535).unwrap();
    for f in frames {
        w.record(1, 0, &[f]).unwrap();
    }
    w.flush().unwrap();
    std::mem::take(w.get_mut())
}

/// An ARP request from `ip` at `mac` for `target` (RFC 826).
fn arp_request(mac: [u8; 6], ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f.resize(60, 0);
    f
}

#[test]
fn shmif_pcapin_replays_onto_the_bus() {
    let s = scene();
    let file = s.a.dir.path().join("in.pcap");
    let peer = [0x02, 0, 0, 0, 0, 0x50];
    std::fs::write(
        &file,
        pcap(&[arp_request(peer, [10, 0, 0, 50], [10, 0, 0, 1])]),
    )
    .unwrap();
    let (o, e, rc) = run(std::process::Command::new(TOOLS).args([
        "shmif_pcapin",
        file.to_str().unwrap(),
        s.bus.to_str().unwrap(),
    ]));
    assert_eq!((e.as_str(), rc), ("", 0));
    assert!(o.starts_with("bus version 3, lock: 0, generation: "), "{o}");
    // shmif0 answered the request and learned its sender.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (o, _, _) = tool(&s.a, "arp", &["-n", "10.0.0.50"]);
        if o == "? (10.0.0.50) at 02:00:00:00:00:50 on shmif0\n" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not learned: {o}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Usage, a bus that is not there, a file that is not a bus.
    let (_, e, rc) = run(std::process::Command::new(TOOLS).args(["shmif_pcapin", "x"]));
    assert_eq!(
        (e.as_str(), rc),
        ("usage: shmif_pcapin pcap-file-path bus-path\n", 1)
    );
    let (_, e, rc) =
        run(std::process::Command::new(TOOLS).args(["shmif_pcapin", "x", "/nonexistent/bus"]));
    assert_eq!(
        (e.as_str(), rc),
        ("shmif_pcapin: open bus: No such file or directory\n", 1)
    );
    let (_, e, rc) = run(std::process::Command::new(TOOLS).args([
        "shmif_pcapin",
        "/nonexistent.pcap",
        s.bus.to_str().unwrap(),
    ]));
    assert_eq!(rc, 1);
    assert!(
        e.starts_with("shmif_pcapin: cannot open pcap file: /nonexistent.pcap: "),
        "{e}"
    );
}

/// What NetBSD's new bridge scripts do: a capture taken with `shmifdump
/// -p` replayed onto another bus gives the same frames there.
#[test]
fn shmif_pcapin_replays_a_shmifdump_capture() {
    let s = scene();
    let dir = s.a.dir.path();
    let cap = dir.join("cap.pcap");
    // One snapshot: the text lines and the capture.
    let (dump, e, rc) = run(std::process::Command::new(SHMIFDUMP)
        .arg("-p")
        .arg(&cap)
        .arg(&s.bus));
    assert_eq!((e.as_str(), rc), ("", 0));
    // A fresh bus, made by an interface attaching to it.
    let bus2 = dir.join("bus2");
    s.b.ok(&["shmif1", "create"]);
    s.b.ok(&["shmif1", "linkstr", bus2.to_str().unwrap()]);
    let (o, e, rc) = run(std::process::Command::new(TOOLS).args([
        "shmif_pcapin",
        cap.to_str().unwrap(),
        bus2.to_str().unwrap(),
    ]));
    assert_eq!((e.as_str(), rc), ("", 0));
    assert_eq!(
        o,
        "bus version 0, lock: 0, generation: 0, firstoff: 0xfffe0, lastoff: 0x0000\n"
    );
    // The frames, their ring offsets and lengths; not their time stamps.
    let frames = |o: &str| -> Vec<String> {
        o.lines()
            .filter(|l| l.starts_with("packet "))
            .map(|l| l[..l.find(", ts ").unwrap()].to_string())
            .collect()
    };
    let (o, _, rc) = run(std::process::Command::new(SHMIFDUMP).arg(&bus2));
    assert_eq!(rc, 0);
    let (a, b) = (frames(&dump), frames(&o));
    assert!(a.len() > 10, "{a:?}");
    assert_eq!(a, b);
}

#[test]
fn multicall_names() {
    let a = Daemon::start();
    let (_, e, rc) = run(&mut a.cmd(TOOLS));
    assert_eq!(
        (e.as_str(), rc),
        (
            "usage: ifnet-tools tool [arguments ...]\ntools: netstat route traceroute arp ndp sysctl ifmcstat shmif_pcapin\n",
            1
        )
    );
    let (_, e, rc) = run(a.cmd(TOOLS).arg("tcpdrop"));
    assert_eq!(rc, 1);
    assert!(e.starts_with("ifnet-tools: tcpdrop: unknown tool\n"), "{e}");
    // --env: the links, and the shell lines that put them first on PATH.
    let (o, e, rc) = run(std::process::Command::new(IFNETD)
        .args(["--env", "-s"])
        .arg(&a.sock));
    assert_eq!((e.as_str(), rc), ("", 0));
    let bin = a.sock.with_file_name("bin");
    assert_eq!(
        o,
        format!(
            "IFNET_SERVER='{}'; export IFNET_SERVER;\nPATH='{}':\"$PATH\"; export PATH;\n",
            a.sock.display(),
            bin.display()
        )
    );
    let (o, _, rc) = run(std::process::Command::new(bin.join("sysctl"))
        .env("IFNET_SERVER", &a.sock)
        .arg("net.inet.ip.dad_count"));
    assert_eq!((o.as_str(), rc), ("net.inet.ip.dad_count = 3\n", 0));
}

/// NetBSD tests/net style: create, configure, check with the NetBSD-named
/// tools, destroy; run by sh through `eval "$(ifnetd --env)"`.
#[test]
fn atf_style_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/scripts/t_inspect.sh");
    let ifnetd_dir = std::path::Path::new(IFNETD).parent().unwrap();
    let (o, e, rc) = run(std::process::Command::new("sh")
        .arg(script)
        .env("PATH", format!("{}:/usr/bin:/bin", ifnetd_dir.display()))
        .env("TMPDIR", dir.path())
        .current_dir(dir.path()));
    assert_eq!(rc, 0, "stdout:\n{o}\nstderr:\n{e}");
    assert!(o.ends_with("passed: 4\n"), "{o}");
}
