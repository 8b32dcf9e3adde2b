//! ndp(8): show, delete and flush the neighbour cache entries of the IP
//! presences, in NetBSD's format, messages and exit codes
//! (usr.sbin/ndp/ndp.c). Entries are learned, not set by hand.

use super::{ether_ntoa, getopt, ntop6, usage};
use crate::ioctl::{Ioctl, LlEntry, Reply, Request};
use std::io::Write;
use std::net::{IpAddr, Ipv6Addr, ToSocketAddrs};

pub const USAGE: &str = "\
Usage: ndp [-nt] hostname
       ndp [-nt] -a | -c
       ndp [-nt] -A wait
       ndp [-nt] -d hostname
       ndp [-nt] -f filename
       ndp [-nt] -i interface [flags...]
       ndp [-nt] -s nodename etheraddr [temp] [proxy]
";

/// W_ADDR, W_LL, W_IF of ndp.c.
const W_ADDR: usize = 39;
const W_LL: usize = 17;
const W_IF: usize = 6;

pub fn main_with(
    args: &[String],
    ctl: &mut dyn Ioctl,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let Ok((opts, rest)) = getopt(args, "acd:f:i:nstA:") else {
        return usage(err, USAGE);
    };
    let mut mode: Option<(char, Option<String>)> = None;
    let mut tflag = false;
    for (c, v) in opts {
        match c {
            'n' => {}
            't' => tflag = true,
            'a' | 'c' | 's' | 'd' | 'f' | 'i' | 'A' if mode.is_none() => mode = Some((c, v)),
            _ => return usage(err, USAGE),
        }
    }
    if tflag {
        let _ = writeln!(err, "ndp: -t is not supported");
        return 1;
    }
    match mode {
        Some(('a', _)) | Some(('c', _)) if !rest.is_empty() => usage(err, USAGE),
        Some(('a', _)) => {
            let _ = out.write_all(header().as_bytes());
            foreach(ctl, out, err, None).map_or(1, |_| 0)
        }
        Some(('c', _)) => {
            let req = Request::DelLlEntry {
                addr: None,
                v6: true,
                ifname: None,
            };
            if let Ok(Reply::LlTable(gone)) = ctl.ioctl(req) {
                for e in gone {
                    let h = host(&e);
                    let _ = writeln!(out, "{h} ({h}) deleted");
                }
            }
            0
        }
        Some(('d', Some(host))) => {
            if !rest.is_empty() {
                return usage(err, USAGE);
            }
            let _ = out.write_all(header().as_bytes());
            let Some(a) = getaddr(&host, err) else {
                return 0;
            };
            let req = Request::DelLlEntry {
                addr: Some(IpAddr::V6(a)),
                v6: true,
                ifname: zone(&host),
            };
            if let Ok(Reply::LlTable(gone)) = ctl.ioctl(req) {
                for e in gone {
                    // do_foreach hands delete() host_buf before it is
                    // filled: NetBSD prints an empty name here.
                    let _ = writeln!(out, " ({}) deleted", self::host(&e));
                }
            }
            0
        }
        Some(_) => {
            let _ = writeln!(err, "ndp: only -a, -c, -d and a hostname are supported");
            1
        }
        None => {
            if rest.len() != 1 {
                return usage(err, USAGE);
            }
            let _ = out.write_all(header().as_bytes());
            let Some(a) = getaddr(&rest[0], err) else {
                return 0;
            };
            match foreach(ctl, out, err, Some((a, zone(&rest[0])))) {
                Err(()) => 1,
                Ok(true) => 0,
                Ok(false) => {
                    let _ = writeln!(err, "ndp: {} ({a}) -- no entry", rest[0]);
                    1
                }
            }
        }
    }
}

fn header() -> String {
    format!(
        "{:<W_ADDR$.W_ADDR$} {:<W_LL$.W_LL$} {:>W_IF$.W_IF$} {:<9.9} {:>1} {:>2}\n",
        "Neighbor", "Linklayer Address", "Netif", "Expire", "S", "Fl"
    )
}

/// getaddrinfo(AF_INET6), the address without its zone (see [`zone`]).
fn getaddr(host: &str, err: &mut dyn Write) -> Option<Ipv6Addr> {
    let bare = host.split('%').next().unwrap_or(host);
    if let Ok(a) = bare.parse() {
        return Some(a);
    }
    let found = (host, 0).to_socket_addrs().ok().and_then(|mut it| {
        it.find_map(|s| match s.ip() {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        })
    });
    if found.is_none() {
        let _ = writeln!(err, "ndp: {host}: No address associated with hostname");
    }
    found
}

/// The zone of `fe80::1%shmif0`: entries of that interface only.
fn zone(host: &str) -> Option<String> {
    host.split_once('%').map(|(_, z)| z.to_string())
}

fn host(e: &LlEntry) -> String {
    match e.addr {
        IpAddr::V6(a) => ntop6(a, &e.ifname),
        IpAddr::V4(a) => a.to_string(),
    }
}

/// sec2str: 1d2h3m4s, leading zero units left out.
fn sec2str(total: u32) -> String {
    let (d, h, m, s) = (
        total / 86400,
        (total / 3600) % 24,
        (total / 60) % 60,
        total % 60,
    );
    let mut r = String::new();
    let mut first = true;
    if d > 0 {
        first = false;
        r += &format!("{d}d");
    }
    if !first || h > 0 {
        first = false;
        r += &format!("{h}h");
    }
    if !first || m > 0 {
        r += &format!("{m}m");
    }
    r + &format!("{s}s")
}

/// Print the entries (of `addr` only, if given); whether any was.
fn foreach(
    ctl: &mut dyn Ioctl,
    out: &mut dyn Write,
    err: &mut dyn Write,
    addr: Option<(Ipv6Addr, Option<String>)>,
) -> Result<bool, ()> {
    let all = match ctl.ioctl(Request::GetLlTable) {
        Ok(Reply::LlTable(v)) => v,
        Ok(_) => Vec::new(),
        Err(e) => {
            let _ = writeln!(err, "ndp: sysctl(PF_ROUTE estimate): {e}");
            return Err(());
        }
    };
    let mut found = false;
    for e in all.iter().filter(|e| e.addr.is_ipv6()) {
        if let Some((a, zone)) = &addr
            && (IpAddr::V6(*a) != e.addr || zone.as_ref().is_some_and(|z| *z != e.ifname))
        {
            continue;
        }
        found = true;
        let h = host(e);
        let ll = ether_ntoa(&e.mac);
        let aw = h.len().max(W_ADDR);
        let lw = ll.len().max((W_ADDR + W_LL).saturating_sub(aw));
        let iw = e
            .ifname
            .len()
            .max((W_ADDR + W_LL + W_IF).saturating_sub(aw + lw));
        let expire = if e.expire > 0 {
            sec2str(e.expire)
        } else {
            "expired".into()
        };
        // Reachable (R) while the presence holds it; no router or proxy
        // flags: the printf(" %s", flags) leaves a blank.
        let _ = writeln!(out, "{h:<aw$} {ll:<lw$} {:>iw$} {expire:<9.9} R ", e.ifname);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sec2str() {
        assert_eq!(super::sec2str(23), "23s");
        assert_eq!(super::sec2str(60), "1m0s");
        assert_eq!(super::sec2str(3601), "1h0m1s");
        assert_eq!(super::sec2str(86400), "1d0h0m0s");
    }
}
