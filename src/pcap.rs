//! Classic libpcap capture files: the global header and per-frame records,
//! microsecond or nanosecond stamps, host byte order (as libpcap writes).

use std::io::{self, Write};

/// Magic of a capture with microsecond stamps.
pub const MAGIC_USEC: u32 = 0xa1b2_c3d4;
/// Magic of a capture with nanosecond stamps.
pub const MAGIC_NSEC: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// The pcap global header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapHeaderRepr {
    pub nano: bool,
    pub snaplen: u32,
    pub linktype: u32,
}

impl PcapHeaderRepr {
    pub fn emit(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        let magic = if self.nano { MAGIC_NSEC } else { MAGIC_USEC };
        b[0..4].copy_from_slice(&magic.to_ne_bytes());
        b[4..6].copy_from_slice(&2u16.to_ne_bytes());
        b[6..8].copy_from_slice(&4u16.to_ne_bytes());
        // thiszone and sigfigs stay 0.
        b[16..20].copy_from_slice(&self.snaplen.to_ne_bytes());
        b[20..24].copy_from_slice(&self.linktype.to_ne_bytes());
        b
    }
}

/// A pcap record header: stamp, captured and original length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapRecordRepr {
    pub sec: u32,
    /// Microseconds or nanoseconds, as the file's magic says.
    pub frac: u32,
    pub caplen: u32,
    pub len: u32,
}

impl PcapRecordRepr {
    pub fn emit(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.sec.to_ne_bytes());
        b[4..8].copy_from_slice(&self.frac.to_ne_bytes());
        b[8..12].copy_from_slice(&self.caplen.to_ne_bytes());
        b[12..16].copy_from_slice(&self.len.to_ne_bytes());
        b
    }
}

/// Writes a capture: the header at creation, then one record per frame.
pub struct PcapWriter<W: Write> {
    w: W,
    nano: bool,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Start a capture of Ethernet frames up to `snaplen` bytes.
    pub fn new(mut w: W, nano: bool, snaplen: u32) -> io::Result<PcapWriter<W>> {
        w.write_all(
            &PcapHeaderRepr {
                nano,
                snaplen,
                linktype: LINKTYPE_ETHERNET,
            }
            .emit(),
        )?;
        Ok(PcapWriter { w, nano, snaplen })
    }

    /// Add a frame given in pieces (a frame split across a ring's end),
    /// stamped `sec` + `usec`. At most `snaplen` bytes of it are written,
    /// as the header promises readers (a corrupt ring can claim more).
    pub fn record(&mut self, sec: u32, usec: u32, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let caplen = len.min(self.snaplen as usize);
        let frac = if self.nano {
            usec.wrapping_mul(1000)
        } else {
            usec
        };
        let r = PcapRecordRepr {
            sec,
            frac,
            caplen: caplen as u32,
            len: len.min(u32::MAX as usize) as u32,
        };
        self.w.write_all(&r.emit())?;
        let mut left = caplen;
        for p in parts {
            let n = p.len().min(left);
            self.w.write_all(&p[..n])?;
            left -= n;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record() {
        let mut p = PcapWriter::new(Vec::new(), false, 1518).unwrap();
        p.record(124, 280004, &[&[1, 2], &[3]]).unwrap();
        let v = p.get_mut().clone();
        assert_eq!(&v[0..4], &MAGIC_USEC.to_ne_bytes());
        assert_eq!(u32::from_ne_bytes(v[16..20].try_into().unwrap()), 1518);
        assert_eq!(u32::from_ne_bytes(v[20..24].try_into().unwrap()), 1);
        assert_eq!(u32::from_ne_bytes(v[24..28].try_into().unwrap()), 124);
        assert_eq!(u32::from_ne_bytes(v[28..32].try_into().unwrap()), 280004);
        assert_eq!(u32::from_ne_bytes(v[32..36].try_into().unwrap()), 3);
        assert_eq!(&v[40..], &[1, 2, 3]);
        let mut n = PcapWriter::new(Vec::new(), true, 1518).unwrap();
        n.record(1, 2, &[&[0; 14]]).unwrap();
        assert_eq!(&n.get_mut()[0..4], &MAGIC_NSEC.to_ne_bytes());
        assert_eq!(
            u32::from_ne_bytes(n.get_mut()[28..32].try_into().unwrap()),
            2000
        );
    }

    /// A record never holds more than the snaplen the header promised,
    /// whatever length a (corrupt) source claims; `len` keeps the truth.
    #[test]
    fn records_are_capped_at_the_snaplen() {
        let mut p = PcapWriter::new(Vec::new(), false, 1518).unwrap();
        let big = vec![7u8; 196_607];
        p.record(1, 0, &[&big[..100_000], &big[100_000..]]).unwrap();
        let v = p.get_mut().clone();
        assert_eq!(u32::from_ne_bytes(v[32..36].try_into().unwrap()), 1518);
        assert_eq!(u32::from_ne_bytes(v[36..40].try_into().unwrap()), 196_607);
        assert_eq!(v.len(), 24 + 16 + 1518);
    }
}
