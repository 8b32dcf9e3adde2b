//! route(8): add, delete, change, get, flush and show routes of a
//! kernel's routing table, with NetBSD's grammar (sbin/route/route.c:
//! `-net`, `-host`, `-inet6`, `-interface`, `-ifp`, `-reject`,
//! `-blackhole`, `-netmask`, `-prefixlen`, `-mtu`; a destination's mask
//! from its class as inet_makenetandmask gives it), its output and its
//! messages.

use super::{getopt, netname, usage};
use crate::ioctl::{Errno, Ioctl, Reply, Request, RouteReq, RtEntry, rtf};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const USAGE: &str = "\
usage: route [-dfnqSsTtv] cmd [[-<qualifers>] args]
";

/// route_strerror: the routing socket's errors as route(8) words them.
fn strerror(e: Errno) -> String {
    if e == Errno::ESRCH {
        "not in table".into()
    } else if e == Errno::EBUSY {
        "entry in use".into()
    } else {
        e.to_string()
    }
}

#[derive(Default)]
struct Opts {
    n: bool,
    q: bool,
}

pub fn main_with(
    args: &[String],
    ctl: &mut dyn Ioctl,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let Ok((opts, rest)) = getopt(args, "dfnqSsTtv") else {
        return usage(err, USAGE);
    };
    let mut o = Opts::default();
    let mut flush_first = false;
    for (c, _) in opts {
        match c {
            'n' => o.n = true,
            'q' => o.q = true,
            'f' => flush_first = true,
            _ => {}
        }
    }
    if flush_first {
        let r = flush(ctl, &[], &o, out, err);
        if r != 0 || rest.is_empty() {
            return r;
        }
    }
    let Some((cmd, rest)) = rest.split_first() else {
        return usage(err, USAGE);
    };
    match cmd.as_str() {
        "add" | "delete" | "change" | "get" => newroute(cmd, rest, ctl, &o, out, err),
        "flush" => flush(ctl, rest, &o, out, err),
        "show" => show(ctl, rest, &o, out, err),
        "monitor" => monitor(ctl, rest, out, err),
        c => {
            let _ = writeln!(err, "route: {c}: unknown command");
            usage(err, USAGE)
        }
    }
}

/// The address family a command's modifiers ask for.
fn family(args: &[String]) -> Result<Option<bool>, String> {
    let mut af = None;
    for a in args {
        match a.as_str() {
            "-inet" => af = Some(false),
            "-inet6" => af = Some(true),
            "-link" | "-atalk" | "-mpls" | "-sa" => {
                return Err(format!("{a}: address family not supported"));
            }
            _ => {}
        }
    }
    Ok(af)
}

/// The classful network mask inet_makenetandmask gives an IPv4 number
/// with no mask, and whether it names a host (inet_lnaof non-zero).
fn classful(a: Ipv4Addr) -> u8 {
    let v = u32::from(a);
    if v == 0 {
        0
    } else if v & 0x00ff_ffff == 0 {
        8
    } else if v & 0x0000_ffff == 0 {
        16
    } else if v & 0x0000_00ff == 0 {
        24
    } else {
        32
    }
}

fn lnaof_is_zero(a: Ipv4Addr) -> bool {
    let v = u32::from(a);
    let host = match a.octets()[0] {
        0..=127 => 0x00ff_ffff,
        128..=191 => 0x0000_ffff,
        _ => 0x0000_00ff,
    };
    v & host == 0
}

/// A destination as getaddr reads it: address, prefix, whether a host.
fn destination(s: &str, v6: bool, forcenet: bool) -> Result<(IpAddr, u8, bool), String> {
    let bad = || format!("{s}: bad value");
    if s == "default" {
        let a = if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        return Ok((a, 0, false));
    }
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
        None => (s, None),
    };
    if v6 {
        let a: Ipv6Addr = addr
            .split('%')
            .next()
            .unwrap_or("")
            .parse()
            .map_err(|_| bad())?;
        let len = match len {
            Some(l) if l <= 128 => l,
            Some(_) => return Err(bad()),
            // inet6_makenetandmask: :: is the default, a global prefix
            // with a zero interface identifier a /64, else a host.
            None if a.is_unspecified() => 0,
            None if a.segments()[0] & 0xe000 == 0x2000 && u128::from(a) as u64 == 0 => 64,
            None => 128,
        };
        return Ok((IpAddr::V6(a), len, len == 128));
    }
    let a = parse_inet(addr).ok_or_else(bad)?;
    let len = match len {
        Some(l) if l <= 32 => l,
        Some(_) => return Err(bad()),
        None if forcenet || lnaof_is_zero(a) => classful(a),
        None => 32,
    };
    Ok((IpAddr::V4(a), len, len == 32))
}

/// inet_aton's forms the tests and scripts use: dotted quads, and with
/// `-net` the shorter `10.2` spelling of a network.
fn parse_inet(s: &str) -> Option<Ipv4Addr> {
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    let parts: Vec<u8> = s
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut o = [0u8; 4];
    o[..parts.len()].copy_from_slice(&parts);
    Some(Ipv4Addr::from(o))
}

fn mask_len(s: &str, v6: bool) -> Option<u8> {
    if v6 {
        let m: Ipv6Addr = s.parse().ok()?;
        let v = u128::from(m);
        let n = v.leading_ones();
        (v.checked_shl(n).unwrap_or(0) == 0).then_some(n as u8)
    } else {
        let m = parse_inet(s)?;
        let v = u32::from(m);
        let n = v.leading_ones();
        (v.checked_shl(n).unwrap_or(0) == 0).then_some(n as u8)
    }
}

fn newroute(
    cmd: &str,
    args: &[String],
    ctl: &mut dyn Ioctl,
    o: &Opts,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let fail = |err: &mut dyn Write, m: String| {
        let _ = writeln!(err, "route: {m}");
        1
    };
    let v6 = match family(args) {
        Ok(af) => af.unwrap_or(false),
        Err(m) => return fail(err, m),
    };
    let forcenet = args.iter().any(|a| a == "-net" || a == "-netmask");
    let forcehost = args.iter().any(|a| a == "-host");
    let mut flags = rtf::STATIC;
    let mut iface = false;
    let mut dest: Option<String> = None;
    let mut gateway: Option<String> = None;
    let mut netmask: Option<u8> = None;
    let mut ifp: Option<String> = None;
    let mut mtu = 0;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |what: &str| it.next().cloned().ok_or(format!("{what}: missing value"));
        match a.as_str() {
            "-inet" | "-inet6" | "-net" | "-host" => {}
            "-interface" | "-iface" => iface = true,
            "-static" => flags |= rtf::STATIC,
            "-nostatic" => flags &= !rtf::STATIC,
            "-reject" => flags |= rtf::REJECT,
            "-noreject" => flags &= !rtf::REJECT,
            "-blackhole" => flags |= rtf::BLACKHOLE,
            "-noblackhole" => flags &= !rtf::BLACKHOLE,
            "-proto1" => flags |= rtf::PROTO1,
            "-proto2" => flags |= rtf::PROTO2,
            "-cloning" | "-llinfo" | "-lock" | "-lockrest" | "-connected" | "-noconnected" => {}
            "-ifp" => match value("ifp") {
                Ok(v) => ifp = Some(v),
                Err(m) => return fail(err, m),
            },
            "-ifa" | "-genmask" | "-hopcount" | "-expire" | "-recvpipe" | "-sendpipe"
            | "-ssthresh" | "-rtt" | "-rttvar" | "-tag" => {
                if let Err(m) = value(a) {
                    return fail(err, m);
                }
            }
            "-mtu" => match value("mtu").map(|v| v.parse::<u32>()) {
                Ok(Ok(v)) => mtu = v,
                _ => return fail(err, "mtu: bad value".into()),
            },
            "-gateway" => match value("gateway") {
                Ok(v) => gateway = Some(v),
                Err(m) => return fail(err, m),
            },
            "-dst" => match value("dst") {
                Ok(v) => dest = Some(v),
                Err(m) => return fail(err, m),
            },
            "-netmask" => match value("netmask") {
                Ok(v) => match mask_len(&v, v6) {
                    Some(l) => netmask = Some(l),
                    None => return fail(err, format!("{v}: bad value")),
                },
                Err(m) => return fail(err, m),
            },
            "-prefixlen" => match value("prefixlen").map(|v| v.parse::<u8>()) {
                Ok(Ok(l)) if l <= if v6 { 128 } else { 32 } => netmask = Some(l),
                _ => return fail(err, "prefixlen: bad value".into()),
            },
            s if s.starts_with('-') => {
                let _ = writeln!(err, "route: {}: unrecognized keyword", &s[1..]);
                let _ = err.write_all(USAGE.as_bytes());
                return 1;
            }
            s => {
                if dest.is_none() {
                    dest = Some(s.to_string());
                } else if gateway.is_none() {
                    gateway = Some(s.to_string());
                } else {
                    match mask_len(s, v6) {
                        Some(l) => netmask = Some(l),
                        None => return fail(err, format!("{s}: bad value")),
                    }
                }
            }
        }
    }
    let Some(dest) = dest else {
        return fail(err, "missing destination specification".into());
    };
    if cmd == "add" && gateway.is_none() {
        return fail(err, "missing gateway specification".into());
    }
    if forcehost && forcenet {
        return fail(err, "-host and -net conflict".into());
    }
    let (addr, mut prefix, mut ishost) = match destination(&dest, v6, forcenet) {
        Ok(d) => d,
        Err(m) => return fail(err, m),
    };
    if let Some(l) = netmask {
        prefix = l;
        ishost = false;
    }
    let bits = if v6 { 128 } else { 32 };
    if forcehost {
        ishost = true;
        prefix = bits;
    } else if forcenet {
        ishost = false;
    }
    // The gateway: an address, or with -interface an interface's name.
    let mut gw: Option<IpAddr> = None;
    if let Some(g) = &gateway {
        let parsed = if v6 {
            g.split('%')
                .next()
                .and_then(|a| a.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        } else {
            parse_inet(g).map(IpAddr::V4)
        };
        match parsed {
            Some(a) => gw = Some(a),
            None if iface => ifp = ifp.or(Some(g.clone())),
            None => return fail(err, format!("{g}: bad value")),
        }
    }
    flags |= rtf::UP;
    if ishost {
        flags |= rtf::HOST;
    }
    if !iface {
        flags |= rtf::GATEWAY;
    }
    if cmd == "get" {
        return get(ctl, addr, o, out, err);
    }
    let entry = RtEntry {
        dst: addr,
        prefix,
        gateway: gw,
        ifname: ifp,
        ifa: None,
        flags,
        mtu,
        used: 0,
    };
    let req = match cmd {
        "add" => RouteReq::Add(entry),
        "change" => RouteReq::Change(entry),
        _ => RouteReq::Delete { dst: addr, prefix },
    };
    let r = ctl.ioctl(Request::Route(req));
    if let Err(e) = r {
        let _ = writeln!(err, "route: writing to routing socket: {}", strerror(e));
    }
    if o.q {
        return i32::from(r.is_err());
    }
    let mut line = format!("{cmd} {} {dest}", if ishost { "host" } else { "net" });
    if let Some(g) = &gateway {
        line += &format!(": gateway {g}");
    }
    match r {
        Ok(_) => {
            let _ = writeln!(out, "{line}");
            0
        }
        Err(e) => {
            let _ = writeln!(out, "{line}: {}", strerror(e));
            1
        }
    }
}

/// The flag names route(8) prints (`routeflags`), as printb does.
fn flag_names(flags: u32) -> String {
    let names: Vec<&str> = rtf::NAMES
        .iter()
        .filter(|(b, _, _)| flags & b != 0)
        .map(|(_, _, n)| *n)
        .collect();
    format!("{flags:#x}<{}>", names.join(","))
}

fn prefix_mask(dst: IpAddr, prefix: u8) -> String {
    let bits: u32 = if dst.is_ipv4() { 32 } else { 128 };
    let ones = u128::MAX
        .checked_shl(128 - u32::from(prefix).min(bits))
        .unwrap_or(0);
    match dst {
        IpAddr::V4(_) => Ipv4Addr::from((ones >> 96) as u32).to_string(),
        IpAddr::V6(_) => Ipv6Addr::from(ones).to_string(),
    }
}

/// print_getmsg.
fn get(
    ctl: &mut dyn Ioctl,
    dst: IpAddr,
    _o: &Opts,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let r = match ctl.ioctl(Request::Route(RouteReq::Get { dst })) {
        Ok(Reply::Route(r)) => r,
        Ok(_) => return 1,
        Err(e) => {
            let _ = writeln!(err, "route: writing to routing socket: {}", strerror(e));
            return 1;
        }
    };
    let bits = if dst.is_ipv4() { 32 } else { 128 };
    let mut s = format!("   route to: {dst}\ndestination: ");
    s += &if r.prefix == 0 {
        "default".to_string()
    } else {
        r.dst.to_string()
    };
    s.push('\n');
    if r.prefix < bits {
        s += &format!("       mask: {}\n", prefix_mask(r.dst, r.prefix));
    }
    if let Some(g) = r.gateway.filter(|_| r.flags & rtf::GATEWAY != 0) {
        s += &format!("    gateway: {g}\n");
    }
    if let Some(a) = r.ifa {
        s += &format!(" local addr: {a}\n");
    }
    if let Some(i) = &r.ifname {
        s += &format!("  interface: {i}\n");
    }
    s += &format!("      flags: {}\n", flag_names(r.flags | rtf::DONE));
    s += " recvpipe  sendpipe  ssthresh  rtt,msec    rttvar  hopcount      mtu     expire\n";
    s += &format!(
        "{:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        0, 0, 0, 0, 0, 0, r.mtu, 0
    );
    let _ = out.write_all(s.as_bytes());
    0
}

/// flushroutes: delete the static routes (of one family), one line each.
fn flush(
    ctl: &mut dyn Ioctl,
    args: &[String],
    o: &Opts,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let v6 = match family(args) {
        Ok(af) => af,
        Err(m) => {
            let _ = writeln!(err, "route: {m}");
            return 1;
        }
    };
    match ctl.ioctl(Request::Route(RouteReq::Flush { v6 })) {
        Ok(Reply::Routes(gone)) => {
            if !o.q {
                for r in gone {
                    let dst = netname(&r, o.n);
                    let gw = r.gateway.map_or("-".to_string(), |g| g.to_string());
                    let _ = writeln!(out, "{dst:<20.20} {gw:<20.20} done");
                }
            }
            0
        }
        Ok(_) => 1,
        Err(e) => {
            let _ = writeln!(err, "route: {}", strerror(e));
            1
        }
    }
}

/// route monitor [-c count]: the kernel has no routing socket, so the
/// table is read every 100 ms and each route that came or went is printed
/// as the RTM_ADD or RTM_DELETE message NetBSD's route prints for it.
fn monitor(ctl: &mut dyn Ioctl, args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let count = match args {
        [] => None,
        [c, n] if c == "-c" => match n.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                let _ = err.write_all(USAGE.as_bytes());
                return 1;
            }
        },
        _ => {
            let _ = err.write_all(USAGE.as_bytes());
            return 1;
        }
    };
    let dump = |ctl: &mut dyn Ioctl| match ctl.ioctl(Request::Route(RouteReq::Dump)) {
        Ok(Reply::Routes(v)) => Ok(v),
        Ok(_) => Err(Errno::EIO),
        Err(e) => Err(e),
    };
    let mut seen = match dump(ctl) {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(err, "route: {e}");
            return 1;
        }
    };
    let mut printed = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = match dump(ctl) {
            Ok(v) => v,
            Err(e) => {
                let _ = writeln!(err, "route: {e}");
                return 1;
            }
        };
        let same = |a: &RtEntry, b: &RtEntry| a.dst == b.dst && a.prefix == b.prefix;
        let gone = seen.iter().filter(|r| !now.iter().any(|n| n == *r));
        let came = now.iter().filter(|r| !seen.iter().any(|n| n == *r));
        let mut msgs: Vec<(&str, &RtEntry)> = Vec::new();
        for r in gone {
            if !now.iter().any(|n| same(n, r)) {
                msgs.push(("RTM_DELETE: Delete Route", r));
            }
        }
        for r in came {
            let what = if seen.iter().any(|n| same(n, r)) {
                "RTM_CHANGE: Change Metrics, Flags or Gateway"
            } else {
                "RTM_ADD: Add Route"
            };
            msgs.push((what, r));
        }
        for (what, r) in msgs {
            let _ = out.write_all(rtmsg(what, r).as_bytes());
            let _ = out.flush();
            printed += 1;
            if count.is_some_and(|c| printed >= c) {
                return 0;
            }
        }
        seen = now;
    }
}

/// One routing message as print_rtmsg shows it.
fn rtmsg(what: &str, r: &RtEntry) -> String {
    let v6 = r.dst.is_ipv6();
    let sa = if v6 { 32 } else { 16 };
    let full = if v6 { 128 } else { 32 };
    let mut addrs = vec!["DST"];
    let mut vals = vec![r.dst.to_string()];
    if let Some(g) = r.gateway {
        addrs.push("GATEWAY");
        vals.push(g.to_string());
    }
    if r.prefix < full {
        addrs.push("NETMASK");
        vals.push(prefix_mask(r.dst, r.prefix));
    }
    let len = 96 + sa * addrs.len();
    let now = time_now();
    format!(
        "got message of size {len} on {now}\n{what}: len {len}, pid: 0, seq 0, errno 0, flags:{}\nlocks:  inits: \nsockaddrs: <{}>\n {}\n\n",
        flag_names(r.flags | rtf::DONE)
            .split_once('<')
            .map_or(String::new(), |(_, f)| format!("<{f}")),
        addrs.join(","),
        vals.join(" ")
    )
}

/// ctime(3) of now, in UTC.
fn time_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    ctime(secs)
}

/// ctime(3) of `secs` since the epoch, in UTC, without its newline.
fn ctime(secs: u64) -> String {
    let days = secs / 86400;
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {d:2} {h:02}:{m:02}:{s:02} {y}",
        WD[(days % 7) as usize],
        MON[(mo - 1) as usize]
    )
}

/// route show: the table as netstat -r shows it.
fn show(
    ctl: &mut dyn Ioctl,
    args: &[String],
    o: &Opts,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let mut a: Vec<String> = vec!["-r".into()];
    if o.n {
        a.push("-n".into());
    }
    match family(args) {
        Ok(Some(false)) => a.extend(["-f".into(), "inet".into()]),
        Ok(Some(true)) => a.extend(["-f".into(), "inet6".into()]),
        Ok(None) => {}
        Err(m) => {
            let _ = writeln!(err, "route: {m}");
            return 1;
        }
    }
    super::netstat::main_with(&a, ctl, out, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_as_getaddr_reads_them() {
        let d = |s: &str, v6, net| destination(s, v6, net).unwrap();
        let v4 = |s: &str| IpAddr::V4(s.parse().unwrap());
        assert_eq!(d("default", false, false), (v4("0.0.0.0"), 0, false));
        assert_eq!(d("10.2.0.0/24", false, false), (v4("10.2.0.0"), 24, false));
        assert_eq!(d("10.2.0.7", false, false), (v4("10.2.0.7"), 32, true));
        // Classful: 10.0.0.0 is a net, 10.2.0.0 a host unless -net.
        assert_eq!(d("10.0.0.0", false, false), (v4("10.0.0.0"), 8, false));
        assert_eq!(d("10.2.0.0", false, false), (v4("10.2.0.0"), 32, true));
        assert_eq!(d("10.2.0.0", false, true), (v4("10.2.0.0"), 16, false));
        assert_eq!(d("10.2", false, true), (v4("10.2.0.0"), 16, false));
        assert_eq!(
            d("192.168.3.0", false, false),
            (v4("192.168.3.0"), 24, false)
        );
        let v6 = |s: &str| IpAddr::V6(s.parse().unwrap());
        assert_eq!(
            d("2001:db8:2::", true, false),
            (v6("2001:db8:2::"), 64, false)
        );
        assert_eq!(
            d("2001:db8:2::1", true, false),
            (v6("2001:db8:2::1"), 128, true)
        );
        assert_eq!(d("default", true, false), (v6("::"), 0, false));
        assert!(destination("10.2.0.0/33", false, false).is_err());
        assert!(destination("nowhere", false, false).is_err());
        assert_eq!(mask_len("255.255.255.0", false), Some(24));
        assert_eq!(mask_len("255.0.255.0", false), None);
    }

    #[test]
    fn ctime_in_utc() {
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(1_796_000_000), "Mon Nov 30 00:53:20 2026");
        assert_eq!(ctime(951_782_400), "Tue Feb 29 00:00:00 2000");
    }

    #[test]
    fn flags_print_as_printb() {
        assert_eq!(
            flag_names(rtf::UP | rtf::GATEWAY | rtf::STATIC | rtf::DONE),
            "0x843<UP,GATEWAY,DONE,STATIC>"
        );
    }
}
