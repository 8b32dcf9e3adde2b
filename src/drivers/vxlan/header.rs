//! The VXLAN header (RFC 7348, section 5): eight bytes in front of the
//! inner Ethernet frame, in a UDP datagram.
//!
//! ```text
//!  0               1               2               3
//! |R|R|R|R|I|R|R|R|            Reserved                          |
//! |       VXLAN Network Identifier (VNI)          |   Reserved   |
//! ```
//!
//! [`Packet`] is a view over a datagram checked once, in
//! [`Packet::new_checked`]: it holds the header and at least an Ethernet
//! header behind it. [`Repr`] is what the header says, parsed from a view
//! and emitted into a buffer. Reserved bits are ignored on receipt and sent
//! as zero, as the RFC asks.

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The I flag: the VNI is valid.
pub const FLAG_I: u8 = 0x08;
/// An Ethernet header: the least an inner frame holds.
const ETHER_HDR_LEN: usize = 14;
/// Outer headers in front of an inner frame: IPv4 (20) or IPv6 (40),
/// UDP (8) and the VXLAN header; with the inner Ethernet header (14) they
/// are what the vxlan MTU leaves out of the underlay's.
pub const OVERHEAD_V4: u32 = 20 + 8 + HEADER_LEN as u32 + ETHER_HDR_LEN as u32;
pub const OVERHEAD_V6: u32 = 40 + 8 + HEADER_LEN as u32 + ETHER_HDR_LEN as u32;

/// Why a datagram is not a VXLAN frame we take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the header and an Ethernet header.
    Truncated,
    /// Without the I flag.
    NoVni,
}

/// A datagram that holds a VXLAN header and an inner Ethernet header.
#[derive(Clone, Copy, Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Check the length and the I flag once; the accessors trust them.
    pub fn new_checked(buf: T) -> Result<Packet<T>, Error> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN + ETHER_HDR_LEN {
            return Err(Error::Truncated);
        }
        if b[0] & FLAG_I == 0 {
            return Err(Error::NoVni);
        }
        Ok(Packet { buf })
    }

    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[0]
    }

    pub fn vni(&self) -> u32 {
        let b = self.buf.as_ref();
        u32::from_be_bytes([0, b[4], b[5], b[6]])
    }

    /// The inner Ethernet frame, at least its header.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

/// What a VXLAN header says: the network it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub vni: u32,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr { vni: p.vni() }
    }

    /// The header: the I flag, the VNI (its low 24 bits), zeroes elsewhere.
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let [_, a, b, c] = self.vni.to_be_bytes();
        [FLAG_I, 0, 0, 0, a, b, c, 0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = Repr { vni: 0x00ab_cdef };
        let mut d = r.emit().to_vec();
        assert_eq!(d, [0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
        d.extend_from_slice(&[0xff; 14]);
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!(Repr::parse(&p), r);
        assert_eq!(p.payload(), &[0xff; 14]);
    }

    #[test]
    fn refused() {
        let mut d = Repr { vni: 42 }.emit().to_vec();
        d.extend_from_slice(&[0; 13]);
        assert_eq!(Packet::new_checked(&d[..]).err(), Some(Error::Truncated));
        d.push(0);
        assert!(Packet::new_checked(&d[..]).is_ok());
        d[0] = 0xf7;
        assert_eq!(Packet::new_checked(&d[..]).err(), Some(Error::NoVni));
        assert_eq!(Packet::new_checked(&[][..]).err(), Some(Error::Truncated));
    }

    #[test]
    fn reserved_bits_are_ignored() {
        let mut d = [0xff; HEADER_LEN + 14];
        d[4..7].copy_from_slice(&[0, 0, 42]);
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!(p.vni(), 42);
        assert_eq!(p.flags(), 0xff);
    }
}
