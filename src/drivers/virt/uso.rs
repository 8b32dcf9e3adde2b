//! Small UDP datagrams to the host in batches (Linux's UDP segmentation
//! offload, `VIRTIO_NET_HDR_GSO_UDP_L4`, Linux 6.2+). Consecutive
//! datagrams of one flow written to a host TAP in one reactor turn — an
//! iperf3 or RTP stream that a router or bridge forwards — leave as one
//! super-datagram: one write and one trip through the host's IP layer,
//! cut back into the same datagrams at the host's UDP socket, instead of a
//! write and a trip per datagram (a 64-byte stream spent most of its time
//! there).
//!
//! Only plain datagrams join: IPv4 without options or fragments, or IPv6
//! without extension headers; with a UDP checksum, complete or left to the
//! host (as a host TAP hands them to us); the same headers but for
//! lengths, IPv4 id and checksums; every one but the last as long as the
//! first. As in Linux's own UDP GSO, the host numbers the IPv4 ids of the
//! cut datagrams up from the first one's.

use crate::drivers::gro::{plain_ip, super_headers};
use crate::offload::Offload;
use smoltcp::wire::IpProtocol;

const F_NEEDS_CSUM: u8 = 1;
const GSO_UDP_L4: u8 = 5;
/// Datagrams per super-datagram: Linux's UDP_MAX_SEGMENTS is 64 on the
/// oldest kernels that take it.
const MAX_SEGS: usize = 64;
/// IP lengths are 16 bits.
const MAX_LEN: usize = 65535;

/// Where a datagram's parts are: IPv6 or IPv4, the start of UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram {
    v6: bool,
    l4: usize,
}

/// A datagram that may join a batch, or `None`; `off` is the work left
/// on it.
pub fn datagram(f: &[u8], off: &Offload) -> Option<Datagram> {
    let (v6, l4) = plain_ip(f, 17)?;
    let udp = f.get(l4..l4 + 8)?;
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    let csum = u16::from_be_bytes([udp[6], udp[7]]);
    // The lengths agree, there is data, and a checksum to keep; no work
    // left but that checksum.
    let work =
        off.is_none() || !off.is_gso() && usize::from(off.csum_start) == l4 && off.csum_offset == 6;
    (work && l4 + udp_len == f.len() && udp_len > 8 && csum != 0).then_some(Datagram { v6, l4 })
}

/// The super-datagram being built.
#[derive(Default)]
pub struct Uso {
    buf: Vec<u8>,
    first: Option<Datagram>,
    /// The work left on the first, which a batch of one keeps.
    off: Offload,
    /// The first datagram's payload length: the size to cut at.
    size: usize,
    segs: usize,
    /// The last was shorter than the first: nothing may follow.
    closed: bool,
}

impl Uso {
    /// Whether datagram `f` (shaped `d`) continues the batch.
    fn continues(&self, f: &[u8], d: &Datagram) -> bool {
        let Some(p) = &self.first else { return false };
        let b = &self.buf;
        let pay = f.len() - d.l4 - 8;
        let same = |r: std::ops::Range<usize>| b.get(r.clone()) == f.get(r);
        !self.closed
            && p.v6 == d.v6
            && pay <= self.size
            && self.segs < MAX_SEGS
            && b.len() - 14 + pay <= MAX_LEN
            && same(0..14)
            // IP: all but lengths, id and checksum.
            && if d.v6 {
                same(14..18) && same(20..54)
            } else {
                same(14..16) && same(20..24) && same(26..34)
            }
            // UDP: the ports.
            && same(p.l4..p.l4 + 4)
    }

    /// Take datagram `f` (shaped `d`): into the batch, or, when it does not
    /// continue it, as the start of a new one after handing what was held
    /// to `out`.
    pub fn push(
        &mut self,
        f: &[u8],
        off: &Offload,
        d: Datagram,
        out: &mut dyn FnMut(&[u8], &Offload, usize),
    ) {
        let pay = f.len() - d.l4 - 8;
        if self.continues(f, &d) {
            self.buf.extend_from_slice(&f[d.l4 + 8..]);
        } else {
            self.flush(out);
            self.buf.clear();
            self.buf.extend_from_slice(f);
            self.first = Some(d);
            self.off = *off;
            self.size = pay;
        }
        self.segs += 1;
        self.closed = pay < self.size;
    }

    /// Hand what is held to `out` with the number of datagrams it stands
    /// for: one datagram as it came, several as a super-datagram with its
    /// headers for the whole and the work to cut it.
    pub fn flush(&mut self, out: &mut dyn FnMut(&[u8], &Offload, usize)) {
        let Some(d) = self.first.take() else { return };
        let segs = std::mem::take(&mut self.segs);
        if segs == 1 {
            return out(&self.buf, &self.off, 1);
        }
        self.finish_headers(&d);
        let off = Offload {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_UDP_L4,
            hdr_len: (d.l4 + 8) as u16,
            gso_size: self.size as u16,
            csum_start: d.l4 as u16,
            csum_offset: 6,
        };
        out(&self.buf, &off, segs);
    }

    /// Lengths for the whole, and the UDP checksum field holding the
    /// pseudo-header sum, as a sender with UDP_SEGMENT leaves it.
    fn finish_headers(&mut self, d: &Datagram) {
        let pseudo = super_headers(&mut self.buf, d.v6, d.l4, IpProtocol::Udp);
        let b = &mut self.buf;
        let udp_len = (b.len() - d.l4) as u16;
        b[d.l4 + 4..d.l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
        b[d.l4 + 6..d.l4 + 8].copy_from_slice(&pseudo.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{IpAddress, Ipv4Address, Ipv4Packet, UdpPacket, checksum};

    /// A finished IPv4 UDP datagram of `payload`, id `id`.
    fn dgram(id: u16, payload: &[u8], sport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 42 + payload.len()];
        f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
            ip.set_version(4);
            ip.set_header_len(20);
            ip.set_total_len((28 + payload.len()) as u16);
            ip.set_ident(id);
            ip.set_dont_frag(true);
            ip.set_hop_limit(64);
            ip.set_next_header(IpProtocol::Udp);
            ip.set_src_addr(Ipv4Address::new(10, 0, 0, 1));
            ip.set_dst_addr(Ipv4Address::new(10, 0, 0, 2));
            ip.fill_checksum();
        }
        f[42..].copy_from_slice(payload);
        let mut u = UdpPacket::new_unchecked(&mut f[34..]);
        u.set_src_port(sport);
        u.set_dst_port(5201);
        u.set_len((8 + payload.len()) as u16);
        u.fill_checksum(&IpAddress::v4(10, 0, 0, 1), &IpAddress::v4(10, 0, 0, 2));
        f
    }

    fn run(frames: &[Vec<u8>]) -> Vec<(Vec<u8>, Offload, usize)> {
        let mut u = Uso::default();
        let mut out = Vec::new();
        let mut put = |b: &[u8], o: &Offload, n: usize| out.push((b.to_vec(), *o, n));
        for f in frames {
            match datagram(f, &Offload::NONE) {
                Some(d) => u.push(f, &Offload::NONE, d, &mut put),
                None => {
                    u.flush(&mut put);
                    put(f, &Offload::NONE, 1);
                }
            }
        }
        u.flush(&mut put);
        out
    }

    #[test]
    fn a_run_of_datagrams_becomes_one_the_host_can_cut() {
        let p: Vec<u8> = (0..=255u8).cycle().take(200).collect();
        let out = run(&[
            dgram(1, &p[..64], 4000),
            dgram(2, &p[64..128], 4000),
            dgram(3, &p[128..150], 4000),
        ]);
        assert_eq!(out.len(), 1);
        let (b, off, n) = &out[0];
        assert_eq!(*n, 3);
        assert_eq!(
            (off.gso_type, off.gso_size, off.hdr_len),
            (GSO_UDP_L4, 64, 42)
        );
        assert_eq!((off.csum_start, off.csum_offset), (34, 6));
        assert_eq!(b.len(), 42 + 150);
        assert_eq!(&b[42..], &p[..150]);
        let ip = Ipv4Packet::new_unchecked(&b[14..]);
        assert!(ip.verify_checksum());
        assert_eq!((ip.total_len(), ip.ident()), (28 + 150, 1));
        // The partial checksum completes to a valid one over the whole, as
        // the host's segmentation expects of it.
        let mut whole = b.clone();
        let sum = !checksum::data(&whole[34..]);
        whole[40..42].copy_from_slice(&sum.to_be_bytes());
        let u = UdpPacket::new_unchecked(&whole[34..]);
        assert_eq!(u.len(), 8 + 150);
        assert!(u.verify_checksum(&IpAddress::v4(10, 0, 0, 1), &IpAddress::v4(10, 0, 0, 2)));
    }

    #[test]
    fn what_cannot_join_passes_as_it_came() {
        let p = [7u8; 64];
        let mut no_csum = dgram(9, &p, 4000);
        no_csum[40..42].copy_from_slice(&[0, 0]);
        let frames = vec![
            dgram(1, &p, 4000),
            // Another flow, a longer one, a datagram without checksum.
            dgram(2, &p, 4001),
            dgram(3, &[7u8; 80], 4001),
            no_csum,
        ];
        let out = run(&frames);
        assert_eq!(out.len(), frames.len());
        for ((b, o, n), f) in out.iter().zip(&frames) {
            assert_eq!((b, o, *n), (f, &Offload::NONE, 1));
        }
        // A shorter one ends its batch.
        let out = run(&[
            dgram(1, &p, 4000),
            dgram(2, &p[..10], 4000),
            dgram(3, &p, 4000),
        ]);
        assert_eq!(out.iter().map(|o| o.2).collect::<Vec<_>>(), [2, 1]);
    }

    #[test]
    fn a_batch_stops_at_the_segment_and_length_bounds() {
        let out = run(&vec![dgram(1, &[1u8; 8], 4000); MAX_SEGS + 1]);
        assert_eq!(out.iter().map(|o| o.2).collect::<Vec<_>>(), [MAX_SEGS, 1]);
        let out = run(&vec![dgram(1, &[1u8; 1472], 4000); 50]);
        // 44 payloads of 1472 and the headers fit 65535 bytes of IP.
        assert_eq!(out.iter().map(|o| o.2).collect::<Vec<_>>(), [44, 6]);
        assert!(out.iter().all(|(b, _, _)| b.len() - 14 <= MAX_LEN));
    }

    #[test]
    fn not_datagrams() {
        let mut frag = dgram(1, &[1u8; 64], 4000);
        frag[20] = 0x20; // more fragments
        let none = Offload::NONE;
        assert_eq!(datagram(&frag, &none), None);
        let mut short = dgram(1, &[1u8; 64], 4000);
        short.truncate(60);
        assert_eq!(datagram(&short, &none), None);
        assert_eq!(datagram(&dgram(1, &[], 4000), &none), None);
        assert_eq!(datagram(&[0u8; 10], &none), None);
        // Checksum work left as a host leaves it joins; other work not.
        let f = dgram(1, &[1u8; 64], 4000);
        let partial = Offload {
            flags: F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 6,
            ..none
        };
        assert!(datagram(&f, &partial).is_some());
        let odd = Offload {
            csum_offset: 16,
            ..partial
        };
        assert_eq!(datagram(&f, &odd), None);
    }
}
