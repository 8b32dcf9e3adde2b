//! The forwarding path (ip_input's checks, ip_forward, ip6_forward): a
//! packet to the link but not to the host is checked once, its TTL or
//! hop limit lowered, and it leaves by the interface its route names,
//! rewritten in a buffer of the reactor thread's own (no allocation per
//! packet; a GSO super-frame goes whole, with its offload work). Errors go
//! back as ICMP; next hops are resolved with ARP and neighbour
//! solicitations while their packets wait (`neigh`).

use super::hbh;
use super::icmp::{self, checksum};
use super::ipopt::{self, MAX_IPOPTLEN};
use super::neigh::Held;
use super::stats::*;
use super::table::Route;
use super::{Config, IfInfo, Router, source_for};
use crate::frame::Frame;
use crate::inet::{arp_request, neighbor_solicit};
use crate::ioctl::{Mac, iff, rtf};
use crate::offload::{Offload, OffloadCaps};
use crate::port::{Forward, Port};
use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

const ETHER_HDR: usize = 14;
const ETHERTYPE_IP: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IP_DF: u16 = 0x4000;
const IP_MF: u16 = 0x2000;
const IP_OFFMASK: u16 = 0x1fff;
const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;

thread_local! {
    /// The frame being forwarded, and the error being sent: one of each
    /// per reactor thread, kept for their capacity.
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static ERR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// A frame whose IPv4 options are being processed.
    static OPT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// An IPv4 header that passed ip_input's checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip4 {
    pub hlen: usize,
    pub total: usize,
    pub ttl: u8,
    pub proto: u8,
    pub off: u16,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

/// ip_input's checks of `p` (the bytes after the Ethernet header): the
/// header, or the `ipstat` counter that a bad packet counts in. `loopback`
/// allows 127/8.
pub fn check4(p: &[u8], loopback: bool) -> Result<Ip4, usize> {
    if p.len() < 20 {
        return Err(IP_TOOSMALL);
    }
    if p[0] >> 4 != 4 {
        return Err(IP_BADVERS);
    }
    let hlen = usize::from(p[0] & 0xf) * 4;
    if hlen < 20 || hlen > p.len() {
        return Err(IP_BADHLEN);
    }
    if checksum(0, &p[..hlen]) != 0 {
        return Err(IP_BADSUM);
    }
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if total < hlen {
        return Err(IP_BADLEN);
    }
    if p.len() < total {
        return Err(IP_TOOSHORT);
    }
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    if !loopback && (src.is_loopback() || dst.is_loopback()) {
        return Err(IP_BADADDR);
    }
    if src.is_multicast() || src.is_broadcast() {
        return Err(IP_BADADDR);
    }
    Ok(Ip4 {
        hlen,
        total,
        ttl: p[8],
        proto: p[9],
        off: u16::from_be_bytes([p[6], p[7]]),
        src,
        dst,
    })
}

/// An IPv6 header that passed ip6_input's checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip6 {
    pub total: usize,
    pub hlim: u8,
    pub next: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
}

pub fn check6(p: &[u8]) -> Result<Ip6, usize> {
    if p.len() < 40 {
        return Err(IP6_TOOSMALL);
    }
    if p[0] >> 4 != 6 {
        return Err(IP6_BADVERS);
    }
    let plen = usize::from(u16::from_be_bytes([p[4], p[5]]));
    if p.len() < 40 + plen {
        return Err(IP6_TOOSHORT);
    }
    let a = |at: usize| {
        let mut o = [0u8; 16];
        o.copy_from_slice(&p[at..at + 16]);
        Ipv6Addr::from(o)
    };
    let (src, dst) = (a(8), a(24));
    if src.is_multicast() || (dst.is_loopback() || src.is_loopback()) {
        return Err(IP6_BADSCOPE);
    }
    Ok(Ip6 {
        total: 40 + plen,
        hlim: p[7],
        next: p[6],
        src,
        dst,
    })
}

/// Checks an Ethernet frame's IP packet as the forwarding path does,
/// without a router: for the fuzz target and tests.
pub fn parse_input(frame: &[u8]) -> Option<usize> {
    let f = Frame::new(frame)?;
    match f.ethertype() {
        ETHERTYPE_IP => Some(match check4(f.payload(), false) {
            Ok(h) if ipopt::check(&f.payload()[..h.hlen]).is_ok() => h.total,
            _ => 0,
        }),
        ETHERTYPE_IPV6 => Some(match check6(f.payload()) {
            Ok(h) if hbh::check(&f.payload()[..h.total]).is_ok() => h.total,
            _ => 0,
        }),
        _ => None,
    }
}

impl Forward for Router {
    fn input(&self, from: &Port, frame: &Frame) -> bool {
        match frame.ethertype() {
            ETHERTYPE_ARP => {
                self.arp_input(from, frame.payload());
                false
            }
            ETHERTYPE_IP => self.ip4_input(from, frame),
            ETHERTYPE_IPV6 => self.ip6_input(from, frame),
            _ => false,
        }
    }
}

/// Whether IPv4 packet `p` (header of `hlen` bytes) is an echo request.
fn is_echo_request(p: &[u8], hlen: usize) -> bool {
    p.get(9) == Some(&PROTO_ICMP) && p.get(hlen) == Some(&8)
}

/// What option processing asks of the router: its addresses and routes
/// now, and the interface the packet came in on.
struct Here<'a> {
    cfg: &'a Config,
    inif: &'a IfInfo,
}

fn v4(a: Option<IpAddr>) -> Option<Ipv4Addr> {
    match a {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    }
}

impl ipopt::Where for Here<'_> {
    fn is_ours(&self, a: Ipv4Addr) -> bool {
        self.cfg
            .ifs
            .iter()
            .any(|i| i.up && i.v4.iter().any(|x| x.0 == a))
    }

    fn rtaddr(&self, a: Ipv4Addr) -> Option<Ipv4Addr> {
        let r = self.cfg.fib.lookup(IpAddr::V4(a))?;
        let i = self.cfg.interface(r.ifindex)?;
        let to = match r.gateway {
            Some(g) if r.flags & rtf::GATEWAY != 0 => g,
            _ => IpAddr::V4(a),
        };
        v4(source_for(i, to))
    }

    fn on_link(&self, a: Ipv4Addr) -> Option<Ipv4Addr> {
        let i = self.cfg.ifs.iter().find(|i| i.up && on_subnet4(i, a))?;
        v4(source_for(i, IpAddr::V4(a)))
    }

    fn rcv_addr(&self, a: Ipv4Addr) -> Option<Ipv4Addr> {
        v4(source_for(self.inif, IpAddr::V4(a)))
    }

    fn ms_today(&self) -> u32 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        ((t.as_secs() % 86_400) * 1000 + u64::from(t.subsec_millis())) as u32
    }
}

/// Whether ICMP `typ` is an error (one an error is never sent about).
fn is_icmp_error(typ: u8) -> bool {
    !matches!(typ, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
}

impl Router {
    /// Learn next hops from ARP addressed to us (in_arpinput's update of
    /// an entry, or a new one for a request to us).
    fn arp_input(&self, from: &Port, p: &[u8]) {
        if p.len() < 28 || p[0..6] != [0, 1, 8, 0, 6, 4] {
            return;
        }
        let op = u16::from_be_bytes([p[6], p[7]]);
        let mut sha = [0u8; 6];
        sha.copy_from_slice(&p[8..14]);
        let spa = Ipv4Addr::new(p[14], p[15], p[16], p[17]);
        let tpa = Ipv4Addr::new(p[24], p[25], p[26], p[27]);
        if spa.is_unspecified() || sha[0] & 1 != 0 {
            return;
        }
        let cfg = self.config();
        let Some(i) = cfg.interface(from.index) else {
            return;
        };
        let to_us = i.v4.iter().any(|(a, _)| *a == tpa);
        let held = self.neigh.learn(
            from.index,
            IpAddr::V4(spa),
            sha,
            to_us && (op == 1 || op == 2),
            Instant::now(),
        );
        self.release(i, sha, held);
    }

    /// Send the packets that waited for `mac`, on `out`.
    fn release(&self, out: &IfInfo, mac: Mac, held: impl IntoIterator<Item = Held>) {
        for h in held {
            self.transmit(out, mac, &h.bytes, h.off, !h.local);
        }
    }

    fn ip4_input(&self, from: &Port, frame: &Frame) -> bool {
        // Only an interface with IPv4 addresses takes IPv4 in; on others
        // it is nobody's (noproto), as before routing.
        let cfg = self.config();
        let Some(inif) = cfg.interface(from.index).filter(|i| !i.v4.is_empty()) else {
            return false;
        };
        let st = &self.stats;
        st.ip(IP_TOTAL);
        let p = frame.payload();
        let ip = match check4(p, from.flags() & iff::LOOPBACK != 0) {
            Ok(ip) => ip,
            Err(c) => {
                st.ip(c);
                return true;
            }
        };
        if frame.is_multicast() || ip.dst.is_multicast() || ip.dst.is_broadcast() {
            st.ip(IP_DELIVERED);
            return false;
        }
        if !from.is_own_mac(&frame.dst()) {
            return false;
        }
        if ip.hlen > 20 {
            return OPT.with(|b| match b.try_borrow_mut() {
                Ok(mut b) => self.ip4_options(&mut b, from, (&cfg, inif), frame, &ip),
                // Input re-entered from an output (a loop): a buffer of
                // its own.
                Err(_) => self.ip4_options(&mut Vec::new(), from, (&cfg, inif), frame, &ip),
            });
        }
        self.ip4_route(from, (&cfg, inif), frame, &ip, None)
    }

    /// ip_dooptions: the options processed in a copy of the frame (in
    /// `b`), which goes on in its place; bad options get their ICMP error.
    fn ip4_options(
        &self,
        b: &mut Vec<u8>,
        from: &Port,
        (cfg, inif): (&Config, &IfInfo),
        frame: &Frame,
        ip: &Ip4,
    ) -> bool {
        b.clear();
        b.extend_from_slice(frame.bytes());
        let h = &mut b[ETHER_HDR..ETHER_HDR + ip.hlen];
        let here = Here { cfg, inif };
        let done = match ipopt::dooptions(h, self.allowsrcrt.load(Relaxed), &here) {
            Ok(done) => done,
            Err(bad) => {
                self.stats.ip(IP_BADOPTIONS);
                let (code, word) = bad.icmp();
                self.error4(inif, frame, ip, code, word);
                return true;
            }
        };
        if done.srcrt && !self.forwsrcrt.load(Relaxed) {
            self.stats.ip(IP_BADOPTIONS);
            let code = (icmp::UNREACH, icmp::UNREACH_SRCFAIL);
            self.error4(inif, frame, ip, code, 0);
            return true;
        }
        let ip = Ip4 {
            dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            ..*ip
        };
        let Some(f) = Frame::with_offload(b, *frame.offload()) else {
            return true;
        };
        self.ip4_route(from, (cfg, inif), &f, &ip, Some(done))
    }

    /// A checked packet to the link: to the host, or forwarded. `opts`:
    /// its options were processed (the frame is a rewritten copy, which
    /// the host gets here rather than the one that arrived).
    fn ip4_route(
        &self,
        from: &Port,
        (cfg, inif): (&Config, &IfInfo),
        frame: &Frame,
        ip: &Ip4,
        opts: Option<ipopt::Done>,
    ) -> bool {
        let st = &self.stats;
        let srcrt = opts.is_some_and(|d| d.srcrt);
        let dst = IpAddr::V4(ip.dst);
        let route = cfg.fib.lookup(dst);
        if !srcrt && let Some(r) = route.filter(|r| r.is_local()) {
            st.ip(IP_DELIVERED);
            let bcast = r.flags & rtf::BROADCAST != 0;
            let another = r.ifindex != from.index && !bcast;
            let route_end = opts.and_then(|d| d.route_end);
            let reflect = opts.is_some() && !bcast && is_echo_request(frame.payload(), ip.hlen);
            if another || reflect {
                // An address of another interface (the weak host model),
                // or an echo request with options (icmp_reflect): answered
                // from here.
                self.echo_for_another(from, frame, (ip.hlen, ip.total), route_end);
                return true;
            }
            if opts.is_some() {
                from.to_stack(frame);
                return true;
            }
            return false;
        }
        // A source route is followed without net.inet.ip.forwarding, as
        // ip_dooptions calls ip_forward itself (net.inet.ip.forwsrcrt
        // decides).
        if !srcrt && !self.forwarding.load(Relaxed) {
            st.ip(IP_CANTFORWARD);
            return true;
        }
        // in_canforward, and no source.
        if ip.src.is_unspecified() || ip.dst.is_unspecified() || ip.dst.octets()[0] >= 240 {
            st.ip(IP_CANTFORWARD);
            return true;
        }
        if ip.ttl <= 1 {
            self.error4(inif, frame, ip, (icmp::TIMXCEED, 0), 0);
            return true;
        }
        let (route, out, nexthop) = match next_hop(cfg, route, dst) {
            Ok(hop) => hop,
            Err(Refused::Blackhole) => return true,
            Err(why) => {
                if why == Refused::NoRoute {
                    st.ip(IP_NOROUTE);
                }
                self.error4(inif, frame, ip, (icmp::UNREACH, icmp::UNREACH_HOST), 0);
                return true;
            }
        };
        // ip_forward's redirect: the packet leaves by the interface it came
        // in on, from a host on that interface's subnet, to a next hop the
        // host could have used itself.
        if out.index == inif.index
            && !srcrt
            && self.redirect.load(Relaxed)
            && route.flags & (rtf::DYNAMIC | rtf::MODIFIED) == 0
            && route.prefix != 0
            && on_subnet4(inif, ip.src)
            && let IpAddr::V4(g) = nexthop
        {
            st.ip(IP_REDIRECTSENT);
            let code = (icmp::REDIRECT, icmp::REDIRECT_HOST);
            self.error4(inif, frame, ip, code, u32::from(g));
        }
        let mtu = path_mtu(out, route.mtu);
        let size = wire_size(frame.offload(), ip.total);
        if size > mtu as usize && ip.off & IP_DF != 0 {
            st.ip(IP_CANTFRAG);
            self.error4(
                inif,
                frame,
                ip,
                (icmp::UNREACH, icmp::UNREACH_NEEDFRAG),
                mtu,
            );
            return true;
        }
        self.send(out, nexthop, from.index, frame, false);
        true
    }

    fn ip6_input(&self, from: &Port, frame: &Frame) -> bool {
        let cfg = self.config();
        let Some(inif) = cfg.interface(from.index).filter(|i| !i.v6.is_empty()) else {
            return false;
        };
        let st = &self.stats;
        st.ip6(IP6_TOTAL);
        let p = frame.payload();
        let ip = match check6(p) {
            Ok(ip) => ip,
            Err(c) => {
                st.ip6(c);
                return true;
            }
        };
        let to_link = !frame.is_multicast() && from.is_own_mac(&frame.dst());
        if ip.next == PROTO_ICMPV6 && (frame.is_multicast() || to_link) {
            // Neighbour discovery: learn the next hops it names.
            self.nd_input(inif, frame, &ip);
        }
        if !to_link || ip.dst.is_multicast() {
            return false;
        }
        let dst = IpAddr::V6(ip.dst);
        let route = cfg.fib.lookup(dst);
        if ip.dst.is_unicast_link_local() {
            st.ip6(IP6_DELIVERED);
            return false;
        }
        if let Some(r) = route.filter(|r| r.is_local()) {
            st.ip6(IP6_DELIVERED);
            if r.ifindex != from.index && ip.next == PROTO_ICMPV6 {
                self.echo_for_another(from, frame, (40, ip.total), None);
                return true;
            }
            return false;
        }
        if inif.v6.iter().any(|(a, _)| *a == ip.dst) {
            return false;
        }
        if !self.forwarding6.load(Relaxed) {
            st.ip6(IP6_CANTFORWARD);
            return true;
        }
        // As ip6_input: hop-by-hop options before ip6_forward.
        if let Err(why) = hbh::check(&p[..ip.total]) {
            if let Some(c) = hbh::counted(&why) {
                st.ip6(c);
            }
            if let hbh::Refused::Problem { code, pointer } = why {
                self.error6(inif, frame, &ip, (hbh::ICMP6_PARAM_PROB, code), pointer);
            }
            return true;
        }
        if ip.src.is_unicast_link_local() || ip.src.is_unspecified() {
            st.ip6(IP6_CANTFORWARD);
            return true;
        }
        if ip.hlim <= 1 {
            self.error6(inif, frame, &ip, (icmp::ICMP6_TIME_EXCEEDED, 0), 0);
            return true;
        }
        let (route, out, nexthop) = match next_hop(&cfg, route, dst) {
            Ok(hop) => hop,
            Err(Refused::Blackhole) => return true,
            Err(why) => {
                let code = if why == Refused::NoRoute {
                    st.ip6(IP6_NOROUTE);
                    icmp::ICMP6_DST_UNREACH_NOROUTE
                } else {
                    icmp::ICMP6_DST_UNREACH_ADMIN
                };
                self.error6(inif, frame, &ip, (icmp::ICMP6_DST_UNREACH, code), 0);
                return true;
            }
        };
        // ip6_forward's redirect, as the IPv4 one, from our link-local
        // address (RFC 4861 8.2).
        if out.index == inif.index
            && self.redirect.load(Relaxed)
            && route.flags & (rtf::DYNAMIC | rtf::MODIFIED) == 0
            && on_subnet6(inif, ip.src)
            && let IpAddr::V6(target) = nexthop
        {
            self.redirect6(inif, frame, &ip, target);
        }
        let mtu = path_mtu(out, route.mtu);
        if wire_size(frame.offload(), ip.total) > mtu as usize {
            self.error6(inif, frame, &ip, (icmp::ICMP6_PACKET_TOO_BIG, 0), mtu);
            return true;
        }
        self.send(out, nexthop, from.index, frame, false);
        true
    }

    /// icmp6_redirect_output: tell the sender of `frame` that `target` is
    /// the better first hop to its destination.
    fn redirect6(&self, inif: &IfInfo, frame: &Frame, ip: &Ip6, target: Ipv6Addr) {
        let Some(&(ll, _)) = inif.v6.iter().find(|(a, _)| a.is_unicast_link_local()) else {
            return;
        };
        let Some(mac) = inif.port.mac() else { return };
        if !self.rate_ok() {
            self.stats.icmp6[2].fetch_add(1, Relaxed);
            return;
        }
        self.stats.ip6(IP6_REDIRECTSENT);
        self.stats.icmp6_out[usize::from(icmp::ND_REDIRECT)].fetch_add(1, Relaxed);
        let orig = &frame.payload()[..ip.total];
        ERR.with(|b| {
            let mut b = b.borrow_mut();
            let addrs = (ll, ip.src, target, ip.dst);
            icmp::redirect6(&mut b, (mac, frame.src()), addrs, orig);
            if let Some(f) = Frame::new(&b) {
                let _ = inif.port.output(&f);
            }
        });
    }

    /// Answer an echo request to an address of another of our interfaces
    /// (the host behind `from` holds only its own), back to the sender;
    /// anything else to such an address is dropped.
    /// An IPv4 request's options are reflected as icmp_reflect does
    /// (`route_end`: where its source route ended).
    fn echo_for_another(
        &self,
        from: &Port,
        frame: &Frame,
        (hlen, total): (usize, usize),
        route_end: Option<usize>,
    ) {
        let Some(mac) = from.mac() else { return };
        let now = Instant::now();
        if !self
            .echo_limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(now)
        {
            from.counters.iqdrops.fetch_add(1, Relaxed);
            return;
        }
        let p = &frame.payload()[..total];
        let mut opts = [0u8; MAX_IPOPTLEN];
        let (first_hop, n) = if hlen > 20 && p[0] >> 4 == 4 {
            ipopt::reflect(&p[..hlen], route_end, &mut opts)
        } else {
            (None, 0)
        };
        ERR.with(|b| {
            let mut b = b.borrow_mut();
            let reflected = (&opts[..n], first_hop);
            if icmp::echo_reply(&mut b, (mac, frame.src()), (p, hlen), reflected)
                && let Some(f) = Frame::new(&b)
            {
                let _ = from.output(&f);
            }
        });
    }

    /// Learn next hops from neighbour advertisements (their target) and
    /// solicitations (their source), with the link address they carry.
    fn nd_input(&self, i: &IfInfo, frame: &Frame, ip: &Ip6) {
        let p = &frame.payload()[40..ip.total];
        if p.len() < 24 || ip.hlim != 255 {
            return;
        }
        let typ = p[0];
        let mut target = [0u8; 16];
        target.copy_from_slice(&p[8..24]);
        let (who, want_opt) = match typ {
            135 => (ip.src, 1u8),
            136 => (Ipv6Addr::from(target), 2u8),
            _ => return,
        };
        if who.is_unspecified() {
            return;
        }
        // The link-layer address option, else the frame's source.
        let mut mac = frame.src();
        let mut opts = &p[24..];
        while opts.len() >= 8 {
            let len = usize::from(opts[1]) * 8;
            if len == 0 || len > opts.len() {
                break;
            }
            if opts[0] == want_opt && len >= 8 {
                mac.copy_from_slice(&opts[2..8]);
            }
            opts = &opts[len..];
        }
        let to_us =
            i.v6.iter()
                .any(|(a, _)| *a == Ipv6Addr::from(target) || *a == ip.dst);
        let held = self
            .neigh
            .learn(i.index, IpAddr::V6(who), mac, to_us, Instant::now());
        self.release(i, mac, held);
    }

    /// Out by `out` to `nexthop`, now or once it is resolved; `local`: a
    /// packet of the host's own, whose TTL stays.
    fn send(&self, out: &IfInfo, nexthop: IpAddr, from: u32, frame: &Frame, local: bool) {
        let now = crate::reactor::coarse_now();
        if let Some(mac) = self.neigh.lookup(out.index, nexthop, now) {
            self.transmit(out, mac, frame.bytes(), *frame.offload(), !local);
            return;
        }
        let held = Held {
            from,
            bytes: frame.bytes().to_vec(),
            off: *frame.offload(),
            local,
        };
        match self.neigh.hold(out.index, nexthop, held, now) {
            Ok(true) => {
                self.solicit(out, nexthop);
                self.wake();
            }
            Ok(false) => {}
            Err(_) => {
                let c = if nexthop.is_ipv4() {
                    &self.stats.ip[IP_ODROPPED]
                } else {
                    &self.stats.ip6[IP6_ODROPPED]
                };
                c.fetch_add(1, Relaxed);
            }
        }
    }

    /// An ARP request or neighbour solicitation for `ip` out of `out`.
    fn solicit(&self, out: &IfInfo, ip: IpAddr) {
        let Some(mac) = out.port.mac() else { return };
        let f = match (ip, source_for(out, ip)) {
            (IpAddr::V4(t), Some(IpAddr::V4(s))) => arp_request(mac, s, t),
            (IpAddr::V6(t), Some(IpAddr::V6(s))) => neighbor_solicit(mac, s, t),
            _ => return,
        };
        if let Some(f) = Frame::new(&f) {
            let _ = out.port.output(&f);
        }
    }

    /// Rewrite a frame for its next hop and put it on `out`: addresses,
    /// TTL (with the checksum patched, RFC 1624) or hop limit;
    /// fragmented to the path MTU if it must be.
    fn transmit(&self, out: &IfInfo, mac: Mac, bytes: &[u8], off: Offload, dec: bool) {
        let Some(src) = out.port.mac() else { return };
        // Only packets that passed check4 or check6 (or the host's own)
        // get here: a whole header of their family.
        let v4 = bytes.len() >= ETHER_HDR + 20 && bytes[12..14] == ETHERTYPE_IP.to_be_bytes();
        if v4 {
            let p = &bytes[ETHER_HDR..];
            let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
            let mtu = out.mtu as usize;
            if off.gso_size == 0 && total > mtu && total <= p.len() {
                if off == Offload::NONE {
                    self.fragment(out, (src, mac), &p[..total], mtu, dec);
                } else if let Some(f) = Frame::with_offload(bytes, off) {
                    // A checksum left to do is done before the pieces.
                    let done = f.finish(OffloadCaps::NONE, |f| {
                        let p = &f.bytes()[ETHER_HDR..];
                        self.fragment(out, (src, mac), &p[..total.min(p.len())], mtu, dec);
                    });
                    if done.is_err() {
                        self.stats.ip(IP_CANTFRAG);
                    }
                }
                return;
            }
        }
        OUT.with(|b| {
            let mut b = b.borrow_mut();
            b.clear();
            b.extend_from_slice(bytes);
            b[0..6].copy_from_slice(&mac);
            b[6..12].copy_from_slice(&src);
            if !dec {
            } else if v4 {
                ttl_decrement(&mut b[ETHER_HDR..]);
            } else if b.len() >= ETHER_HDR + 40 {
                b[ETHER_HDR + 7] = b[ETHER_HDR + 7].saturating_sub(1);
            }
            let Some(f) = Frame::with_offload(&b, off) else {
                return;
            };
            let ok = out.port.output(&f).is_ok();
            let (ok_c, drop_c) = if v4 {
                (&self.stats.ip[IP_FORWARD], &self.stats.ip[IP_ODROPPED])
            } else {
                (&self.stats.ip6[IP6_FORWARD], &self.stats.ip6[IP6_ODROPPED])
            };
            if ok && !dec {
                return;
            }
            if ok { ok_c } else { drop_c }.fetch_add(1, Relaxed);
        });
    }

    /// ip_fragment: the packet `p` (TTL not yet lowered) in pieces of at
    /// most `mtu` bytes, each with the whole header.
    fn fragment(&self, out: &IfInfo, (src, dst): (Mac, Mac), p: &[u8], mtu: usize, dec: bool) {
        let hlen = usize::from(p[0] & 0xf) * 4;
        let chunk = (mtu.saturating_sub(hlen)) & !7;
        if chunk == 0 {
            self.stats.ip(IP_CANTFRAG);
            return;
        }
        let off0 = u16::from_be_bytes([p[6], p[7]]);
        let data = &p[hlen..];
        // ip_optcopy: the pieces after the first carry only the options
        // marked to be copied (source routes, not a record route).
        let mut rest = [0u8; MAX_IPOPTLEN];
        let rest_len = ipopt::optcopy(&p[20..hlen], &mut rest);
        let mut n = 0;
        OUT.with(|b| {
            let mut b = b.borrow_mut();
            for (k, piece) in data.chunks(chunk).enumerate() {
                b.clear();
                b.extend_from_slice(&dst);
                b.extend_from_slice(&src);
                b.extend_from_slice(&ETHERTYPE_IP.to_be_bytes());
                let hlen = if k == 0 {
                    b.extend_from_slice(&p[..hlen]);
                    hlen
                } else {
                    b.extend_from_slice(&p[..20]);
                    b.extend_from_slice(&rest[..rest_len]);
                    20 + rest_len
                };
                b.extend_from_slice(piece);
                let h = &mut b[ETHER_HDR..];
                h[0] = 0x40 | (hlen / 4) as u8;
                let last = (k + 1) * chunk >= data.len();
                let more = if last { off0 & IP_MF } else { IP_MF };
                let offset = (off0 & IP_OFFMASK) + (k * chunk / 8) as u16;
                let word = (off0 & IP_DF) | more | offset;
                h[2..4].copy_from_slice(&((hlen + piece.len()) as u16).to_be_bytes());
                h[6..8].copy_from_slice(&word.to_be_bytes());
                h[8] = h[8].saturating_sub(u8::from(dec));
                h[10..12].copy_from_slice(&[0, 0]);
                let sum = checksum(0, &h[..hlen]);
                h[10..12].copy_from_slice(&sum.to_be_bytes());
                if let Some(f) = Frame::new(&b) {
                    let _ = out.port.output(&f);
                }
                n += 1;
            }
        });
        self.stats.ip(IP_FRAGMENTED);
        self.stats.ip[IP_OFRAGMENTS].fetch_add(n, Relaxed);
        self.stats.ip(IP_FORWARD);
    }

    /// icmp_error: an error about `frame` back to its sender, by the
    /// interface it came in on, from that interface's address.
    fn error4(&self, inif: &IfInfo, frame: &Frame, ip: &Ip4, code: (u8, u8), word: u32) {
        let st = &self.stats;
        if code.0 != icmp::REDIRECT {
            st.icmp[ICMP_ERROR].fetch_add(1, Relaxed);
        }
        let p = frame.payload();
        if ip.proto == PROTO_ICMP
            && ip.off & IP_OFFMASK == 0
            && p.len() > ip.hlen
            && is_icmp_error(p[ip.hlen])
        {
            st.icmp[ICMP_OLDICMP].fetch_add(1, Relaxed);
            return;
        }
        if ip.off & IP_OFFMASK != 0 || frame.is_multicast() || ip.src.is_unspecified() {
            return;
        }
        let Some(IpAddr::V4(me)) = source_for(inif, IpAddr::V4(ip.src)) else {
            return;
        };
        let Some(mac) = inif.port.mac() else { return };
        if !self.rate_ok() {
            st.icmp[ICMP_TOOFREQ].fetch_add(1, Relaxed);
            return;
        }
        st.icmp_out[usize::from(code.0).min(18)].fetch_add(1, Relaxed);
        let id = self.ip_id.fetch_add(1, Relaxed);
        let orig = &p[..ip.total];
        ERR.with(|b| {
            let mut b = b.borrow_mut();
            let macs = (mac, frame.src());
            icmp::error4(&mut b, macs, me, ip.src, id, code, word, orig, ip.hlen);
            if let Some(f) = Frame::new(&b) {
                self.send_error(inif, IpAddr::V4(ip.src), &f);
            }
        });
    }

    /// An ICMP error on its way back to `to`, along the routing table as
    /// icmp_reflect's ip_output sends it (by the route's interface, to its
    /// next hop, resolved if need be; not at all without a route). A
    /// link-local destination is the sender on the link it came in on.
    fn send_error(&self, inif: &IfInfo, to: IpAddr, f: &Frame) {
        if let IpAddr::V6(a) = to
            && a.is_unicast_link_local()
        {
            let _ = inif.port.output(f);
            return;
        }
        let cfg = self.config();
        if let Ok((_, out, nexthop)) = next_hop(&cfg, cfg.fib.lookup(to), to) {
            self.send(out, nexthop, inif.index, f, true);
        }
    }

    /// icmp6_error, as `error4`.
    fn error6(&self, inif: &IfInfo, frame: &Frame, ip: &Ip6, code: (u8, u8), word: u32) {
        let st = &self.stats;
        st.icmp6[0].fetch_add(1, Relaxed);
        let p = frame.payload();
        if ip.next == PROTO_ICMPV6 && p.len() > 40 && p[40] < 128 {
            st.icmp6[1].fetch_add(1, Relaxed);
            return;
        }
        if frame.is_multicast() || ip.src.is_unspecified() {
            return;
        }
        let Some(IpAddr::V6(me)) = source_for(inif, IpAddr::V6(ip.src)) else {
            return;
        };
        let Some(mac) = inif.port.mac() else { return };
        if !self.rate_ok() {
            st.icmp6[2].fetch_add(1, Relaxed);
            return;
        }
        st.icmp6_out[usize::from(code.0)].fetch_add(1, Relaxed);
        let orig = &p[..ip.total];
        ERR.with(|b| {
            let mut b = b.borrow_mut();
            icmp::error6(&mut b, (mac, frame.src()), me, ip.src, code, word, orig);
            if let Some(f) = Frame::new(&b) {
                self.send_error(inif, IpAddr::V6(ip.src), &f);
            }
        });
    }

    /// Where the host's own packet to `dst` leaves (ip_output's route
    /// lookup): the interface and the source address it takes.
    pub fn route_out(&self, dst: IpAddr) -> Result<(u32, IpAddr), crate::ioctl::Errno> {
        use crate::ioctl::Errno;
        let cfg = self.config();
        // NetBSD's ip_output: EHOSTUNREACH for no route and for a reject
        // route alike (a blackhole takes the packet and drops it).
        let (_, out, nexthop) = match next_hop(&cfg, cfg.fib.lookup(dst), dst) {
            Ok(hop) => hop,
            Err(Refused::Blackhole) => return Err(Errno::ENOBUFS),
            Err(_) => return Err(Errno::EHOSTUNREACH),
        };
        let src = source_for(out, nexthop).ok_or(Errno::EADDRNOTAVAIL)?;
        Ok((out.index, src))
    }

    /// Send an echo request of the host's own along the table: to a
    /// destination beyond a gateway, which the interface's host cannot
    /// reach by itself.
    pub fn send_echo(
        &self,
        (src, dst): (IpAddr, IpAddr),
        ttl: u8,
        (ident, seq): (u16, u16),
        (len, opts): (usize, &[u8]),
    ) -> Result<(), crate::ioctl::Errno> {
        use crate::ioctl::Errno;
        let cfg = self.config();
        let Ok((_, out, nexthop)) = next_hop(&cfg, cfg.fib.lookup(dst), dst) else {
            return Err(Errno::EHOSTUNREACH);
        };
        let mac = out.port.mac().ok_or(Errno::ENETDOWN)?;
        let id = self.ip_id.fetch_add(1, Relaxed);
        let buf = icmp::echo_request(mac, (src, dst), (id, ttl), (ident, seq), (len, opts))
            .ok_or(Errno::EINVAL)?;
        let frame = Frame::new(&buf).ok_or(Errno::EINVAL)?;
        self.send(out, nexthop, 0, &frame, true);
        Ok(())
    }

    fn rate_ok(&self) -> bool {
        let mut l = self.icmp_limit.lock().unwrap_or_else(|e| e.into_inner());
        l.take(Instant::now())
    }

    /// The resolution timer: solicit again, or give up and send the held
    /// packets' senders a host unreachable.
    pub(super) fn resolve_timer(&self, now: Instant) -> Option<Instant> {
        let due = self.neigh.due(now);
        if due.resend.is_empty() && due.failed.is_empty() {
            return due.next;
        }
        let cfg = self.config();
        for (ifindex, ip) in due.resend {
            if let Some(out) = cfg.interface(ifindex) {
                self.solicit(out, ip);
            }
        }
        for h in due.failed {
            let (Some(inif), Some(f)) = (cfg.interface(h.from), Frame::new(&h.bytes)) else {
                continue;
            };
            match f.ethertype() {
                ETHERTYPE_IP => {
                    if let Ok(ip) = check4(f.payload(), inif.loopback) {
                        let code = (icmp::UNREACH, icmp::UNREACH_HOST);
                        self.error4(inif, &f, &ip, code, 0);
                    }
                }
                _ => {
                    if let Ok(ip) = check6(f.payload()) {
                        let code = (icmp::ICMP6_DST_UNREACH, icmp::ICMP6_DST_UNREACH_ADDR);
                        self.error6(inif, &f, &ip, code, 0);
                    }
                }
            }
        }
        due.next
    }
}

/// Why a packet is not sent on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    NoRoute,
    Blackhole,
    /// A reject route, or one whose interface is down.
    Unreachable,
}

/// The route's interface and next hop (its gateway, or the destination
/// itself on a connected or interface route).
fn next_hop<'c>(
    cfg: &'c Config,
    route: Option<&'c Route>,
    dst: IpAddr,
) -> Result<(&'c Route, &'c IfInfo, IpAddr), Refused> {
    let route = route.ok_or(Refused::NoRoute)?;
    if route.flags & rtf::BLACKHOLE != 0 {
        return Err(Refused::Blackhole);
    }
    let out = cfg.interface(route.ifindex).filter(|o| o.up);
    let out = match out {
        Some(o) if route.flags & rtf::REJECT == 0 => o,
        _ => return Err(Refused::Unreachable),
    };
    let nexthop = match route.gateway {
        Some(g) if route.flags & rtf::GATEWAY != 0 => g,
        _ => dst,
    };
    Ok((route, out, nexthop))
}

/// Whether `a` is on one of the interface's IPv4 subnets.
fn on_subnet4(i: &IfInfo, a: Ipv4Addr) -> bool {
    i.v4.iter().any(|(x, p)| {
        let m = super::table::mask(*p, 32) as u32;
        u32::from(*x) & m == u32::from(a) & m
    })
}

/// Whether `a` is on one of the interface's IPv6 prefixes (a neighbour).
fn on_subnet6(i: &IfInfo, a: Ipv6Addr) -> bool {
    i.v6.iter().any(|(x, p)| {
        let m = super::table::mask(*p, 128);
        u128::from(*x) & m == u128::from(a) & m
    })
}

/// The MTU a route allows: its metric if set and smaller.
fn path_mtu(out: &IfInfo, route_mtu: u32) -> u32 {
    if route_mtu != 0 {
        route_mtu.min(out.mtu)
    } else {
        out.mtu
    }
}

/// The size of the IP packets a frame stands for on the wire: a GSO
/// super-frame's segments, else the packet.
fn wire_size(off: &Offload, total: usize) -> usize {
    if off.gso_size != 0 {
        usize::from(off.hdr_len).saturating_sub(ETHER_HDR) + usize::from(off.gso_size)
    } else {
        total
    }
}

/// TTL minus one, checksum patched incrementally (RFC 1624 eqn. 3).
fn ttl_decrement(h: &mut [u8]) {
    let old = u16::from_be_bytes([h[8], h[9]]);
    h[8] = h[8].saturating_sub(1);
    let new = u16::from_be_bytes([h[8], h[9]]);
    let hc = u16::from_be_bytes([h[10], h[11]]);
    let mut sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ttl: u8) -> Vec<u8> {
        let mut h = vec![0x45u8, 0, 0, 20, 0x12, 0x34, 0x40, 0, ttl, 17, 0, 0];
        h.extend_from_slice(&[10, 1, 0, 2, 10, 2, 0, 2]);
        let s = checksum(0, &h);
        h[10..12].copy_from_slice(&s.to_be_bytes());
        h
    }

    use crate::port::Transmit;
    use std::sync::{Arc, Mutex};

    /// What reaches a medium.
    struct Medium(Mutex<Vec<Vec<u8>>>);
    impl Transmit for Medium {
        fn transmit(&self, frame: &Frame) -> Result<(), crate::ioctl::Errno> {
            self.0.lock().unwrap().push(frame.bytes().to_vec());
            Ok(())
        }
    }

    /// A router between two ports: 10.1.0.1/24 on 1, 10.2.0.1/24 on 2,
    /// forwarding on, 10.2.0.2 and 10.1.0.2 resolved.
    fn router() -> (Arc<Router>, [Arc<Port>; 2], [Arc<Medium>; 2]) {
        let r = Router::new();
        let mk = |i: u32| {
            let p = Port::new(i, &format!("x{i}"));
            p.set_flags(iff::UP | iff::RUNNING);
            p.set_mac(Some([2, 0, 0, 0, 0, i as u8]));
            let m = Arc::new(Medium(Mutex::new(Vec::new())));
            p.set_transmit(Some(m.clone()));
            (p, m)
        };
        let ((p1, m1), (p2, m2)) = (mk(1), mk(2));
        let info = |p: &Arc<Port>, a: [u8; 4]| IfInfo {
            index: p.index,
            name: p.name.clone(),
            port: p.clone(),
            up: true,
            loopback: false,
            mtu: 1500,
            v4: vec![(a.into(), 24)],
            v6: Vec::new(),
        };
        r.sync(vec![info(&p1, [10, 1, 0, 1]), info(&p2, [10, 2, 0, 1])]);
        r.forwarding.store(true, Relaxed);
        let dst = IpAddr::from([10, 2, 0, 2]);
        r.neigh
            .learn(2, dst, [2, 0, 0, 0, 0, 9], true, Instant::now());
        // The sender, for the errors back.
        let src = IpAddr::from([10, 1, 0, 2]);
        r.neigh
            .learn(1, src, [2, 0, 0, 0, 0, 7], true, Instant::now());
        (r, [p1, p2], [m1, m2])
    }

    #[test]
    fn a_header_only_packet_loses_a_hop_too() {
        let (r, [p1, _], [_, m2]) = router();
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 7, 8, 0];
        f.extend_from_slice(&header(2));
        f[14 + 16..14 + 20].copy_from_slice(&[10, 2, 0, 2]);
        f[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
        let sum = checksum(0, &f[14..34]);
        f[14 + 10..14 + 12].copy_from_slice(&sum.to_be_bytes());
        assert!(r.input(&p1, &Frame::new(&f).unwrap()));
        let out = m2.0.lock().unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0][..6], [2, 0, 0, 0, 0, 9]);
        assert_eq!(out[0][14 + 8], 1);
        assert_eq!(checksum(0, &out[0][14..34]), 0);
        // TTL 1 does not go on: a time exceeded goes back instead.
        drop(out);
        f[14 + 8] = 1;
        f[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
        let sum = checksum(0, &f[14..34]);
        f[14 + 10..14 + 12].copy_from_slice(&sum.to_be_bytes());
        assert!(r.input(&p1, &Frame::new(&f).unwrap()));
        assert_eq!(m2.0.lock().unwrap().len(), 1);
        assert_eq!(
            r.stats.icmp_out[usize::from(icmp::TIMXCEED)].load(Relaxed),
            1
        );
    }

    /// An Ethernet frame from x1's neighbour to `dst` with options.
    fn with_options(dst: [u8; 4], proto: u8, opts: &[u8], data: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 7, 8, 0];
        icmp::ipv4_header(
            &mut f,
            ([10, 1, 0, 2].into(), dst.into()),
            (9, 64),
            (proto, opts),
            data.len(),
        );
        f.extend_from_slice(data);
        f
    }

    fn echo_request() -> Vec<u8> {
        let mut e = vec![8, 0, 0, 0, 0, 7, 0, 1, 1, 2, 3, 4];
        let c = checksum(0, &e);
        e[2..4].copy_from_slice(&c.to_be_bytes());
        e
    }

    fn rr() -> Vec<u8> {
        let mut o = vec![7, 39, 4];
        o.resize(40, 0);
        o
    }

    #[test]
    fn record_route_gets_the_outgoing_address() {
        let (r, [p1, _], [_, m2]) = router();
        let f = with_options([10, 2, 0, 2], 17, &rr(), &[0; 8]);
        assert!(r.input(&p1, &Frame::new(&f).unwrap()));
        let out = m2.0.lock().unwrap();
        assert_eq!(out.len(), 1);
        let h = &out[0][14..14 + 60];
        assert_eq!(h[22], 8);
        assert_eq!(h[23..27], [10, 2, 0, 1]);
        assert_eq!(h[8], 63);
        assert_eq!(checksum(0, h), 0);
    }

    #[test]
    fn bad_options_get_a_parameter_problem() {
        let (r, [p1, _], [m1, m2]) = router();
        // A record route whose pointer is below 4.
        let f = with_options([10, 2, 0, 2], 17, &[7, 7, 3, 0, 0, 0, 0, 0], &[0; 8]);
        assert!(r.input(&p1, &Frame::new(&f).unwrap()));
        assert!(m2.0.lock().unwrap().is_empty());
        let back = m1.0.lock().unwrap();
        assert_eq!(back.len(), 1);
        let icmp = &back[0][14 + 20..];
        assert_eq!((icmp[0], icmp[1], icmp[4]), (12, 0, 22));
        assert_eq!(r.stats.ip[IP_BADOPTIONS].load(Relaxed), 1);
    }

    #[test]
    fn source_routes_follow_the_knobs() {
        let (r, [p1, _], [m1, m2]) = router();
        // ping -g 10.1.0.1 10.2.0.2.
        let opts = [131, 7, 4, 10, 2, 0, 2, 1];
        let f = with_options([10, 1, 0, 1], 17, &opts, &[0; 8]);
        let unreach = |m: &Medium| {
            let v = m.0.lock().unwrap();
            let last = v.last().unwrap();
            (last[14 + 20], last[14 + 21])
        };
        // allowsrcrt 0: administratively prohibited.
        assert!(r.input(&p1, &Frame::new(&f).unwrap()));
        assert_eq!(unreach(&m1), (3, 9));
        // forwsrcrt 0: source route failed.
        r.allowsrcrt.store(true, Relaxed);
        assert!(r.input(&p1, &Frame::new(&f).unwrap()));
        assert_eq!(unreach(&m1), (3, 5));
        assert_eq!(r.stats.ip[IP_BADOPTIONS].load(Relaxed), 2);
        assert!(m2.0.lock().unwrap().is_empty());
        // Both: on to the next hop, even with forwarding off.
        r.forwsrcrt.store(true, Relaxed);
        r.forwarding.store(false, Relaxed);
        assert!(r.input(&p1, &Frame::new(&f).unwrap()));
        let out = m2.0.lock().unwrap();
        let h = &out[0][14..14 + 28];
        assert_eq!(h[16..20], [10, 2, 0, 2]);
        assert_eq!(h[23..27], [10, 2, 0, 1]);
        assert_eq!(checksum(0, h), 0);
    }

    #[test]
    fn echo_requests_with_options_are_reflected() {
        let (r, [p1, _], [m1, _]) = router();
        let f = with_options([10, 1, 0, 1], 1, &rr(), &echo_request());
        assert!(r.input(&p1, &Frame::new(&f).unwrap()));
        let back = m1.0.lock().unwrap();
        assert_eq!(back.len(), 1);
        let h = &back[0][14..];
        assert_eq!(h[0], 0x4f);
        assert_eq!(
            (&h[12..16], &h[16..20]),
            (&[10, 1, 0, 1][..], &[10, 1, 0, 2][..])
        );
        // Our address recorded as the request came in, and carried back.
        assert_eq!(h[20..23], [7, 39, 8]);
        assert_eq!(h[23..27], [10, 1, 0, 1]);
        assert_eq!(h[60], 0);
        assert_eq!(checksum(0, &h[..60]), 0);
        assert_eq!(checksum(0, &h[60..]), 0);
    }

    /// ip_fragment with options: the first piece carries them all, the
    /// others only those marked to be copied.
    #[test]
    fn fragments_after_the_first_drop_the_record_route() {
        let (r, [p1, _], [_, m2]) = router();
        let f = with_options([10, 2, 0, 2], 17, &rr(), &[7; 1600]);
        assert!(r.input(&p1, &Frame::new(&f).unwrap()));
        let out = m2.0.lock().unwrap();
        assert_eq!(out.len(), 2);
        let (a, b) = (&out[0][14..], &out[1][14..]);
        assert_eq!((a[0], b[0]), (0x4f, 0x45));
        assert_eq!((a[20], a[23..27].to_vec()), (7, vec![10, 2, 0, 1]));
        assert_eq!(checksum(0, &a[..60]), 0);
        assert_eq!(checksum(0, &b[..20]), 0);
        let total = |h: &[u8]| usize::from(u16::from_be_bytes([h[2], h[3]]));
        assert_eq!((total(a), a.len()), (1500, 1500));
        assert_eq!(total(b) - 20 + total(a) - 60, 1600);
        assert_eq!(
            u16::from_be_bytes([b[6], b[7]]) & IP_OFFMASK,
            (1440 / 8) as u16
        );
    }

    /// Errors go back along the table (icmp_reflect's ip_output), not to
    /// the MAC the packet came from.
    #[test]
    fn errors_follow_the_route_back() {
        let (r, [p1, _], [m1, m2]) = router();
        let back = crate::ioctl::RtEntry {
            dst: IpAddr::from([10, 1, 0, 2]),
            prefix: 32,
            gateway: Some(IpAddr::from([10, 2, 0, 2])),
            ifname: None,
            ifa: None,
            flags: rtf::UP | rtf::GATEWAY | rtf::HOST | rtf::STATIC,
            mtu: 0,
            used: 0,
        };
        assert!(r.request(crate::ioctl::RouteReq::Add(back)).is_ok());
        // To nowhere: a host unreachable, by way of 10.2.0.2.
        let f = with_options([10, 9, 9, 9], 17, &[], &[0; 8]);
        assert!(r.input(&p1, &Frame::new(&f).unwrap()));
        assert!(m1.0.lock().unwrap().is_empty());
        let out = m2.0.lock().unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0][..6], [2, 0, 0, 0, 0, 9]);
        assert_eq!(out[0][6..12], [2, 0, 0, 0, 0, 2]);
        let h = &out[0][14..];
        assert_eq!((h[9], h[20], h[21]), (1, 3, 1));
        assert_eq!(h[16..20], [10, 1, 0, 2]);
    }

    #[test]
    fn ttl_patch_keeps_the_checksum_right() {
        for ttl in [2u8, 64, 255, 1] {
            let mut h = header(ttl);
            ttl_decrement(&mut h);
            assert_eq!(h[8], ttl - 1);
            assert_eq!(checksum(0, &h), 0, "ttl {ttl}");
        }
    }

    #[test]
    fn bad_headers_are_counted_where_netbsd_counts_them() {
        let good = header(64);
        assert!(check4(&good, false).is_ok());
        assert_eq!(check4(&good[..19], false), Err(IP_TOOSMALL));
        let mut v = good.clone();
        v[0] = 0x65;
        assert_eq!(check4(&v, false), Err(IP_BADVERS));
        let mut v = good.clone();
        v[0] = 0x44;
        assert_eq!(check4(&v, false), Err(IP_BADHLEN));
        let mut v = good.clone();
        v[0] = 0x46;
        assert_eq!(check4(&v, false), Err(IP_BADHLEN));
        let mut v = good.clone();
        v[11] ^= 1;
        assert_eq!(check4(&v, false), Err(IP_BADSUM));
        let mut v = good.clone();
        v[3] = 40;
        v[10..12].copy_from_slice(&[0, 0]);
        let s = checksum(0, &v);
        v[10..12].copy_from_slice(&s.to_be_bytes());
        assert_eq!(check4(&v, false), Err(IP_TOOSHORT));
        // An option whose length runs past the header.
        let mut v = good.clone();
        v[0] = 0x46;
        v[3] = 24;
        v.extend_from_slice(&[7, 9, 4, 0]);
        v[10..12].copy_from_slice(&[0, 0]);
        let s = checksum(0, &v);
        v[10..12].copy_from_slice(&s.to_be_bytes());
        assert!(check4(&v, false).is_ok());
        assert!(ipopt::check(&v).is_err());
        // A martian source.
        let mut v = good.clone();
        v[12] = 127;
        v[10..12].copy_from_slice(&[0, 0]);
        let s = checksum(0, &v);
        v[10..12].copy_from_slice(&s.to_be_bytes());
        assert_eq!(check4(&v, false), Err(IP_BADADDR));
        assert!(check4(&v, true).is_ok());
    }
}
