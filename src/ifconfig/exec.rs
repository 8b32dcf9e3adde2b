//! Running a configuring command line: each step in order, as NetBSD's
//! matches_exec runs the keyword actions (flags, MTU, linkstr… take effect
//! at once), then the media change, then the address commit
//! (commit_address), then the capabilities.

use super::parse::{Addr, Config, Family, Step};
use super::status::media_type;
use super::{Ctx, Exit, media};
use crate::ioctl::{Errno, INFINITE_LIFETIME, In6AliasReq, InAliasReq, Reply, Request, iff};
use std::net::{Ipv4Addr, Ipv6Addr};

/// IFDESCRSIZE less the NUL.
const MAX_DESCR: usize = 63;
/// The prefix length inet6 uses when none is given.
const IN6_DEFAULT_PREFIXLEN: u8 = 64;

/// A netmask in the family's own terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mask {
    Inet(Ipv4Addr),
    Inet6(u8),
}

/// prefixlen_to_mask(3)-alike: None for a length the family cannot have.
/// A length of 0 means the whole address, as NetBSD's does.
fn prefixlen_to_mask(family: Family, plen: i64) -> Option<Mask> {
    let bits = match family {
        Family::Inet => 32,
        Family::Inet6 => 128,
        _ => return None,
    };
    if !(0..=bits).contains(&plen) {
        return None;
    }
    let plen = if plen == 0 { bits } else { plen };
    Some(match family {
        Family::Inet6 => Mask::Inet6(plen as u8),
        _ => Mask::Inet(Ipv4Addr::from(
            u32::MAX.checked_shl(32 - plen as u32).unwrap_or(0),
        )),
    })
}

/// The prefix length of an inet6 mask; 0 when not contiguous (prefix()).
fn in6_prefix(mask: Ipv6Addr) -> u8 {
    let m = u128::from(mask);
    let len = m.leading_ones();
    if len < 128 && m << len != 0 {
        0
    } else {
        len as u8
    }
}

fn mask_of(addr: &Addr) -> Option<Mask> {
    match addr {
        Addr::Inet(a) => Some(Mask::Inet(*a)),
        Addr::Inet6(a, _) => Some(Mask::Inet6(in6_prefix(*a))),
        _ => None,
    }
}

/// The current media word being edited (media.c media_current).
struct MediaWord {
    ty: String,
    subtype: String,
    options: Vec<String>,
    instance: i64,
}

/// What the commands leave for the commit (parse.c's match environment).
#[derive(Default)]
struct Pending {
    addr: Option<Addr>,
    /// The mask a `/len` gave; any explicit mask wins over it.
    prefix_mask: Option<Mask>,
    mask: Option<Mask>,
    dst: Option<Addr>,
    broadcast: Option<Addr>,
    alias: Option<bool>,
    ia6flags: u32,
    pltime: Option<i64>,
    vltime: Option<i64>,
    eui64: bool,
    active: bool,
    /// SIOCSIFCAP's capenable, once a capability keyword was seen.
    capenable: Option<u32>,
    media: Option<MediaWord>,
    media_changed: bool,
}

pub(super) fn configure(ctx: &mut Ctx, cfg: &Config, name: &str) -> Result<(), Exit> {
    let family = cfg.family.unwrap_or(Family::Inet);
    let mut p = Pending::default();
    super::vxlan::check_params(ctx, &cfg.steps)?;
    for step in &cfg.steps {
        exec_step(ctx, name, family, step, &mut p)?;
    }
    if let Some(m) = p.media.as_ref().filter(|_| p.media_changed) {
        let mut word = m.subtype.clone();
        if !m.options.is_empty() {
            word = format!("{word} {}", m.options.join(","));
        }
        if m.instance != 0 {
            word = format!("{word} instance {}", m.instance);
        }
        let req = Request::SetIfMedia {
            name: name.to_string(),
            media: word,
        };
        if let Err(e) = ctx.ioctl(req) {
            return Err(ctx.err("SIOCSIFMEDIA", e));
        }
    }
    if family == Family::AppleTalk {
        return Err(ctx.err("main: getsock", Errno::EAFNOSUPPORT));
    }
    commit_address(ctx, name, family, &p)?;
    if let Some(enabled) = p.capenable {
        let req = Request::SetIfCap {
            name: name.to_string(),
            enabled,
        };
        if let Err(e) = ctx.ioctl(req) {
            return Err(ctx.err("SIOCSIFCAP", e));
        }
    }
    Ok(())
}

/// A keyword action that failed: clone_command and setifflags report
/// through matches_exec's caller.
fn exec_matches(ctx: &mut Ctx, e: Errno) -> Exit {
    ctx.err("exec_matches", e)
}

fn exec_step(
    ctx: &mut Ctx,
    name: &str,
    family: Family,
    step: &Step,
    p: &mut Pending,
) -> Result<(), Exit> {
    let ifname = name.to_string();
    match step {
        Step::Create | Step::Destroy => {
            let req = if *step == Step::Create {
                Request::IfCreate { name: ifname }
            } else {
                Request::IfDestroy { name: ifname }
            };
            if let Err(e) = ctx.ioctl(req) {
                ctx.warn("clone_command", e);
                return Err(exec_matches(ctx, e));
            }
        }
        Step::IfFlag(v) => {
            let flags = ctx.getifflags(name).map_err(|e| exec_matches(ctx, e))?;
            let bit = v.unsigned_abs() as u32;
            let flags = if *v < 0 { flags & !bit } else { flags | bit };
            if let Err(e) = ctx.ioctl(Request::SetIfFlags {
                name: ifname,
                flags,
            }) {
                return Err(exec_matches(ctx, e));
            }
        }
        Step::IfCap(v) => {
            // SIOCGIFCAP failing is ignored, as NetBSD does.
            let enabled = match p.capenable {
                Some(c) => c,
                None => ctx
                    .ifstatus(name)
                    .ok()
                    .and_then(|s| s.capabilities)
                    .map_or(0, |c| c.1),
            };
            let bit = v.unsigned_abs() as u32;
            p.capenable = Some(if *v < 0 {
                enabled & !bit
            } else {
                enabled | bit
            });
        }
        Step::Mtu(v) => {
            let r = match u32::try_from(*v) {
                Ok(mtu) => ctx.ioctl(Request::SetIfMtu { name: ifname, mtu }),
                Err(_) => Err(Errno::EINVAL),
            };
            // Only a warning: NetBSD goes on and exits 0.
            if let Err(e) = r {
                ctx.warn("SIOCSIFMTU", e);
            }
        }
        Step::TxQueue(v) => {
            let r = match u32::try_from(*v) {
                Ok(bytes) => ctx.ioctl(Request::SetIfTxQueue {
                    name: ifname,
                    bytes,
                }),
                Err(_) => Err(Errno::EINVAL),
            };
            if let Err(e) = r {
                return Err(ctx.err("SIOCSIFTXQUEUE", e));
            }
        }
        Step::Metric(v) => {
            let r = match i32::try_from(*v) {
                Ok(m) => ctx.ioctl(Request::SetIfMetric {
                    name: ifname,
                    metric: m as u32,
                }),
                Err(_) => Err(Errno::EINVAL),
            };
            if let Err(e) = r {
                ctx.warn("SIOCSIFMETRIC", e);
            }
        }
        Step::LinkStr(s) => {
            let req = Request::SetLinkStr {
                linkstr: Some(client_path(&ifname, s)),
                name: ifname,
            };
            if let Err(e) = ctx.ioctl(req) {
                return Err(ctx.err("SIOCSLINKSTR", e));
            }
        }
        Step::UnsetLinkStr => {
            if let Err(e) = ctx.ioctl(Request::SetLinkStr {
                name: ifname,
                linkstr: None,
            }) {
                return Err(ctx.err("SIOCSLINKSTR", e));
            }
        }
        Step::Descr(d) => {
            if d.len() > MAX_DESCR {
                return Err(ctx.err("description too long", Errno::ENAMETOOLONG));
            }
            let req = Request::SetIfDescr {
                name: ifname,
                descr: Some(d.clone()),
            };
            if let Err(e) = ctx.ioctl(req) {
                return Err(ctx.err("SIOCSIFDESCR", e));
            }
        }
        Step::UnsetDescr => {
            if let Err(e) = ctx.ioctl(Request::SetIfDescr {
                name: ifname,
                descr: None,
            }) {
                return Err(ctx.err("SIOCSIFDESCR", e));
            }
        }
        Step::Media(_)
        | Step::MediaOpt(_)
        | Step::UnMediaOpt(_)
        | Step::MediaInst(_)
        | Step::MediaMode(_) => media_step(ctx, name, step, p)?,
        Step::Address { addr, prefixlen } => {
            if let Some(plen) = prefixlen {
                let fam = if matches!(addr, Addr::Inet6(..)) {
                    Family::Inet6
                } else {
                    Family::Inet
                };
                p.prefix_mask = prefixlen_to_mask(fam, *plen);
            }
            p.addr = Some(addr.clone());
        }
        Step::DstOrMask(a) => {
            let flags = match ctx.getifflags(name) {
                Ok(f) => f,
                Err(e) => return Err(ctx.err("setifdstormask: getifflags", e)),
            };
            if flags & iff::BROADCAST != 0 {
                p.mask = mask_of(a);
            } else {
                p.dst = Some(a.clone());
            }
        }
        Step::Broadcast(a) => {
            let flags = match ctx.getifflags(name) {
                Ok(f) => f,
                Err(e) => return Err(ctx.err("setifbroadaddr: getifflags", e)),
            };
            if flags & iff::BROADCAST == 0 {
                return Err(ctx.errx("not a broadcast interface"));
            }
            p.broadcast = Some(a.clone());
        }
        Step::Netmask(a) => p.mask = mask_of(a),
        Step::Prefixlen(plen) => match prefixlen_to_mask(family, *plen) {
            Some(m) => p.mask = Some(m),
            None => return Err(ctx.err("prefixlen_to_mask", Errno::EINVAL)),
        },
        Step::Alias(a) => p.alias = Some(*a),
        Step::Ia6Flag(v) => {
            let bit = v.unsigned_abs() as u32;
            p.ia6flags = if *v < 0 {
                p.ia6flags & !bit
            } else {
                p.ia6flags | bit
            };
        }
        Step::Pltime(v) => p.pltime = Some(*v),
        Step::Vltime(v) => p.vltime = Some(*v),
        Step::Eui64 => p.eui64 = true,
        Step::Active => p.active = true,
        Step::Trailers => ctx.print("Note: trailers are no longer sent, but always received\n"),
        Step::Vxlan(req) => super::vxlan::exec(ctx, name, req)?,
    }
    Ok(())
}

/// The media keywords edit the current media word; it is set once all
/// commands ran (process_media_commands).
fn media_step(ctx: &mut Ctx, name: &str, step: &Step, p: &mut Pending) -> Result<(), Exit> {
    if p.media.is_none() {
        let current = match ctx.ioctl(Request::GetIfMedia {
            name: name.to_string(),
        }) {
            Ok(Reply::Media(m)) => m.current,
            Ok(_) => return Err(ctx.err("SIOCGIFMEDIA", Errno::EIO)),
            Err(e) => return Err(ctx.err("SIOCGIFMEDIA", e)),
        };
        let mut words = current.split(' ');
        let ty = words.next().unwrap_or("").to_string();
        if ty.is_empty() {
            return Err(ctx.errx(&format!("{name}: no link type?")));
        }
        let subtype = words.next().unwrap_or("none").to_string();
        let options = words
            .flat_map(|w| w.split(','))
            .map(str::to_string)
            .collect();
        p.media = Some(MediaWord {
            ty,
            subtype,
            options,
            instance: 0,
        });
    }
    let Some(m) = p.media.as_mut() else {
        return Ok(());
    };
    let ty = media_type(&m.ty).to_string();
    let unknown = |what: &str, val: &str| format!("unknown {ty} media {what}: {val}");
    let options = |list: &str| -> Result<Vec<&'static str>, String> {
        list.split(',')
            .map(|o| media::option(&ty, o).ok_or_else(|| unknown("option", o)))
            .collect()
    };
    let r: Result<(), String> = match step {
        Step::Media(word) => match media::subtype(&ty, word) {
            Some(s) => {
                m.subtype = s.to_string();
                m.options.clear();
                Ok(())
            }
            None => Err(unknown("subtype", word)),
        },
        Step::MediaOpt(list) => options(list).map(|o| {
            for w in o {
                if !m.options.iter().any(|x| x == w) {
                    m.options.push(w.to_string());
                }
            }
        }),
        Step::UnMediaOpt(list) => {
            options(list).map(|o| m.options.retain(|x| !o.contains(&x.as_str())))
        }
        Step::MediaInst(i) => {
            m.instance = *i;
            Ok(())
        }
        Step::MediaMode(word) => match media::mode(&ty, word) {
            Some(_) => Ok(()),
            None => Err(unknown("mode", word)),
        },
        _ => Ok(()),
    };
    p.media_changed = true;
    r.map_err(|msg| ctx.errx(&msg))
}

/// Add, replace or delete the address the command line gave
/// (af_inetany.c commit_address).
fn commit_address(ctx: &mut Ctx, name: &str, family: Family, p: &Pending) -> Result<(), Exit> {
    if p.addr.is_none() && p.alias != Some(false) {
        return Ok(());
    }
    // NetBSD returns quietly when the interface is gone; we say so.
    let ifs = match ctx.ifstatus(name) {
        Ok(s) => s,
        Err(e) => return Err(exec_matches(ctx, e)),
    };
    let ifname = name.to_string();
    let Some(addr) = &p.addr else {
        // `delete` alone: the first address of the family. IPv6 has no
        // first address (SIOCGIFADDR_IN6 wants the address itself).
        return match family {
            Family::Inet => {
                let Some(first) = ifs.inet.first() else {
                    return Err(ctx.err("SIOCGIFADDR", Errno::EADDRNOTAVAIL));
                };
                let req = Request::DifAddr {
                    name: ifname,
                    addr: first.addr,
                };
                ctx.ioctl(req)
                    .map(|_| ())
                    .map_err(|e| ctx.err("SIOCDIFADDR", e))
            }
            Family::Inet6 => Err(ctx.err("SIOCGIFADDR_IN6", Errno::EADDRNOTAVAIL)),
            _ => Ok(()),
        };
    };
    let delete = p.alias == Some(false);
    // Without alias/-alias an inet address replaces the first one.
    let replace = p.alias.is_none() && family == Family::Inet;

    let (mut dst, mut brd) = (None, None);
    match ifs.flags & (iff::BROADCAST | iff::POINTOPOINT) {
        iff::BROADCAST => brd = p.broadcast.clone(),
        0 => {}
        iff::POINTOPOINT => {
            if p.dst.is_none() {
                return Err(ctx.errx("no point-to-point destination address"));
            }
            if p.broadcast.is_some() {
                return Err(ctx.errx(&format!("{name} is not a broadcast interface")));
            }
            dst = p.dst.clone();
        }
        _ => return Err(ctx.errx("unsupported interface flags")),
    }
    let mask = p.mask.or(p.prefix_mask);

    if replace {
        if let Some(first) = ifs.inet.first() {
            let req = Request::DifAddr {
                name: ifname.clone(),
                addr: first.addr,
            };
            if let Err(e) = ctx.ioctl(req) {
                return Err(ctx.err("SIOCDIFADDR", e));
            }
        }
    } else if delete {
        let (req, desc) = match addr {
            Addr::Inet(a) => (
                Request::DifAddr {
                    name: ifname,
                    addr: *a,
                },
                "SIOCDIFADDR",
            ),
            Addr::Inet6(a, _) => (
                Request::DifAddrIn6 {
                    name: ifname,
                    addr: *a,
                },
                "SIOCDIFADDR_IN6",
            ),
            Addr::Link(mac) => match <[u8; 6]>::try_from(mac.as_slice()) {
                Ok(mac) => (Request::DLifAddr { name: ifname, mac }, "SIOCDLIFADDR"),
                Err(_) => return Err(ctx.err("SIOCDLIFADDR", Errno::EINVAL)),
            },
            Addr::AppleTalk { .. } => return Err(ctx.err("SIOCDIFADDR", Errno::EAFNOSUPPORT)),
        };
        return ctx.ioctl(req).map(|_| ()).map_err(|e| ctx.err(desc, e));
    }

    let (req, desc) = match addr {
        Addr::Inet(a) => {
            let mask = match mask {
                Some(Mask::Inet(m)) => Some(m),
                _ => None,
            };
            let as4 = |x: &Option<Addr>| match x {
                Some(Addr::Inet(a)) => Some(*a),
                _ => None,
            };
            let req = InAliasReq {
                addr: *a,
                mask,
                broadcast: as4(&brd),
                dst: as4(&dst),
                flags: 0,
            };
            (Request::AifAddr { name: ifname, req }, "SIOCAIFADDR")
        }
        Addr::Inet6(a, _) => {
            let prefixlen = match mask {
                Some(Mask::Inet6(l)) => l,
                _ => IN6_DEFAULT_PREFIXLEN,
            };
            let mut addr = *a;
            if p.eui64 {
                addr = eui64(ctx, &ifs, addr)?;
            }
            let life = |v: Option<i64>| v.map_or(INFINITE_LIFETIME, |v| v as u32);
            let dst = match &dst {
                Some(Addr::Inet6(d, _)) => Some(*d),
                _ => None,
            };
            let req = In6AliasReq {
                addr,
                prefixlen,
                dst,
                flags: p.ia6flags,
                pltime: life(p.pltime),
                vltime: life(p.vltime),
            };
            (Request::AifAddrIn6 { name: ifname, req }, "SIOCAIFADDR_IN6")
        }
        Addr::Link(mac) => match <[u8; 6]>::try_from(mac.as_slice()) {
            Ok(mac) => (
                Request::ALifAddr {
                    name: ifname,
                    mac,
                    active: p.active,
                },
                "SIOCALIFADDR",
            ),
            Err(_) => return Err(ctx.err("SIOCALIFADDR", Errno::EINVAL)),
        },
        Addr::AppleTalk { .. } => return Err(ctx.err("SIOCAIFADDR", Errno::EAFNOSUPPORT)),
    };
    ctx.ioctl(req).map(|_| ()).map_err(|e| ctx.err(desc, e))
}

/// Fill the low 64 bits from the interface's link-local address.
fn eui64(ctx: &mut Ctx, ifs: &crate::ioctl::IfStatus, addr: Ipv6Addr) -> Result<Ipv6Addr, Exit> {
    const LOW64: u128 = u64::MAX as u128;
    let a = u128::from(addr);
    if a & LOW64 != 0 {
        return Err(ctx.errx(&format!(
            "interface index is already filled, ::%0 | {addr}%0"
        )));
    }
    let Some(ll) = ifs.inet6.iter().find(|x| x.addr.is_unicast_link_local()) else {
        return Err(ctx.errx("could not determine link local address"));
    };
    Ok(Ipv6Addr::from(a | (u128::from(ll.addr) & LOW64)))
}

/// A shmif's linkstr is a file name, which the daemon must not resolve
/// against its own working directory: a relative one is made absolute
/// here, against the caller's, as the same command would for a local file.
fn client_path(ifname: &str, linkstr: &str) -> String {
    let is_path = ifname
        .strip_prefix("shmif")
        .is_some_and(|unit| !unit.is_empty() && unit.bytes().all(|b| b.is_ascii_digit()));
    if !is_path || linkstr.starts_with('/') {
        return linkstr.to_string();
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(linkstr).to_string_lossy().into_owned(),
        Err(_) => linkstr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(
            prefixlen_to_mask(Family::Inet, 24),
            Some(Mask::Inet(Ipv4Addr::new(255, 255, 255, 0)))
        );
        assert_eq!(
            prefixlen_to_mask(Family::Inet, 0),
            Some(Mask::Inet(Ipv4Addr::BROADCAST))
        );
        assert_eq!(prefixlen_to_mask(Family::Inet, 33), None);
        assert_eq!(prefixlen_to_mask(Family::Inet6, 70), Some(Mask::Inet6(70)));
        assert_eq!(prefixlen_to_mask(Family::Inet6, 129), None);
        assert_eq!(prefixlen_to_mask(Family::Link, 8), None);
        assert_eq!(in6_prefix("ffff:ffff:ffff:ffff::".parse().unwrap()), 64);
        assert_eq!(in6_prefix("ffff:0:ffff::".parse().unwrap()), 0);
        assert_eq!(in6_prefix(Ipv6Addr::from(u128::MAX)), 128);
    }
}
