//! vxlan(4) in ifconfig, as FreeBSD's ifvxlan.c: the keywords (at create
//! time and after), their checks and messages, the requests they send
//! (SIOCSDRVSPEC with a [`VxlanReq`]) and the status lines.

use super::parse::{Keywords, Kw, ParseError, Step, Then, kw};
use super::{Ctx, Exit};
use crate::ioctl::{DrvSpec, LinkStatus, Request, VXLAN_VNI_MAX, VxlanConfig, VxlanReq};
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

/// The keywords; each row parses its arguments into the request it sends.
static KEYWORDS: [Kw; 16] = [
    kw("vni", false, Then::Arg(|_, a| vni(a))),
    kw("vxlanid", false, Then::Arg(|_, a| vni(a))),
    kw("vxlanlocal", false, Then::Arg(|_, a| local(a))),
    kw("vxlanremote", false, Then::Arg(|_, a| remote(a))),
    kw("vxlangroup", false, Then::Arg(|_, a| group(a))),
    kw(
        "vxlanlocalport",
        false,
        Then::Arg(|_, a| Ok(step(VxlanReq::SetLocalPort(port(a, "local port")?)))),
    ),
    kw(
        "vxlanremoteport",
        false,
        Then::Arg(|_, a| Ok(step(VxlanReq::SetRemotePort(port(a, "remote port")?)))),
    ),
    kw("vxlanportrange", false, Then::Arg2(port_range)),
    kw(
        "vxlantimeout",
        false,
        Then::Arg(|_, a| Ok(step(VxlanReq::SetFtableTimeout(u32_val(a, "timeout")?)))),
    ),
    kw(
        "vxlanmaxaddr",
        false,
        Then::Arg(|_, a| Ok(step(VxlanReq::SetFtableMax(u32_val(a, "maxaddr")?)))),
    ),
    kw(
        "vxlandev",
        false,
        Then::Arg(|_, a| Ok(step(VxlanReq::SetMulticastIf(a.to_string())))),
    ),
    kw("vxlanttl", false, Then::Arg(|_, a| ttl(a))),
    kw(
        "vxlanlearn",
        false,
        Then::Word(|_| step(VxlanReq::SetLearn(true))),
    ),
    kw(
        "-vxlanlearn",
        false,
        Then::Word(|_| step(VxlanReq::SetLearn(false))),
    ),
    kw(
        "vxlanflush",
        false,
        Then::Word(|_| step(VxlanReq::Flush { all: false })),
    ),
    kw(
        "vxlanflushall",
        false,
        Then::Word(|_| step(VxlanReq::Flush { all: true })),
    ),
];

inventory::submit! { Keywords(&KEYWORDS) }

fn step(r: VxlanReq) -> Step {
    Step::Vxlan(r)
}

fn fatal(msg: String) -> ParseError {
    ParseError::Fatal(msg)
}

/// strtoul(3) with base 0 and nothing after the number (get_val).
fn get_val(s: &str) -> Option<u64> {
    let t = s.trim_start();
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.starts_with('-') || s.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (h, 16)
    } else if t.len() > 1 && t.starts_with('0') {
        (&t[1..], 8)
    } else {
        (t, 10)
    };
    u64::from_str_radix(digits, radix).ok()
}

fn vni(a: &str) -> Result<Step, ParseError> {
    match get_val(a) {
        Some(v) if v < u64::from(VXLAN_VNI_MAX) => Ok(step(VxlanReq::SetVni(v as u32))),
        _ => Err(fatal(format!("invalid network identifier: {a}"))),
    }
}

fn port(a: &str, what: &str) -> Result<u16, ParseError> {
    match get_val(a) {
        Some(v) if v < u64::from(u16::MAX) => Ok(v as u16),
        _ => Err(fatal(format!("invalid {what}: {a}"))),
    }
}

fn port_range(lo: &str, hi: &str) -> Result<Step, ParseError> {
    let min = port(lo, "port range minimum")?;
    let max = port(hi, "port range maximum")?;
    if max < min {
        return Err(fatal("invalid port range".into()));
    }
    Ok(step(VxlanReq::SetPortRange { min, max }))
}

fn u32_val(a: &str, what: &str) -> Result<u32, ParseError> {
    get_val(a)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| fatal(format!("invalid {what} value: {a}")))
}

fn ttl(a: &str) -> Result<Step, ParseError> {
    match get_val(a) {
        Some(v) if v <= 256 => Ok(step(VxlanReq::SetTtl(v as u32))),
        _ => Err(fatal(format!("invalid TTL value: {a}"))),
    }
}

/// A numeric address, as getaddrinfo(3) takes it here (no name lookups).
fn ip(a: &str, what: &str) -> Result<IpAddr, ParseError> {
    a.parse().map_err(|_| {
        fatal(format!(
            "error in parsing {what} address string: Name or service not known"
        ))
    })
}

fn local(a: &str) -> Result<Step, ParseError> {
    let ip = ip(a, "local")?;
    if ip.is_multicast() {
        return Err(fatal("local address cannot be multicast".into()));
    }
    Ok(step(VxlanReq::SetLocalAddr(ip)))
}

fn remote(a: &str) -> Result<Step, ParseError> {
    let ip = ip(a, "remote")?;
    if ip.is_multicast() {
        return Err(fatal("remote address cannot be multicast".into()));
    }
    Ok(step(VxlanReq::SetRemoteAddr(ip)))
}

fn group(a: &str) -> Result<Step, ParseError> {
    let ip = ip(a, "group")?;
    if !ip.is_multicast() {
        return Err(fatal("group address must be multicast".into()));
    }
    Ok(step(VxlanReq::SetRemoteAddr(ip)))
}

/// The addresses of one command line, of one family each, and the same
/// family for both (vxlan_check_params).
pub(super) fn check_params(ctx: &mut Ctx, steps: &[Step]) -> Result<(), Exit> {
    let (mut l4, mut l6, mut r4, mut r6) = (false, false, false, false);
    for s in steps {
        match s {
            Step::Vxlan(VxlanReq::SetLocalAddr(a)) => {
                *(if a.is_ipv6() { &mut l6 } else { &mut l4 }) = true
            }
            Step::Vxlan(VxlanReq::SetRemoteAddr(a)) => {
                *(if a.is_ipv6() { &mut r6 } else { &mut r4 }) = true
            }
            _ => {}
        }
    }
    if l4 && l6 {
        return Err(ctx.errx("cannot specify both local IPv4 and IPv6 addresses"));
    }
    if r4 && r6 {
        return Err(ctx.errx("cannot specify both remote IPv4 and IPv6 addresses"));
    }
    if (l4 && r6) || (l6 && r4) {
        return Err(ctx.errx("cannot mix IPv4 and IPv6 addresses"));
    }
    Ok(())
}

/// The name FreeBSD's err(3) gives a failed request.
fn cmd_name(r: &VxlanReq) -> &'static str {
    match r {
        VxlanReq::GetConfig => "VXLAN_CMD_GET_CONFIG",
        VxlanReq::SetVni(_) => "VXLAN_CMD_SET_VNI",
        VxlanReq::SetLocalAddr(_) => "VXLAN_CMD_SET_LOCAL_ADDR",
        VxlanReq::SetRemoteAddr(_) => "VXLAN_CMD_SET_REMOTE_ADDR",
        VxlanReq::SetLocalPort(_) => "VXLAN_CMD_SET_LOCAL_PORT",
        VxlanReq::SetRemotePort(_) => "VXLAN_CMD_SET_REMOTE_PORT",
        VxlanReq::SetPortRange { .. } => "VXLAN_CMD_SET_PORT_RANGE",
        VxlanReq::SetFtableTimeout(_) => "VXLAN_CMD_SET_FTABLE_TIMEOUT",
        VxlanReq::SetFtableMax(_) => "VXLAN_CMD_SET_FTABLE_MAX",
        VxlanReq::SetMulticastIf(_) => "VXLAN_CMD_SET_MULTICAST_IF",
        VxlanReq::SetTtl(_) => "VXLAN_CMD_SET_TTL",
        VxlanReq::SetLearn(_) => "VXLAN_CMD_SET_LEARN",
        VxlanReq::Flush { .. } => "VXLAN_CMD_FLUSH",
    }
}

/// Send one keyword's request; a refusal ends ifconfig (err(1, …)).
pub(super) fn exec(ctx: &mut Ctx, name: &str, req: &VxlanReq) -> Result<(), Exit> {
    let r = ctx.ioctl(Request::SetDrvSpec {
        name: name.to_string(),
        req: DrvSpec::Vxlan(req.clone()),
    });
    match r {
        Ok(_) => Ok(()),
        Err(e) => Err(ctx.err(cmd_name(req), e)),
    }
}

fn sockaddr(a: &SocketAddr, v6: bool) -> String {
    let ip = match a.ip() {
        IpAddr::V4(x) if v6 && x.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        ip => ip,
    };
    if v6 {
        format!("[{ip}]:{}", a.port())
    } else {
        format!("{ip}:{}", a.port())
    }
}

/// The vxlan lines of a status block; nothing before the VNI is set.
pub(super) fn status(o: &mut String, link: Option<&LinkStatus>, verbose: bool) {
    let Some(LinkStatus::Vxlan(c)) = link else {
        return;
    };
    let VxlanConfig {
        vni: Some(vni),
        local,
        remote,
        ..
    } = c
    else {
        return;
    };
    let v6 = remote.is_ipv6();
    let kind = if remote.ip().is_multicast() {
        "group"
    } else {
        "remote"
    };
    let _ = write!(
        o,
        "\tvxlan vni {vni} local {} {kind} {}",
        sockaddr(local, v6),
        sockaddr(remote, v6)
    );
    if verbose {
        let _ = write!(
            o,
            "\n\t\tconfig: {}learning portrange {}-{} ttl {}\n\t\tftable: cnt {} max {} timeout {}",
            if c.learn { "" } else { "no" },
            c.port_min,
            c.port_max,
            c.ttl,
            c.ftable_cnt,
            c.ftable_max,
            c.ftable_timeout
        );
    }
    o.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn cfg() -> VxlanConfig {
        VxlanConfig {
            vni: Some(42),
            local: "10.1.0.1:4789".parse().unwrap(),
            remote: "10.1.0.2:4789".parse().unwrap(),
            dev: None,
            ftable_cnt: 3,
            ftable_max: 2000,
            ftable_timeout: 1200,
            port_min: 32768,
            port_max: 65535,
            learn: true,
            ttl: 64,
        }
    }

    #[test]
    fn status_lines() {
        let mut o = String::new();
        status(&mut o, Some(&LinkStatus::Vxlan(cfg())), false);
        assert_eq!(
            o,
            "\tvxlan vni 42 local 10.1.0.1:4789 remote 10.1.0.2:4789\n"
        );
        let mut o = String::new();
        let c = VxlanConfig {
            local: "[2001:db8::1]:4789".parse().unwrap(),
            remote: "[ff05::42]:4789".parse().unwrap(),
            learn: false,
            ..cfg()
        };
        status(&mut o, Some(&LinkStatus::Vxlan(c)), true);
        assert_eq!(
            o,
            "\tvxlan vni 42 local [2001:db8::1]:4789 group [ff05::42]:4789\n\
             \t\tconfig: nolearning portrange 32768-65535 ttl 64\n\
             \t\tftable: cnt 3 max 2000 timeout 1200\n"
        );
        let mut o = String::new();
        let c = VxlanConfig {
            vni: None,
            remote: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 4789),
            ..cfg()
        };
        status(&mut o, Some(&LinkStatus::Vxlan(c)), true);
        assert_eq!(o, "");
    }

    #[test]
    fn numbers() {
        assert_eq!(get_val("0x10"), Some(16));
        assert_eq!(get_val("010"), Some(8));
        assert_eq!(get_val("+7"), Some(7));
        assert_eq!(get_val("0"), Some(0));
        assert_eq!(get_val("-1"), None);
        assert_eq!(get_val(""), None);
        assert_eq!(get_val("12a"), None);
        assert!(vni("16777215").is_ok());
        assert!(vni("16777216").is_err());
        assert!(port_range("10", "5").is_err());
        assert!(ttl("256").is_ok() && ttl("257").is_err());
    }
}
