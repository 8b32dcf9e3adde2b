//! netstat(1) -r and -i: the routes NetBSD shows for a kernel's addresses
//! (the connected route `UC` of each prefix, the local host route `UHl` of
//! each address on lo0, the interface and link-local multicast routes of
//! inet6, the ARP and NDP entries `UHL`) and the interfaces with their
//! counters, in NetBSD's columns (sbin/route/rtutil.c, usr.bin/netstat/if.c).
//! The kernel's static routes (route(8)) are listed with them. -s shows
//! the forwarding path's protocol statistics (usr.bin/netstat/inet.c,
//! inet6.c), for the counters ifnet keeps.

use super::{ether_ntoa, getopt, interfaces, ntop6, usage};
use crate::ioctl::{
    IfStatus, Ioctl, LlEntry, ProtoStats, Reply, Request, RouteReq, RtEntry, iff, rtf,
};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const USAGE: &str = "\
usage: netstat [-bn] [-f address_family] [-I interface] -i
       netstat [-abn] -i
       netstat [-n] [-f address_family] -r
       netstat [-f address_family] -s
";

#[derive(Default)]
struct Opts {
    n: bool,
    a: bool,
    /// Bytes instead of packets.
    b: bool,
    r: bool,
    i: bool,
    s: bool,
    /// Some(false) inet, Some(true) inet6.
    af: Option<bool>,
    interface: Option<String>,
}

pub fn main_with(
    args: &[String],
    ctl: &mut dyn Ioctl,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let mut o = Opts::default();
    let Ok((opts, rest)) = getopt(args, "abf:I:inrs") else {
        return usage(err, USAGE);
    };
    if !rest.is_empty() {
        return usage(err, USAGE);
    }
    for (c, v) in opts {
        match c {
            'a' => o.a = true,
            'b' => o.b = true,
            'n' => o.n = true,
            'r' => o.r = true,
            's' => o.s = true,
            'i' => o.i = true,
            'I' => {
                o.i = true;
                o.interface = v;
            }
            'f' => {
                o.af = match v.as_deref() {
                    Some("inet") => Some(false),
                    Some("inet6") => Some(true),
                    Some(f) => {
                        let _ = writeln!(err, "netstat: {f}: unknown address family");
                        return 1;
                    }
                    None => return usage(err, USAGE),
                }
            }
            _ => return usage(err, USAGE),
        }
    }
    let ifs = match interfaces(ctl) {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(err, "netstat: {e}");
            return 1;
        }
    };
    let text = if o.r {
        let ll = match ctl.ioctl(Request::GetLlTable) {
            Ok(Reply::LlTable(v)) => v,
            _ => Vec::new(),
        };
        let statics = match ctl.ioctl(Request::Route(RouteReq::Dump)) {
            Ok(Reply::Routes(v)) => v,
            _ => Vec::new(),
        };
        routes(&ifs, &ll, &statics, &o)
    } else if o.s {
        match ctl.ioctl(Request::GetProtoStats) {
            Ok(Reply::ProtoStats(p)) => protostats(&p, &o),
            Ok(_) => String::new(),
            Err(e) => {
                let _ = writeln!(err, "netstat: {e}");
                return 1;
            }
        }
    } else if o.i {
        if let Some(name) = &o.interface
            && !ifs.iter().any(|i| &i.name == name)
        {
            let _ = writeln!(err, "netstat: {name}: unknown interface");
            return 1;
        }
        intpr(&ifs, &o)
    } else {
        // No sockets in ifnet: nothing to list.
        String::new()
    };
    let _ = out.write_all(text.as_bytes());
    0
}

/// One line of the routing table.
struct Rt {
    key: (Vec<u8>, u8),
    dst: String,
    gw: String,
    flags: &'static str,
    /// Flags made at run time (a static route's), instead of `flags`.
    flags_owned: Option<String>,
    mtu: Option<u32>,
    ifname: String,
}

/// netname4: the network number with as many octets as the mask covers.
fn netname4(a: Ipv4Addr, bits: u32) -> String {
    let o = a.octets();
    let n = match bits {
        0..=8 => 1,
        9..=16 => 2,
        17..=24 => 3,
        _ => 4,
    };
    let parts: Vec<String> = o[..n].iter().map(|b| b.to_string()).collect();
    format!("{}/{bits}", parts.join("."))
}

fn mask6(a: Ipv6Addr, len: u8) -> Ipv6Addr {
    let len = u32::from(len.min(128));
    let m = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    Ipv6Addr::from(u128::from(a) & m)
}

/// The radix key of an inet6 destination: the zone index embedded in the
/// second word of a scoped address, as the kernel keeps it.
fn key6(a: Ipv6Addr, index: u32) -> Vec<u8> {
    let mut o = a.octets();
    if super::is_scoped(a) {
        o[2..4].copy_from_slice(&(index as u16).to_be_bytes());
    }
    o.to_vec()
}

/// netname6 of a prefix: with its zone for scoped ones.
fn netname6(a: Ipv6Addr, len: u8, ifname: &str) -> String {
    format!("{}/{len}", ntop6(mask6(a, len), ifname))
}

fn routes(ifs: &[IfStatus], ll: &[LlEntry], statics: &[RtEntry], o: &Opts) -> String {
    let lo = ifs.iter().find(|i| i.flags & iff::LOOPBACK != 0);
    let lo_name = lo.map_or("lo0", |l| l.name.as_str()).to_string();
    let lo_mtu = lo.map_or(33624, |l| l.mtu);
    let mut v4: Vec<Rt> = Vec::new();
    let mut v6: Vec<Rt> = Vec::new();
    let push = |v: &mut Vec<Rt>, r: Rt| {
        if !v.iter().any(|x| x.key == r.key) {
            v.push(r);
        }
    };
    for i in ifs {
        let link = format!("link#{}", i.index);
        let loopback = i.flags & iff::LOOPBACK != 0;
        for a in &i.inet {
            let bits = u32::from(a.mask).count_ones();
            let host = Rt {
                key: (a.addr.octets().to_vec(), 32),
                dst: a.addr.to_string(),
                gw: if loopback {
                    i.name.clone()
                } else {
                    link.clone()
                },
                flags: "UHl",
                mtu: loopback.then_some(i.mtu),
                flags_owned: None,
                ifname: lo_name.clone(),
            };
            if !loopback && bits < 32 {
                let net = Ipv4Addr::from(u32::from(a.addr) & u32::from(a.mask));
                let r = Rt {
                    key: (net.octets().to_vec(), bits as u8),
                    dst: netname4(net, bits),
                    gw: link.clone(),
                    flags: "UC",
                    mtu: None,
                    flags_owned: None,
                    ifname: i.name.clone(),
                };
                push(&mut v4, r);
            }
            push(&mut v4, host);
        }
        for a in &i.inet6 {
            if a.prefixlen < 128 {
                let r = Rt {
                    key: (key6(mask6(a.addr, a.prefixlen), i.index), a.prefixlen),
                    dst: netname6(a.addr, a.prefixlen, &i.name),
                    gw: if loopback {
                        a.addr.to_string()
                    } else {
                        link.clone()
                    },
                    flags: if loopback { "U" } else { "UC" },
                    mtu: None,
                    flags_owned: None,
                    ifname: i.name.clone(),
                };
                push(&mut v6, r);
            }
            let r = Rt {
                key: (key6(a.addr, i.index), 128),
                dst: a.addr.to_string(),
                gw: if loopback {
                    i.name.clone()
                } else {
                    link.clone()
                },
                flags: "UHl",
                mtu: (loopback && !a.addr.is_unicast_link_local()).then_some(i.mtu),
                flags_owned: None,
                ifname: lo_name.clone(),
            };
            push(&mut v6, r);
        }
        // in6_ifattach's interface-local and link-local multicast routes.
        if !i.inet6.is_empty() {
            for g in [0xff01u16, 0xff02] {
                let a = Ipv6Addr::new(g, 0, 0, 0, 0, 0, 0, 0);
                let dst = if g == 0xff01 {
                    format!("ff01:{}::/32", i.index)
                } else {
                    netname6(a, 32, &i.name)
                };
                let r = Rt {
                    key: (key6(a, i.index), 32),
                    dst,
                    gw: if loopback { "::1".into() } else { link.clone() },
                    flags: "UC",
                    mtu: loopback.then_some(lo_mtu),
                    flags_owned: None,
                    ifname: i.name.clone(),
                };
                push(&mut v6, r);
            }
        }
    }
    // The static routes, with their gateway (or the link of an
    // interface route) and their flags.
    for r in statics.iter().filter(|r| r.flags & rtf::STATIC != 0) {
        let index = ifs
            .iter()
            .find(|i| Some(&i.name) == r.ifname.as_ref())
            .map_or(0, |i| i.index);
        let gw = match r.gateway {
            Some(g) if r.flags & rtf::GATEWAY != 0 => g.to_string(),
            _ => format!("link#{index}"),
        };
        let key = match r.dst {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let line = Rt {
            key: (key, r.prefix),
            dst: match r.dst {
                IpAddr::V4(a) if r.prefix != 0 && r.prefix < 32 => netname4(a, r.prefix.into()),
                _ => super::netname(r, o.n),
            },
            gw,
            flags: "",
            flags_owned: Some(rtf::letters(r.flags)),
            mtu: (r.mtu != 0).then_some(r.mtu),
            ifname: r.ifname.clone().unwrap_or_default(),
        };
        match r.dst {
            IpAddr::V4(_) => push(&mut v4, line),
            IpAddr::V6(_) => push(&mut v6, line),
        }
    }
    v4.sort_by(|a, b| a.key.cmp(&b.key));
    v6.sort_by(|a, b| a.key.cmp(&b.key));
    for e in ll {
        let r = Rt {
            key: (Vec::new(), 0),
            dst: e.addr.to_string(),
            gw: ether_ntoa(&e.mac),
            flags: "UHL",
            mtu: None,
            flags_owned: None,
            ifname: e.ifname.clone(),
        };
        match e.addr {
            IpAddr::V4(_) => v4.push(r),
            IpAddr::V6(_) => v6.push(r),
        }
    }
    let mut s = String::from("Routing tables\n");
    for (six, v) in [(false, v4), (true, v6)] {
        if v.is_empty() || o.af.is_some_and(|f| f != six) {
            continue;
        }
        let (wd, wg) = match (six, o.n) {
            (true, true) => (39, 30),
            _ => (18, 18),
        };
        s += if six {
            "\nInternet6:\n"
        } else {
            "\nInternet:\n"
        };
        s += &format!(
            "{:<wd$.wd$} {:<wg$.wg$} {:<6.6} {:>6.6} {:>8.8} {:>6.6} {}\n",
            "Destination", "Gateway", "Flags", "Refs", "Use", "Mtu", "Interface"
        );
        for r in v {
            let (dst, gw) = if o.n {
                (format!("{:<wd$}", r.dst), format!("{:<wg$}", r.gw))
            } else {
                (format!("{:<wd$.wd$}", r.dst), format!("{:<wg$.wg$}", r.gw))
            };
            let mtu = r.mtu.map_or("-".to_string(), |m| m.to_string());
            let ifname: String = r.ifname.chars().take(16).collect();
            s += &format!(
                "{dst} {gw} {:<6.6} {:>6} {:>8} {mtu:>6}  {ifname}\n",
                r.flags_owned.as_deref().unwrap_or(r.flags),
                "-",
                "-"
            );
        }
    }
    s
}

/// netstat -s: NetBSD's lines (inet.c's ip_stats, icmp_stats; inet6.c's
/// ip6_stats, icmp6_stats) for the counters ifnet keeps. `{}` is the
/// value, `{s}` a plural s.
const IP_LINES: [(&str, &str); 18] = [
    ("ips_total", "{} total packet{s} received"),
    ("ips_badsum", "{} bad header checksum{s}"),
    ("ips_toosmall", "{} with size smaller than minimum"),
    ("ips_tooshort", "{} with data size < data length"),
    ("ips_badhlen", "{} with header length < data size"),
    ("ips_badlen", "{} with data length < header length"),
    ("ips_badoptions", "{} with bad options"),
    ("ips_badvers", "{} with incorrect version number"),
    ("ips_delivered", "{} packet{s} for this host"),
    ("ips_forward", "{} packet{s} forwarded"),
    ("ips_cantforward", "{} packet{s} not forwardable"),
    ("ips_redirectsent", "{} redirect{s} sent"),
    (
        "ips_odropped",
        "{} output packet{s} dropped due to no bufs, etc.",
    ),
    (
        "ips_noroute",
        "{} output packet{s} discarded due to no route",
    ),
    ("ips_fragmented", "{} output datagram{s} fragmented"),
    ("ips_ofragments", "{} fragment{s} created"),
    ("ips_cantfrag", "{} datagram{s} that can't be fragmented"),
    ("ips_badaddr", "{} datagram{s} with bad address in header"),
];

const ICMP_LINES: [(&str, &str); 3] = [
    ("icps_error", "{} call{s} to icmp_error"),
    (
        "icps_oldicmp",
        "{} error{s} not generated because old message was icmp",
    ),
    (
        "icps_toofreq",
        "{} error{s} not generated because of rate limitation",
    ),
];

/// icmp_stats' output histogram names, by type.
const ICMP_NAMES: [&str; 19] = [
    "echo reply",
    "#1",
    "#2",
    "destination unreachable",
    "source quench",
    "routing redirect",
    "#6",
    "#7",
    "echo",
    "router advertisement",
    "router solicitation",
    "time exceeded",
    "parameter problem",
    "time stamp",
    "time stamp reply",
    "information request",
    "information request reply",
    "address mask request",
    "address mask reply",
];

const IP6_LINES: [(&str, &str); 12] = [
    ("ip6s_total", "{} total packet{s} received"),
    ("ip6s_toosmall", "{} with size smaller than minimum"),
    ("ip6s_tooshort", "{} with data size < data length"),
    ("ip6s_badoptions", "{} with bad options"),
    ("ip6s_badvers", "{} with incorrect version number"),
    ("ip6s_delivered", "{} packet{s} for this host"),
    ("ip6s_forward", "{} packet{s} forwarded"),
    ("ip6s_cantforward", "{} packet{s} not forwardable"),
    ("ip6s_redirectsent", "{} redirect{s} sent"),
    (
        "ip6s_odropped",
        "{} output packet{s} dropped due to no bufs, etc.",
    ),
    (
        "ip6s_noroute",
        "{} output packet{s} discarded due to no route",
    ),
    ("ip6s_badscope", "{} packet{s} that violated scope rules"),
];

const ICMP6_LINES: [(&str, &str); 3] = [
    ("icp6s_error", "{} call{s} to icmp6_error"),
    (
        "icp6s_canterror",
        "{} error{s} not generated because old message was icmp error or so",
    ),
    (
        "icp6s_toofreq",
        "{} error{s} not generated because of rate limitation",
    ),
];

/// icmp6_stats' histogram names of the errors ifnet sends.
fn icmp6_name(t: u8) -> String {
    match t {
        1 => "unreach".into(),
        2 => "packet too big".into(),
        3 => "time exceed".into(),
        4 => "parameter problem".into(),
        137 => "redirect".into(),
        t => format!("#{t}"),
    }
}

fn stat_lines(s: &mut String, lines: &[(&str, &str)], v: &[(String, u64)]) {
    for (name, fmt) in lines {
        let n = v.iter().find(|(k, _)| k == name).map_or(0, |(_, n)| *n);
        let text = fmt
            .replace("{}", &n.to_string())
            .replace("{s}", if n == 1 { "" } else { "s" });
        *s += &format!("\t{text}\n");
    }
}

fn histogram(s: &mut String, v: &[(String, u64)], prefix: &str, name: &dyn Fn(u8) -> String) {
    let mut head = false;
    for (k, n) in v {
        let Some(t) = k.strip_prefix(prefix).and_then(|t| t.parse::<u8>().ok()) else {
            continue;
        };
        if *n == 0 {
            continue;
        }
        if !head {
            *s += "\tOutput histogram:\n";
            head = true;
        }
        *s += &format!("\t\t{}: {n}\n", name(t));
    }
}

fn protostats(p: &ProtoStats, o: &Opts) -> String {
    let mut s = String::new();
    if o.af != Some(true) {
        s += "ip:\n";
        stat_lines(&mut s, &IP_LINES, &p.ip);
        s += "icmp:\n";
        stat_lines(&mut s, &ICMP_LINES, &p.icmp);
        let name = |t: u8| {
            ICMP_NAMES
                .get(usize::from(t))
                .map_or(format!("#{t}"), |n| n.to_string())
        };
        histogram(&mut s, &p.icmp, "icps_outhist", &name);
    }
    if o.af != Some(false) {
        s += "ip6:\n";
        stat_lines(&mut s, &IP6_LINES, &p.ip6);
        s += "icmp6:\n";
        stat_lines(&mut s, &ICMP6_LINES, &p.icmp6);
        histogram(&mut s, &p.icmp6, "icp6s_outhist", &icmp6_name);
    }
    s
}

/// netstat -i: a line for the link of each interface and one for each of
/// its addresses, each with the interface's counters.
fn intpr(ifs: &[IfStatus], o: &Opts) -> String {
    let mut s = format!(
        "{:<5.5} {:<5.5} {:<13.13} {:<17.17}",
        "Name", "Mtu", "Network", "Address"
    );
    s += &if o.b {
        format!(" {:>10.10} {:>10.10}\n", "Ibytes", "Obytes")
    } else {
        format!(
            " {:>8.8} {:>5.5} {:>8.8} {:>5.5} {:>5.5}\n",
            "Ipkts", "Ierrs", "Opkts", "Oerrs", "Colls"
        )
    };
    for i in ifs {
        if o.interface.as_ref().is_some_and(|n| *n != i.name) {
            continue;
        }
        let mut name = i.name.clone();
        if i.flags & iff::UP == 0 {
            name.push('*');
        }
        let d = &i.data;
        let counters = if o.b {
            format!("{:>10} {:>10}", d.ibytes, d.obytes)
        } else {
            format!(
                "{:>8} {:>5} {:>8} {:>5} {:>5}",
                d.ipackets, d.ierrors, d.opackets, d.oerrors, d.collisions
            )
        };
        let head = format!("{name:<5.5} {:<5} ", i.mtu);
        if o.af.is_none() {
            let ll = i.lladdr.map(|m| ether_ntoa(&m) + " ").unwrap_or_default();
            s += &format!("{head}{:<13.13} {ll:<18}{counters}\n", "<Link>");
        }
        let mc = super::memberships(i);
        if o.af != Some(true) {
            for (n, a) in i.inet.iter().enumerate() {
                let bits = u32::from(a.mask).count_ones();
                let net = Ipv4Addr::from(u32::from(a.addr) & u32::from(a.mask));
                s += &format!(
                    "{head}{:<13.13} {:<17.17} ",
                    netname4(net, bits),
                    a.addr.to_string()
                );
                if o.a
                    && n == 0
                    && let Some((g, _)) = mc.inet
                {
                    s += &format!("\n{:25} {:<17.17} ", "", g.to_string());
                }
                s += &counters;
                s.push('\n');
            }
        }
        if o.af != Some(false) {
            for a in &i.inet6 {
                s += &format!(
                    "{head}{:<13.13} {:<17.17} ",
                    netname6(a.addr, a.prefixlen, &i.name),
                    ntop6(a.addr, &i.name)
                );
                // The groups this address joined (mc_print).
                let groups = mc.inet6.iter().find(|(x, _)| *x == a.addr);
                for (g, _) in groups.filter(|_| o.a).map_or(&[][..], |(_, g)| g) {
                    s += &format!("\n{:25} {:<17.17} ", "", ntop6(*g, &i.name));
                }
                s += &counters;
                s.push('\n');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netnames() {
        assert_eq!(netname4(Ipv4Addr::new(10, 0, 2, 0), 24), "10.0.2/24");
        assert_eq!(netname4(Ipv4Addr::new(127, 0, 0, 0), 8), "127/8");
        assert_eq!(netname4(Ipv4Addr::new(172, 31, 16, 0), 20), "172.31.16/20");
        assert_eq!(
            netname6("fe80::1".parse().unwrap(), 64, "shmif0"),
            "fe80::%shmif0/64"
        );
        assert_eq!(netname6("fc00::1".parse().unwrap(), 64, "x"), "fc00::/64");
    }
}
