//! The tools NetBSD scripts use to look at a kernel's state, as a library:
//! netstat(1) (-r, -i), arp(8), ndp(8), sysctl(8) for the knobs ifnet has,
//! ifmcstat(8) and shmif_pcapin(1). One multi-call binary (`ifnet-tools`)
//! runs them: its name, or its first argument, picks the tool.

pub mod arp;
pub mod ifmcstat;
pub mod ndp;
pub mod netstat;
pub mod pcapin;
pub mod route;
pub mod sysctl;
pub mod traceroute;

use crate::ioctl::{IfStatus, Ioctl, Mac, Reply, Request};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The tools, by their NetBSD names.
pub const TOOLS: [&str; 8] = [
    "netstat",
    "route",
    "traceroute",
    "arp",
    "ndp",
    "sysctl",
    "ifmcstat",
    "shmif_pcapin",
];

/// The multi-call binary's usage.
pub const USAGE: &str = "usage: ifnet-tools tool [arguments ...]
tools: netstat route traceroute arp ndp sysctl ifmcstat shmif_pcapin
";

/// Run the tool `name` (a NetBSD name) with `args`; its exit code.
pub fn run(
    name: &str,
    args: &[String],
    ctl: &mut dyn Ioctl,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Option<i32> {
    Some(match name {
        "netstat" => netstat::main_with(args, ctl, out, err),
        "route" => route::main_with(args, ctl, out, err),
        "traceroute" => traceroute::main_with(args, ctl, out, err),
        "arp" => arp::main_with(args, ctl, out, err),
        "ndp" => ndp::main_with(args, ctl, out, err),
        "sysctl" => sysctl::main_with(args, ctl, out, err),
        "ifmcstat" => ifmcstat::main_with(args, ctl, out, err),
        "shmif_pcapin" => pcapin::main_with(args, out, err),
        _ => return None,
    })
}

/// Write a tool's usage text to `err`; the exit status that goes with it.
pub fn usage(err: &mut dyn Write, text: &str) -> i32 {
    let _ = err.write_all(text.as_bytes());
    1
}

/// Options as getopt(3) returns them, each with its argument.
pub type Opts = Vec<(char, Option<String>)>;

/// getopt(3) as NetBSD's tools call it: `spec` lists the option letters,
/// a letter followed by `:` takes an argument. Options end at the first
/// operand or at `--`. Returns the options in order and the operands, or
/// the letter that is not an option (or lacks its argument).
pub fn getopt(args: &[String], spec: &str) -> Result<(Opts, Vec<String>), char> {
    let mut opts = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a == "-" {
            break;
        }
        let letters: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < letters.len() {
            let c = letters[j];
            let Some(pos) = spec.find(c).filter(|_| c != ':') else {
                return Err(c);
            };
            if spec[pos + 1..].starts_with(':') {
                let rest: String = letters[j + 1..].iter().collect();
                let val = if !rest.is_empty() {
                    rest
                } else {
                    i += 1;
                    args.get(i).cloned().ok_or(c)?
                };
                opts.push((c, Some(val)));
                break;
            }
            opts.push((c, None));
            j += 1;
        }
        i += 1;
    }
    Ok((opts, args[i..].to_vec()))
}

/// ether_ntoa(3): lower-case, two digits a byte.
pub fn ether_ntoa(m: &Mac) -> String {
    let h: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
    h.join(":")
}

/// Every interface's status, in index order.
pub fn interfaces(ctl: &mut dyn Ioctl) -> Result<Vec<IfStatus>, crate::ioctl::Errno> {
    match ctl.ioctl(Request::GetIfConf { name: None })? {
        Reply::IfConf(v) => Ok(v),
        _ => Err(crate::ioctl::Errno::EIO),
    }
}

/// An inet6 address as getnameinfo(NI_NUMERICHOST) writes it: a
/// link-local one with its zone.
pub fn ntop6(a: Ipv6Addr, ifname: &str) -> String {
    if is_scoped(a) {
        format!("{a}%{ifname}")
    } else {
        a.to_string()
    }
}

/// Whether an inet6 address has a link or interface zone.
pub fn is_scoped(a: Ipv6Addr) -> bool {
    a.is_unicast_link_local() || (a.is_multicast() && matches!(a.segments()[0] & 0xf, 1 | 2))
}

/// The name of the interface with index `index`.
pub fn ifname(ifs: &[IfStatus], index: u32) -> &str {
    ifs.iter()
        .find(|i| i.index == index)
        .map_or("?", |i| i.name.as_str())
}

/// An interface's multicast memberships, as its IP presence holds them:
/// all-hosts for inet; for inet6 the groups each address joined (its
/// solicited-node group, and with the link-local one all-nodes, link- and
/// interface-local), a group joined again only counted; and the
/// link-level addresses the groups take (ether_addmulti). Lists are
/// newest first, as NetBSD's LIST_INSERT_HEAD keeps them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Memberships {
    /// 224.0.0.1 and its count (one per inet address, in_addmulti).
    pub inet: Option<(Ipv4Addr, u32)>,
    /// Each inet6 address, in order, with the groups it joined first.
    pub inet6: Vec<(Ipv6Addr, Vec<(Ipv6Addr, u32)>)>,
    pub ether: Vec<(Mac, u32)>,
}

/// The Ethernet multicast address of an IP group (RFC 1112, RFC 2464).
pub fn group_mac(g: IpAddr) -> Mac {
    match g {
        IpAddr::V4(a) => {
            let o = a.octets();
            [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            [0x33, 0x33, o[12], o[13], o[14], o[15]]
        }
    }
}

/// The solicited-node group of `a` (RFC 4291 2.7.1).
fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// What an interface joined, in the order in_ifinit and in6_update_ifa1
/// join: all-hosts with the inet addresses, then per inet6 address its
/// solicited-node group, all-nodes ff02::1 and ff01::1 with a link-local.
pub fn memberships(st: &IfStatus) -> Memberships {
    let mut m = Memberships::default();
    if st.flags & crate::ioctl::iff::MULTICAST == 0 {
        return m;
    }
    let ether = |g: IpAddr, m: &mut Memberships| {
        if st.lladdr.is_none() {
            return;
        }
        let mac = group_mac(g);
        match m.ether.iter_mut().find(|(x, _)| *x == mac) {
            Some((_, n)) => *n += 1,
            None => m.ether.insert(0, (mac, 1)),
        }
    };
    if !st.inet.is_empty() {
        let g = Ipv4Addr::new(224, 0, 0, 1);
        m.inet = Some((g, st.inet.len() as u32));
        ether(IpAddr::V4(g), &mut m);
    }
    for a in &st.inet6 {
        m.inet6.push((a.addr, Vec::new()));
        let mut joins = vec![solicited_node(a.addr)];
        if a.addr.is_unicast_link_local() {
            joins.push(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1));
            joins.push(Ipv6Addr::new(0xff01, 0, 0, 0, 0, 0, 0, 1));
        }
        for g in joins {
            let known = m
                .inet6
                .iter_mut()
                .flat_map(|(_, l)| l.iter_mut())
                .find(|(x, _)| *x == g);
            match known {
                Some((_, n)) => *n += 1,
                None => {
                    if let Some((_, l)) = m.inet6.last_mut() {
                        l.insert(0, (g, 1));
                    }
                    ether(IpAddr::V6(g), &mut m);
                }
            }
        }
    }
    m
}

/// A route's destination as netstat and route print it.
pub fn netname(r: &crate::ioctl::RtEntry, _numeric: bool) -> String {
    let bits = if r.dst.is_ipv4() { 32 } else { 128 };
    if r.prefix == 0 {
        "default".into()
    } else if r.prefix == bits {
        r.dst.to_string()
    } else {
        format!("{}/{}", r.dst, r.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn getopt_as_netbsd() {
        let (o, rest) = getopt(&s(&["-na", "x"]), "and:").unwrap();
        assert_eq!(o, vec![('n', None), ('a', None)]);
        assert_eq!(rest, s(&["x"]));
        let (o, rest) = getopt(&s(&["-d", "fe80::1", "-n"]), "and:").unwrap();
        assert_eq!(o, vec![('d', Some("fe80::1".into())), ('n', None)]);
        assert!(rest.is_empty());
        let (_, rest) = getopt(&s(&["-n", "x", "-a"]), "an").unwrap();
        assert_eq!(rest, s(&["x", "-a"]));
        assert_eq!(getopt(&s(&["-z"]), "an"), Err('z'));
        assert_eq!(getopt(&s(&["-d"]), "d:"), Err('d'));
    }
}
