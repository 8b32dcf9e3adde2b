//! vxlan(4): one Ethernet across network namespaces standing for hosts, with
//! the Linux kernel's vxlan at the other end, or another ifnetd; FreeBSD's
//! keywords, messages and status lines; hostile datagrams.

use crate::common::{
    Daemon, Netns, can_netadmin, run, sh, tcp_transfer_intact, unique, wait_until,
};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Two namespaces joined by a veth pair, with `a4`/`a6` on the first end
/// and `b4`/`b6` on the second (addresses with their prefix length).
fn veth(a: &Netns, b: &Netns, a_addrs: &[&str], b_addrs: &[&str]) -> (String, String) {
    let (va, vb) = (unique("iva"), unique("ivb"));
    sh(&format!(
        "ip link add {va} netns {} type veth peer name {vb} netns {}",
        a.0, b.0
    ));
    for (ns, dev, addrs) in [(a, &va, a_addrs), (b, &vb, b_addrs)] {
        for addr in addrs {
            let nodad = if addr.contains(':') { "nodad" } else { "" };
            ns.exec(&format!("ip addr add {addr} dev {dev} {nodad}"));
        }
        ns.exec(&format!("ip link set {dev} up"));
    }
    (va, vb)
}

/// `virt` of `d` (a daemon in namespace `dns`) with its host TAP moved to
/// `host` and given `addrs`, at the vxlan MTU (`mtu`) so the host sends no
/// frame the segment cannot carry.
fn virt_to(d: &Daemon, dns: &Netns, virt: &str, host: &Netns, addrs: &[&str], mtu: u32) -> String {
    let tap = unique("ift");
    d.ok(&[virt, "create", "linkstr", &tap, "up"]);
    dns.exec(&format!("ip link set {tap} netns {}", host.0));
    for a in addrs {
        let nodad = if a.contains(':') { "nodad" } else { "" };
        host.exec(&format!("ip addr add {a} dev {tap} {nodad}"));
    }
    host.exec(&format!("ip link set {tap} mtu {mtu} up"));
    tap
}

/// `bridge0` of `d` with `vxlan0` and `virt0`, all at vxlan0's MTU (a
/// bridge's members share one).
fn bridge(d: &Daemon) {
    let (o, _, _) = d.ifconfig(&["vxlan0"]);
    let mtu = o
        .split("mtu ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    d.ok(&["virt0", "mtu", mtu]);
    d.ok(&["bridge0", "create", "mtu", mtu]);
    let (o, e, rc) = d.brconfig(&["bridge0", "add", "vxlan0", "add", "virt0", "up"]);
    assert_eq!((o.as_str(), e.as_str(), rc), ("", "", 0));
}

fn ping(ns: &Netns, dst: &str) {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, "ping", "-c", "1", "-W", "1", dst])
        .output()
        .unwrap();
    assert!(out.status.success(), "ping {dst} from {}", ns.0);
}

/// Ping until the first answer (the segment is learning), then once more.
fn reach(ns: &Netns, dst: &str) {
    wait_until(20, &format!("{dst} answering {}", ns.0), || {
        Command::new("ip")
            .args(["netns", "exec", &ns.0, "ping", "-c", "1", "-W", "1", dst])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    });
    ping(ns, dst);
}

/// Start capturing `n` packets matching `filter` on `dev` of `ns`, into a
/// file under `dir`.
fn capture(ns: &Netns, dev: &str, filter: &str, n: u32, dir: &std::path::Path) -> PathBuf {
    let pcap = dir.join(format!("{dev}.pcap"));
    ns.exec(&format!(
        "tcpdump -i {dev} -U -c {n} -w {} {filter} >/dev/null 2>&1 &",
        pcap.display()
    ));
    wait_until(10, "tcpdump listening", || pcap.exists());
    pcap
}

/// Once `n` packets are in `pcap`: `tcpdump -nn ARGS -r` of it.
fn captured(pcap: &std::path::Path, n: usize, args: &[&str]) -> String {
    let read = |args: &[&str]| {
        run(Command::new("tcpdump")
            .arg("-nn")
            .args(args)
            .arg("-r")
            .arg(pcap))
        .0
    };
    wait_until(10, &format!("{n} captured packets"), || {
        read(&[]).lines().count() >= n
    });
    read(args)
}

/// The input errors `ifconfig -v` shows for `ifname`.
fn input_errors(d: &Daemon, ifname: &str) -> u64 {
    counter(d, ifname, "input:", "error")
}

/// A counter of `ifconfig -v`'s `input:` or `output:` line: `N what(s)`.
fn counter(d: &Daemon, ifname: &str, dir: &str, what: &str) -> u64 {
    let (o, _, _) = d.ifconfig(&["-v", ifname]);
    let line = o.lines().find(|l| l.trim_start().starts_with(dir)).unwrap();
    let line = line.trim_start().strip_prefix(dir).unwrap();
    line.split(", ")
        .find_map(|f| {
            let f = f.trim();
            f.strip_suffix(&format!(" {what}s"))
                .or(f.strip_suffix(&format!(" {what}")))
        })
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// The forwarding table's entry count `ifconfig -v` shows.
fn ftable_cnt(d: &Daemon) -> u32 {
    let (o, _, _) = d.ifconfig(&["-v", "vxlan0"]);
    let line = o.lines().find(|l| l.contains("ftable: cnt")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn interop_with_the_linux_kernel() {
    interop("10.1.0.1", "10.1.0.2", 1450);
}

#[test]
fn interop_with_the_linux_kernel_over_ipv6() {
    interop("fd01::1", "fd01::2", 1430);
}

/// Namespace U holds a Linux kernel vxlan (its end of the underlay at
/// `theirs`); namespace D an ifnetd (at `ours`) whose bridge0 joins vxlan0
/// and virt0, whose host TAP is in namespace H. U and H are one segment.
fn interop(theirs: &str, ours: &str, mtu: u32) {
    if !can_netadmin() {
        return;
    }
    let (u, dns, h) = (Netns::new(), Netns::new(), Netns::new());
    let (vu, _) = veth(
        &u,
        &dns,
        &["10.1.0.1/24", "fd01::1/64"],
        &["10.1.0.2/24", "fd01::2/64"],
    );
    u.exec(&format!(
        "ip link add vx0 type vxlan id 42 local {theirs} remote {ours} dstport 4789 dev {vu} \
         && ip addr add 192.168.42.1/24 dev vx0 && ip addr add fd42::1/64 dev vx0 nodad \
         && ip link set vx0 mtu {mtu} up"
    ));
    // Over a veth nothing computes what the kernel left to the NIC: the
    // inner TCP checksums would arrive unfinished (a real NIC fills them).
    u.exec("ethtool -K vx0 tx off >/dev/null");
    let d = Daemon::start_in(&dns);
    d.ok(&[
        "vxlan0",
        "create",
        "vxlanid",
        "42",
        "vxlanlocal",
        ours,
        "vxlanremote",
        theirs,
        "up",
    ]);
    let (o, _, _) = d.ifconfig(&["vxlan0"]);
    let at = |a: &str| {
        if a.contains(':') {
            format!("[{a}]:4789")
        } else {
            format!("{a}:4789")
        }
    };
    assert!(
        o.contains(&format!(
            "\tvxlan vni 42 local {} remote {}\n",
            at(ours),
            at(theirs)
        )),
        "{o}"
    );
    assert!(o.contains(&format!(" mtu {mtu}\n")), "{o}");
    virt_to(
        &d,
        &dns,
        "virt0",
        &h,
        &["192.168.42.2/24", "fd42::2/64"],
        mtu,
    );
    bridge(&d);
    // What goes on the wire: UDP to 4789 carrying VNI 42.
    let pcap = capture(&u, &vu, "udp port 4789", 4, d.dir.path());
    reach(&u, "192.168.42.2");
    reach(&h, "192.168.42.1");
    reach(&u, "fd42::2");
    reach(&h, "fd42::1");
    let dump = captured(&pcap, 4, &["-v"]);
    assert!(dump.contains(".4789: "), "{dump}");
    assert!(dump.contains("VXLAN, flags [I] (0x08), vni 42"), "{dump}");
    // Ours leave from a port of the flow, within the default range.
    // A source is an address.port followed by `>`.
    let mine = format!("{ours}.");
    let mut ours: Vec<u16> = Vec::new();
    for l in dump.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        for i in (1..w.len()).filter(|&i| w[i] == ">") {
            if let Some(p) = w[i - 1].strip_prefix(mine.as_str()) {
                ours.push(p.parse().unwrap());
            }
        }
    }
    assert!(!ours.is_empty(), "{dump}");
    assert!(ours.iter().all(|p| *p >= 32768), "{ours:?}");
    tcp_transfer_intact(&u, &h, "192.168.42.2", 5001, 16, d.dir.path());
    tcp_transfer_intact(&h, &u, "192.168.42.1", 5002, 16, d.dir.path());
    assert!(ftable_cnt(&d) >= 1);
}

#[test]
fn two_daemons_on_two_hosts() {
    if !can_netadmin() {
        return;
    }
    let (a, b, ha, hb) = (Netns::new(), Netns::new(), Netns::new(), Netns::new());
    let (va, _) = veth(&a, &b, &["fd01::1/64"], &["fd01::2/64"]);
    let da = Daemon::start_in(&a);
    let db = Daemon::start_in(&b);
    for (d, local, remote) in [(&da, "fd01::1", "fd01::2"), (&db, "fd01::2", "fd01::1")] {
        d.ok(&["vxlan0", "create", "vni", "7", "vxlanlocal", local]);
        d.ok(&["vxlan0", "vxlanremote", remote]);
        let (o, _, _) = d.ifconfig(&["-v", "vxlan0"]);
        assert!(o.contains("mtu 1430"), "{o}");
        assert!(
            o.contains(&format!(
                "\tvxlan vni 7 local [{local}]:4789 remote [{remote}]:4789\n\
                 \t\tconfig: learning portrange 32768-65535 ttl 64\n\
                 \t\tftable: cnt 0 max 2000 timeout 1200\n"
            )),
            "{o}"
        );
    }
    da.ok(&["vxlan0", "up"]);
    db.ok(&["vxlan0", "up"]);
    virt_to(&da, &a, "virt0", &ha, &["10.7.0.1/24"], 1430);
    virt_to(&db, &b, "virt0", &hb, &["10.7.0.2/24"], 1430);
    bridge(&da);
    bridge(&db);
    reach(&ha, "10.7.0.2");
    reach(&hb, "10.7.0.1");
    // Datagrams longer than the underlay's MTU: the segments of a
    // super-frame in one send, cut by the kernel (UDP_SEGMENT), from the
    // flow's source port.
    let pcap = capture(&a, &va, "ip6 and udp and greater 3000", 1, da.dir.path());
    tcp_transfer_intact(&ha, &hb, "10.7.0.2", 5003, 16, da.dir.path());
    let dump = captured(&pcap, 1, &[]);
    let sport: u16 = dump
        .split("fd01::1.")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    assert!(
        sport >= 32768 && dump.contains(" > fd01::2.4789: "),
        "{dump}"
    );
    // Learnt: the other host's MAC behind the other VTEP.
    assert!(ftable_cnt(&da) >= 1 && ftable_cnt(&db) >= 1);
    // Configuration is refused while running.
    let (_, e, rc) = da.ifconfig(&["vxlan0", "vxlanttl", "9"]);
    assert_eq!(
        (e.as_str(), rc),
        ("ifconfig: VXLAN_CMD_SET_TTL: Device busy\n", 1)
    );
    da.ok(&["vxlan0", "vxlanflush"]);
    assert_eq!(ftable_cnt(&da), 0);
}

/// A daemon without CAP_NET_RAW has no raw socket: its datagrams all
/// leave from the bound port, and the segment works the same.
#[test]
fn without_raw_sockets_from_the_local_port() {
    if !can_netadmin() {
        return;
    }
    let (a, b, ha, hb) = (Netns::new(), Netns::new(), Netns::new(), Netns::new());
    let (va, _) = veth(&a, &b, &["10.3.0.1/24"], &["10.3.0.2/24"]);
    let da = Daemon::start_in_as(&a, &["setpriv", "--bounding-set", "-net_raw"]);
    let db = Daemon::start_in(&b);
    for (d, local, remote) in [(&da, "10.3.0.1", "10.3.0.2"), (&db, "10.3.0.2", "10.3.0.1")] {
        d.ok(&[
            "vxlan0",
            "create",
            "vni",
            "9",
            "vxlanlocal",
            local,
            "vxlanremote",
            remote,
            "vxlanlocalport",
            "4790",
            "vxlanremoteport",
            "4790",
            "up",
        ]);
    }
    virt_to(&da, &a, "virt0", &ha, &["10.9.0.1/24"], 1450);
    virt_to(&db, &b, "virt0", &hb, &["10.9.0.2/24"], 1450);
    bridge(&da);
    bridge(&db);
    let pcap = capture(&a, &va, "src 10.3.0.1 and udp", 2, da.dir.path());
    reach(&ha, "10.9.0.2");
    reach(&hb, "10.9.0.1");
    // Segments of super-frames through sendmmsg on the UDP socket.
    tcp_transfer_intact(&ha, &hb, "10.9.0.2", 5004, 16, da.dir.path());
    let dump = captured(&pcap, 2, &[]);
    assert!(
        dump.lines()
            .all(|l| l.contains(" 10.3.0.1.4790 > 10.3.0.2.4790: ")),
        "{dump}"
    );
}

/// Datagrams that are no VXLAN frame of ours: dropped, counted, survived.
#[test]
fn bad_input_is_dropped_and_counted() {
    if !can_netadmin() {
        return;
    }
    let (u, dns) = (Netns::new(), Netns::new());
    veth(&u, &dns, &["10.1.0.1/24"], &["10.1.0.2/24"]);
    let d = Daemon::start_in(&dns);
    d.ok(&[
        "vxlan0",
        "create",
        "vxlanid",
        "42",
        "vxlanlocal",
        "10.1.0.2",
        "vxlanremote",
        "10.1.0.1",
        "mtu",
        "1400",
        "up",
    ]);
    // Another VNI on the same address and port: the socket is shared, and
    // one VNI is served once.
    d.ok(&[
        "vxlan1",
        "create",
        "vxlanid",
        "43",
        "vxlanlocal",
        "10.1.0.2",
        "vxlanremote",
        "10.1.0.1",
        "up",
    ]);
    d.ok(&[
        "vxlan2",
        "create",
        "vxlanid",
        "42",
        "vxlanremote",
        "10.1.0.1",
    ]);
    d.ok(&["vxlan2", "vxlanlocal", "10.1.0.2"]);
    let (_, e, rc) = d.ifconfig(&["vxlan2", "up"]);
    assert_eq!(
        (e.as_str(), rc),
        ("ifconfig: exec_matches: File exists\n", 1)
    );
    let before = input_errors(&d, "vxlan0");
    // Each datagram: short, no I flag, a VNI nobody serves, inner runt,
    // inner over the MTU, 200 random ones; then a good broadcast frame
    // for each VNI.
    u.exec(
        "python3 -c 'import socket,os\n\
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
a=(\"10.1.0.2\",4789)\n\
h=bytes([8,0,0,0,0,0,42,0])\n\
eth=b\"\\xff\"*6+b\"\\x02\\0\\0\\0\\0\\x01\"+b\"\\x08\\x06\"\n\
for d in [b\"\", b\"\\x08\\0\\0\", bytes(8)+eth, bytes([8,0,0,0,0,0,44,0])+eth, h+eth[:13], h+eth+bytes(1500)]:\n  s.sendto(d,a)\n\
for i in range(200): s.sendto(bytes([0])+os.urandom(i),a)\n\
s.sendto(h+eth+bytes(28),a)\n\
s.sendto(bytes([8,0,0,0,0,0,43,0])+eth+bytes(28),a)'",
    );
    let want = before + 206;
    wait_until(10, "206 input errors", || {
        input_errors(&d, "vxlan0") >= want
    });
    assert_eq!(input_errors(&d, "vxlan0"), want);
    wait_until(10, "the good frame", || {
        d.ifconfig(&["-v", "vxlan0"]).0.contains("input: 1 packet")
    });
    let (o, _, _) = d.ifconfig(&["-v", "vxlan1"]);
    assert!(
        o.contains("input: 1 packet, 42 bytes, 1 multicast\n"),
        "{o}"
    );
    // The socket stays while one of its interfaces runs.
    d.ok(&["vxlan0", "down"]);
    u.exec(
        "python3 -c 'import socket\n\
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
eth=b\"\\xff\"*6+b\"\\x02\\0\\0\\0\\0\\x01\"+b\"\\x08\\x06\"\n\
s.sendto(bytes([8,0,0,0,0,0,43,0])+eth+bytes(28),(\"10.1.0.2\",4789))'",
    );
    wait_until(10, "vxlan1's second frame", || {
        d.ifconfig(&["-v", "vxlan1"]).0.contains("input: 2 packets")
    });
    let (_, _, rc) = d.ifconfig(&["vxlan0"]);
    assert_eq!(rc, 0, "the daemon survived");
}

#[test]
fn freebsd_messages() {
    let d = Daemon::start();
    let cases: &[(&[&str], &str)] = &[
        (
            &["vxlan0", "create", "vxlanremote", "224.0.0.1"],
            "remote address cannot be multicast",
        ),
        (
            &["vxlan0", "create", "vxlanlocal", "ff02::1"],
            "local address cannot be multicast",
        ),
        (
            &["vxlan0", "create", "vxlangroup", "10.0.0.1"],
            "group address must be multicast",
        ),
        (
            &["vxlan0", "create", "vxlanid", "16777216"],
            "invalid network identifier: 16777216",
        ),
        (
            &["vxlan0", "create", "vxlanportrange", "10", "5"],
            "invalid port range",
        ),
        (
            &["vxlan0", "create", "vxlanportrange", "x", "5"],
            "invalid port range minimum: x",
        ),
        (
            &["vxlan0", "create", "vxlanlocalport", "65535"],
            "invalid local port: 65535",
        ),
        (
            &["vxlan0", "create", "vxlanremoteport", "-1"],
            "invalid remote port: -1",
        ),
        (
            &["vxlan0", "create", "vxlantimeout", "4294967296"],
            "invalid timeout value: 4294967296",
        ),
        (
            &["vxlan0", "create", "vxlanmaxaddr", "z"],
            "invalid maxaddr value: z",
        ),
        (
            &["vxlan0", "create", "vxlanttl", "257"],
            "invalid TTL value: 257",
        ),
        (
            &["vxlan0", "create", "vxlanlocal", "nowhere"],
            "error in parsing local address string: Name or service not known",
        ),
        (
            &[
                "vxlan0",
                "create",
                "vxlanlocal",
                "10.0.0.1",
                "vxlanlocal",
                "::1",
            ],
            "cannot specify both local IPv4 and IPv6 addresses",
        ),
        (
            &[
                "vxlan0",
                "create",
                "vxlanlocal",
                "10.0.0.1",
                "vxlanremote",
                "2001:db8::1",
            ],
            "cannot mix IPv4 and IPv6 addresses",
        ),
    ];
    for (args, msg) in cases {
        let (o, e, rc) = d.ifconfig(args);
        assert_eq!(
            (o.as_str(), e.as_str(), rc),
            ("", format!("ifconfig: {msg}\n").as_str(), 1),
            "{args:?}"
        );
    }
    // Nothing was made by a refused command line.
    let (_, _, rc) = d.ifconfig(&["vxlan0"]);
    assert_eq!(rc, 1);
    let (o, _, _) = d.ifconfig(&["-C"]);
    assert!(o.split_whitespace().any(|c| c == "vxlan"), "{o}");
    // Before a VNI: no vxlan line. Defaults with -v once it has one.
    d.ok(&["vxlan0", "create"]);
    let (o, _, _) = d.ifconfig(&["-v", "vxlan0"]);
    assert!(!o.contains("vxlan vni"), "{o}");
    assert!(o.contains("mtu 1450"), "{o}");
    d.ok(&[
        "vxlan0",
        "vni",
        "0x2a",
        "vxlangroup",
        "239.1.1.1",
        "vxlanremoteport",
        "8472",
        "vxlanportrange",
        "1000",
        "2000",
        "vxlanttl",
        "5",
        "-vxlanlearn",
        "vxlantimeout",
        "60",
        "vxlanmaxaddr",
        "10",
    ]);
    let (o, _, _) = d.ifconfig(&["-v", "vxlan0"]);
    assert!(
        o.contains(
            "\tvxlan vni 42 local 0.0.0.0:4789 group 239.1.1.1:8472\n\
             \t\tconfig: nolearning portrange 1000-2000 ttl 5\n\
             \t\tftable: cnt 0 max 10 timeout 60\n"
        ),
        "{o}"
    );
    // Refused by the kernel: a port of 0, a timeout over a day.
    let (_, e, rc) = d.ifconfig(&["vxlan0", "vxlanlocalport", "0"]);
    assert_eq!(
        (e.as_str(), rc),
        ("ifconfig: VXLAN_CMD_SET_LOCAL_PORT: Invalid argument\n", 1)
    );
    let (_, e, rc) = d.ifconfig(&["vxlan0", "vxlantimeout", "86401"]);
    assert_eq!(
        (e.as_str(), rc),
        (
            "ifconfig: VXLAN_CMD_SET_FTABLE_TIMEOUT: Invalid argument\n",
            1
        )
    );
    // Not a vxlan: its driver refuses the request.
    let (_, e, rc) = d.ifconfig(&["lo0", "vxlanid", "1"]);
    assert_eq!(
        (e.as_str(), rc),
        ("ifconfig: VXLAN_CMD_SET_VNI: Invalid argument\n", 1)
    );
    d.ok(&["vxlan0", "destroy"]);
}

/// `ifping -c 1 -w 1 DST` from inside daemon `d`, until it answers.
fn ifping_reach(d: &Daemon, dst: &str) {
    wait_until(20, &format!("{dst} answering the daemon"), || {
        run(d
            .cmd(env!("CARGO_BIN_EXE_ifping"))
            .args(["-c", "1", "-w", "1", dst]))
        .2 == 0
    });
}

/// Three endpoints on one group across a Linux bridge of veths: two
/// ifnetds (holding the segment's addresses on vxlan0 itself) and a Linux
/// kernel vxlan. Every one reaches every other.
#[test]
fn multicast_group_of_three() {
    multicast(["10.2.0.1", "10.2.0.2", "10.2.0.3"], 24, "239.1.1.1");
}

#[test]
fn multicast_group_of_three_over_ipv6() {
    multicast(["fd02::1", "fd02::2", "fd02::3"], 64, "ff05::42");
}

fn multicast(underlay: [&str; 3], plen: u8, group: &str) {
    if !can_netadmin() {
        return;
    }
    let (sw, a, b, l) = (Netns::new(), Netns::new(), Netns::new(), Netns::new());
    // No IGMP/MLD querier here: let the bridge flood the group.
    sw.exec("ip link add br0 type bridge mcast_snooping 0 && ip link set br0 up");
    let mut devs = Vec::new();
    for (ns, addr) in [&a, &b, &l].into_iter().zip(underlay) {
        let (port, dev) = veth(&sw, ns, &[], &[&format!("{addr}/{plen}")]);
        sw.exec(&format!("ip link set {port} master br0"));
        devs.push(dev);
    }
    l.exec(&format!(
        "ip link add vx0 type vxlan id 42 group {group} dev {} local {} dstport 4789 \
         && ip addr add 192.168.9.3/24 dev vx0 && ip link set vx0 up \
         && ethtool -K vx0 tx off >/dev/null",
        devs[2], underlay[2]
    ));
    let at = |a: &str| {
        if a.contains(':') {
            format!("[{a}]:4789")
        } else {
            format!("{a}:4789")
        }
    };
    let mut daemons = Vec::new();
    for (i, ns) in [&a, &b].into_iter().enumerate() {
        let d = Daemon::start_in(ns);
        d.ok(&[
            "vxlan0",
            "create",
            "vxlanid",
            "42",
            "vxlanlocal",
            underlay[i],
            "vxlangroup",
            group,
            "vxlandev",
            &devs[i],
            "up",
        ]);
        d.ok(&["vxlan0", "inet", &format!("192.168.9.{}/24", i + 1)]);
        let (o, _, _) = d.ifconfig(&["vxlan0"]);
        assert!(
            o.contains(&format!(
                "\tvxlan vni 42 local {} group {}\n",
                at(underlay[i]),
                at(group)
            )),
            "{o}"
        );
        d.ifconfig(&["-w", "10"]);
        daemons.push(d);
    }
    // The other family's wildcard on the same port is another socket.
    let other = if group.contains(':') {
        "239.1.1.43"
    } else {
        "ff05::43"
    };
    daemons[0].ok(&[
        "vxlan1",
        "create",
        "vni",
        "43",
        "vxlangroup",
        other,
        "vxlandev",
        &devs[0],
        "up",
    ]);
    reach(&l, "192.168.9.1");
    reach(&l, "192.168.9.2");
    ifping_reach(&daemons[0], "192.168.9.2");
    ifping_reach(&daemons[1], "192.168.9.1");
    ifping_reach(&daemons[1], "192.168.9.3");
    // Learnt: each daemon knows the other two endpoints' MACs.
    assert_eq!(ftable_cnt(&daemons[0]), 2);
}

/// Whether `ifname` of `d` is running (its flags say RUNNING).
fn running(d: &Daemon, ifname: &str) -> bool {
    let (o, _, _) = d.ifconfig(&[ifname]);
    o.lines().next().is_some_and(|l| l.contains("RUNNING"))
}

/// A VTEP on a specific local address and one on the wildcard share the
/// port (FreeBSD with net.link.vxlan.reuse_port=1), in either order;
/// each datagram goes to the most specific: a Linux vxlan reaches the one
/// bound to the address it sends to.
#[test]
fn specific_and_wildcard_vteps_share_a_port() {
    if !can_netadmin() {
        return;
    }
    let (a, b, h) = (Netns::new(), Netns::new(), Netns::new());
    let (_, vb) = veth(&a, &b, &["10.21.0.1/24"], &["10.21.0.2/24"]);
    let d = Daemon::start_in(&a);
    let specific = ["vxlanlocal", "10.21.0.1"];
    for order in [[false, true], [true, false]] {
        for (i, with_local) in order.into_iter().enumerate() {
            let (ifname, vni) = (format!("vxlan{i}"), if with_local { "5" } else { "6" });
            let mut args = vec![ifname.as_str(), "create", "vni", vni];
            if with_local {
                args.extend(specific);
            }
            args.extend(["vxlanremote", "10.21.0.2", "up"]);
            d.ok(&args);
            assert!(running(&d, &ifname), "{ifname} (local: {with_local}) up");
            if i == 0 {
                // Alone on its port: another program that asks to share
                // it still finds it in use.
                let bind = if with_local { "10.21.0.1" } else { "0.0.0.0" };
                let (_, e, rc) = run(Command::new("ip").args([
                    "netns",
                    "exec",
                    &a.0,
                    "python3",
                    "-c",
                    &format!(
                        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                         s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                         s.bind((\"{bind}\",4789))"
                    ),
                ]));
                assert!(rc != 0 && e.contains("Address already in use"), "{e}");
            }
        }
        // Down and up again beside the other.
        d.ok(&["vxlan0", "down"]);
        d.ok(&["vxlan0", "up"]);
        assert!(running(&d, "vxlan0") && running(&d, "vxlan1"));
        if !order[0] {
            d.ok(&["vxlan0", "destroy"]);
            d.ok(&["vxlan1", "destroy"]);
        }
    }
    // vxlan0 (VNI 5) holds 10.21.0.1:4789: Linux's VNI 5 reaches it.
    b.exec(&format!(
        "ip link add vx5 type vxlan id 5 local 10.21.0.2 remote 10.21.0.1 dstport 4789 dev {vb}"
    ));
    b.exec("ip addr add 10.5.0.2/24 dev vx5");
    b.exec("ip link set vx5 up");
    virt_to(&d, &a, "virt0", &h, &["10.5.0.1/24"], 1450);
    d.ok(&["virt0", "mtu", "1450"]);
    d.ok(&["bridge0", "create", "mtu", "1450"]);
    let (o, e, rc) = d.brconfig(&["bridge0", "add", "vxlan0", "add", "virt0", "up"]);
    assert_eq!((o.as_str(), e.as_str(), rc), ("", "", 0));
    reach(&h, "10.5.0.2");
}

/// `vxlanttl 0` is taken, as FreeBSD's kernel takes it, and the interface
/// comes up: its datagrams leave with the system's default TTL (Linux
/// cannot send a TTL of 0, which RFC 1122 forbids).
#[test]
fn ttl_zero_comes_up_with_the_default_ttl() {
    if !can_netadmin() {
        return;
    }
    let (a, b) = (Netns::new(), Netns::new());
    let (va, _) = veth(&a, &b, &["10.22.0.1/24"], &["10.22.0.2/24"]);
    let d = Daemon::start_in(&a);
    d.ok(&[
        "vxlan0",
        "create",
        "vni",
        "8",
        "vxlanlocal",
        "10.22.0.1",
        "vxlanremote",
        "10.22.0.2",
        "vxlanttl",
        "0",
        "up",
    ]);
    assert!(running(&d, "vxlan0"));
    let (o, _, _) = d.ifconfig(&["-v", "vxlan0"]);
    assert!(o.contains(" ttl 0\n"), "{o}");
    d.ok(&["vxlan0", "inet", "10.8.0.1/24"]);
    let pcap = capture(&a, &va, "src 10.22.0.1 and udp", 1, d.dir.path());
    // An ARP request for an address nobody has: broadcast, to the remote.
    let _ = run(d
        .cmd(env!("CARGO_BIN_EXE_ifping"))
        .args(["-c", "1", "-w", "1", "10.8.0.9"]));
    let dump = captured(&pcap, 1, &["-v"]);
    assert!(dump.contains("ttl 64"), "{dump}");
}

/// Datagrams the underlay refuses (no route to the remote) are output
/// errors, not packets sent, though the frames were queued as sent.
#[test]
fn refused_datagrams_are_output_errors() {
    if !can_netadmin() {
        return;
    }
    let ns = Netns::new();
    let d = Daemon::start_in(&ns);
    d.ok(&[
        "vxlan0",
        "create",
        "vni",
        "9",
        "vxlanremote",
        "10.99.0.2",
        "up",
    ]);
    d.ok(&["vxlan0", "inet", "10.8.0.1/24"]);
    // ARP requests for an address nobody has: broadcasts, to the remote,
    // which nothing routes to.
    let _ = run(d
        .cmd(env!("CARGO_BIN_EXE_ifping"))
        .args(["-c", "1", "-w", "2", "10.8.0.9"]));
    wait_until(10, "output errors", || {
        counter(&d, "vxlan0", "output:", "error") > 0
    });
    assert_eq!(counter(&d, "vxlan0", "output:", "packet"), 0);
    assert_eq!(counter(&d, "vxlan0", "output:", "byte"), 0);
}
