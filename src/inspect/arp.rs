//! arp(8): show and delete the ARP cache entries of the IP presences, in
//! NetBSD's format, messages and exit codes (usr.sbin/arp/arp.c). Entries
//! are not set by hand (-s, -f): the presences learn them.

use super::{ether_ntoa, getopt, usage};
use crate::ioctl::{Ioctl, LlEntry, Reply, Request};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};

pub const USAGE: &str = "\
Usage: arp [-n] hostname
       arp [-nv] -a
       arp [-v] -d [-a|hostname [proxy]]
       arp -s hostname ether_addr [temp] [pub [proxy]]
       arp -f filename
";

pub fn main_with(
    args: &[String],
    ctl: &mut dyn Ioctl,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let Ok((opts, rest)) = getopt(args, "andsfv") else {
        return usage(err, USAGE);
    };
    let (mut a, mut v, mut op) = (false, false, None);
    for (c, _) in opts {
        match c {
            'a' => a = true,
            'n' => {}
            'v' => v = true,
            'd' | 's' | 'f' if op.is_none() => op = Some(c),
            _ => return usage(err, USAGE),
        }
    }
    if op.is_none() && a {
        op = Some('a');
    }
    match op {
        Some('a') => dump(ctl, out, err, None).map_or(1, |_| 0),
        Some('d') => {
            if a && rest.is_empty() {
                return delete(ctl, out, err, None, v);
            }
            if a || rest.is_empty() || rest.len() > 2 {
                return usage(err, USAGE);
            }
            let Some(ip) = getinetaddr(&rest[0], err) else {
                return 0;
            };
            delete(ctl, out, err, Some((&rest[0], ip)), v)
        }
        Some(_) => {
            let _ = writeln!(err, "arp: static entries are not supported");
            1
        }
        None => {
            if rest.len() != 1 {
                return usage(err, USAGE);
            }
            let Some(ip) = getinetaddr(&rest[0], err) else {
                return 1;
            };
            match dump(ctl, out, err, Some(ip)) {
                Err(()) => 1,
                Ok(true) => 0,
                Ok(false) => {
                    let _ = writeln!(err, "arp: {} ({ip}) -- no entry", rest[0]);
                    1
                }
            }
        }
    }
}

/// inet_aton, else the host's resolver (gethostbyname).
fn getinetaddr(host: &str, err: &mut dyn Write) -> Option<Ipv4Addr> {
    if let Ok(a) = host.parse() {
        return Some(a);
    }
    let found = (host, 0).to_socket_addrs().ok().and_then(|mut it| {
        it.find_map(|s| match s.ip() {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
    });
    if found.is_none() {
        let _ = writeln!(err, "arp: {host}: Unknown host");
    }
    found
}

fn entries(ctl: &mut dyn Ioctl, err: &mut dyn Write) -> Result<Vec<LlEntry>, ()> {
    match ctl.ioctl(Request::GetLlTable) {
        Ok(Reply::LlTable(v)) => Ok(v.into_iter().filter(|e| e.addr.is_ipv4()).collect()),
        Ok(_) => Ok(Vec::new()),
        Err(e) => {
            let _ = writeln!(err, "arp: route-sysctl-estimate: {e}");
            Err(())
        }
    }
}

/// Print the entries (of `addr` only, if given); whether any was.
fn dump(
    ctl: &mut dyn Ioctl,
    out: &mut dyn Write,
    err: &mut dyn Write,
    addr: Option<Ipv4Addr>,
) -> Result<bool, ()> {
    let mut found = false;
    for e in entries(ctl, err)? {
        if addr.is_some_and(|a| IpAddr::V4(a) != e.addr) {
            continue;
        }
        found = true;
        // -n or not: ifnet has no reverse lookup of its own, "?" as NetBSD
        // prints for an address without a name.
        let _ = writeln!(
            out,
            "? ({}) at {} on {}",
            e.addr,
            ether_ntoa(&e.mac),
            e.ifname
        );
    }
    Ok(found)
}

/// arp -d: delete one entry or, with -a, all; -v names each.
fn delete(
    ctl: &mut dyn Ioctl,
    out: &mut dyn Write,
    err: &mut dyn Write,
    host: Option<(&str, Ipv4Addr)>,
    verbose: bool,
) -> i32 {
    let req = Request::DelLlEntry {
        addr: host.map(|(_, a)| IpAddr::V4(a)),
        v6: false,
        ifname: None,
    };
    match ctl.ioctl(req) {
        Ok(Reply::LlTable(gone)) => {
            if verbose {
                for e in gone {
                    // NetBSD prints the name it was given: none with -a.
                    let name = host.map_or("(null)", |(h, _)| h);
                    let _ = writeln!(out, "{name} ({}) deleted", e.addr);
                }
            }
            0
        }
        Ok(_) => 0,
        Err(e) => {
            let _ = writeln!(err, "arp: writing to routing socket: {e}");
            0
        }
    }
}
