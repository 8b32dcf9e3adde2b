//! IPv4 options: what a host or router does with them as a packet comes in
//! (ip_dooptions: record route, loose and strict source route, timestamp)
//! and what an echo reply carries back (icmp_reflect with ip_srcroute).
//! Pure functions over a header; the router answers the questions about
//! its addresses and routes through [`Where`].

use super::icmp::{
    PARAMPROB as ICMP_PARAMPROB, UNREACH as ICMP_UNREACH, UNREACH_HOST, UNREACH_NET_PROHIB,
    UNREACH_SRCFAIL, checksum,
};
use std::net::Ipv4Addr;

pub const IPOPT_EOL: u8 = 0;
pub const IPOPT_NOP: u8 = 1;
pub const IPOPT_RR: u8 = 7;
pub const IPOPT_TS: u8 = 68;
pub const IPOPT_SECURITY: u8 = 130;
pub const IPOPT_LSRR: u8 = 131;
pub const IPOPT_SSRR: u8 = 137;
/// The option area's size (60-byte header less the fixed 20).
pub const MAX_IPOPTLEN: usize = 40;
/// The first pointer value of a route or timestamp option (1-origin).
const MINOFF: u8 = 4;
const TS_TSONLY: u8 = 0;
const TS_TSANDADDR: u8 = 1;
const TS_PRESPEC: u8 = 3;

/// What option processing asks of the host.
pub trait Where {
    /// ifa_ifwithaddr: whether `a` is one of our addresses.
    fn is_ours(&self, a: Ipv4Addr) -> bool;
    /// ip_rtaddr: the address of the interface the route to `a` leaves by.
    fn rtaddr(&self, a: Ipv4Addr) -> Option<Ipv4Addr>;
    /// ifa_ifwithladdr: our address on a subnet that holds `a` (a strict
    /// source route's next hop must be a neighbour).
    fn on_link(&self, a: Ipv4Addr) -> Option<Ipv4Addr>;
    /// ifaof_ifpforaddr on the receiving interface: its address for `a`.
    fn rcv_addr(&self, a: Ipv4Addr) -> Option<Ipv4Addr>;
    /// iptime(): milliseconds since midnight UTC.
    fn ms_today(&self) -> u32;
}

/// Options that passed: what to do next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Done {
    /// The packet follows a source route to its next hop (now its
    /// destination): forward it, whoever it was addressed to.
    pub srcrt: bool,
    /// The source route ended here: its option's offset in the header,
    /// for the reply's route back (save_rte).
    pub route_end: Option<usize>,
}

/// Options that failed: the ICMP error to send back (a parameter
/// problem's pointer is `code`, as icmp_error takes it), counted in
/// ips_badoptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bad {
    pub typ: u8,
    pub code: u8,
}

impl Bad {
    fn at(off: usize) -> Bad {
        Bad {
            typ: ICMP_PARAMPROB,
            code: off as u8,
        }
    }

    fn unreach(code: u8) -> Bad {
        Bad {
            typ: ICMP_UNREACH,
            code,
        }
    }

    /// The error's type and code and its second word (the parameter
    /// problem's pointer in its first byte, code 0).
    pub fn icmp(&self) -> ((u8, u8), u32) {
        if self.typ == ICMP_PARAMPROB {
            ((self.typ, 0), u32::from(self.code) << 24)
        } else {
            ((self.typ, self.code), 0)
        }
    }
}

fn addr(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// The length of the option at `at` of header `h` as ip_dooptions reads
/// it (None at the end of the list), or the parameter problem.
fn opt_len(h: &[u8], at: usize) -> Result<Option<usize>, Bad> {
    match h[at] {
        IPOPT_EOL => Ok(None),
        IPOPT_NOP => Ok(Some(1)),
        _ => {
            let len = usize::from(*h.get(at + 1).ok_or(Bad::at(at + 1))?);
            if len < 2 || at + len > h.len() {
                return Err(Bad::at(at + 1));
            }
            Ok(Some(len))
        }
    }
}

/// The options of header `h` in turn: (offset in the header, type,
/// length), or the parameter problem.
fn walk(h: &[u8], mut f: impl FnMut(usize, u8, usize)) -> Result<(), Bad> {
    let mut at = 20;
    while at < h.len() {
        let Some(len) = opt_len(h, at)? else { break };
        f(at, h[at], len);
        at += len;
    }
    Ok(())
}

/// Whether the options of header `h` are well formed (each fits the
/// header): the parameter problem if not. For callers that only look.
pub fn check(h: &[u8]) -> Result<(), Bad> {
    walk(h, |_, _, _| {})
}

/// A route option's checks (one of its kind, room for its pointer, the
/// pointer past the header): the 0-origin offset its pointer names.
fn route_off(h: &[u8], at: usize, len: usize, seen: &mut bool) -> Result<usize, Bad> {
    if std::mem::replace(seen, true) {
        return Err(Bad::at(at));
    }
    if len < 3 {
        return Err(Bad::at(at + 1));
    }
    let ptr = h[at + 2];
    if ptr < MINOFF {
        return Err(Bad::at(at + 2));
    }
    Ok(usize::from(ptr) - 1)
}

/// ip_dooptions over the IPv4 header `h` (with its options; checksum
/// recomputed if anything changed). `allowsrcrt`: net.inet.ip.allowsrcrt;
/// a source route not allowed is an administratively prohibited unreach.
pub fn dooptions(h: &mut [u8], allowsrcrt: bool, w: &dyn Where) -> Result<Done, Bad> {
    let mut done = Done::default();
    let (mut srr, mut rr, mut ts) = (false, false, false);
    let dst0 = addr(&h[16..20]);
    let mut changed = false;
    let mut at = 20;
    while at < h.len() {
        let Some(len) = opt_len(h, at)? else { break };
        match h[at] {
            opt @ (IPOPT_LSRR | IPOPT_SSRR) => {
                if !allowsrcrt {
                    return Err(Bad::unreach(UNREACH_NET_PROHIB));
                }
                let off = route_off(h, at, len, &mut srr)?;
                if !w.is_ours(addr(&h[16..20])) {
                    if opt == IPOPT_SSRR {
                        return Err(Bad::unreach(UNREACH_SRCFAIL));
                    }
                    // Loose, and not at its next hop yet: forwarded as
                    // any packet.
                } else {
                    if off + 4 > len {
                        // The end of the route: it is for us.
                        done.route_end = Some(at);
                    } else {
                        let next = addr(&h[at + off..at + off + 4]);
                        let ia = if opt == IPOPT_SSRR {
                            w.on_link(next)
                        } else {
                            w.rtaddr(next)
                        };
                        let ia = ia.ok_or(Bad::unreach(UNREACH_SRCFAIL))?;
                        h[16..20].copy_from_slice(&next.octets());
                        h[at + off..at + off + 4].copy_from_slice(&ia.octets());
                        h[at + 2] += 4;
                        changed = true;
                        done.srcrt = !next.is_multicast();
                    }
                }
            }
            IPOPT_RR => {
                let off = route_off(h, at, len, &mut rr)?;
                // No room left: nothing recorded.
                if off + 4 <= len {
                    // Our address if it is for us, else the one of the
                    // interface it leaves by.
                    let dst = addr(&h[16..20]);
                    let ia = if w.is_ours(dst) {
                        dst
                    } else {
                        w.rtaddr(dst).ok_or(Bad::unreach(UNREACH_HOST))?
                    };
                    h[at + off..at + off + 4].copy_from_slice(&ia.octets());
                    h[at + 2] += 4;
                    changed = true;
                }
            }
            IPOPT_TS => {
                if std::mem::replace(&mut ts, true) {
                    return Err(Bad::at(at));
                }
                if !(4..=40).contains(&len) {
                    return Err(Bad::at(at + 1));
                }
                let ptr = usize::from(h[at + 2]);
                if ptr < 5 {
                    return Err(Bad::at(at + 2));
                }
                if ptr > len - 4 {
                    // Full: count the overflow in the high nibble.
                    let oflw = (h[at + 3] >> 4).wrapping_add(1) & 0xf;
                    if oflw == 0 {
                        return Err(Bad::at(at + 2));
                    }
                    h[at + 3] = (oflw << 4) | (h[at + 3] & 0xf);
                    changed = true;
                } else {
                    let mut p = at + ptr - 1;
                    let stamp = match h[at + 3] & 0xf {
                        TS_TSONLY => true,
                        TS_TSANDADDR => {
                            if ptr - 1 + 8 > len {
                                return Err(Bad::at(at + 2));
                            }
                            match w.rcv_addr(dst0) {
                                Some(ia) => {
                                    h[p..p + 4].copy_from_slice(&ia.octets());
                                    h[at + 2] += 4;
                                    p += 4;
                                    true
                                }
                                None => false,
                            }
                        }
                        TS_PRESPEC => {
                            if ptr - 1 + 8 > len {
                                return Err(Bad::at(at + 2));
                            }
                            if w.is_ours(addr(&h[p..p + 4])) {
                                h[at + 2] += 4;
                                p += 4;
                                true
                            } else {
                                false
                            }
                        }
                        _ => return Err(Bad::at(at + 3)),
                    };
                    if stamp {
                        h[p..p + 4].copy_from_slice(&w.ms_today().to_be_bytes());
                        h[at + 2] += 4;
                        changed = true;
                    }
                }
            }
            _ => {}
        }
        at += len;
    }
    if changed {
        h[10..12].copy_from_slice(&[0, 0]);
        let sum = checksum(0, h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
    }
    Ok(done)
}

/// icmp_reflect's options for the reply to a packet with header `h`: the
/// source route it came by turned around (ip_srcroute: its last hop is the
/// reply's first, the others reversed, the sender last), then its record
/// route, timestamp and security options as they are, padded to a word.
/// Returns the reply's first hop (its destination) if source routed, and
/// the options' length in `out`.
pub fn reflect(
    h: &[u8],
    route_end: Option<usize>,
    out: &mut [u8; MAX_IPOPTLEN],
) -> (Option<Ipv4Addr>, usize) {
    let mut n = 0;
    // "Should check for overflow, but it can't happen": a header holds
    // 40 bytes of options, and so does the reply's.
    let mut put = |bytes: &[u8]| {
        if n + bytes.len() <= MAX_IPOPTLEN {
            out[n..n + bytes.len()].copy_from_slice(bytes);
            n += bytes.len();
        }
    };
    let mut first = None;
    if let Some(at) = route_end {
        let len = usize::from(h[at + 1]);
        let hops = &h[at + 3..at + len];
        let count = hops.len() / 4;
        if count > 0 {
            first = Some(addr(&hops[(count - 1) * 4..]));
            put(&[IPOPT_NOP, h[at], h[at + 1], MINOFF]);
            for k in (0..count - 1).rev() {
                put(&hops[k * 4..k * 4 + 4]);
            }
            put(&h[12..16]);
        }
    }
    let _ = walk(h, |at, opt, len| {
        if matches!(opt, IPOPT_RR | IPOPT_TS | IPOPT_SECURITY) {
            put(&h[at..at + len]);
        }
    });
    // Padded to a word with EOLs.
    let padded = n.div_ceil(4) * 4;
    out[n..padded].fill(IPOPT_EOL);
    (first, padded)
}

/// ip_optcopy: the options of `opts` that a fragment after the first
/// carries (those with the copied flag, and NOPs for alignment), padded
/// to a word with EOL, into `out`; their length.
pub fn optcopy(opts: &[u8], out: &mut [u8; MAX_IPOPTLEN]) -> usize {
    let mut n = 0;
    let mut at = 0;
    while at < opts.len().min(MAX_IPOPTLEN) {
        let opt = opts[at];
        if opt == IPOPT_EOL {
            break;
        }
        if opt == IPOPT_NOP {
            out[n] = IPOPT_NOP;
            n += 1;
            at += 1;
            continue;
        }
        let len = usize::from(opts.get(at + 1).copied().unwrap_or(0));
        if len < 2 || at + len > opts.len() {
            break;
        }
        if opt & 0x80 != 0 && n + len <= MAX_IPOPTLEN {
            out[n..n + len].copy_from_slice(&opts[at..at + len]);
            n += len;
        }
        at += len;
    }
    let padded = n.div_ceil(4) * 4;
    out[n..padded].fill(IPOPT_EOL);
    padded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host with 10.1.0.1 (towards 10.1/16) and 10.2.0.1 (towards
    /// everything else).
    struct Two;
    impl Where for Two {
        fn is_ours(&self, a: Ipv4Addr) -> bool {
            a == Ipv4Addr::new(10, 1, 0, 1) || a == Ipv4Addr::new(10, 2, 0, 1)
        }
        fn rtaddr(&self, a: Ipv4Addr) -> Option<Ipv4Addr> {
            match a.octets() {
                [10, 1, ..] => Some(Ipv4Addr::new(10, 1, 0, 1)),
                [10, 2, ..] => Some(Ipv4Addr::new(10, 2, 0, 1)),
                _ => None,
            }
        }
        fn on_link(&self, a: Ipv4Addr) -> Option<Ipv4Addr> {
            self.rtaddr(a)
        }
        fn rcv_addr(&self, _: Ipv4Addr) -> Option<Ipv4Addr> {
            Some(Ipv4Addr::new(10, 1, 0, 1))
        }
        fn ms_today(&self) -> u32 {
            0x0102_0304
        }
    }

    fn header(dst: [u8; 4], opts: &[u8]) -> Vec<u8> {
        let hl = 20 + opts.len();
        let mut h = vec![
            0x40 | (hl / 4) as u8,
            0,
            0,
            hl as u8,
            0,
            1,
            0,
            0,
            64,
            1,
            0,
            0,
        ];
        h.extend_from_slice(&[10, 1, 0, 2]);
        h.extend_from_slice(&dst);
        h.extend_from_slice(opts);
        let s = checksum(0, &h);
        h[10..12].copy_from_slice(&s.to_be_bytes());
        h
    }

    /// ping -R's option: 9 slots.
    fn rr() -> Vec<u8> {
        let mut o = vec![IPOPT_RR, 39, 4];
        o.resize(40, 0);
        o
    }

    #[test]
    fn record_route_takes_the_outgoing_address_then_ours() {
        let mut h = header([10, 2, 0, 2], &rr());
        assert_eq!(dooptions(&mut h, false, &Two), Ok(Done::default()));
        assert_eq!(h[22], 8);
        assert_eq!(h[23..27], [10, 2, 0, 1]);
        assert_eq!(checksum(0, &h), 0);
        // For us: our own address.
        h[16..20].copy_from_slice(&[10, 1, 0, 1]);
        dooptions(&mut h, false, &Two).unwrap();
        assert_eq!(h[27..31], [10, 1, 0, 1]);
        // Nowhere to go: a host unreachable.
        h[16..20].copy_from_slice(&[192, 0, 2, 1]);
        let e = dooptions(&mut h, false, &Two).unwrap_err();
        assert_eq!(e.icmp(), ((3, 1), 0));
        // Full: nothing more recorded, no error.
        let mut full = vec![IPOPT_RR, 7, 8, 9, 9, 9, 9, 0];
        let mut h = header([10, 2, 0, 2], &full);
        dooptions(&mut h, false, &Two).unwrap();
        full[2] = 8;
        assert_eq!(h[20..], full[..]);
    }

    #[test]
    fn bad_options_point_at_the_bad_byte() {
        // Length past the header.
        let mut h = header([10, 2, 0, 2], &[IPOPT_RR, 9, 4, 0]);
        assert_eq!(dooptions(&mut h, false, &Two), Err(Bad::at(21)));
        assert_eq!(check(&h), Err(Bad::at(21)));
        assert_eq!(Bad::at(21).icmp(), ((12, 0), 21 << 24));
        // A pointer below 4.
        let mut h = header([10, 2, 0, 2], &[IPOPT_RR, 7, 3, 0, 0, 0, 0, 0]);
        assert_eq!(dooptions(&mut h, false, &Two), Err(Bad::at(22)));
        // Two record routes.
        let two = [IPOPT_RR, 3, 4, IPOPT_RR, 3, 4, 0, 0];
        let mut h = header([10, 2, 0, 2], &two);
        assert_eq!(dooptions(&mut h, false, &Two), Err(Bad::at(23)));
        // A length byte missing.
        let mut h = header([10, 2, 0, 2], &[IPOPT_NOP, IPOPT_NOP, IPOPT_NOP, IPOPT_RR]);
        assert_eq!(dooptions(&mut h, false, &Two), Err(Bad::at(24)));
        // Unknown options are passed over; NOPs and EOL too.
        let mut h = header([10, 2, 0, 2], &[IPOPT_NOP, 0x99, 2, IPOPT_EOL]);
        assert_eq!(dooptions(&mut h, false, &Two), Ok(Done::default()));
    }

    #[test]
    fn source_routes_need_allowsrcrt_and_step_along() {
        // ping -g 10.1.0.1 10.2.0.2: to the gateway, the final hop in
        // the option.
        let opt = [IPOPT_LSRR, 7, 4, 10, 2, 0, 2, IPOPT_NOP];
        let mut h = header([10, 1, 0, 1], &opt);
        let e = dooptions(&mut h.clone(), false, &Two).unwrap_err();
        assert_eq!(e.icmp(), ((3, 9), 0));
        let d = dooptions(&mut h, true, &Two).unwrap();
        assert!(d.srcrt);
        assert_eq!(h[16..20], [10, 2, 0, 2]);
        assert_eq!(h[23..27], [10, 2, 0, 1]);
        assert_eq!(h[22], 8);
        assert_eq!(checksum(0, &h), 0);
        // At the end of the route, at its destination.
        h[16..20].copy_from_slice(&[10, 1, 0, 1]);
        let d = dooptions(&mut h, true, &Two).unwrap();
        assert_eq!(
            d,
            Done {
                srcrt: false,
                route_end: Some(20)
            }
        );
        // Not our hop yet: loose passes, strict fails.
        let mut h = header([10, 9, 0, 9], &opt);
        assert_eq!(dooptions(&mut h, true, &Two), Ok(Done::default()));
        let strict = [IPOPT_SSRR, 7, 4, 10, 2, 0, 2, IPOPT_NOP];
        let mut h = header([10, 9, 0, 9], &strict);
        assert_eq!(
            dooptions(&mut h, true, &Two).unwrap_err().icmp(),
            ((3, 5), 0)
        );
        // A next hop we have no route to.
        let nowhere = [IPOPT_LSRR, 7, 4, 192, 0, 2, 1, IPOPT_NOP];
        let mut h = header([10, 1, 0, 1], &nowhere);
        assert_eq!(
            dooptions(&mut h, true, &Two).unwrap_err().icmp(),
            ((3, 5), 0)
        );
    }

    #[test]
    fn fragments_copy_only_the_copied_options() {
        let mut opts = vec![IPOPT_LSRR, 7, 4, 10, 2, 0, 2, IPOPT_NOP];
        opts.extend_from_slice(&rr()[..32]);
        let mut out = [0u8; MAX_IPOPTLEN];
        let n = optcopy(&opts, &mut out);
        assert_eq!(out[..n], [IPOPT_LSRR, 7, 4, 10, 2, 0, 2, IPOPT_NOP]);
        assert_eq!(optcopy(&rr(), &mut out), 0);
        // Odd lengths are padded.
        let n = optcopy(&[IPOPT_SSRR, 3, 4, IPOPT_EOL], &mut out);
        assert_eq!(out[..n], [IPOPT_SSRR, 3, 4, IPOPT_EOL]);
    }

    #[test]
    fn timestamps() {
        let mut h = header(
            [10, 1, 0, 1],
            &[IPOPT_TS, 12, 5, TS_TSANDADDR, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        dooptions(&mut h, false, &Two).unwrap();
        assert_eq!(h[22], 13);
        assert_eq!(h[24..32], [10, 1, 0, 1, 1, 2, 3, 4]);
        // Full: the overflow count goes up.
        dooptions(&mut h, false, &Two).unwrap();
        assert_eq!(h[23] >> 4, 1);
    }

    #[test]
    fn replies_turn_the_source_route_around_and_keep_the_record() {
        // Arrived by way of 10.2.0.1 (recorded there) from 10.1.0.2.
        let mut opts = vec![IPOPT_NOP, IPOPT_LSRR, 7, 8, 10, 2, 0, 1];
        opts.extend_from_slice(&[IPOPT_RR, 11, 12, 10, 2, 0, 1, 10, 1, 0, 1, 0]);
        let h = header([10, 2, 0, 2], &opts);
        let mut out = [0u8; MAX_IPOPTLEN];
        let (first, n) = reflect(&h, Some(21), &mut out);
        assert_eq!(first, Some(Ipv4Addr::new(10, 2, 0, 1)));
        assert_eq!(out[..8], [IPOPT_NOP, IPOPT_LSRR, 7, 4, 10, 1, 0, 2]);
        assert_eq!(out[8..19], opts[8..19]);
        assert_eq!(n, 20);
        // Without a source route: the record alone.
        let h = header([10, 2, 0, 2], &rr());
        let (first, n) = reflect(&h, None, &mut out);
        assert_eq!((first, n), (None, 40));
        assert_eq!(out[..3], [IPOPT_RR, 39, 4]);
    }
}
