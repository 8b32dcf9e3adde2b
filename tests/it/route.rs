//! Routing: ifnetd forwards IP between its interfaces (issue 15). Two
//! namespaces on different subnets, each behind a virt of one daemon, talk
//! through it with forwarding on, and not at all with it off; route(8)
//! and netstat -r show and change the table; bad packets are dropped and
//! counted. Needs root and /dev/net/tun (CI=true: a failure without).

use crate::common;

use common::*;
use std::process::Command;

const TOOLS: &str = env!("CARGO_BIN_EXE_ifnet-tools");

fn tool(d: &Daemon, name: &str, args: &[&str]) -> (String, String, i32) {
    run(d.cmd(TOOLS).arg(name).args(args))
}

fn tool_ok(d: &Daemon, name: &str, args: &[&str]) -> String {
    let (o, e, rc) = tool(d, name, args);
    assert_eq!(rc, 0, "{name} {args:?}: {o}{e}");
    o
}

/// ping(8) in a namespace: its standard output and whether it succeeded.
fn ping(ns: &Netns, args: &[&str]) -> (String, bool) {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, "ping"])
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
    )
}

fn ping_ok(ns: &Netns, args: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", &ns.0, "sh", "-c"])
        .arg(format!("ping {args} >/dev/null 2>&1"))
        .status()
        .is_ok_and(|s| s.success())
}

/// One daemon, virt0 to namespace A (10.1.0.0/24), virt1 to B (10.2.0.0/24),
/// each namespace with the daemon as its default gateway.
struct Scene {
    d: Daemon,
    a: Netns,
    b: Netns,
    /// A's end of virt0.
    tap_a: String,
}

fn scene() -> Scene {
    let d = Daemon::start_with(&FAST_DAD);
    let a = Netns::new();
    let b = Netns::new();
    let tap_a = virt_in_ns(&d, "virt0", &a, "10.1.0.2/24");
    virt_in_ns(&d, "virt1", &b, "10.2.0.2/24");
    d.ok(&["virt0", "inet", "10.1.0.1/24"]);
    d.ok(&["virt1", "inet", "10.2.0.1/24"]);
    a.exec("ip route add default via 10.1.0.1");
    b.exec("ip route add default via 10.2.0.1");
    // The daemon's addresses are usable once DAD is done.
    wait_until(10, "A reaches its gateway", || {
        ping_ok(&a, "-c 1 -W 1 10.1.0.1")
    });
    wait_until(10, "B reaches its gateway", || {
        ping_ok(&b, "-c 1 -W 1 10.2.0.1")
    });
    Scene { d, a, b, tap_a }
}

#[test]
fn forwarding_between_two_namespaces() {
    if !can_netadmin() {
        return;
    }
    let s = scene();
    assert_eq!(
        tool_ok(&s.d, "sysctl", &["net.inet.ip.forwarding"]),
        "net.inet.ip.forwarding = 0\n"
    );
    // Off (NetBSD's default): nothing passes, and it is counted.
    assert!(!ping_ok(&s.a, "-c 2 -W 1 10.2.0.2"));
    let st = tool_ok(&s.d, "netstat", &["-s", "-f", "inet"]);
    assert!(!st.contains("\t0 packets not forwardable"), "{st}");
    assert_eq!(
        tool_ok(&s.d, "sysctl", &["-w", "net.inet.ip.forwarding=1"]),
        "net.inet.ip.forwarding: 0 -> 1\n"
    );
    // On: A reaches B, and B's packets have one hop less to live.
    let out = s.a.exec("ping -c 3 -W 2 10.2.0.2");
    assert!(out.contains("3 received"), "{out}");
    assert!(out.contains("ttl=63"), "{out}");
    let out = s.b.exec("ping -c 1 -W 2 10.1.0.2");
    assert!(out.contains("ttl=63"), "{out}");
    // The daemon's address on B's side answers A too.
    assert!(ping_ok(&s.a, "-c 1 -W 2 10.2.0.1"));
    let scratch = tempfile::tempdir().unwrap();
    tcp_transfer_intact(&s.a, &s.b, "10.2.0.2", 5015, 16, scratch.path());
    tcp_transfer_intact(&s.b, &s.a, "10.1.0.2", 5016, 16, scratch.path());
    let st = tool_ok(&s.d, "netstat", &["-s", "-f", "inet"]);
    let fwd: u64 = st
        .lines()
        .find(|l| l.ends_with("packets forwarded"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    assert!(fwd > 100, "{st}");
    // And off again: nothing more passes.
    tool_ok(&s.d, "sysctl", &["-w", "net.inet.ip.forwarding=0"]);
    assert!(!ping_ok(&s.a, "-c 2 -W 1 10.2.0.2"));
}

#[test]
fn time_exceeded_and_unreachable() {
    if !can_netadmin() {
        return;
    }
    let s = scene();
    tool_ok(&s.d, "sysctl", &["-w", "net.inet.ip.forwarding=1"]);
    // TTL 1: the daemon answers time exceeded, from its address on A's side.
    let unreachable = |text: &str| {
        text.contains("From 10.1.0.1") && text.contains("Destination Host Unreachable")
    };
    let (text, _) = ping(&s.a, &["-c", "1", "-W", "2", "-t", "1", "10.2.0.2"]);
    assert!(
        text.contains("From 10.1.0.1") && text.contains("Time to live exceeded"),
        "{text}"
    );
    // No route: host unreachable from the daemon.
    let (text, _) = ping(&s.a, &["-c", "1", "-W", "2", "10.9.0.1"]);
    assert!(unreachable(&text), "{text}");
    // A reject route: the same; a blackhole: silence.
    let o = tool_ok(
        &s.d,
        "route",
        &["add", "-net", "10.7.0.0/16", "127.0.0.1", "-reject"],
    );
    assert_eq!(o, "add net 10.7.0.0/16: gateway 127.0.0.1\n");
    let (text, _) = ping(&s.a, &["-c", "1", "-W", "2", "10.7.0.1"]);
    assert!(unreachable(&text), "{text}");
    let hole = ["add", "-net", "10.8.0.0/16", "127.0.0.1", "-blackhole"];
    tool_ok(&s.d, "route", &hole);
    let (text, ok) = ping(&s.a, &["-c", "1", "-W", "1", "10.8.0.1"]);
    assert!(!text.contains("From 10.1.0.1") && !ok, "{text}");
    // A host that does not answer ARP: host unreachable once resolution
    // gives up (3 tries a second apart).
    let (text, _) = ping(&s.a, &["-c", "1", "-W", "6", "10.2.0.99"]);
    assert!(unreachable(&text), "{text}");
    // A packet that leaves by the interface it came in on, for a host on
    // the sender's own network: forwarded, and the sender redirected.
    s.a.exec("ip route add 10.1.0.3/32 via 10.1.0.1");
    ping(&s.a, &["-c", "1", "-W", "1", "10.1.0.3"]);
    let st = tool_ok(&s.d, "netstat", &["-s", "-f", "inet"]);
    assert!(st.contains("\t1 redirect sent\n"), "{st}");
    assert!(st.contains("\t\trouting redirect: 1\n"), "{st}");
    assert!(st.contains("\t\ttime exceeded: 1\n"), "{st}");
    assert!(
        st.contains("\t1 output packet discarded due to no route\n"),
        "{st}"
    );
}

#[test]
fn route_grammar_and_table() {
    if !can_netadmin() {
        return;
    }
    let s = scene();
    let d = &s.d;
    assert_eq!(
        tool_ok(d, "route", &["add", "-net", "10.3.0.0/24", "10.2.0.2"]),
        "add net 10.3.0.0/24: gateway 10.2.0.2\n"
    );
    assert_eq!(
        tool_ok(d, "route", &["add", "default", "10.1.0.2"]),
        "add net default: gateway 10.1.0.2\n"
    );
    assert_eq!(
        tool_ok(d, "route", &["add", "-host", "10.4.0.7", "10.2.0.2"]),
        "add host 10.4.0.7: gateway 10.2.0.2\n"
    );
    // Errors as NetBSD's route words them.
    let (o, e, rc) = tool(d, "route", &["add", "-net", "10.3.0.0/24", "10.2.0.2"]);
    assert_eq!(
        (o.as_str(), e.as_str(), rc),
        (
            "add net 10.3.0.0/24: gateway 10.2.0.2: File exists\n",
            "route: writing to routing socket: File exists\n",
            1
        )
    );
    let (o, _, rc) = tool(d, "route", &["add", "-net", "10.5.0.0/24", "10.6.0.1"]);
    assert_eq!(
        (o.as_str(), rc),
        (
            "add net 10.5.0.0/24: gateway 10.6.0.1: Network is unreachable\n",
            1
        )
    );
    let (o, _, rc) = tool(d, "route", &["delete", "-net", "10.5.0.0/24"]);
    assert_eq!(
        (o.as_str(), rc),
        ("delete net 10.5.0.0/24: not in table\n", 1)
    );
    let (_, e, rc) = tool(d, "route", &["add", "-net", "10.5.0.0/24"]);
    assert_eq!(
        (e.as_str(), rc),
        ("route: missing gateway specification\n", 1)
    );
    // Longest prefix match, with the interface and the source address.
    let g = tool_ok(d, "route", &["-n", "get", "10.3.0.9"]);
    assert!(g.starts_with("   route to: 10.3.0.9\ndestination: 10.3.0.0\n       mask: 255.255.255.0\n    gateway: 10.2.0.2\n local addr: 10.2.0.1\n  interface: virt1\n      flags: 0x843<UP,GATEWAY,DONE,STATIC>\n"), "{g}");
    let g = tool_ok(d, "route", &["-n", "get", "10.4.0.7"]);
    assert!(
        g.contains("destination: 10.4.0.7\n") && g.contains("HOST"),
        "{g}"
    );
    let g = tool_ok(d, "route", &["-n", "get", "192.0.2.1"]);
    assert!(
        g.contains("destination: default\n") && g.contains("interface: virt0\n"),
        "{g}"
    );
    let g = tool_ok(d, "route", &["-n", "get", "10.2.0.77"]);
    assert!(
        g.contains("destination: 10.2.0.0\n") && g.contains("CONNECTED"),
        "{g}"
    );
    // netstat -rn lists them with NetBSD's columns.
    let t = tool_ok(d, "netstat", &["-rn", "-f", "inet"]);
    let line = |dst: &str| -> Vec<&str> {
        let l = t.lines().find(|l| l.split_whitespace().next() == Some(dst));
        let l = l.unwrap_or_else(|| panic!("no {dst} in {t}"));
        l.split_whitespace().take(3).collect()
    };
    assert_eq!(line("default"), ["default", "10.1.0.2", "UGS"]);
    assert_eq!(line("10.3.0/24"), ["10.3.0/24", "10.2.0.2", "UGS"]);
    assert_eq!(line("10.4.0.7"), ["10.4.0.7", "10.2.0.2", "UGHS"]);
    assert_eq!(line("10.2.0/24"), ["10.2.0/24", "link#3", "UC"]);
    assert_eq!(
        tool_ok(d, "route", &["-n", "show"]),
        tool_ok(d, "netstat", &["-rn"])
    );
    // change, delete, flush.
    tool_ok(d, "route", &["change", "-net", "10.3.0.0/24", "10.1.0.2"]);
    let g = tool_ok(d, "route", &["-n", "get", "10.3.0.9"]);
    assert!(g.contains("interface: virt0\n"), "{g}");
    assert_eq!(
        tool_ok(d, "route", &["delete", "-net", "10.3.0.0/24"]),
        "delete net 10.3.0.0/24\n"
    );
    let f = tool_ok(d, "route", &["-n", "flush"]);
    assert_eq!(
        f,
        "default              10.1.0.2             done\n10.4.0.7             10.2.0.2             done\n"
    );
    let (_, e, rc) = tool(d, "route", &["-n", "get", "192.0.2.1"]);
    assert_eq!(
        (e.as_str(), rc),
        ("route: writing to routing socket: not in table\n", 1)
    );
}

const IFPING: &str = env!("CARGO_BIN_EXE_ifping");

fn ifping(d: &Daemon, args: &[&str]) -> (String, String, i32) {
    run(d.cmd(IFPING).args(args))
}

/// `ifping` that must get its reply: tried three times, since a loaded
/// machine may drop one frame on a bus (a sender gives up on a lock held
/// by a preempted peer) and one probe would then wait for a retry of
/// neighbour resolution a second later.
fn ifping_answered(d: &Daemon, args: &[&str]) -> String {
    let mut last = String::new();
    for _ in 0..3 {
        let (o, e, rc) = ifping(d, args);
        if rc == 0 {
            return o;
        }
        last = format!("{o}{e}");
    }
    panic!("no reply in 3 tries: {last}");
}

/// Three daemons in a chain over two buses: d1 -bus1- d2 -bus2- d3, with
/// 10.0.1.0/24 and 2001:db8:1::/64 on bus1, 10.0.2.0/24 and 2001:db8:2::/64
/// on bus2. d2 forwards; d1 and d3 reach each other's subnet by static
/// routes through it.
fn chain() -> (tempfile::TempDir, [Daemon; 3]) {
    let dir = tempfile::tempdir().unwrap();
    let ds = [(); 3].map(|_| Daemon::start_with(&FAST_DAD));
    let bus = |n: u32| dir.path().join(format!("bus{n}"));
    let link = |d: &Daemon, ifname: &str, bus: &std::path::Path, v4: &str, v6: &str| {
        d.ok(&[ifname, "create"]);
        d.ok(&[ifname, "linkstr", bus.to_str().unwrap()]);
        d.ok(&[ifname, "inet", v4]);
        d.ok(&[ifname, "inet6", v6]);
    };
    link(&ds[0], "shmif0", &bus(1), "10.0.1.1/24", "2001:db8:1::1/64");
    link(&ds[1], "shmif0", &bus(1), "10.0.1.2/24", "2001:db8:1::2/64");
    link(&ds[1], "shmif1", &bus(2), "10.0.2.2/24", "2001:db8:2::2/64");
    link(&ds[2], "shmif0", &bus(2), "10.0.2.3/24", "2001:db8:2::3/64");
    for k in ["net.inet.ip.forwarding=1", "net.inet6.ip6.forwarding=1"] {
        tool_ok(&ds[1], "sysctl", &["-w", k]);
    }
    tool_ok(&ds[0], "route", &["add", "-net", "10.0.2.0/24", "10.0.1.2"]);
    tool_ok(&ds[2], "route", &["add", "-net", "10.0.1.0/24", "10.0.2.2"]);
    let v6 = |d: &Daemon, net: &str, gw: &str| {
        tool_ok(d, "route", &["add", "-inet6", "-net", net, gw]);
    };
    v6(&ds[0], "2001:db8:2::/64", "2001:db8:1::2");
    v6(&ds[2], "2001:db8:1::/64", "2001:db8:2::2");
    // Every address is usable once its DAD is done.
    for (d, a) in [
        (&ds[1], "10.0.1.1"),
        (&ds[1], "10.0.2.3"),
        (&ds[1], "2001:db8:1::1"),
        (&ds[1], "2001:db8:2::3"),
    ] {
        wait_until(10, a, || ifping(d, &["-c", "1", "-w", "1", a]).2 == 0);
    }
    (dir, ds)
}

#[test]
fn chain_of_daemons_over_buses() {
    let (_dir, [d1, d2, d3]) = chain();
    // End to end, both ways, v4 and v6: one hop less to live.
    let (o, e, rc) = ifping(&d1, &["-c", "2", "-w", "3", "10.0.2.3"]);
    assert_eq!(rc, 0, "{o}{e}");
    assert!(o.contains("from 10.0.2.3: icmp_seq=0 ttl=63"), "{o}");
    let (o, e, rc) = ifping(&d3, &["-c", "1", "-w", "3", "10.0.1.1"]);
    assert_eq!(rc, 0, "{o}{e}");
    let (o, e, rc) = ifping(&d1, &["-6", "-c", "1", "-w", "3", "2001:db8:2::3"]);
    assert_eq!(rc, 0, "{o}{e}");
    assert!(o.contains("hlim=63"), "{o}");
    let (o, e, rc) = ifping(&d3, &["-6", "-c", "1", "-w", "3", "2001:db8:1::1"]);
    assert_eq!(rc, 0, "{o}{e}");
    // traceroute from d1: d2, then d3.
    let t = tool_ok(&d1, "traceroute", &["-n", "-q", "1", "10.0.2.3"]);
    let lines: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines[0].join(" "),
        "traceroute to 10.0.2.3 (10.0.2.3), 64 hops max, 40 byte packets",
        "{t}"
    );
    assert_eq!(lines[1][..2], ["1", "10.0.1.2"], "{t}");
    assert_eq!(lines[2][..2], ["2", "10.0.2.3"], "{t}");
    assert_eq!(lines.len(), 3, "{t}");
    // Without d1's route: refused at d1 itself (ip_output, no route).
    tool_ok(&d1, "route", &["delete", "-net", "10.0.2.0/24"]);
    let (o, e, rc) = ifping(&d1, &["-c", "1", "-w", "2", "10.0.2.3"]);
    assert!(rc != 0 && e.contains("No route to host"), "{o}{e}");
    // Without d2's: d1 sends by its default route, d2 answers with an
    // unreachable and counts it.
    tool_ok(&d1, "route", &["add", "default", "10.0.1.2"]);
    let (o, e, rc) = ifping(&d1, &["-c", "1", "-w", "2", "10.0.9.9"]);
    assert!(rc != 0, "{o}{e}");
    assert!(
        o.contains("bytes from 10.0.1.2: Destination Host Unreachable"),
        "{o}{e}"
    );
    let st = tool_ok(&d2, "netstat", &["-s", "-f", "inet"]);
    assert!(
        st.contains("\t1 output packet discarded due to no route\n"),
        "{st}"
    );
    assert!(st.contains("\t\tdestination unreachable: 1\n"), "{st}");
    // A loop of routes (d2 sends 10.0.9/24 back to d1, d1 to d2) ends
    // in one time exceeded, not a storm.
    let count = |d: &Daemon, what: &str| -> u64 {
        let st = tool_ok(d, "netstat", &["-s", "-f", "inet"]);
        st.lines()
            .find(|l| l.trim_start().starts_with(what) || l.ends_with(what))
            .and_then(|l| l.split_whitespace().find_map(|w| w.parse().ok()))
            .unwrap_or(0)
    };
    let forwarded = |d: &Daemon| count(d, "packets forwarded");
    let before = forwarded(&d1) + forwarded(&d2);
    let exceeded_before = count(&d1, "time exceeded") + count(&d2, "time exceeded");
    tool_ok(&d1, "sysctl", &["-w", "net.inet.ip.forwarding=1"]);
    tool_ok(&d2, "route", &["add", "-net", "10.0.9.0/24", "10.0.1.1"]);
    let (o, e, rc) = ifping(&d1, &["-c", "1", "-w", "2", "10.0.9.9"]);
    assert!(rc != 0, "{o}{e}");
    let hops = forwarded(&d1) + forwarded(&d2) - before;
    assert!((60..=70).contains(&hops), "{hops} hops");
    let exceeded = |d: &Daemon| count(d, "time exceeded");
    assert_eq!(exceeded(&d1) + exceeded(&d2) - exceeded_before, 1);
    let _ = d3;
}

#[test]
fn ipv6_forwarding_between_two_namespaces() {
    if !can_netadmin() {
        return;
    }
    let s = scene();
    s.d.ok(&["virt0", "inet6", "2001:db8:1::1/64"]);
    s.d.ok(&["virt1", "inet6", "2001:db8:2::1/64"]);
    for (ns, addr, gw) in [
        (&s.a, "2001:db8:1::2/64", "2001:db8:1::1"),
        (&s.b, "2001:db8:2::2/64", "2001:db8:2::1"),
    ] {
        ns.exec(&format!(
            "dev=$(ls /sys/class/net | grep -v lo); ip -6 addr add {addr} dev $dev nodad && ip -6 route add default via {gw}"
        ));
    }
    wait_until(10, "A reaches its v6 gateway", || {
        ping_ok(&s.a, "-6 -c 1 -W 1 2001:db8:1::1")
    });
    assert!(!ping_ok(&s.a, "-6 -c 1 -W 1 2001:db8:2::2"));
    tool_ok(&s.d, "sysctl", &["-w", "net.inet6.ip6.forwarding=1"]);
    let (text, ok) = ping(&s.a, &["-6", "-c", "2", "-W", "2", "2001:db8:2::2"]);
    assert!(ok && text.contains("ttl=63"), "{text}");
    assert!(ping_ok(&s.a, "-6 -c 1 -W 2 2001:db8:2::1"));
    // Hop limit 1: time exceeded from the daemon's address on A's side.
    let (text, _) = ping(
        &s.a,
        &["-6", "-c", "1", "-W", "2", "-t", "1", "2001:db8:2::2"],
    );
    assert!(
        text.contains("From 2001:db8:1::1") && text.contains("Time exceeded"),
        "{text}"
    );
    // No route.
    let (text, _) = ping(&s.a, &["-6", "-c", "1", "-W", "2", "2001:db8:9::1"]);
    assert!(
        text.contains("From 2001:db8:1::1") && text.contains("No route"),
        "{text}"
    );
    // Back out the interface it came in on: forwarded, and A redirected.
    s.a.exec("ip -6 route add 2001:db8:1::3/128 via 2001:db8:1::1");
    ping(&s.a, &["-6", "-c", "1", "-W", "1", "2001:db8:1::3"]);
    let st = tool_ok(&s.d, "netstat", &["-s", "-f", "inet6"]);
    assert!(st.contains("\t1 redirect sent\n"), "{st}");
    assert!(st.contains("\t\tredirect: 1\n"), "{st}");
    // Linux took it in, its checksum right.
    let snmp = s.a.exec("cat /proc/net/snmp6");
    let counter = |name: &str| -> u64 {
        snmp.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(counter("Icmp6InRedirects"), 1, "{snmp}");
    assert_eq!(counter("Icmp6InCsumErrors"), 0, "{snmp}");
    assert!(
        st.contains("\t1 output packet discarded due to no route\n"),
        "{st}"
    );
    assert!(st.contains("\t\ttime exceed: 1\n"), "{st}");
    // Hop-by-hop options, as ip6_hopopts_input: an unknown option whose
    // high bits say skip goes on (B answers port unreachable); one whose
    // bits ask for an error gets a parameter problem, counted as bad
    // options.
    let hbh = |typ: u8| {
        s.a.exec(&format!(
            "python3 -c 'import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.setsockopt(socket.IPPROTO_IPV6,54,bytes([0,0,{typ},2,0,0,1,0]))\ns.sendto(b\"x\",(\"2001:db8:2::2\",9))'"
        ))
    };
    let a_counter = |name: &str| -> u64 {
        s.a.exec("cat /proc/net/snmp6")
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    let unreach = a_counter("Icmp6InDestUnreachs");
    hbh(0x1e);
    wait_until(10, "B's port unreachable for a skipped option", || {
        a_counter("Icmp6InDestUnreachs") > unreach
    });
    hbh(0x9e);
    wait_until(10, "the parameter problem", || {
        a_counter("Icmp6InParmProblems") == 1
    });
    let st = tool_ok(&s.d, "netstat", &["-s", "-f", "inet6"]);
    assert!(st.contains("\t1 with bad options\n"), "{st}");
    // From the router: B never saw it (it would have answered the same).
    let b_snmp = s.b.exec("cat /proc/net/snmp6");
    assert!(
        b_snmp
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Icmp6OutParmProblems", "0"]),
        "{b_snmp}"
    );
}

/// A packet bigger than the next link's MTU with DF set: fragmentation
/// needed, with the MTU, and Linux's path MTU discovery adapts.
#[test]
fn path_mtu_discovery() {
    if !can_netadmin() {
        return;
    }
    let s = scene();
    tool_ok(&s.d, "sysctl", &["-w", "net.inet.ip.forwarding=1"]);
    // B's side of the daemon carries 1280-byte packets at most; B itself
    // (its TAP) takes 1500, so its TCP offers A an MSS of 1460.
    s.d.ok(&["virt1", "mtu", "1280"]);
    // Without DF, the daemon fragments.
    let (text, ok) = ping(
        &s.a,
        &["-c", "1", "-W", "2", "-M", "dont", "-s", "1400", "10.2.0.2"],
    );
    assert!(ok, "{text}");
    let st = tool_ok(&s.d, "netstat", &["-s", "-f", "inet"]);
    assert!(st.contains("\t1 output datagram fragmented\n"), "{st}");
    assert!(st.contains("\t2 fragments created\n"), "{st}");
    // With DF: fragmentation needed, with the next link's MTU.
    let (text, ok) = ping(
        &s.a,
        &["-c", "1", "-W", "2", "-M", "do", "-s", "1400", "10.2.0.2"],
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("From 10.1.0.1") && text.contains("Frag needed and DF set (mtu = 1280)"),
        "{text}"
    );
    // A new connection learns the path MTU (TCP sends with DF).
    s.a.exec("ip route flush cache");
    let scratch = tempfile::tempdir().unwrap();
    tcp_transfer_intact(&s.a, &s.b, "10.2.0.2", 5017, 4, scratch.path());
    let out = s.a.exec("ip route get 10.2.0.2");
    assert!(out.contains("mtu 1280"), "{out}");
}

/// Bad IP packets from namespace A to the daemon's link address, each
/// kind once: dropped, counted under NetBSD's names, and the daemon goes
/// on forwarding.
#[test]
fn bad_input_is_dropped_and_counted() {
    if !can_netadmin() {
        return;
    }
    let s = scene();
    tool_ok(&s.d, "sysctl", &["-w", "net.inet.ip.forwarding=1"]);
    let (o, _, _) = s.d.ifconfig(&["virt0"]);
    let mac = o
        .lines()
        .find_map(|l| l.trim().strip_prefix("address: "))
        .unwrap_or_else(|| panic!("{o}"))
        .to_string();
    let script = format!(
        r#"
import socket, struct
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("{tap}", 0))
dst = bytes.fromhex("{mac}".replace(":", ""))
src = s.getsockname()[4]
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
def ip(vihl=0x45, tot=None, ttl=64, sa="10.1.0.2", da="10.2.0.2", opts=b"", data=b"x" * 8, good=True):
    hl = 20 + len(opts)
    tot = hl + len(data) if tot is None else tot
    h = struct.pack("!BBHHHBBH4s4s", vihl, 0, tot, 7, 0, ttl, 17, 0, socket.inet_aton(sa), socket.inet_aton(da)) + opts
    c = csum(h[:(vihl & 15) * 4]) if good else 0x1234
    h = h[:10] + struct.pack("!H", c) + h[12:]
    return h + data
for p in [
    ip(vihl=0x44),                      # header length < 20
    ip(good=False),                     # checksum
    ip(vihl=0x46, opts=bytes([7, 9, 4, 0])),  # an option past the header
    ip(tot=200),                        # truncated
    ip(ttl=0), ip(ttl=1),               # no hop left
    ip(sa="127.0.0.1"),                 # martian source
    ip()[:12],                          # shorter than a header
    ip(vihl=0x55),                      # version 5
]:
    s.send(dst + src + b"\x08\x00" + p)
"#,
        tap = s.tap_a,
        mac = mac
    );
    let py = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(py.path(), script).unwrap();
    s.a.exec(&format!("python3 {}", py.path().display()));
    let want = [
        "\t1 with header length < data size\n",
        "\t1 bad header checksum\n",
        "\t1 with bad options\n",
        "\t1 with data size < data length\n",
        "\t1 datagram with bad address in header\n",
        "\t1 with size smaller than minimum\n",
        "\t1 with incorrect version number\n",
        "\t\ttime exceeded: 2\n",
    ];
    wait_until(5, "the counters", || {
        let st = tool_ok(&s.d, "netstat", &["-s", "-f", "inet"]);
        want.iter().all(|w| st.contains(w))
    });
    // Still forwarding.
    assert!(ping_ok(&s.a, "-c 1 -W 2 10.2.0.2"));
}

/// The static routes and the forwarding knobs are part of the state that
/// `ifnetd -S` keeps: a daemon killed and started again has them.
#[test]
fn routes_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("state");
    let bus = tmp.path().join("bus");
    let args = ["-S", st.to_str().unwrap()];
    let mut d = Daemon::start_with(&args);
    d.ok(&["shmif0", "create"]);
    d.ok(&["shmif0", "linkstr", bus.to_str().unwrap()]);
    d.ok(&["shmif0", "inet", "10.0.1.1/24"]);
    d.ok(&["shmif0", "inet6", "2001:db8:1::1/64"]);
    for r in [
        &["add", "-net", "10.9.0.0/16", "10.0.1.2"][..],
        &["add", "-host", "10.7.0.1", "10.0.1.3", "-ifp", "shmif0"],
        &["add", "-net", "10.8.0.0/16", "127.0.0.1", "-reject"],
        &["add", "default", "10.0.1.254"],
        &["add", "-inet6", "-net", "2001:db8:9::/64", "2001:db8:1::2"],
    ] {
        tool_ok(&d, "route", r);
    }
    let statics = |d: &Daemon| -> Vec<String> {
        tool_ok(d, "netstat", &["-rn"])
            .lines()
            .filter(|l| l.split_whitespace().nth(2).is_some_and(|f| f.contains('S')))
            .map(str::to_string)
            .collect()
    };
    // The knob last: a sysctl is a change of the state too.
    tool_ok(&d, "sysctl", &["-w", "net.inet.ip.forwarding=1"]);
    let before = statics(&d);
    assert_eq!(before.len(), 5, "{before:?}");
    d.kill9();
    d.spawn_with(&args);
    assert_eq!(statics(&d), before);
    assert_eq!(
        tool_ok(&d, "sysctl", &["net.inet.ip.forwarding"]),
        "net.inet.ip.forwarding = 1\n"
    );
}

/// ifping's options that depend on routing: TTL / hop limit (-T, -h) and
/// the source address (-I, -S).
#[test]
fn ping_ttl_and_source() {
    let (_dir, [d1, d2, _d3]) = chain();
    // TTL 1 dies at d2 (one time exceeded there); 2 arrives.
    let (o, e, rc) = ifping(&d1, &["-c", "1", "-W", "1", "-T", "1", "10.0.2.3"]);
    assert_ne!(rc, 0, "{o}{e}");
    assert!(
        o.contains("bytes from 10.0.1.2: Time To Live exceeded for icmp_seq=0\n"),
        "{o}"
    );
    let st = tool_ok(&d2, "netstat", &["-s", "-f", "inet"]);
    assert!(st.contains("\t\ttime exceeded: 1\n"), "{st}");
    // -v: the request as the error quotes it, its record route option
    // (7, 39 bytes, pointer 4) in hex after the addresses (pr_iph).
    let args = ["-v", "-R", "-c", "1", "-W", "1", "-T", "1", "10.0.2.3"];
    let (o, e, _) = ifping(&d1, &args);
    let dump = "Time To Live exceeded\n Vr HL TOS  Len   ID Flg  off TTL Pro  cks      Src\t     Dst\n  4  f  00 007c ";
    assert!(o.contains(dump), "{o}{e}");
    assert!(o.contains("  01  01 "), "TTL 1, ICMP: {o}");
    assert!(o.contains("        10.0.1.1  10.0.2.3 0727"), "{o}");
    assert!(o.contains("\n  ID="), "{o}");
    assert!(o.contains(" icmp_seq=0\n"), "{o}");
    let o = ifping_answered(&d1, &["-c", "1", "-W", "2", "-T", "2", "10.0.2.3"]);
    assert!(o.contains("ttl=63"), "{o}");
    let args = ["-6", "-c", "1", "-W", "1", "-h", "1", "2001:db8:2::3"];
    let (o, _, rc) = ifping(&d1, &args);
    assert_ne!(rc, 0);
    assert!(
        o.contains("from 2001:db8:1::2: Time to live exceeded\n"),
        "{o}"
    );
    let st = tool_ok(&d2, "netstat", &["-s", "-f", "inet6"]);
    assert!(st.contains("\t\ttime exceed: 1\n"), "{st}");
    let args = ["-6", "-v", "-c", "1", "-W", "1", "-h", "1", "2001:db8:2::3"];
    let (o, _, _) = ifping(&d1, &args);
    let dump = "Time to live exceeded\nVr TC  Flow Plen Nxt Hlim\n 6 00 00000 0040  3a   01\n";
    assert!(o.contains(dump), "{o}");
    assert!(
        o.contains("->2001:db8:2::3\nICMP6: type = 128, code = 0\n"),
        "{o}"
    );
    // A source address of ours, and one that is not.
    ifping_answered(&d1, &["-c", "1", "-W", "2", "-I", "10.0.1.1", "10.0.2.3"]);
    let (o, e, rc) = ifping(&d1, &["-c", "1", "-W", "1", "-I", "10.9.9.9", "10.0.2.3"]);
    assert!(
        rc != 0 && e.contains("Can't assign requested address"),
        "{o}{e}"
    );
    let args = [
        "-6",
        "-c",
        "1",
        "-W",
        "2",
        "-S",
        "2001:db8:1::1",
        "2001:db8:2::3",
    ];
    ifping_answered(&d1, &args);
}

/// ifping -R and -g through a chain of daemons, as NetBSD's ping prints
/// them; the source-route knobs at the router.
#[test]
fn ping_record_and_source_route() {
    let (_dir, [d1, d2, d3]) = chain();
    // Each router records the address it sends on, the destination its
    // own as the request comes in; the reply brings the list back and
    // adds the way home.
    let (o, e, rc) = ifping(&d1, &["-R", "-c", "2", "-w", "4", "10.0.2.3"]);
    assert_eq!(rc, 0, "{o}{e}");
    assert!(
        o.contains("64 bytes from 10.0.2.3: icmp_seq=0 ttl=63 time="),
        "{o}"
    );
    let route = " ms\nRR: \t10.0.2.2\n\t10.0.2.3\n\t10.0.1.2\n\t10.0.1.1\n";
    assert!(o.contains(route), "{o}");
    assert!(o.contains(" ms\t(same route)\n"), "{o}");
    // Source routes: refused (net.inet.ip.allowsrcrt 0, NetBSD's
    // default), then not followed (forwsrcrt 0), then followed.
    let g = ["-g", "10.0.1.2", "-c", "1", "-W", "2", "10.0.2.3"];
    let (o, _, rc) = ifping(&d1, &g);
    assert_ne!(rc, 0, "{o}");
    assert!(
        o.contains("bytes from 10.0.1.2: Net prohibited access"),
        "{o}"
    );
    for d in [&d1, &d2, &d3] {
        assert_eq!(
            tool_ok(d, "sysctl", &["-w", "net.inet.ip.allowsrcrt=1"]),
            "net.inet.ip.allowsrcrt: 0 -> 1\n"
        );
    }
    let (o, _, rc) = ifping(&d1, &g);
    assert_ne!(rc, 0, "{o}");
    assert!(
        o.contains("bytes from 10.0.1.2: Source Route Failed"),
        "{o}"
    );
    tool_ok(&d2, "sysctl", &["-w", "net.inet.ip.forwsrcrt=1"]);
    // Followed even with forwarding off, as ip_dooptions forwards.
    tool_ok(&d2, "sysctl", &["-w", "net.inet.ip.forwarding=0"]);
    let rg = ["-R", "-g", "10.0.1.2", "-c", "1", "-W", "2", "10.0.2.3"];
    let (o, e, rc) = ifping(&d1, &rg);
    assert_eq!(rc, 0, "{o}{e}");
    assert!(
        o.starts_with("PING 10.0.2.3 (10.0.2.3): 56 data bytes\n"),
        "{o}"
    );
    assert!(
        o.contains("64 bytes from 10.0.2.3: icmp_seq=0 ttl=63"),
        "{o}"
    );
    assert!(o.contains(route), "{o}");
    let st = tool_ok(&d2, "netstat", &["-s", "-f", "inet"]);
    assert!(st.contains("\t2 with bad options\n"), "{st}");
}

/// Linux's ping -R through the router, and to the router: ifnetd
/// records its addresses and reflects the option in its echo replies.
#[test]
fn linux_ping_record_route() {
    if !can_netadmin() {
        return;
    }
    let s = scene();
    tool_ok(&s.d, "sysctl", &["-w", "net.inet.ip.forwarding=1"]);
    let rr = |out: &str| out.split_once("RR:").map(|(_, r)| r.to_string());
    // Linux records its own address as it sends and as it takes; ifnetd
    // the address it sends on, each way.
    let out = s.a.exec("ping -R -c 1 -W 2 10.2.0.2");
    let r = rr(&out).unwrap_or_default();
    assert!(
        r.contains("\t10.2.0.1\n") && r.contains("\t10.1.0.1\n"),
        "{out}"
    );
    let out = s.a.exec("ping -R -c 1 -W 2 10.1.0.1");
    let r = rr(&out).unwrap_or_default();
    assert!(r.contains("\t10.1.0.1\n"), "{out}");
}

/// route monitor reports routes as they come and go.
#[test]
fn monitor_reports_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start();
    d.ok(&["shmif0", "create"]);
    d.ok(&[
        "shmif0",
        "linkstr",
        tmp.path().join("bus").to_str().unwrap(),
    ]);
    d.ok(&["shmif0", "inet", "10.0.1.1/24"]);
    let mut m = d
        .cmd(TOOLS)
        .args(["route", "monitor", "-c", "2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(m.id());
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stdout = m.stdout.take().unwrap();
    let t2 = text.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 {
                break;
            }
            t2.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    // The monitor reads the table when it starts: a change made before
    // that is not one, so the change is made until two are seen.
    let has = |what: &str| text.lock().unwrap().contains(what);
    wait_until(10, "two routing messages", || {
        tool_ok(&d, "route", &["add", "-net", "10.3.0.0/24", "10.0.1.2"]);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while !has("RTM_ADD") && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        tool_ok(&d, "route", &["delete", "-net", "10.3.0.0/24"]);
        has("RTM_ADD")
    });
    wait_until(5, "the delete message", || has("RTM_DELETE"));
    reader.join().unwrap();
    let text = text.lock().unwrap().clone();
    assert!(m.wait().unwrap().success());
    assert!(text.contains("RTM_ADD: Add Route: len "), "{text}");
    assert!(text.contains("flags:<UP,GATEWAY,DONE,STATIC>"), "{text}");
    assert!(
        text.contains("sockaddrs: <DST,GATEWAY,NETMASK>\n 10.3.0.0 10.0.1.2 255.255.255.0\n"),
        "{text}"
    );
    assert!(text.contains("RTM_DELETE: Delete Route"), "{text}");
}

/// The next hops the router resolved are the kernel's cache entries:
/// arp -a and ndp -a show them, arp -d and ndp -c delete them, and the
/// next packet forwarded resolves its next hop again.
#[test]
fn router_next_hops_in_arp_and_ndp() {
    let (_dir, [d1, d2, _d3]) = chain();
    let through = |v6: bool| {
        let dst = if v6 { "2001:db8:2::3" } else { "10.0.2.3" };
        let fam = if v6 { "-6" } else { "-4" };
        let args = [fam, "-c", "1", "-w", "3", dst];
        let args = if v6 { &args[..] } else { &args[1..] };
        let (o, e, rc) = ifping(&d1, args);
        assert_eq!(rc, 0, "{o}{e}");
    };
    through(false);
    through(true);
    let arp = tool_ok(&d2, "arp", &["-an"]);
    assert!(arp.contains("? (10.0.2.3) at "), "{arp}");
    let ndp = tool_ok(&d2, "ndp", &["-an"]);
    assert!(ndp.contains("\n2001:db8:2::3 "), "{ndp}");
    tool_ok(&d2, "arp", &["-d", "-a"]);
    tool_ok(&d2, "ndp", &["-c"]);
    assert!(!tool_ok(&d2, "arp", &["-an"]).contains("10.0.2.3"));
    assert!(!tool_ok(&d2, "ndp", &["-an"]).contains("2001:db8:2::3"));
    // Gone from the forwarding path too: resolved again, and back.
    through(false);
    through(true);
    let arp = tool_ok(&d2, "arp", &["-an"]);
    assert!(
        arp.contains("? (10.0.2.3) at ") && arp.contains(" on shmif1"),
        "{arp}"
    );
    let ndp = tool_ok(&d2, "ndp", &["-an"]);
    assert!(ndp.contains("\n2001:db8:2::3 "), "{ndp}");
}
