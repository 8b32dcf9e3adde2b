//! ifmcstat(8): the multicast groups of each interface, in NetBSD's
//! layout (usr.sbin/ifmcstat/ifmcstat.c, the sysctl one): per interface
//! its inet6 addresses with the groups each joined and their reference
//! counts, then on Ethernet the link address and the link-level multicast
//! addresses the groups take. Like NetBSD's, it takes no options.

use super::{interfaces, memberships, ntop6};
use crate::ioctl::{Ioctl, Mac};
use std::io::Write;

pub fn main_with(
    _args: &[String],
    ctl: &mut dyn Ioctl,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let ifs = match interfaces(ctl) {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(err, "ifmcstat: failed to obtain list of interfaces: {e}");
            return 1;
        }
    };
    let mut s = String::new();
    for i in &ifs {
        s += &format!("{}:\n", i.name);
        let m = memberships(i);
        for (a, groups) in m.inet6.iter().filter(|(_, g)| !g.is_empty()) {
            s += &format!("\tinet6 {}\n", ntop6(*a, &i.name));
            for (g, n) in groups {
                s += &format!("\t\tgroup {} refcount {n}\n", ntop6(*g, &i.name));
            }
        }
        if let Some(mac) = i.lladdr {
            s += &format!("\tenaddr {} multicnt {}\n", hwaddr(&mac), m.ether.len());
            for (g, n) in &m.ether {
                s += &format!("\t\t{} -- {} {n}\n", hwaddr(g), hwaddr(g));
            }
        }
    }
    let _ = out.write_all(s.as_bytes());
    0
}

/// print_hwaddr: every byte is followed by a colon, the last one too
/// (its `len-- == 0` is never true inside the loop).
fn hwaddr(m: &Mac) -> String {
    m.iter().map(|b| format!("{b:02x}:")).collect()
}
