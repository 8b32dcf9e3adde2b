//! Receive coalescing (Linux's GRO for TCP): consecutive segments of one
//! TCP flow in a batch (a turn of vxlan datagrams, of a tap client's
//! reads) become one super-frame, handed on with the offload work that
//! says how to cut it again. A bridge passes it whole to a virt whose host
//! TAP takes it (one write, one trip through the host's stack instead of
//! one per segment); anything that needs finished frames cuts it back
//! into the same segments (`Frame::finish`).
//!
//! Only plain segments merge: IPv4 without options or fragments, or IPv6
//! without extension headers; TCP with ACK (and PSH on the last), data,
//! the same headers but for the sequence number, lengths, IPv4 id and
//! checksums; each starting where the previous ended; every one but the
//! last as long as the first. Anything else is handed on as it came.

use crate::frame::Frame;
use crate::offload::Offload;
use smoltcp::wire::{IpProtocol, Ipv4Address, Ipv6Address, checksum};

const F_NEEDS_CSUM: u8 = 1;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;
/// A super-frame's bound: IP lengths are 16 bits.
const MAX_LEN: usize = 64 * 1024 - 1024;

/// Where a candidate segment's parts are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seg {
    v6: bool,
    /// Start of TCP, end of the TCP header.
    l4: usize,
    hdr: usize,
    seq: u32,
    psh: bool,
}

/// Where the `proto` header of frame `f` starts, and whether over IPv6,
/// if `f` is one plain IP packet: IPv4 without options or fragments (DF
/// allowed), or IPv6 without extension headers, filling the frame
/// exactly. What both coalescers (TCP here, UDP in virt) may merge.
pub fn plain_ip(f: &[u8], proto: u8) -> Option<(bool, usize)> {
    let et = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
    match et {
        0x0800 => {
            let ip = f.get(14..34)?;
            let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0xbfff;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            (ip[0] == 0x45 && frag == 0 && ip[9] == proto && 14 + total == f.len())
                .then_some((false, 34))
        }
        0x86dd => {
            let ip = f.get(14..54)?;
            let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            (ip[0] >> 4 == 6 && ip[6] == proto && 54 + plen == f.len()).then_some((true, 54))
        }
        _ => None,
    }
}

/// A segment that may merge, or `None`.
fn segment(f: &[u8]) -> Option<Seg> {
    let (v6, l4) = plain_ip(f, 6)?;
    let tcp = f.get(l4..l4 + 20)?;
    let hdr = l4 + usize::from(tcp[12] >> 4) * 4;
    // Only ACK, with PSH allowed; data after the header.
    if hdr < l4 + 20 || hdr >= f.len() || tcp[13] & !TCP_PSH != TCP_ACK {
        return None;
    }
    Some(Seg {
        v6,
        l4,
        hdr,
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        psh: tcp[13] & TCP_PSH != 0,
    })
}

/// The super-frame being built.
#[derive(Default)]
pub struct Gro {
    buf: Vec<u8>,
    /// Of the first segment: its shape, and its payload length (the MSS).
    first: Option<Seg>,
    mss: usize,
    segs: usize,
    next_seq: u32,
    /// The last segment was short or had PSH: nothing may follow.
    closed: bool,
    /// The last had PSH: the whole gets it.
    psh: bool,
}

impl Gro {
    /// Whether `f` (a segment `s`) continues the super-frame.
    fn continues(&self, f: &[u8], s: &Seg) -> bool {
        let Some(p) = &self.first else { return false };
        let b = &self.buf;
        let pay = f.len() - s.hdr;
        let same = |r: std::ops::Range<usize>| b.get(r.clone()) == f.get(r);
        !self.closed
            && p.v6 == s.v6
            && p.hdr == s.hdr
            && s.seq == self.next_seq
            && pay <= self.mss
            && b.len() + pay <= MAX_LEN
            && same(0..14)
            // IP: all but lengths, id and checksum.
            && if s.v6 {
                same(14..18) && same(20..54)
            } else {
                same(14..16) && same(20..24) && same(26..34)
            }
            // TCP: ports, ack, offset, flags but PSH, window, options.
            && same(p.l4..p.l4 + 4)
            && same(p.l4 + 8..p.l4 + 13)
            && b[p.l4 + 13] & !TCP_PSH == f[s.l4 + 13] & !TCP_PSH
            && same(p.l4 + 14..p.l4 + 16)
            && same(p.l4 + 20..p.hdr)
    }

    /// Take finished frame `f`: into the super-frame, or (after handing
    /// on what was being built) as the start of a new one, or handed on
    /// at once when it cannot merge.
    pub fn push(&mut self, f: &Frame, deliver: &mut dyn FnMut(&Frame)) {
        let bytes = f.bytes();
        let seg = if f.offload().is_none() {
            segment(bytes)
        } else {
            None
        };
        let Some(s) = seg else {
            self.flush(deliver);
            deliver(f);
            return;
        };
        if self.continues(bytes, &s) {
            self.buf.extend_from_slice(&bytes[s.hdr..]);
        } else {
            self.flush(deliver);
            self.buf.clear();
            self.buf.extend_from_slice(bytes);
            self.first = Some(s);
            self.mss = bytes.len() - s.hdr;
        }
        let pay = bytes.len() - s.hdr;
        self.segs += 1;
        self.next_seq = s.seq.wrapping_add(pay as u32);
        self.closed = s.psh || pay < self.mss;
        self.psh = s.psh;
    }

    /// Hand on what is being built: one segment as it came, several as a
    /// super-frame with its headers for the whole and the work to cut it.
    pub fn flush(&mut self, deliver: &mut dyn FnMut(&Frame)) {
        let Some(p) = self.first.take() else { return };
        let segs = std::mem::take(&mut self.segs);
        if segs > 1 {
            self.finish_headers(&p);
        }
        let off = if segs > 1 {
            Offload {
                flags: F_NEEDS_CSUM,
                gso_type: if p.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
                hdr_len: p.hdr as u16,
                gso_size: self.mss as u16,
                csum_start: p.l4 as u16,
                csum_offset: 16,
            }
        } else {
            Offload::NONE
        };
        if let Some(f) = Frame::with_offload(&self.buf, off) {
            deliver(&f);
        }
    }

    /// Lengths for the whole, PSH if the last had it, and the TCP checksum
    /// field holding the pseudo-header sum, as a sender leaves it.
    fn finish_headers(&mut self, p: &Seg) {
        let pseudo = super_headers(&mut self.buf, p.v6, p.l4, IpProtocol::Tcp);
        let b = &mut self.buf;
        if self.psh {
            b[p.l4 + 13] |= TCP_PSH;
        }
        b[p.l4 + 16..p.l4 + 18].copy_from_slice(&pseudo.to_be_bytes());
    }
}

/// Fix the IP header of super-frame `b` (IPv6 if `v6`, its `proto` header
/// at `l4`) for its whole length, and return the pseudo-header sum that a
/// sender leaves in the checksum field of a frame whose checksum is left
/// to the host.
pub fn super_headers(b: &mut [u8], v6: bool, l4: usize, proto: IpProtocol) -> u16 {
    let l4_len = (b.len() - l4) as u32;
    if v6 {
        b[18..20].copy_from_slice(&(l4_len as u16).to_be_bytes());
        let src = Ipv6Address::from(<[u8; 16]>::try_from(&b[22..38]).unwrap_or([0; 16]));
        let dst = Ipv6Address::from(<[u8; 16]>::try_from(&b[38..54]).unwrap_or([0; 16]));
        checksum::pseudo_header_v6(&src, &dst, proto, l4_len)
    } else {
        let total = (b.len() - 14) as u16;
        b[16..18].copy_from_slice(&total.to_be_bytes());
        b[24..26].copy_from_slice(&[0, 0]);
        let sum = !checksum::data(&b[14..34]);
        b[24..26].copy_from_slice(&sum.to_be_bytes());
        let src = Ipv4Address::from(<[u8; 4]>::try_from(&b[26..30]).unwrap_or([0; 4]));
        let dst = Ipv4Address::from(<[u8; 4]>::try_from(&b[30..34]).unwrap_or([0; 4]));
        checksum::pseudo_header_v4(&src, &dst, proto, l4_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::OffloadCaps;
    use smoltcp::wire::{IpAddress, Ipv4Packet, TcpPacket};

    /// A finished IPv4 TCP segment of `payload` at `seq`.
    fn seg(seq: u32, payload: &[u8], psh: bool) -> Vec<u8> {
        let mut f = vec![0u8; 54 + payload.len()];
        f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
            ip.set_version(4);
            ip.set_header_len(20);
            ip.set_total_len((40 + payload.len()) as u16);
            ip.set_ident(seq as u16);
            ip.set_dont_frag(true);
            ip.set_hop_limit(64);
            ip.set_next_header(IpProtocol::Tcp);
            ip.set_src_addr(Ipv4Address::new(10, 0, 0, 1));
            ip.set_dst_addr(Ipv4Address::new(10, 0, 0, 2));
            ip.fill_checksum();
        }
        f[54..].copy_from_slice(payload);
        let mut t = TcpPacket::new_unchecked(&mut f[34..]);
        t.set_src_port(1000);
        t.set_dst_port(5001);
        t.set_seq_number(smoltcp::wire::TcpSeqNumber(seq as i32));
        t.set_header_len(20);
        t.set_ack(true);
        t.set_psh(psh);
        t.set_window_len(500);
        t.fill_checksum(&IpAddress::v4(10, 0, 0, 1), &IpAddress::v4(10, 0, 0, 2));
        f
    }

    fn run(frames: &[Vec<u8>]) -> Vec<(Vec<u8>, Offload)> {
        let mut g = Gro::default();
        let mut out = Vec::new();
        let mut deliver = |f: &Frame| out.push((f.bytes().to_vec(), *f.offload()));
        for f in frames {
            g.push(&Frame::new(f).unwrap(), &mut deliver);
        }
        g.flush(&mut deliver);
        out
    }

    #[test]
    fn a_run_of_segments_becomes_one_and_cuts_back_the_same() {
        let p: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let segs = vec![
            seg(100, &p[..1000], false),
            seg(1100, &p[1000..2000], false),
            seg(2100, &p[2000..2500], true),
        ];
        let out = run(&segs);
        assert_eq!(out.len(), 1);
        let (bytes, off) = &out[0];
        assert_eq!(off.gso_size, 1000);
        assert_eq!(bytes.len(), 54 + 2500);
        let f = Frame::with_offload(bytes, *off).unwrap();
        assert_eq!(f.wire_size(), (3, 3 * 54 + 2500));
        let mut back = Vec::new();
        f.finish(OffloadCaps::NONE, |s| back.push(s.bytes().to_vec()))
            .unwrap();
        assert_eq!(back.len(), 3);
        for (b, s) in back.iter().zip(&segs) {
            // All but the IPv4 id (and so its checksum) as they came.
            assert_eq!(b[..18], s[..18]);
            assert_eq!(b[22..24], s[22..24]);
            assert_eq!(b[26..], s[26..]);
        }
    }

    /// The TCP field holds the pseudo-header sum of the whole, as Linux
    /// leaves it: the sum over the segment completes a valid checksum.
    #[test]
    fn the_partial_checksum_is_the_senders() {
        let p = [9u8; 2000];
        let out = run(&[seg(1, &p[..1000], false), seg(1001, &p[1000..], false)]);
        let (mut b, off) = out[0].clone();
        let l4 = off.csum_start as usize;
        let sum = !checksum::data(&b[l4..]);
        b[l4 + 16..l4 + 18].copy_from_slice(&sum.to_be_bytes());
        let t = TcpPacket::new_unchecked(&b[l4..]);
        assert!(t.verify_checksum(&IpAddress::v4(10, 0, 0, 1), &IpAddress::v4(10, 0, 0, 2)));
        assert!(Ipv4Packet::new_unchecked(&b[14..]).verify_checksum());
        assert_eq!(b[l4 + 13] & TCP_PSH, 0);
    }

    #[test]
    fn what_cannot_merge_passes_as_it_came() {
        let p = [7u8; 1000];
        // A gap in the sequence, a pure ACK, a short one then more.
        let frames = vec![
            seg(0, &p, false),
            seg(5000, &p, false),
            seg(6000, &[], false),
            seg(6000, &p[..10], false),
            seg(6010, &p, false),
        ];
        let out = run(&frames);
        assert_eq!(out.len(), 5);
        assert!(out.iter().all(|(_, o)| o.is_none()));
        for ((b, _), f) in out.iter().zip(&frames) {
            assert_eq!(b, f);
        }
        // Not TCP over IP at all.
        let arp = [[0xff; 6], [2; 6]].concat();
        let mut arp = arp;
        arp.extend_from_slice(&[0x08, 0x06, 0, 0]);
        assert_eq!(run(&[arp.clone()]), vec![(arp, Offload::NONE)]);
    }
}
