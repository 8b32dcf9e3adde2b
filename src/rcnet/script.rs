//! The configuration of a kernel as the `ifconfig` and `brconfig` lines
//! that make it again in a fresh one: interfaces in index order (create,
//! linkstr, link addresses, MTU, metric, description, flags, capabilities,
//! media, addresses, up), then each bridge's parameters, members with
//! their flags and static entries, then the forwarding knobs that are on
//! and the static routes (`sysctl` and `route` lines).

use super::STATE_END;
use super::words::quote;
use crate::ioctl::{
    BridgeReq, Errno, INFINITE_LIFETIME, IfStatus, Ioctl, LinkStatus, Reply, Request, RouteReq,
    VxlanConfig, ifbif, iff, in6_iff, rtf,
};
use std::fmt::Write;

/// The capability keywords of ifconfig, by bit.
const CAP_WORDS: &[(u32, &str)] = &[
    (0x80, "tso4"),
    (0x100, "ip4csum-rx"),
    (0x200, "ip4csum-tx"),
    (0x400, "tcp4csum-rx"),
    (0x800, "tcp4csum-tx"),
    (0x1000, "udp4csum-rx"),
    (0x2000, "udp4csum-tx"),
    (0x4000, "tcp6csum-rx"),
    (0x8000, "tcp6csum-tx"),
    (0x10000, "udp6csum-rx"),
    (0x20000, "udp6csum-tx"),
    (0x40000, "tso6"),
];

/// Interface flags ifconfig sets by keyword, beside UP.
const FLAG_WORDS: &[(u32, &str, &str)] = &[
    (iff::DEBUG, "debug", "-debug"),
    (iff::LINK0, "link0", "-link0"),
    (iff::LINK1, "link1", "-link1"),
    (iff::LINK2, "link2", "-link2"),
];

/// Bridge member flags and their brconfig keywords.
const MEMBER_WORDS: &[(u32, &str)] = &[
    (ifbif::LEARNING, "learn"),
    (ifbif::DISCOVER, "discover"),
    (ifbif::STP, "stp"),
    (ifbif::PROTECTED, "protect"),
];

/// The whole configuration of the kernel behind `ctl` as a script, ending
/// with [`STATE_END`].
pub fn script(ctl: &mut dyn Ioctl) -> Result<String, Errno> {
    let list = match ctl.ioctl(Request::GetIfConf { name: None })? {
        Reply::IfConf(l) => l,
        _ => return Err(Errno::EIO),
    };
    let mut s = String::from("# ifnetd state: the configuration as ifconfig and brconfig lines\n");
    for ifs in &list {
        interface(&mut s, ifs);
    }
    for ifs in list.iter().filter(|i| super::of_class(&i.name, "bridge")) {
        let b = match ctl.ioctl(Request::GetDrvSpec {
            name: ifs.name.clone(),
            req: BridgeReq::Get.into(),
        })? {
            Reply::Bridge(b) => b,
            _ => return Err(Errno::EIO),
        };
        bridge(&mut s, ifs, &list, &b);
    }
    routing(&mut s, ctl)?;
    s.push_str(STATE_END);
    s.push('\n');
    Ok(s)
}

/// A vxlan's configuration as ifconfig keywords (set while down, so
/// before the flags line).
fn vxlan_words(c: &VxlanConfig) -> String {
    let mut w = Vec::new();
    if let Some(vni) = c.vni {
        w.push(format!("vxlanid {vni}"));
    }
    if !c.local.ip().is_unspecified() {
        w.push(format!("vxlanlocal {}", c.local.ip()));
    }
    w.push(format!("vxlanlocalport {}", c.local.port()));
    if !c.remote.ip().is_unspecified() {
        let kw = if c.remote.ip().is_multicast() {
            "vxlangroup"
        } else {
            "vxlanremote"
        };
        w.push(format!("{kw} {}", c.remote.ip()));
    }
    w.push(format!("vxlanremoteport {}", c.remote.port()));
    // The default range ends at 65535, which the keyword refuses (as
    // FreeBSD's): a range ending there can only be the default.
    if c.port_max < u16::MAX {
        w.push(format!("vxlanportrange {} {}", c.port_min, c.port_max));
    }
    w.push(format!("vxlantimeout {}", c.ftable_timeout));
    w.push(format!("vxlanmaxaddr {}", c.ftable_max));
    if let Some(d) = &c.dev {
        w.push(format!("vxlandev {}", quote(d)));
    }
    w.push(format!("vxlanttl {}", c.ttl));
    w.push(if c.learn { "vxlanlearn" } else { "-vxlanlearn" }.into());
    w.join(" ")
}

/// The forwarding knobs that are on, then the static routes, as the
/// sysctl and route lines that make them again (after the interfaces
/// their gateways are on).
fn routing(s: &mut String, ctl: &mut dyn Ioctl) -> Result<(), Errno> {
    if let Reply::Knobs(k) = ctl.ioctl(Request::GetKnobs)? {
        for (on, name) in [
            (k.ip_forwarding, "net.inet.ip.forwarding"),
            (k.ip6_forwarding, "net.inet6.ip6.forwarding"),
        ] {
            if on {
                s.push_str(&format!("sysctl -qw {name}=1\n"));
            }
        }
    }
    let routes = match ctl.ioctl(Request::Route(RouteReq::Dump))? {
        Reply::Routes(v) => v,
        _ => return Err(Errno::EIO),
    };
    for r in routes.iter().filter(|r| r.flags & rtf::STATIC != 0) {
        let mut l = String::from("route -q add");
        if r.dst.is_ipv6() {
            l += " -inet6";
        }
        let full = if r.dst.is_ipv6() { 128 } else { 32 };
        l += &if r.prefix == full {
            format!(" -host {}", r.dst)
        } else {
            format!(" -net {}/{}", r.dst, r.prefix)
        };
        match r.gateway {
            Some(g) => l += &format!(" {g}"),
            None => l += &format!(" {}", quote(r.ifname.as_deref().unwrap_or("lo0"))),
        }
        if r.flags & rtf::GATEWAY == 0 {
            l += " -interface";
        }
        for (bit, word) in [(rtf::REJECT, " -reject"), (rtf::BLACKHOLE, " -blackhole")] {
            if r.flags & bit != 0 {
                l += word;
            }
        }
        if let Some(i) = &r.ifname
            && r.gateway.is_some()
        {
            l += &format!(" -ifp {}", quote(i));
        }
        if r.mtu != 0 {
            l += &format!(" -mtu {}", r.mtu);
        }
        s.push_str(&l);
        s.push('\n');
    }
    Ok(())
}

/// Addresses the kernel gives an interface by itself.
fn automatic_inet6(ifs: &IfStatus, a: &crate::ioctl::In6Addr) -> bool {
    let link_local = a.addr.segments()[0] & 0xffc0 == 0xfe80;
    link_local || (ifs.flags & iff::LOOPBACK != 0 && a.addr.is_loopback())
}

fn interface(s: &mut String, ifs: &IfStatus) {
    let n = quote(&ifs.name);
    let mut line = |words: &str| {
        let _ = writeln!(s, "ifconfig {n} {words}");
    };
    if ifs.name != "lo0" {
        line("create");
    }
    // A tap's linkstr names the control socket its driver made beside the
    // daemon's: shown, never set.
    if let Some(l) = ifs
        .linkstr
        .as_ref()
        .filter(|_| !super::of_class(&ifs.name, "tap"))
    {
        line(&format!("linkstr {}", quote(l)));
    }
    if let Some(LinkStatus::Vxlan(c)) = &ifs.link {
        line(&vxlan_words(c));
    }
    for mac in &ifs.lladdrs {
        if Some(*mac) != ifs.lladdr {
            line(&format!("link {}", mac_ntoa(mac)));
        }
    }
    if let Some(mac) = ifs.lladdr {
        line(&format!("link {} active", mac_ntoa(&mac)));
    }
    let mut w = vec![format!("mtu {}", ifs.mtu)];
    if ifs.metric != 0 {
        w.push(format!("metric {}", ifs.metric));
    }
    if let Some(q) = ifs.txqueue {
        w.push(format!("txqueue {q}"));
    }
    for (bit, on, off) in FLAG_WORDS {
        w.push(if ifs.flags & bit != 0 { on } else { off }.to_string());
    }
    w.push(
        if ifs.flags & iff::NOARP != 0 {
            "-arp"
        } else {
            "arp"
        }
        .into(),
    );
    line(&w.join(" "));
    if let Some(d) = &ifs.description {
        line(&format!("description {}", quote(d)));
    }
    if let Some((caps, enabled)) = ifs.capabilities.filter(|(c, _)| *c != 0) {
        let words: Vec<String> = CAP_WORDS
            .iter()
            .filter(|(b, _)| caps & b != 0)
            .map(|(b, w)| {
                if enabled & b != 0 {
                    w.to_string()
                } else {
                    format!("-{w}")
                }
            })
            .collect();
        if !words.is_empty() {
            line(&words.join(" "));
        }
    }
    if let Some(m) = &ifs.media {
        let mut parts = m.current.split(' ').skip(1);
        if let Some(sub) = parts.next().filter(|s| *s != "autoselect") {
            let opts: Vec<&str> = parts.collect();
            if opts.is_empty() {
                line(&format!("media {}", quote(sub)));
            } else {
                line(&format!(
                    "media {} mediaopt {}",
                    quote(sub),
                    quote(&opts.join(","))
                ));
            }
        }
    }
    for a in &ifs.inet {
        if ifs.name == "lo0" && a.addr == std::net::Ipv4Addr::LOCALHOST {
            continue;
        }
        let mut l = format!("inet {}", a.addr);
        if ifs.flags & iff::POINTOPOINT != 0
            && let Some(d) = a.dst
        {
            let _ = write!(l, " {d}");
        }
        let _ = write!(l, " netmask {}", a.mask);
        if ifs.flags & iff::BROADCAST != 0
            && let Some(b) = a.broadcast
        {
            let _ = write!(l, " broadcast {b}");
        }
        l.push_str(" alias");
        line(&l);
    }
    for a in ifs.inet6.iter().filter(|a| !automatic_inet6(ifs, a)) {
        let mut l = format!("inet6 {}", a.addr);
        if ifs.flags & iff::POINTOPOINT != 0
            && let Some(d) = a.dst
        {
            let _ = write!(l, " {d}");
        }
        let _ = write!(l, " prefixlen {}", a.prefixlen);
        if a.flags & in6_iff::ANYCAST != 0 {
            l.push_str(" anycast");
        }
        if a.flags & in6_iff::DEPRECATED != 0 {
            l.push_str(" deprecated");
        }
        if a.pltime != INFINITE_LIFETIME {
            let _ = write!(l, " pltime {}", a.pltime);
        }
        if a.vltime != INFINITE_LIFETIME {
            let _ = write!(l, " vltime {}", a.vltime);
        }
        l.push_str(" alias");
        line(&l);
    }
    // Last, and down too: an address brings an interface up by itself.
    line(if ifs.flags & iff::UP != 0 {
        "up"
    } else {
        "down"
    });
}

pub(super) fn mac_ntoa(m: &crate::ioctl::Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A bridge takes a member only of its own MTU, but either may change
/// later: each member is added with the bridge at the member's MTU, and the
/// bridge's own is set last.
fn bridge(s: &mut String, ifs: &IfStatus, all: &[IfStatus], b: &crate::ioctl::BridgeStatus) {
    let n = quote(&ifs.name);
    let _ = writeln!(
        s,
        "brconfig {n} priority {} hellotime {} fwddelay {} maxage {} maxaddr {} timeout {} {}",
        b.priority,
        b.hello_time,
        b.fwd_delay,
        b.max_age,
        b.max_cache,
        b.timeout,
        if b.filter { "ipf" } else { "-ipf" }
    );
    // Newest first in the status: add the oldest first, so that port
    // numbers and order come back the same.
    for m in b.members.iter().rev() {
        let mn = quote(&m.name);
        if let Some(mtu) = all.iter().find(|i| i.name == m.name).map(|i| i.mtu) {
            let _ = writeln!(s, "ifconfig {n} mtu {mtu}");
        }
        let mut l = format!("brconfig {n} add {mn}");
        for (bit, w) in MEMBER_WORDS {
            let neg = if m.flags & bit != 0 { "" } else { "-" };
            let _ = write!(l, " {neg}{w} {mn}");
        }
        let _ = write!(
            l,
            " ifpriority {mn} {} ifpathcost {mn} {}",
            m.priority, m.path_cost
        );
        let _ = writeln!(s, "{l}");
    }
    if !b.members.is_empty() {
        let _ = writeln!(s, "ifconfig {n} mtu {}", ifs.mtu);
    }
    for r in b.routes.iter().rev().filter(|r| r.flags & 1 != 0) {
        let _ = writeln!(
            s,
            "brconfig {n} static {} {}",
            quote(&r.member),
            mac_ntoa(&r.mac)
        );
    }
}
