//! The one frame type of the data plane: an Ethernet frame checked once,
//! when it enters (from a medium, or from the host), and the offload work
//! it still carries. Every consumer — a port, the bridge, a transmitter,
//! the IP presence — reads it through these accessors, none of which can
//! fail; nothing downstream slices raw bytes or checks a length again.

use crate::ioctl::Mac;
use crate::offload::{self, Malformed, Offload, OffloadCaps};
use smoltcp::wire::{ETHERNET_HEADER_LEN, EthernetAddress, EthernetFrame};

/// An Ethernet frame (at least a whole header) and the offload work left
/// on it: `Offload::NONE` for a finished frame.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// The header, as an array: reading an address is a load, never a
    /// bounds check (the data plane reads them several times per frame).
    hdr: &'a [u8; ETHERNET_HEADER_LEN],
    bytes: &'a [u8],
    off: Offload,
}

impl<'a> Frame<'a> {
    /// A finished frame; `None` when `bytes` cannot hold an Ethernet header.
    pub fn new(bytes: &'a [u8]) -> Option<Frame<'a>> {
        Frame::with_offload(bytes, Offload::NONE)
    }

    /// A frame with `off`'s work left (from a host TAP with offloads on).
    /// The only place a frame's length is checked.
    pub fn with_offload(bytes: &'a [u8], off: Offload) -> Option<Frame<'a>> {
        let (hdr, _) = bytes.split_first_chunk()?;
        Some(Frame { hdr, bytes, off })
    }

    fn ether(&self) -> EthernetFrame<&'a [u8]> {
        EthernetFrame::new_unchecked(self.bytes)
    }

    /// The whole frame, header included, as it goes on a medium.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never: a frame holds at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn dst(&self) -> Mac {
        let [a, b, c, d, e, f, ..] = *self.hdr;
        [a, b, c, d, e, f]
    }

    pub fn src(&self) -> Mac {
        let [_, _, _, _, _, _, a, b, c, d, e, f, ..] = *self.hdr;
        [a, b, c, d, e, f]
    }

    pub fn ethertype(&self) -> u16 {
        self.ether().ethertype().into()
    }

    pub fn payload(&self) -> &'a [u8] {
        self.ether().payload()
    }

    /// Sent to a group: broadcast or multicast (`ETHER_IS_MULTICAST`).
    pub fn is_multicast(&self) -> bool {
        EthernetAddress(self.dst()).is_multicast()
    }

    pub fn is_broadcast(&self) -> bool {
        EthernetAddress(self.dst()).is_broadcast()
    }

    /// The checksum/segmentation work left on the frame.
    pub fn offload(&self) -> &Offload {
        &self.off
    }

    /// How many frames, and of how many bytes in all, this one stands for
    /// on a wire without offloads (more than one for a TCP super-frame).
    pub fn wire_size(&self) -> (u64, u64) {
        self.off.wire_size(self.bytes)
    }

    /// Hand `emit` this frame as a consumer taking `caps` needs it: as it
    /// is when `caps` covers its work, else finished in software (its
    /// checksum completed, a super-frame cut into segments, each built on
    /// the stack). The one place offload work is done. `Malformed`: the
    /// offload header does not fit the frame, nothing was emitted.
    #[inline]
    pub fn finish(&self, caps: OffloadCaps, mut emit: impl FnMut(&Frame)) -> Result<(), Malformed> {
        if caps.takes(&self.off) {
            emit(self);
            return Ok(());
        }
        self.resolve(&mut emit)
    }

    /// The software path of `finish`, kept out of line: its segment buffer
    /// lives on the stack only while there is work to do.
    #[cold]
    fn resolve(&self, emit: &mut dyn FnMut(&Frame)) -> Result<(), Malformed> {
        offload::resolve(self.bytes, &self.off, |b| {
            // Finished frames keep the header of the one they came from.
            if let Some(f) = Frame::new(b) {
                emit(&f)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(dst: Mac) -> Vec<u8> {
        let mut f = [dst, [2, 0, 0, 0, 0, 1]].concat();
        f.extend_from_slice(&[0x86, 0xdd, 0xaa, 0xbb, 0xcc, 0xdd]);
        f
    }

    #[test]
    fn short_input_is_refused() {
        for b in [&[][..], &[0xff], &[0xff; 13]] {
            assert!(Frame::new(b).is_none());
            assert!(Frame::with_offload(b, Offload::NONE).is_none());
        }
        assert!(Frame::new(&[0; 14]).is_some_and(|f| f.payload().is_empty()));
    }

    #[test]
    fn accessors() {
        let b = bytes([2, 0, 0, 0, 0, 2]);
        let f = Frame::new(&b).unwrap();
        assert_eq!(f.dst(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(f.src(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.ethertype(), 0x86dd);
        assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!((f.len(), f.bytes()), (18, &b[..]));
        assert!(!f.is_multicast() && !f.is_broadcast());
        assert_eq!(f.wire_size(), (1, 18));
        let b = bytes([0x33, 0x33, 0, 0, 0, 1]);
        let f = Frame::new(&b).unwrap();
        assert!(f.is_multicast() && !f.is_broadcast());
        let b = bytes([0xff; 6]);
        let f = Frame::new(&b).unwrap();
        assert!(f.is_multicast() && f.is_broadcast());
    }

    #[test]
    fn a_finished_frame_is_handed_on_as_it_is() {
        let b = bytes([0xff; 6]);
        let f = Frame::new(&b).unwrap();
        let mut seen = Vec::new();
        f.finish(OffloadCaps::NONE, |g| seen.push(g.bytes().as_ptr()))
            .unwrap();
        assert_eq!(seen, [b.as_ptr()]);
    }

    #[test]
    fn work_the_consumer_takes_is_left_on_the_frame() {
        let b = bytes([0xff; 6]);
        let off = Offload {
            flags: 1,
            csum_start: 14,
            csum_offset: 2,
            ..Offload::NONE
        };
        let f = Frame::with_offload(&b, off).unwrap();
        let mut n = 0;
        f.finish(OffloadCaps::CSUM, |g| {
            assert_eq!(*g.offload(), off);
            n += 1
        })
        .unwrap();
        // Done in software: the checksum filled in, nothing left.
        f.finish(OffloadCaps::NONE, |g| {
            assert!(g.offload().is_none());
            assert_ne!(g.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
            n += 1
        })
        .unwrap();
        assert_eq!(n, 2);
        let bad = Offload {
            csum_offset: 9,
            ..off
        };
        let f = Frame::with_offload(&b, bad).unwrap();
        assert_eq!(f.finish(OffloadCaps::NONE, |_| n += 1), Err(Malformed));
        assert_eq!(n, 2);
    }
}
