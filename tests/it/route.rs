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
}

fn scene() -> Scene {
    let d = Daemon::start_with(&FAST_DAD);
    let a = Netns::new();
    let b = Netns::new();
    virt_in_ns(&d, "virt0", &a, "10.1.0.2/24");
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
    Scene { d, a, b }
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
    let st = tool_ok(&s.d, "netstat", &["-s", "-f", "inet"]);
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
