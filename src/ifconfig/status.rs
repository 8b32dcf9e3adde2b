//! The status block of one interface, line for line as NetBSD 10 prints
//! it: flags, capabilities, Ethernet capabilities, description, link
//! address, linkstr, link state, media, counters, then the addresses of
//! each family (inet, inet6, then inactive link addresses).

use super::parse::Family;
use crate::ioctl::{
    INFINITE_LIFETIME, IfData, IfMedia, IfStatus, In6Addr, InAddr, LinkState, iff, in_iff, in6_iff,
};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

/// Where snprintb_m wraps the capabilities (ifconfig.c MAX_PRINT_LEN).
const CAP_PRINT_LEN: usize = 58;
/// And the Ethernet capabilities (ether.c MAX_PRINT_LEN).
const EC_PRINT_LEN: usize = 55;

/// IFCAPBITS
const IFCAP_BITS: &[(u32, &str)] = &[
    (0x80, "TSO4"),
    (0x100, "IP4CSUM_Rx"),
    (0x200, "IP4CSUM_Tx"),
    (0x400, "TCP4CSUM_Rx"),
    (0x800, "TCP4CSUM_Tx"),
    (0x1000, "UDP4CSUM_Rx"),
    (0x2000, "UDP4CSUM_Tx"),
    (0x4000, "TCP6CSUM_Rx"),
    (0x8000, "TCP6CSUM_Tx"),
    (0x10000, "UDP6CSUM_Rx"),
    (0x20000, "UDP6CSUM_Tx"),
    (0x40000, "TSO6"),
    (0x80000, "LRO"),
];

/// ECCAPBITS
const ECCAP_BITS: &[(u32, &str)] = &[
    (0x1, "VLAN_MTU"),
    (0x2, "VLAN_HWTAGGING"),
    (0x4, "JUMBO_MTU"),
    (0x8, "EEE"),
];

/// A bit-name table from one of the `NAMES` arrays (bit i is 1 << i).
fn bits(names: &'static [&'static str]) -> impl Iterator<Item = (u32, &'static str)> {
    names.iter().enumerate().map(|(i, n)| (1u32 << i, *n))
}

/// snprintb(3): `0x8843<UP,BROADCAST,…>`, or `0x0`.
pub fn snprintb(val: u32, table: impl IntoIterator<Item = (u32, &'static str)>) -> String {
    let names: Vec<&str> = table
        .into_iter()
        .filter(|(b, _)| val & b != 0)
        .map(|(_, n)| n)
        .collect();
    if names.is_empty() {
        format!("{val:#x}")
    } else {
        format!("{val:#x}<{}>", names.join(","))
    }
}

/// snprintb_m(3): like snprintb, but broken into lines of at most `max`
/// characters, each repeating the value.
pub fn snprintb_m(val: u32, table: &[(u32, &'static str)], max: usize) -> Vec<String> {
    let base = format!("{val:#x}");
    let names: Vec<&str> = table
        .iter()
        .filter(|(b, _)| val & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        return vec![base];
    }
    let mut lines = Vec::new();
    let mut line = format!("{base}<");
    let mut fields = 0;
    for n in names {
        let sep = if fields == 0 { "" } else { "," };
        // A field fits if the line, before its closing '>', stays under max.
        if fields > 0 && line.len() + sep.len() + n.len() > max - 1 {
            line.push('>');
            lines.push(std::mem::replace(&mut line, format!("{base}<{n}")));
            fields = 1;
            continue;
        }
        line.push_str(sep);
        line.push_str(n);
        fields += 1;
    }
    line.push('>');
    lines.push(line);
    lines
}

/// `b2:a0:75:3e:19:0c`
pub fn mac_ntoa(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// in_prefixlen: the length of a contiguous mask, None otherwise.
pub fn in_prefixlen(mask: Ipv4Addr) -> Option<u32> {
    let m = u32::from(mask);
    if m == 0 {
        return Some(0);
    }
    let len = 32 - m.trailing_zeros();
    (m == u32::MAX << (32 - len)).then_some(len)
}

/// humanize_number(3) into 5 bytes with HN_AUTOSCALE | HN_NOSPACE |
/// HN_DECIMAL, as print_human_bytes asks for.
pub fn humanize(n: u64) -> String {
    const PREFIXES: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    // Hundredths, so rounding works in integers.
    let mut v = n as i128 * 100;
    let mut i = 0;
    // Room for 3 digits plus the prefix: divide until below 1000.
    while v >= 100_000 - 50 && i < PREFIXES.len() - 1 {
        v /= 1024;
        i += 1;
    }
    if v < 995 && i > 0 {
        let b = (v + 5) / 10;
        format!("{}.{}{}", b / 10, b % 10, PREFIXES[i])
    } else {
        format!("{}{}", (v + 50) / 100, PREFIXES[i])
    }
}

fn plural(n: u64, unit: &str) -> String {
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn bytes(n: u64, human: bool) -> String {
    if human {
        let h = humanize(n);
        // As print_human_bytes: "1.0K byte" is singular, like NetBSD.
        let one = h
            .trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .parse::<f64>()
            == Ok(1.0);
        format!("{h} byte{}", if one { "" } else { "s" })
    } else {
        plural(n, "byte")
    }
}

/// What the caller asked to see.
#[derive(Clone, Copy, Debug, Default)]
pub struct Show {
    pub family: Option<Family>,
    pub verbose: bool,
    pub human: bool,
    pub lifetimes: bool,
    pub media_list: bool,
    /// -N: host names instead of numbers where the resolver has them.
    pub resolve: bool,
}

/// getnameinfo(3) with NI_NAMEREQD: the name of `addr`, if it has one.
fn host_name(addr: IpAddr) -> Option<String> {
    use nix::sys::socket::{SockaddrIn, SockaddrIn6, SockaddrLike};
    let (v4, v6);
    let sa: &dyn SockaddrLike = match addr {
        IpAddr::V4(a) => {
            v4 = SockaddrIn::from(SocketAddrV4::new(a, 0));
            &v4
        }
        IpAddr::V6(a) => {
            v6 = SockaddrIn6::from(SocketAddrV6::new(a, 0, 0, 0));
            &v6
        }
    };
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: `sa` points at a sockaddr of `sa.len()` bytes and `host` is
    // writable for its whole length; no service is asked for.
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr(),
            sa.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success getnameinfo leaves a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// An address as getnameinfo prints it: numeric unless -N finds a name.
fn host(addr: impl Into<IpAddr>, resolve: bool) -> String {
    let addr = addr.into();
    let name = if resolve { host_name(addr) } else { None };
    name.unwrap_or_else(|| addr.to_string())
}

/// The whole status block of `ifs`. `data` is the counters to print (the
/// ones SIOCZIFDATA returned with -z), shown when present.
pub fn status(ifs: &IfStatus, data: Option<&IfData>, show: &Show) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "{}: flags={}",
        ifs.name,
        snprintb(ifs.flags, bits(&iff::NAMES))
    );
    if ifs.metric != 0 {
        let _ = write!(o, " metric {}", ifs.metric as i32);
    }
    if ifs.mtu != 0 {
        let _ = write!(o, " mtu {}", ifs.mtu);
    }
    o.push('\n');
    if let Some((caps, enabled)) = ifs.capabilities.filter(|(c, _)| *c != 0) {
        for l in snprintb_m(caps, IFCAP_BITS, CAP_PRINT_LEN) {
            let _ = writeln!(o, "\tcapabilities={}", &l[2..]);
        }
        for l in snprintb_m(enabled, IFCAP_BITS, CAP_PRINT_LEN) {
            let _ = writeln!(o, "\tenabled={}", &l[2..]);
        }
    }
    if let Some((caps, enabled)) = ifs.ec_capabilities.filter(|(c, _)| *c != 0) {
        for l in snprintb_m(caps, ECCAP_BITS, EC_PRINT_LEN) {
            let _ = writeln!(o, "\tec_capabilities={}", &l[2..]);
        }
        for l in snprintb_m(enabled, ECCAP_BITS, EC_PRINT_LEN) {
            let _ = writeln!(o, "\tec_enabled={}", &l[2..]);
        }
    }
    if let Some(d) = &ifs.description {
        let _ = writeln!(o, "\tdescription: \"{d}\"");
    }
    if let Some(mac) = ifs.lladdr {
        let _ = writeln!(o, "\taddress: {}", mac_ntoa(&mac));
    }
    if let Some(l) = &ifs.linkstr {
        let _ = writeln!(o, "\tlinkstr: {l}");
    }
    super::vxlan::status(&mut o, ifs.link.as_ref(), show.verbose);
    if show.verbose {
        let state = match ifs.link_state {
            LinkState::Up => "up",
            LinkState::Down => "down",
            LinkState::Unknown => "unknown",
        };
        let _ = writeln!(o, "\tlinkstate: {state}");
        if let Some(q) = ifs.txqueue {
            let _ = writeln!(o, "\ttxqueue: {q} bytes");
        }
    }
    if let Some(m) = &ifs.media {
        media(&mut o, m, show.media_list);
    }
    if let Some(d) = data {
        counters(&mut o, d, show.human);
    }
    let want = |f: Family| show.family.is_none_or(|s| s == f);
    if want(Family::Inet) {
        for a in &ifs.inet {
            inet_line(&mut o, a, ifs.flags, show.resolve);
        }
    }
    if want(Family::Inet6) {
        for a in &ifs.inet6 {
            inet6_line(&mut o, a, ifs, show);
        }
    }
    if want(Family::Link) {
        for mac in ifs.lladdrs.iter().filter(|m| Some(**m) != ifs.lladdr) {
            let _ = writeln!(o, "\tlink {}", mac_ntoa(mac));
        }
    }
    o
}

/// The same block as [`status`], as one JSON object (see ifconfig(8),
/// OUTPUT FORMATS): every field the text shows, typed.
pub fn status_json(ifs: &IfStatus, data: Option<&IfData>, show: &Show) -> serde_json::Value {
    use crate::libxo::flags;
    use serde_json::{Value, json};
    let mut o = serde_json::Map::new();
    o.insert("name".into(), json!(ifs.name));
    o.insert("index".into(), json!(ifs.index));
    o.insert("flags".into(), flags(ifs.flags, bits(&iff::NAMES)));
    o.insert("metric".into(), json!(ifs.metric as i32));
    o.insert("mtu".into(), json!(ifs.mtu));
    let caps = |(c, e): (u32, u32), table: &[(u32, &'static str)]| {
        json!({
            "supported": flags(c, table.iter().copied()),
            "enabled": flags(e, table.iter().copied()),
        })
    };
    if let Some(c) = ifs.capabilities.filter(|(c, _)| *c != 0) {
        o.insert("capabilities".into(), caps(c, IFCAP_BITS));
    }
    if let Some(c) = ifs.ec_capabilities.filter(|(c, _)| *c != 0) {
        o.insert("ec_capabilities".into(), caps(c, ECCAP_BITS));
    }
    if let Some(d) = &ifs.description {
        o.insert("description".into(), json!(d));
    }
    if let Some(mac) = ifs.lladdr {
        o.insert("address".into(), json!(mac_ntoa(&mac)));
    }
    if let Some(l) = &ifs.linkstr {
        o.insert("linkstr".into(), json!(l));
    }
    if let Some(q) = ifs.txqueue {
        o.insert("txqueue".into(), json!(q));
    }
    if let Some(crate::ioctl::LinkStatus::Vxlan(c)) = &ifs.link {
        o.insert(
            "vxlan".into(),
            json!({
                "vni": c.vni,
                "local": c.local.ip().to_string(),
                "local_port": c.local.port(),
                "remote": c.remote.ip().to_string(),
                "remote_port": c.remote.port(),
                "multicast": c.remote.ip().is_multicast(),
                "dev": c.dev,
                "port_range": [c.port_min, c.port_max],
                "timeout": c.ftable_timeout,
                "maxaddr": c.ftable_max,
                "ftable": c.ftable_cnt,
                "ttl": c.ttl,
                "learn": c.learn,
            }),
        );
    }
    let state = match ifs.link_state {
        LinkState::Up => "up",
        LinkState::Down => "down",
        LinkState::Unknown => "unknown",
    };
    o.insert("link_state".into(), json!(state));
    if let Some(m) = &ifs.media {
        let status = match m.active {
            None => Value::Null,
            Some(a) => json!(media_status(media_type(&m.current), a)),
        };
        o.insert(
            "media".into(),
            json!({ "current": m.current, "status": status, "supported": m.supported }),
        );
    }
    if let Some(d) = data {
        o.insert(
            "input".into(),
            json!({
                "packets": d.ipackets, "bytes": d.ibytes, "multicasts": d.imcasts,
                "errors": d.ierrors, "queue_drops": d.iqdrops, "unknown_protocol": d.noproto,
            }),
        );
        o.insert(
            "output".into(),
            json!({
                "packets": d.opackets, "bytes": d.obytes, "multicasts": d.omcasts,
                "errors": d.oerrors, "collisions": d.collisions,
            }),
        );
    }
    let want = |f: Family| show.family.is_none_or(|s| s == f);
    let name_of = |a: IpAddr| {
        if show.resolve {
            host_name(a).map_or(Value::Null, Value::String)
        } else {
            Value::Null
        }
    };
    if want(Family::Inet) {
        let v: Vec<Value> = ifs
            .inet
            .iter()
            .map(|a| {
                let mut e = json!({
                    "address": a.addr.to_string(),
                    "prefixlen": in_prefixlen(a.mask),
                    "netmask": a.mask.to_string(),
                    "flags": flags(a.flags, bits(&in_iff::NAMES)),
                });
                if ifs.flags & iff::BROADCAST != 0 {
                    e["broadcast"] =
                        json!(a.broadcast.unwrap_or(Ipv4Addr::UNSPECIFIED).to_string());
                }
                if ifs.flags & iff::POINTOPOINT != 0 {
                    e["destination"] = json!(a.dst.unwrap_or(Ipv4Addr::UNSPECIFIED).to_string());
                }
                if show.resolve {
                    e["hostname"] = name_of(a.addr.into());
                }
                e
            })
            .collect();
        o.insert("inet".into(), Value::Array(v));
    }
    if want(Family::Inet6) {
        let v: Vec<Value> = ifs
            .inet6
            .iter()
            .map(|a| {
                let zone = match a.scopeid {
                    0 => Value::Null,
                    s if s == ifs.index => json!(ifs.name),
                    s => json!(s.to_string()),
                };
                let mut e = json!({
                    "address": a.addr.to_string(),
                    "zone": zone,
                    "prefixlen": a.prefixlen,
                    "flags": flags(a.flags, bits(&in6_iff::NAMES)),
                    "scopeid": a.scopeid,
                    "pltime": lifetime(a.pltime),
                    "vltime": lifetime(a.vltime),
                });
                if ifs.flags & iff::POINTOPOINT != 0 {
                    e["destination"] = json!(a.dst.unwrap_or(Ipv6Addr::UNSPECIFIED).to_string());
                }
                if show.resolve && a.scopeid == 0 {
                    e["hostname"] = name_of(a.addr.into());
                }
                e
            })
            .collect();
        o.insert("inet6".into(), Value::Array(v));
    }
    if want(Family::Link) {
        let v: Vec<String> = ifs
            .lladdrs
            .iter()
            .filter(|m| Some(**m) != ifs.lladdr)
            .map(|m| mac_ntoa(m))
            .collect();
        o.insert("link".into(), json!(v));
    }
    Value::Object(o)
}

/// A lifetime in seconds, `null` when infinite.
fn lifetime(v: u32) -> serde_json::Value {
    if v == INFINITE_LIFETIME {
        serde_json::Value::Null
    } else {
        v.into()
    }
}

/// IFM_STATUS_DESCRIPTIONS: wireless says it differently.
fn media_status(ty: &str, active: bool) -> &'static str {
    match (ty, active) {
        ("IEEE802.11", true) => "associated",
        ("IEEE802.11", false) => "no network",
        (_, true) => "active",
        (_, false) => "no carrier",
    }
}

/// The media type word of a media string ("Ethernet autoselect").
pub fn media_type(current: &str) -> &str {
    current.split(' ').next().unwrap_or("")
}

fn media(o: &mut String, m: &IfMedia, list: bool) {
    let ty = media_type(&m.current);
    let _ = writeln!(o, "\tmedia: {}", m.current);
    if let Some(active) = m.active {
        let _ = writeln!(o, "\tstatus: {}", media_status(ty, active));
    }
    if list && !m.supported.is_empty() {
        let _ = writeln!(o, "\tsupported {ty} media:");
        for s in &m.supported {
            let word = s.strip_prefix(ty).map(str::trim_start).unwrap_or(s);
            let (sub, opts) = word.split_once(' ').unwrap_or((word, ""));
            if opts.is_empty() {
                let _ = writeln!(o, "\t\tmedia {sub}");
            } else {
                let _ = writeln!(o, "\t\tmedia {sub} mediaopt {opts}");
            }
        }
    }
}

fn counters(o: &mut String, d: &IfData, human: bool) {
    let _ = write!(
        o,
        "\tinput: {}, {}",
        plural(d.ipackets, "packet"),
        bytes(d.ibytes, human)
    );
    if d.imcasts != 0 {
        let _ = write!(o, ", {}", plural(d.imcasts, "multicast"));
    }
    if d.ierrors != 0 {
        let _ = write!(o, ", {}", plural(d.ierrors, "error"));
    }
    if d.iqdrops != 0 {
        let _ = write!(o, ", {}", plural(d.iqdrops, "queue drop"));
    }
    if d.noproto != 0 {
        let _ = write!(o, ", {} unknown protocol", d.noproto);
    }
    let _ = write!(
        o,
        "\n\toutput: {}, {}",
        plural(d.opackets, "packet"),
        bytes(d.obytes, human)
    );
    if d.omcasts != 0 {
        let _ = write!(o, ", {}", plural(d.omcasts, "multicast"));
    }
    if d.oerrors != 0 {
        let _ = write!(o, ", {}", plural(d.oerrors, "error"));
    }
    if d.collisions != 0 {
        let _ = write!(o, ", {}", plural(d.collisions, "collision"));
    }
    o.push('\n');
}

fn inet_line(o: &mut String, a: &InAddr, flags: u32, resolve: bool) {
    let _ = write!(o, "\tinet {}", host(a.addr, resolve));
    let plen = in_prefixlen(a.mask);
    if let Some(l) = plen {
        let _ = write!(o, "/{l}");
    }
    if flags & iff::POINTOPOINT != 0 {
        let _ = write!(
            o,
            " -> {}",
            host(a.dst.unwrap_or(Ipv4Addr::UNSPECIFIED), resolve)
        );
    }
    if plen.is_none() {
        let _ = write!(o, " netmask {:#x}", u32::from(a.mask));
    }
    if flags & iff::BROADCAST != 0 {
        let _ = write!(
            o,
            " broadcast {}",
            host(a.broadcast.unwrap_or(Ipv4Addr::UNSPECIFIED), resolve)
        );
    }
    let _ = writeln!(o, " flags {}", snprintb(a.flags, bits(&in_iff::NAMES)));
}

fn inet6_line(o: &mut String, a: &In6Addr, ifs: &IfStatus, show: &Show) {
    // A scoped address stays numeric: the host resolver knows other zones.
    let resolve = show.resolve && a.scopeid == 0;
    let _ = write!(o, "\tinet6 {}", host(a.addr, resolve));
    if a.scopeid != 0 {
        // getnameinfo names the zone by its interface.
        if a.scopeid == ifs.index {
            let _ = write!(o, "%{}", ifs.name);
        } else {
            let _ = write!(o, "%{}", a.scopeid);
        }
    }
    let _ = write!(o, "/{}", a.prefixlen);
    if ifs.flags & iff::POINTOPOINT != 0 {
        let _ = write!(
            o,
            " -> {}",
            host(a.dst.unwrap_or(Ipv6Addr::UNSPECIFIED), resolve)
        );
    }
    let _ = write!(o, " flags {}", snprintb(a.flags, bits(&in6_iff::NAMES)));
    if a.scopeid != 0 {
        let _ = write!(o, " scopeid {:#x}", a.scopeid);
    }
    // Lifetimes only when one of them is finite, as af_inet6.c.
    if show.lifetimes && (a.pltime != INFINITE_LIFETIME || a.vltime != INFINITE_LIFETIME) {
        let t = |v: u32| {
            if v == INFINITE_LIFETIME {
                "infty".to_string()
            } else {
                v.to_string()
            }
        };
        let _ = write!(o, " pltime {} vltime {}", t(a.pltime), t(a.vltime));
    }
    o.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_words() {
        assert_eq!(
            snprintb(0x8049, bits(&iff::NAMES)),
            "0x8049<UP,LOOPBACK,RUNNING,MULTICAST>"
        );
        assert_eq!(snprintb(0, bits(&in6_iff::NAMES)), "0x0");
        assert_eq!(snprintb(0x20, bits(&in6_iff::NAMES)), "0x20<NODAD>");
    }

    #[test]
    fn wrapped_capabilities() {
        let lines = snprintb_m(0x7ff80, IFCAP_BITS, CAP_PRINT_LEN);
        assert!(lines.len() > 1, "{lines:?}");
        for l in &lines {
            assert!(l.len() <= CAP_PRINT_LEN, "{l}");
            assert!(l.starts_with("0x7ff80<") && l.ends_with('>'), "{l}");
        }
        let all: Vec<&str> = lines
            .iter()
            .flat_map(|l| l["0x7ff80<".len()..l.len() - 1].split(','))
            .collect();
        assert_eq!(all.len(), 12);
        assert_eq!(snprintb_m(0, IFCAP_BITS, CAP_PRINT_LEN), vec!["0x0"]);
    }

    #[test]
    fn prefix_lengths() {
        assert_eq!(in_prefixlen(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(in_prefixlen(Ipv4Addr::new(255, 0, 0, 0)), Some(8));
        assert_eq!(in_prefixlen(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(in_prefixlen(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(in_prefixlen(Ipv4Addr::new(255, 0, 255, 0)), None);
    }

    #[test]
    fn human_numbers() {
        assert_eq!(humanize(0), "0");
        assert_eq!(humanize(999), "999");
        assert_eq!(humanize(1000), "1.0K");
        assert_eq!(humanize(1500), "1.5K");
        assert_eq!(humanize(123_456), "121K");
        assert_eq!(humanize(5 * 1024 * 1024), "5.0M");
        assert_eq!(bytes(1, true), "1 byte");
        assert_eq!(bytes(1024, true), "1.0K byte");
        assert_eq!(bytes(2048, false), "2048 bytes");
    }
}

#[cfg(test)]
mod block_tests {
    use super::*;
    use crate::ioctl::{IfStatus, In6Addr, InAddr};

    fn p2p() -> IfStatus {
        IfStatus {
            name: "tun0".into(),
            index: 3,
            flags: iff::UP | iff::POINTOPOINT | iff::RUNNING | iff::MULTICAST,
            mtu: 1280,
            metric: 0,
            capabilities: None,
            ec_capabilities: None,
            description: None,
            lladdr: None,
            lladdrs: Vec::new(),
            linkstr: None,
            txqueue: None,
            link_state: LinkState::Up,
            media: None,
            data: IfData::default(),
            inet: vec![InAddr {
                addr: Ipv4Addr::new(10, 9, 0, 1),
                mask: Ipv4Addr::new(255, 255, 0, 255),
                broadcast: None,
                dst: Some(Ipv4Addr::new(10, 9, 0, 2)),
                flags: in_iff::TENTATIVE,
            }],
            link: None,
            inet6: vec![In6Addr {
                addr: "fc00::1".parse().unwrap(),
                prefixlen: 128,
                dst: Some("fc00::2".parse().unwrap()),
                flags: in6_iff::DEPRECATED | in6_iff::AUTOCONF,
                pltime: 0,
                vltime: INFINITE_LIFETIME,
                scopeid: 0,
            }],
        }
    }

    #[test]
    fn point_to_point() {
        let show = Show {
            lifetimes: true,
            ..Show::default()
        };
        assert_eq!(
            status(&p2p(), None, &show),
            "tun0: flags=0x8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu 1280
\tinet 10.9.0.1 -> 10.9.0.2 netmask 0xffff00ff flags 0x1<TENTATIVE>
\tinet6 fc00::1/128 -> fc00::2 flags 0x50<DEPRECATED,AUTOCONF> pltime 0 vltime infty
"
        );
    }

    #[test]
    fn zero_flags_and_metric() {
        let mut s = p2p();
        s.flags = 0;
        s.metric = 3;
        s.mtu = 0;
        s.inet.clear();
        s.inet6.clear();
        s.description = Some("a b".into());
        assert_eq!(
            status(&s, None, &Show::default()),
            "tun0: flags=0x0 metric 3\n\tdescription: \"a b\"\n"
        );
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;

    /// The capabilities the text wraps over several lines are one list.
    #[test]
    fn capabilities_and_counters() {
        let mut s = IfStatus {
            name: "virt0".into(),
            index: 2,
            flags: iff::UP | iff::BROADCAST | iff::RUNNING,
            mtu: 1500,
            metric: 0,
            capabilities: Some((0x7ff80, 0x300)),
            ec_capabilities: Some((0x5, 0x1)),
            description: None,
            lladdr: Some([2, 0, 0, 0, 0, 1]),
            lladdrs: vec![[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]],
            linkstr: Some("vm-host".into()),
            txqueue: None,
            link_state: LinkState::Down,
            media: None,
            link: None,
            data: IfData::default(),
            inet: Vec::new(),
            inet6: Vec::new(),
        };
        s.data.ipackets = 7;
        s.data.collisions = 1;
        let show = Show {
            verbose: true,
            ..Show::default()
        };
        let text = status(&s, Some(&s.data), &show);
        let j = status_json(&s, Some(&s.data), &show);
        let caps = &j["capabilities"]["supported"];
        assert_eq!(caps["value"], 0x7ff80);
        let names: Vec<&str> = caps["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 12);
        for n in &names {
            assert!(text.contains(n), "{n}: {text}");
        }
        assert_eq!(
            j["capabilities"]["enabled"]["names"],
            serde_json::json!(["IP4CSUM_Rx", "IP4CSUM_Tx"])
        );
        assert_eq!(
            j["ec_capabilities"]["supported"]["names"],
            serde_json::json!(["VLAN_MTU", "JUMBO_MTU"])
        );
        assert_eq!(j["input"]["packets"], 7);
        assert_eq!(j["output"]["collisions"], 1);
        assert_eq!(j["link_state"], "down");
        assert_eq!(j["link"], serde_json::json!(["02:00:00:00:00:02"]));
        assert!(text.contains("\tlink 02:00:00:00:00:02\n"), "{text}");
    }
}
