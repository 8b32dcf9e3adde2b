//! The tap control socket's byte stream, QEMU's `-netdev stream` framing:
//! each frame preceded by its length as a 4-byte big-endian integer.
//!
//! [`Deframer`] cuts frames out of what the client writes, in one buffer
//! allocated once and big enough for the largest record, so a claimed
//! length is never allocated. [`TxRing`] holds frames for the client,
//! already framed, in a fixed byte ring: a full ring drops the frame.

use crate::ioctl::Errno;

/// Bytes of the length header.
pub const HDR_LEN: usize = 4;

/// The longest record we read; a longer claimed length means the stream
/// cannot be trusted any more and the client is disconnected (as QEMU does
/// with a length beyond its buffer).
pub const TAP_MAXFRAME: usize = 65535;

/// The header for a frame of `len` bytes.
pub fn header(len: usize) -> [u8; HDR_LEN] {
    (len as u32).to_be_bytes()
}

/// What [`Deframer::next_record`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// One whole frame (of any length up to [`TAP_MAXFRAME`], even 0: the
    /// caller judges it).
    Frame(&'a [u8]),
    /// A length beyond [`TAP_MAXFRAME`]: the stream is broken.
    TooLong(u32),
    /// Nothing complete yet.
    Incomplete,
}

pub struct Deframer {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Default for Deframer {
    fn default() -> Self {
        Deframer::new()
    }
}

impl Deframer {
    /// Room for two largest records, so small frames batch per read.
    pub fn new() -> Deframer {
        Deframer {
            buf: vec![0; 2 * (HDR_LEN + TAP_MAXFRAME)].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Where the next read goes. Never empty while a record is incomplete:
    /// the buffer holds at least one record of the largest size.
    pub fn space(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into [`Deframer::space`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    pub fn next_record(&mut self) -> Record<'_> {
        let have = self.end - self.start;
        if have < HDR_LEN {
            return Record::Incomplete;
        }
        let h = &self.buf[self.start..self.start + HDR_LEN];
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        if len as usize > TAP_MAXFRAME {
            return Record::TooLong(len);
        }
        let len = len as usize;
        if have < HDR_LEN + len {
            return Record::Incomplete;
        }
        let at = self.start + HDR_LEN;
        self.start = at + len;
        Record::Frame(&self.buf[at..at + len])
    }

    /// Bytes of an incomplete record (a frame cut short by a disconnect).
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

/// Frames for the client, framed, in a fixed ring of bytes.
pub struct TxRing {
    buf: Box<[u8]>,
    head: usize,
    len: usize,
}

impl TxRing {
    pub fn new(bytes: usize) -> TxRing {
        TxRing {
            buf: vec![0; bytes].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queue one frame with its header; ENOBUFS when it does not fit now.
    pub fn push(&mut self, frame: &[u8]) -> Result<(), Errno> {
        if HDR_LEN + frame.len() > self.buf.len() - self.len {
            return Err(Errno(libc::ENOBUFS));
        }
        self.put(&header(frame.len()));
        self.put(frame);
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) {
        let cap = self.buf.len();
        let tail = (self.head + self.len) % cap;
        let first = bytes.len().min(cap - tail);
        self.buf[tail..tail + first].copy_from_slice(&bytes[..first]);
        self.buf[..bytes.len() - first].copy_from_slice(&bytes[first..]);
        self.len += bytes.len();
    }

    /// The next bytes to write, as one contiguous slice.
    pub fn front(&self) -> &[u8] {
        let n = self.len.min(self.buf.len() - self.head);
        &self.buf[self.head..self.head + n]
    }

    /// `n` bytes of [`TxRing::front`] were written.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % self.buf.len();
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
    }

    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Make room for `bytes`, keeping what is queued, in order; EBUSY when
    /// more than that is queued now.
    pub fn resize(&mut self, bytes: usize) -> Result<(), Errno> {
        if bytes < self.len {
            return Err(Errno::EBUSY);
        }
        let mut buf = vec![0; bytes].into_boxed_slice();
        let first = self.front().len();
        buf[..first].copy_from_slice(self.front());
        buf[first..self.len].copy_from_slice(&self.buf[..self.len - first]);
        self.buf = buf;
        self.head = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed(d: &mut Deframer, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let space = d.space();
            let n = space.len().min(bytes.len());
            space[..n].copy_from_slice(&bytes[..n]);
            d.filled(n);
            bytes = &bytes[n..];
        }
    }

    #[test]
    fn resize_keeps_the_queue_in_order() {
        let mut r = TxRing::new(64);
        r.push(&[1; 20]).unwrap();
        r.consume(HDR_LEN + 20);
        r.push(&[2; 40]).unwrap(); // wraps round the end
        let queued = |r: &mut TxRing| {
            let mut v = Vec::new();
            while !r.is_empty() {
                let n = r.front().len();
                v.extend_from_slice(r.front());
                r.consume(n);
            }
            v
        };
        let mut want = header(40).to_vec();
        want.extend([2; 40]);
        assert_eq!(r.resize(10), Err(Errno::EBUSY));
        r.resize(128).unwrap();
        assert_eq!(r.capacity(), 128);
        assert_eq!(queued(&mut r), want);
    }

    #[test]
    fn deframes() {
        let mut d = Deframer::new();
        feed(&mut d, &[0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(d.next_record(), Record::Frame(&[1, 2, 3]));
        assert_eq!(d.next_record(), Record::Frame(&[]));
        assert_eq!(d.next_record(), Record::Incomplete);
        assert_eq!(d.pending(), 2);
        feed(&mut d, &[0, 1, 9]);
        assert_eq!(d.next_record(), Record::Frame(&[9]));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn huge_length_is_not_allocated() {
        let mut d = Deframer::new();
        feed(&mut d, &0x8000_0000u32.to_be_bytes());
        assert_eq!(d.next_record(), Record::TooLong(0x8000_0000));
        let mut d = Deframer::new();
        feed(&mut d, &(TAP_MAXFRAME as u32 + 1).to_be_bytes());
        assert_eq!(d.next_record(), Record::TooLong(TAP_MAXFRAME as u32 + 1));
    }

    #[test]
    fn largest_frames_back_to_back() {
        let mut d = Deframer::new();
        let big = vec![7u8; TAP_MAXFRAME];
        for _ in 0..5 {
            feed(&mut d, &header(big.len()));
            feed(&mut d, &big[..1000]);
            assert_eq!(d.next_record(), Record::Incomplete);
            feed(&mut d, &big[1000..]);
            assert_eq!(d.next_record(), Record::Frame(&big[..]));
        }
    }

    #[test]
    fn ring_wraps_and_drops_when_full() {
        let mut r = TxRing::new(16);
        r.push(&[1, 2, 3, 4]).unwrap();
        assert_eq!(r.push(&[5; 5]), Err(Errno(libc::ENOBUFS)));
        r.consume(6);
        r.push(&[5, 6, 7, 8, 9, 10]).unwrap();
        let mut out = Vec::new();
        while !r.is_empty() {
            let f = r.front().to_vec();
            r.consume(f.len());
            out.extend(f);
        }
        assert_eq!(out, [3, 4, 0, 0, 0, 6, 5, 6, 7, 8, 9, 10]);
    }

    proptest! {
        /// Whatever the frames and however the stream is cut, the same
        /// frames come out, through a ring and a deframer.
        #[test]
        fn round_trip(
            frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 0..20),
            cuts in prop::collection::vec(1usize..5000, 1..10),
        ) {
            let mut ring = TxRing::new(8192);
            let mut wire = Vec::new();
            for f in &frames {
                while ring.push(f).is_err() {
                    let n = ring.front().len();
                    wire.extend_from_slice(ring.front());
                    ring.consume(n);
                }
            }
            while !ring.is_empty() {
                let n = ring.front().len().min(cuts[0]);
                wire.extend_from_slice(&ring.front()[..n]);
                ring.consume(n);
            }
            let mut d = Deframer::new();
            let mut got = Vec::new();
            let mut rest = &wire[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                feed(&mut d, &rest[..n]);
                rest = &rest[n..];
                i += 1;
                while let Record::Frame(f) = d.next_record() {
                    got.push(f.to_vec());
                }
            }
            prop_assert_eq!(got, frames);
            prop_assert_eq!(d.pending(), 0);
        }
    }
}
