//! ifmcstat(8): the multicast groups each interface belongs to, by address
//! family, and the link-level multicast addresses they make the interface
//! take (usr.sbin/ifmcstat/ifmcstat.c's layout). The groups are those
//! ifnet's IP presence joins: all-hosts for inet, all-nodes (link- and
//! interface-local) and each address's solicited-node group for inet6.

use super::{ether_ntoa, getopt, groups, interfaces, ntop6};
use crate::ioctl::{IfStatus, Ioctl};
use std::io::Write;
use std::net::IpAddr;

pub const USAGE: &str = "usage: ifmcstat [-i interface] [-f address_family]\n";

pub fn main_with(
    args: &[String],
    ctl: &mut dyn Ioctl,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let Ok((opts, rest)) = getopt(args, "i:f:") else {
        let _ = err.write_all(USAGE.as_bytes());
        return 1;
    };
    if !rest.is_empty() {
        let _ = err.write_all(USAGE.as_bytes());
        return 1;
    }
    let (mut only, mut af) = (None, None);
    for (c, v) in opts {
        match (c, v.as_deref()) {
            ('i', Some(i)) => only = Some(i.to_string()),
            ('f', Some("inet")) => af = Some(false),
            ('f', Some("inet6")) => af = Some(true),
            ('f', Some(f)) => {
                let _ = writeln!(err, "ifmcstat: {f}: unknown address family");
                return 1;
            }
            _ => {
                let _ = err.write_all(USAGE.as_bytes());
                return 1;
            }
        }
    }
    let ifs = match interfaces(ctl) {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(err, "ifmcstat: {e}");
            return 1;
        }
    };
    if let Some(name) = &only
        && !ifs.iter().any(|i| &i.name == name)
    {
        let _ = writeln!(err, "ifmcstat: {name}: Device not configured");
        return 1;
    }
    let mut s = String::new();
    for i in ifs
        .iter()
        .filter(|i| only.as_ref().is_none_or(|n| *n == i.name))
    {
        s += &print_if(i, af);
    }
    let _ = out.write_all(s.as_bytes());
    0
}

/// The Ethernet multicast address of an IP group (RFC 1112, RFC 2464).
fn group_mac(g: IpAddr) -> [u8; 6] {
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

fn print_if(i: &IfStatus, af: Option<bool>) -> String {
    let (g4, g6) = groups(i);
    let mut s = format!("{}:\n", i.name);
    if af != Some(true) {
        for a in &i.inet {
            s += &format!("\tinet {}\n", a.addr);
        }
        for (g, n) in &g4 {
            s += &format!("\t\tgroup {g} refcnt {n}\n");
        }
    }
    if af != Some(false) {
        for a in &i.inet6 {
            s += &format!("\tinet6 {}\n", ntop6(a.addr, &i.name));
        }
        for (g, n) in &g6 {
            s += &format!("\t\tgroup {} refcnt {n}\n", ntop6(*g, &i.name));
        }
    }
    if let Some(mac) = i.lladdr {
        // ether_multi: one range per link-level group, counted once per IP
        // group that maps to it.
        let mut macs: Vec<([u8; 6], u32)> = Vec::new();
        let all = g4.iter().map(|(g, n)| (*g, *n));
        let all = all.chain(g6.iter().map(|(g, n)| (IpAddr::V6(*g), *n)));
        for (g, _) in all {
            let m = group_mac(g);
            match macs.iter_mut().find(|(x, _)| *x == m) {
                Some((_, c)) => *c += 1,
                None => macs.push((m, 1)),
            }
        }
        s += &format!("\tenaddr {} multicnt {}", ether_ntoa(&mac), macs.len());
        for (m, c) in &macs {
            let m = ether_ntoa(m);
            s += &format!("\n\t\t{m} -- {m} {c}");
        }
        s.push('\n');
    }
    s
}
