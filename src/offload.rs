//! Offload work a frame may carry through the data plane, and the software
//! that does it when the frame's next hop cannot.
//!
//! A Linux TAP opened with `IFF_VNET_HDR` and offloads on (TUNSETOFFLOAD)
//! hands us frames whose TCP/UDP checksum is left for "the hardware" and
//! TCP super-frames of up to 64 KiB to be cut into MSS-sized segments
//! (`struct virtio_net_hdr`). Between two such TAPs the work passes along
//! untouched: that is what moves 10 Gbit/s through userspace. Everywhere
//! else — a shmif bus, a tap client, our own IP stack, a virt with its
//! offloads turned off — [`resolve`] does it first: it completes the
//! checksum and segments the frame as the host's stack would have.

use smoltcp::wire::{IpAddress, Ipv4Packet, Ipv6Packet, TcpPacket, checksum};

/// Bytes of `struct virtio_net_hdr` before each frame on a TAP.
pub const VNET_HDR_LEN: usize = 10;

const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_ECN: u8 = 0x80;

/// Largest segment the software path builds: a jumbo frame and headers.
const SEG_MAX: usize = 9216;

/// What a frame still needs done (`struct virtio_net_hdr`, host order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offload {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

/// A frame whose offload header does not fit its bytes: dropped.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

impl Offload {
    /// A frame with nothing left to do.
    pub const NONE: Offload = Offload {
        flags: 0,
        gso_type: GSO_NONE,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    pub fn from_bytes(b: &[u8; VNET_HDR_LEN]) -> Offload {
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Offload {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }

    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        for (i, v) in [
            self.hdr_len,
            self.gso_size,
            self.csum_start,
            self.csum_offset,
        ]
        .into_iter()
        .enumerate()
        {
            b[2 + 2 * i..4 + 2 * i].copy_from_slice(&v.to_ne_bytes());
        }
        b
    }

    pub fn is_none(&self) -> bool {
        !self.needs_csum() && !self.is_gso()
    }

    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }

    pub fn is_gso(&self) -> bool {
        self.gso_type != GSO_NONE
    }

    /// A TCP super-frame over IPv6 (else over IPv4).
    pub fn is_tcpv6(&self) -> bool {
        self.gso_type & !GSO_ECN == GSO_TCPV6
    }

    /// How many frames, and of how many bytes in all, this one stands for
    /// on a wire without offloads: what the interface counters count.
    pub fn wire_size(&self, frame: &[u8]) -> (u64, u64) {
        let hdr = if self.is_gso() {
            self.tcp_header_end(frame)
        } else {
            None
        };
        let Some(hdr) = hdr else {
            return (1, frame.len() as u64);
        };
        let payload = frame.len() - hdr;
        let n = payload.div_ceil(self.gso_size.max(1) as usize).max(1);
        (n as u64, (frame.len() + (n - 1) * hdr) as u64)
    }

    /// End of the TCP header, where a super-frame's payload starts.
    fn tcp_header_end(&self, frame: &[u8]) -> Option<usize> {
        let l4 = self.csum_start as usize;
        let off = *frame.get(l4 + 12)?;
        let end = l4 + usize::from(off >> 4) * 4;
        (end >= l4 + 20 && end <= frame.len()).then_some(end)
    }
}

/// The offload work a medium takes along with a frame (a host TAP's
/// `TUN_F_*` offloads); what it does not take is done before it gets the
/// frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffloadCaps(u8);

impl OffloadCaps {
    /// Finished frames only.
    pub const NONE: OffloadCaps = OffloadCaps(0);
    /// Partial TCP/UDP checksums.
    pub const CSUM: OffloadCaps = OffloadCaps(1);
    /// TCP super-frames over IPv4.
    pub const TSO4: OffloadCaps = OffloadCaps(2);
    /// TCP super-frames over IPv6.
    pub const TSO6: OffloadCaps = OffloadCaps(4);

    pub const fn union(self, other: OffloadCaps) -> OffloadCaps {
        OffloadCaps(self.0 | other.0)
    }

    /// Whether a frame with `off`'s work left may be handed over as it is
    /// (always, for one with nothing left).
    pub fn takes(self, off: &Offload) -> bool {
        let mut need = 0;
        if off.needs_csum() {
            need |= Self::CSUM.0;
        }
        if off.is_gso() {
            need |= if off.is_tcpv6() {
                Self::TSO6.0
            } else {
                Self::TSO4.0
            };
        }
        self.0 & need == need
    }
}

/// Do the work `off` left: hand `emit` the finished frame(s). A frame
/// with nothing to do is handed on as it is; otherwise each finished frame
/// is built in a buffer on the stack (no allocation).
pub fn resolve(frame: &[u8], off: &Offload, mut emit: impl FnMut(&[u8])) -> Result<(), Malformed> {
    if off.is_none() {
        emit(frame);
        return Ok(());
    }
    let mut buf = [0u8; SEG_MAX];
    if !off.is_gso() {
        let out = buf.get_mut(..frame.len()).ok_or(Malformed)?;
        out.copy_from_slice(frame);
        complete_csum(out, off)?;
        emit(out);
        return Ok(());
    }
    segment_tcp(frame, off, &mut buf, emit)
}

/// Finish a partial checksum: the sender stored the pseudo-header sum in
/// the field; the sum from `csum_start` to the end completes it.
fn complete_csum(f: &mut [u8], off: &Offload) -> Result<(), Malformed> {
    let start = off.csum_start as usize;
    let at = start + off.csum_offset as usize;
    if start >= f.len() || at + 2 > f.len() {
        return Err(Malformed);
    }
    let sum = !checksum::data(&f[start..]);
    // As Linux: a computed 0 goes out as 0xffff (0 means "none" in UDP).
    let sum = if sum == 0 { 0xffff } else { sum };
    f[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Where the IP header starts: after the Ethernet header and a VLAN tag.
fn l3_offset(frame: &[u8]) -> Result<usize, Malformed> {
    match frame.get(12..14) {
        Some([0x81, 0x00]) => Ok(18),
        Some(_) => Ok(14),
        None => Err(Malformed),
    }
}

/// Cut a TCP super-frame into segments of `gso_size` payload bytes, as
/// tcp_gso_segment: each gets the headers, its sequence number, IP length
/// (and a new IPv4 id) and checksums; FIN and PSH only on the last, CWR
/// only on the first.
fn segment_tcp(
    frame: &[u8],
    off: &Offload,
    buf: &mut [u8; SEG_MAX],
    mut emit: impl FnMut(&[u8]),
) -> Result<(), Malformed> {
    let v6 = match off.gso_type & !GSO_ECN {
        GSO_TCPV4 => false,
        GSO_TCPV6 => true,
        _ => return Err(Malformed),
    };
    let l3 = l3_offset(frame)?;
    let l4 = off.csum_start as usize;
    let hdr = off.tcp_header_end(frame).ok_or(Malformed)?;
    let mss = off.gso_size as usize;
    let ip_min = if v6 { 40 } else { 20 };
    if l4 < l3 + ip_min || mss == 0 || hdr + mss > SEG_MAX {
        return Err(Malformed);
    }
    let ip = &frame[l3..];
    let (src, dst) = if v6 {
        let p = Ipv6Packet::new_unchecked(ip);
        (IpAddress::Ipv6(p.src_addr()), IpAddress::Ipv6(p.dst_addr()))
    } else {
        let p = Ipv4Packet::new_unchecked(ip);
        if usize::from(p.header_len()) != l4 - l3 {
            return Err(Malformed);
        }
        (IpAddress::Ipv4(p.src_addr()), IpAddress::Ipv4(p.dst_addr()))
    };
    let tcp = TcpPacket::new_unchecked(&frame[l4..hdr]);
    let (seq, ident) = (tcp.seq_number(), Ipv4Packet::new_unchecked(ip).ident());
    let payload = &frame[hdr..];
    let n = payload.len().div_ceil(mss).max(1);
    for i in 0..n {
        let chunk = payload
            .get(i * mss..((i + 1) * mss).min(payload.len()))
            .unwrap_or(&[]);
        let len = hdr + chunk.len();
        let seg = &mut buf[..len];
        seg[..hdr].copy_from_slice(&frame[..hdr]);
        seg[hdr..].copy_from_slice(chunk);
        if v6 {
            Ipv6Packet::new_unchecked(&mut seg[l3..]).set_payload_len((len - l3 - 40) as u16);
        } else {
            let mut p = Ipv4Packet::new_unchecked(&mut seg[l3..]);
            p.set_total_len((len - l3) as u16);
            p.set_ident(ident.wrapping_add(i as u16));
            p.fill_checksum();
        }
        let mut t = TcpPacket::new_unchecked(&mut seg[l4..]);
        t.set_seq_number(seq + i * mss);
        if i + 1 < n {
            t.set_fin(false);
            t.set_psh(false);
        }
        if i > 0 {
            t.set_cwr(false);
        }
        t.fill_checksum(&src, &dst);
        emit(seg);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{Ipv4Address, Ipv6Address, TcpSeqNumber};

    /// An Ethernet + IP + TCP super-frame carrying `payload`, its TCP
    /// checksum left partial as a host stack leaves it.
    fn super_frame(v6: bool, payload: &[u8], flags: u8) -> (Vec<u8>, Offload) {
        let (ip_len, ethertype) = if v6 { (40, 0x86dd) } else { (20, 0x0800) };
        let l4 = 14 + ip_len;
        let mut f = vec![0u8; l4 + 20 + payload.len()];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&u16::to_be_bytes(ethertype));
        let (src, dst) = if v6 {
            let (s, d) = (
                Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
                Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
            );
            let mut p = Ipv6Packet::new_unchecked(&mut f[14..]);
            p.set_version(6);
            p.set_payload_len((20 + payload.len()) as u16);
            p.set_next_header(smoltcp::wire::IpProtocol::Tcp);
            p.set_hop_limit(64);
            p.set_src_addr(s);
            p.set_dst_addr(d);
            (IpAddress::Ipv6(s), IpAddress::Ipv6(d))
        } else {
            let (s, d) = (Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(10, 0, 0, 2));
            let mut p = Ipv4Packet::new_unchecked(&mut f[14..]);
            p.set_version(4);
            p.set_header_len(20);
            p.set_total_len((40 + payload.len()) as u16);
            p.set_ident(7);
            p.set_hop_limit(64);
            p.set_next_header(smoltcp::wire::IpProtocol::Tcp);
            p.set_src_addr(s);
            p.set_dst_addr(d);
            (IpAddress::Ipv4(s), IpAddress::Ipv4(d))
        };
        let mut t = TcpPacket::new_unchecked(&mut f[l4..]);
        t.set_header_len(20);
        t.set_seq_number(TcpSeqNumber(1000));
        t.set_ack(true);
        t.set_window_len(1000);
        t.payload_mut().copy_from_slice(payload);
        f[l4 + 13] |= flags;
        let pseudo = checksum::pseudo_header(
            &src,
            &dst,
            smoltcp::wire::IpProtocol::Tcp,
            (20 + payload.len()) as u32,
        );
        f[l4 + 16..l4 + 18].copy_from_slice(&pseudo.to_be_bytes());
        let off = Offload {
            flags: F_NEEDS_CSUM,
            gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
            hdr_len: (l4 + 20) as u16,
            gso_size: 1448,
            csum_start: l4 as u16,
            csum_offset: 16,
        };
        (f, off)
    }

    fn check_segments(v6: bool) {
        let payload: Vec<u8> = (0..60000u32).map(|i| (i * 7) as u8).collect();
        let (f, off) = super_frame(v6, &payload, 0x08 | 0x01); // PSH|FIN
        let mut got = Vec::new();
        let mut segs = 0;
        resolve(&f, &off, |s| {
            let ip = &s[14..];
            let (src, dst, tcp) = if v6 {
                let p = Ipv6Packet::new_checked(ip).unwrap();
                assert_eq!(p.payload_len() as usize, s.len() - 54);
                (
                    IpAddress::Ipv6(p.src_addr()),
                    IpAddress::Ipv6(p.dst_addr()),
                    &ip[40..],
                )
            } else {
                let p = Ipv4Packet::new_checked(ip).unwrap();
                assert!(p.verify_checksum());
                assert_eq!(p.total_len() as usize, s.len() - 14);
                assert_eq!(p.ident(), 7 + segs as u16);
                (
                    IpAddress::Ipv4(p.src_addr()),
                    IpAddress::Ipv4(p.dst_addr()),
                    &ip[20..],
                )
            };
            let t = TcpPacket::new_checked(tcp).unwrap();
            assert!(t.verify_checksum(&src, &dst));
            assert_eq!(t.seq_number(), TcpSeqNumber(1000 + got.len() as i32));
            assert!(t.payload().len() <= 1448);
            let last = got.len() + t.payload().len() == payload.len();
            assert_eq!((t.fin(), t.psh()), (last, last));
            got.extend_from_slice(t.payload());
            segs += 1;
        })
        .unwrap();
        assert_eq!(got, payload);
        assert_eq!(segs, 60000usize.div_ceil(1448));
        assert_eq!(
            off.wire_size(&f),
            (
                segs as u64,
                (f.len() + (segs - 1) * (f.len() - 60000)) as u64
            )
        );
    }

    #[test]
    fn segments_tcp_over_ipv4_and_ipv6() {
        check_segments(false);
        check_segments(true);
    }

    #[test]
    fn completes_a_partial_checksum() {
        let (f, mut off) = super_frame(false, b"hello", 0);
        off.gso_type = GSO_NONE;
        let mut out = Vec::new();
        resolve(&f, &off, |s| out = s.to_vec()).unwrap();
        let t = TcpPacket::new_checked(&out[34..]).unwrap();
        let p = Ipv4Packet::new_checked(&out[14..]).unwrap();
        assert!(t.verify_checksum(
            &IpAddress::Ipv4(p.src_addr()),
            &IpAddress::Ipv4(p.dst_addr())
        ));
        assert_eq!(off.wire_size(&f), (1, f.len() as u64));
    }

    #[test]
    fn header_round_trip_and_nothing_to_do() {
        let (_, off) = super_frame(true, b"x", 0);
        assert_eq!(Offload::from_bytes(&off.to_bytes()), off);
        assert!(Offload::from_bytes(&[0; VNET_HDR_LEN]).is_none());
        let mut n = 0;
        resolve(b"0123456789abcdef", &Offload::NONE, |f| n = f.len()).unwrap();
        assert_eq!(n, 16);
    }

    #[test]
    fn malformed_headers_are_refused_not_trusted() {
        let (f, off) = super_frame(false, &[1; 3000], 0);
        let bad = [
            Offload {
                csum_start: 5000,
                ..off
            },
            Offload {
                csum_start: 20,
                ..off
            },
            Offload { gso_size: 0, ..off },
            Offload {
                gso_size: 9500,
                ..off
            },
            Offload { gso_type: 3, ..off },
            Offload {
                gso_type: GSO_NONE,
                csum_offset: 4000,
                ..off
            },
        ];
        for o in bad {
            assert_eq!(resolve(&f, &o, |_| {}), Err(Malformed), "{o:?}");
        }
        assert_eq!(resolve(&f[..40], &off, |_| {}), Err(Malformed));
    }
}
