//! The ICMP and ICMPv6 errors the forwarding path sends (icmp_error,
//! icmp6_error): built into a buffer the caller keeps, quoting the packet
//! that caused them, rate limited as net.inet.icmp.errppslimit.

use crate::ioctl::Mac;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

pub const UNREACH: u8 = 3;
pub const REDIRECT: u8 = 5;
pub const TIMXCEED: u8 = 11;
pub const UNREACH_HOST: u8 = 1;
pub const UNREACH_NEEDFRAG: u8 = 4;
pub const UNREACH_SRCFAIL: u8 = 5;
pub const UNREACH_NET_PROHIB: u8 = 9;
pub const PARAMPROB: u8 = 12;
pub const REDIRECT_HOST: u8 = 1;

pub const ICMP6_DST_UNREACH: u8 = 1;
pub const ICMP6_PACKET_TOO_BIG: u8 = 2;
pub const ICMP6_TIME_EXCEEDED: u8 = 3;
pub const ICMP6_DST_UNREACH_NOROUTE: u8 = 0;
pub const ICMP6_DST_UNREACH_ADMIN: u8 = 1;
pub const ICMP6_DST_UNREACH_ADDR: u8 = 3;
pub const ND_REDIRECT: u8 = 137;

/// Bytes of the offending packet an ICMP error quotes beyond its IP
/// header (net.inet.icmp.returndatabytes).
const RETURN_DATA: usize = 8;
/// An ICMPv6 error is at most the minimum MTU.
const ICMP6_MAX: usize = 1280;
/// Errors per second (net.inet.icmp.errppslimit), with a burst of as many.
pub const ERR_PPS: f64 = 100.0;
/// Echo requests answered per second for another interface's address, as
/// the interfaces' hosts answer their own.
pub const ECHO_PPS: f64 = 20_000.0;

/// The Internet checksum of `data` folded with `sum`.
pub fn checksum(mut sum: u32, data: &[u8]) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A token bucket: `pps` a second, with a burst of as many.
pub struct RateLimit {
    pps: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    pub fn new(now: Instant, pps: f64) -> RateLimit {
        RateLimit {
            pps,
            tokens: pps,
            at: now,
        }
    }

    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.pps).min(self.pps);
        self.at = self.at.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn ethernet(buf: &mut Vec<u8>, src: Mac, dst: Mac, ethertype: u16) {
    buf.clear();
    buf.extend_from_slice(&dst);
    buf.extend_from_slice(&src);
    buf.extend_from_slice(&ethertype.to_be_bytes());
}

/// An IPv4 header of `len` bytes of payload, protocol `proto`, TTL `ttl`,
/// with `opts` (a whole number of words, at most 40 bytes).
pub fn ipv4_header(
    buf: &mut Vec<u8>,
    (src, dst): (Ipv4Addr, Ipv4Addr),
    (id, ttl): (u16, u8),
    (proto, opts): (u8, &[u8]),
    len: usize,
) {
    let start = buf.len();
    let hlen = 20 + opts.len();
    let total = (hlen + len) as u16;
    buf.extend_from_slice(&[0x40 | (hlen / 4) as u8, 0]);
    buf.extend_from_slice(&total.to_be_bytes());
    buf.extend_from_slice(&id.to_be_bytes());
    buf.extend_from_slice(&[0, 0, ttl, proto, 0, 0]);
    buf.extend_from_slice(&src.octets());
    buf.extend_from_slice(&dst.octets());
    buf.extend_from_slice(opts);
    let sum = checksum(0, &buf[start..start + hlen]);
    buf[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
}

/// An ICMP error frame: `word` is the second header word (the next-hop
/// MTU, the redirect's gateway, the parameter problem's pointer), `orig`
/// the offending IP packet with its header of `hlen` bytes.
#[allow(clippy::too_many_arguments)]
pub fn error4(
    buf: &mut Vec<u8>,
    macs: (Mac, Mac),
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    (typ, code): (u8, u8),
    word: u32,
    orig: &[u8],
    hlen: usize,
) {
    let quote = &orig[..orig.len().min(hlen + RETURN_DATA)];
    ethernet(buf, macs.0, macs.1, 0x0800);
    ipv4_header(buf, (src, dst), (id, 64), (1, &[]), 8 + quote.len());
    let at = buf.len();
    buf.extend_from_slice(&[typ, code, 0, 0]);
    buf.extend_from_slice(&word.to_be_bytes());
    buf.extend_from_slice(quote);
    let sum = checksum(0, &buf[at..]);
    buf[at + 2..at + 4].copy_from_slice(&sum.to_be_bytes());
}

/// An ICMPv6 message of type `typ` in `buf` after its Ethernet header:
/// the IPv6 header (hop limit `hlim`), then `body` (the ICMP header's
/// checksum filled in here).
fn icmpv6_frame(
    buf: &mut Vec<u8>,
    (src, dst): (Ipv6Addr, Ipv6Addr),
    hlim: u8,
    body: impl FnOnce(&mut Vec<u8>),
) {
    let ip = buf.len();
    buf.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, 58, hlim]);
    buf.extend_from_slice(&src.octets());
    buf.extend_from_slice(&dst.octets());
    let at = buf.len();
    body(buf);
    let len = buf.len() - at;
    buf[ip + 4..ip + 6].copy_from_slice(&(len as u16).to_be_bytes());
    let mut sum = 0u32;
    for w in src.segments().iter().chain(dst.segments().iter()) {
        sum += u32::from(*w);
    }
    sum += len as u32 + 58;
    let c = checksum(sum, &buf[at..]);
    buf[at + 2..at + 4].copy_from_slice(&c.to_be_bytes());
}

/// A redirect (RFC 4861 4.5) from our link-local `src` to `dst`: `target`
/// is the better first hop for `destination`; the redirected header
/// option quotes `orig` as far as 1280 bytes allow.
pub fn redirect6(
    buf: &mut Vec<u8>,
    macs: (Mac, Mac),
    (src, dst, target, destination): (Ipv6Addr, Ipv6Addr, Ipv6Addr, Ipv6Addr),
    orig: &[u8],
) {
    ethernet(buf, macs.0, macs.1, 0x86dd);
    icmpv6_frame(buf, (src, dst), 255, |b| {
        b.extend_from_slice(&[ND_REDIRECT, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&target.octets());
        b.extend_from_slice(&destination.octets());
        // 40 + 40 bytes of headers and 8 of the option's own.
        let quote = &orig[..orig.len().min(ICMP6_MAX - 88 - 8)];
        let units = (8 + quote.len()).div_ceil(8);
        b.extend_from_slice(&[4, units as u8, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(quote);
        b.resize(b.len() + units * 8 - 8 - quote.len(), 0);
    });
}

/// An ICMPv6 error frame quoting as much of `orig` as fits in 1280 bytes.
pub fn error6(
    buf: &mut Vec<u8>,
    macs: (Mac, Mac),
    src: Ipv6Addr,
    dst: Ipv6Addr,
    (typ, code): (u8, u8),
    word: u32,
    orig: &[u8],
) {
    let quote = &orig[..orig.len().min(ICMP6_MAX - 40 - 8)];
    ethernet(buf, macs.0, macs.1, 0x86dd);
    icmpv6_frame(buf, (src, dst), 255, |b| {
        b.extend_from_slice(&[typ, code, 0, 0]);
        b.extend_from_slice(&word.to_be_bytes());
        b.extend_from_slice(quote);
    });
}

/// An echo request frame of the host's own, `len` data bytes counting
/// up as the ping tool's, with IPv4 options `opts`, to a MAC the sender
/// fills in; `None` for mixed families.
pub fn echo_request(
    mac: Mac,
    (src, dst): (std::net::IpAddr, std::net::IpAddr),
    (id, ttl): (u16, u8),
    (ident, seq): (u16, u16),
    (len, opts): (usize, &[u8]),
) -> Option<Vec<u8>> {
    use std::net::IpAddr::{V4, V6};
    let mut buf = Vec::with_capacity(14 + 48 + len);
    let mut icmp = [0u8; 8].to_vec();
    icmp[4..6].copy_from_slice(&ident.to_be_bytes());
    icmp[6..8].copy_from_slice(&seq.to_be_bytes());
    icmp.extend((0..len).map(|i| i as u8));
    match (src, dst) {
        (V4(s), V4(d)) => {
            icmp[0] = 8;
            let c = checksum(0, &icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            ethernet(&mut buf, mac, [0; 6], 0x0800);
            ipv4_header(&mut buf, (s, d), (id, ttl), (1, opts), icmp.len());
        }
        (V6(s), V6(d)) => {
            icmp[0] = 128;
            ethernet(&mut buf, mac, [0; 6], 0x86dd);
            icmpv6_frame(&mut buf, (s, d), ttl, |b| b.extend_from_slice(&icmp));
            return Some(buf);
        }
        _ => return None,
    }
    buf.extend_from_slice(&icmp);
    Some(buf)
}

/// The echo reply to the echo request `p` (an IP packet with a header of
/// `hlen` bytes): addresses swapped, a fresh header carrying `opts` (what
/// icmp_reflect keeps of the request's) and sent to `first_hop` if they
/// hold a source route, the ICMP type and checksum changed. False if `p`
/// is no echo request.
pub fn echo_reply(
    buf: &mut Vec<u8>,
    macs: (Mac, Mac),
    (p, hlen): (&[u8], usize),
    (opts, first_hop): (&[u8], Option<Ipv4Addr>),
) -> bool {
    let Some(icmp) = p.get(hlen..).filter(|i| i.len() >= 8) else {
        return false;
    };
    let v6 = p[0] >> 4 == 6;
    let (request, reply) = if v6 { (128, 129) } else { (8, 0) };
    if icmp[0] != request || icmp[1] != 0 {
        return false;
    }
    ethernet(buf, macs.0, macs.1, if v6 { 0x86dd } else { 0x0800 });
    if v6 {
        buf.extend_from_slice(&p[..8]);
        buf[14 + 7] = 64;
        buf.extend_from_slice(&p[24..40]);
        buf.extend_from_slice(&p[8..24]);
    } else {
        let (src, dst) = (
            Ipv4Addr::new(p[12], p[13], p[14], p[15]),
            Ipv4Addr::new(p[16], p[17], p[18], p[19]),
        );
        ipv4_header(
            buf,
            (dst, first_hop.unwrap_or(src)),
            (u16::from_be_bytes([p[4], p[5]]), 64),
            (1, opts),
            icmp.len(),
        );
    }
    let at = buf.len();
    buf.extend_from_slice(icmp);
    buf[at] = reply;
    buf[at + 2..at + 4].copy_from_slice(&[0, 0]);
    let mut sum = 0u32;
    if v6 {
        for w in buf[14 + 8..14 + 40].chunks_exact(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        sum += icmp.len() as u32 + 58;
    }
    let c = checksum(sum, &buf[at..]);
    buf[at + 2..at + 4].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv6Packet};

    #[test]
    fn errors_parse_with_good_checksums() {
        let mut orig = vec![0x45u8, 0, 0, 40, 0, 0, 0x40, 0, 1, 6, 0, 0];
        orig.extend_from_slice(&[10, 1, 0, 2, 10, 2, 0, 2]);
        orig.resize(40, 7);
        let mut buf = Vec::new();
        let macs = ([2; 6], [4; 6]);
        let (s, d) = (Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 1, 0, 2));
        error4(
            &mut buf,
            macs,
            s,
            d,
            9,
            (UNREACH, UNREACH_NEEDFRAG),
            1400,
            &orig,
            20,
        );
        let ip = Ipv4Packet::new_checked(&buf[14..]).unwrap();
        assert!(ip.verify_checksum());
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(ip.payload().len(), 8 + 28);
        assert_eq!(&buf[14 + 20 + 6..14 + 20 + 8], &1400u16.to_be_bytes());
        let (s6, d6): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8:1::2".parse().unwrap(),
        );
        error6(
            &mut buf,
            macs,
            s6,
            d6,
            (ICMP6_TIME_EXCEEDED, 0),
            0,
            &[0x60; 2000],
        );
        let ip = Ipv6Packet::new_checked(&buf[14..]).unwrap();
        assert_eq!(buf.len() - 14, 1280);
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(&s6, &d6));
    }

    #[test]
    fn echo_replies_turn_requests_around() {
        let a = std::net::IpAddr::from([10, 1, 0, 2]);
        let b = std::net::IpAddr::from([10, 2, 0, 1]);
        let req = echo_request([2; 6], (a, b), (7, 64), (9, 1), (24, &[])).unwrap();
        let mut buf = Vec::new();
        assert!(echo_reply(
            &mut buf,
            ([4; 6], [2; 6]),
            (&req[14..], 20),
            (&[], None)
        ));
        let ip = Ipv4Packet::new_checked(&buf[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            (ip.src_addr(), ip.dst_addr()),
            ([10, 2, 0, 1].into(), [10, 1, 0, 2].into())
        );
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(
            (icmp.msg_type(), icmp.echo_ident()),
            (smoltcp::wire::Icmpv4Message::EchoReply, 9)
        );
        let (a6, b6): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8:1::2".parse().unwrap(),
            "2001:db8:2::1".parse().unwrap(),
        );
        let req = echo_request([2; 6], (a6.into(), b6.into()), (0, 64), (9, 1), (24, &[])).unwrap();
        assert!(echo_reply(
            &mut buf,
            ([4; 6], [2; 6]),
            (&req[14..], 40),
            (&[], None)
        ));
        let ip = Ipv6Packet::new_checked(&buf[14..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (b6, a6));
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(&b6, &a6));
        // Not an echo request: nothing.
        let reply = buf.clone();
        assert!(!echo_reply(
            &mut buf,
            ([4; 6], [2; 6]),
            (&reply[14..], 40),
            (&[], None)
        ));
    }

    #[test]
    fn rate_limit() {
        let t = Instant::now();
        let mut r = RateLimit::new(t, ERR_PPS);
        let sent = (0..1000).filter(|_| r.take(t)).count();
        assert_eq!(sent, 100);
        assert!(r.take(t + std::time::Duration::from_millis(20)));
    }
}
