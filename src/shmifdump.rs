//! What `shmifdump` does: NetBSD's shmif_dumpbus walk over a bus image,
//! its text lines and pcap output, and following a live bus.

use crate::drivers::shmif::bus::{
    BUS_SIZE, Batch, Bus, BusHeaderRepr, BusReader, Format, HEADER_LEN, MAGIC, Recv, Ring, VERSION,
    Watch, frame_header_len, read_header, ring_skip,
};
use crate::pcap::PcapWriter;
use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Snap length of our captures, as shmif_dumpbus writes it.
pub const SNAPLEN: u32 = 1518;

/// Why a dump failed. Displayed as the message after `shmifdump: `.
#[derive(Debug)]
pub enum DumpError {
    /// Reading the bus file.
    Open(String, io::Error),
    /// Shorter than a bus header, or than a ring that can hold a frame.
    Truncated(String, u64),
    BadMagic(String, u32),
    Version(u32),
    /// The header or a frame header points outside the ring.
    Corrupt(String, String),
    /// Writing an output (`what` names it: a file or "stdout").
    Write(String, io::Error),
}

/// C's `%#x`: `0` for zero, else `0x…`.
fn alt_hex(v: u32) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpError::Open(p, e) => write!(f, "{p}: {}", crate::ioctl::Errno::from_io(e)),
            DumpError::Truncated(p, n) => {
                write!(f, "{p} not a shmif bus: truncated to {n} bytes")
            }
            DumpError::BadMagic(p, m) => {
                write!(
                    f,
                    "{p} not a shmif bus: bad magic {} != {}",
                    alt_hex(*m),
                    alt_hex(MAGIC)
                )
            }
            DumpError::Version(v) => write!(f, "Unhandled bus version {v}, program {VERSION}"),
            DumpError::Corrupt(p, why) => write!(f, "{p}: corrupt bus: {why}"),
            DumpError::Write(what, e) => {
                write!(f, "{what}: {}", crate::ioctl::Errno::from_io(e))
            }
        }
    }
}

impl std::error::Error for DumpError {}

impl DumpError {
    /// A write that failed because the reader of a pipe went away: the
    /// end of the run, not an error to report.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, DumpError::Write(_, e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// The header line shmif_dumpbus prints first.
pub fn header_line(h: &BusHeaderRepr) -> String {
    format!(
        "bus version {}, lock: {}, generation: {}, firstoff: 0x{:04x}, lastoff: 0x{:04x}",
        h.version, h.lock, h.generation, h.first, h.last
    )
}

/// A text line built without the formatting machinery (a full bus of
/// small frames is mostly lines).
struct LineBuf {
    b: [u8; 128],
    n: usize,
}

impl Default for LineBuf {
    fn default() -> LineBuf {
        LineBuf { b: [0; 128], n: 0 }
    }
}

impl LineBuf {
    fn push(&mut self, s: &[u8]) {
        self.b[self.n..self.n + s.len()].copy_from_slice(s);
        self.n += s.len();
    }

    /// `%0*d` of C (and Rust's `{:0w$}`): the sign counts in the width.
    fn dec(&mut self, v: i32, width: usize) {
        let mut digits = [b'0'; 10];
        let mut m = v.unsigned_abs();
        let mut k = 10;
        loop {
            k -= 1;
            digits[k] = b'0' + (m % 10) as u8;
            m /= 10;
            if m == 0 {
                break;
            }
        }
        let len = 10 - k;
        if v < 0 {
            self.push(b"-");
        }
        let pad = width.saturating_sub(len + usize::from(v < 0)).min(10);
        self.push(&[b'0'; 10][..pad]);
        self.push(&digits[k..]);
    }

    /// `%0*x`.
    fn hex(&mut self, v: u32, width: usize) {
        let len = (8 - v.leading_zeros() as usize / 4).max(1);
        let mut digits = [b'0'; 8];
        for (i, d) in digits[8 - len..].iter_mut().rev().enumerate() {
            *d = b"0123456789abcdef"[(v >> (4 * i) & 15) as usize];
        }
        let pad = width.saturating_sub(len).min(8);
        self.push(&[b'0'; 8][..pad]);
        self.push(&digits[8 - len..]);
    }

    fn as_bytes(&self) -> &[u8] {
        &self.b[..self.n]
    }
}

/// `packet %d, offset 0x%04x, length 0x%04x, ts %d/%06d\n`.
fn frame_line(l: &mut LineBuf, n: i32, off: u32, len: u32, sec: i32, usec: i32) {
    l.push(b"packet ");
    l.dec(n, 0);
    l.push(b", offset 0x");
    l.hex(off, 4);
    l.push(b", length 0x");
    l.hex(len, 4);
    l.push(b", ts ");
    l.dec(sec, 0);
    l.push(b"/");
    l.dec(usec, 6);
    l.push(b"\n");
}

/// Check a bus image: its header (byte order detected from the magic) and
/// the frame format of its version.
pub fn parse_image(path: &str, img: &[u8]) -> Result<(BusHeaderRepr, Format), DumpError> {
    parse_header(path, img, img.len() as u64)
}

/// [`parse_image`] from the start of a bus file (`b`, at least its header)
/// and its length.
pub fn parse_header(
    path: &str,
    b: &[u8],
    file_len: u64,
) -> Result<(BusHeaderRepr, Format), DumpError> {
    let Some(hb) = b.get(..HEADER_LEN) else {
        return Err(DumpError::Truncated(path.into(), file_len));
    };
    let hb: &[u8; HEADER_LEN] = hb.try_into().unwrap();
    let native = BusHeaderRepr::parse(hb, false);
    let swap = native.magic != MAGIC && native.magic.swap_bytes() == MAGIC;
    if native.magic != MAGIC && !swap {
        return Err(DumpError::BadMagic(path.into(), native.magic));
    }
    let h = BusHeaderRepr::parse(hb, swap);
    if h.version != 2 && h.version != 3 {
        return Err(DumpError::Version(h.version));
    }
    let fmt = Format {
        hdr_len: frame_header_len(h.version),
        swap,
    };
    // A ring must hold at least a header and the longest frame twice over
    // (NetBSD's reads are bounded by half a ring).
    let ring = file_len - HEADER_LEN as u64;
    if ring < 2 * (u64::from(fmt.hdr_len) + 1514) || ring > u64::from(u32::MAX) {
        return Err(DumpError::Truncated(path.into(), file_len));
    }
    Ok((h, fmt))
}

/// Where a dump goes: text lines and optionally a capture.
pub struct Dumper<'a> {
    text: Box<dyn Write + 'a>,
    text_name: String,
    pcap: Option<(PcapWriter<Box<dyn Write + 'a>>, String)>,
    /// Frames printed so far (the `packet N` counter).
    pub printed: u64,
    /// Stop after this many frames.
    pub limit: Option<u64>,
}

impl<'a> Dumper<'a> {
    /// `text` gets the lines; `pcap` (output, its name for messages, nano
    /// stamps) the capture, whose header is written now.
    pub fn new(
        text: Box<dyn Write + 'a>,
        text_name: &str,
        pcap: Option<(Box<dyn Write + 'a>, &str, bool)>,
    ) -> Result<Dumper<'a>, DumpError> {
        let pcap = match pcap {
            None => None,
            Some((w, name, nano)) => Some((
                PcapWriter::new(w, nano, SNAPLEN).map_err(|e| DumpError::Write(name.into(), e))?,
                name.to_string(),
            )),
        };
        Ok(Dumper {
            text,
            text_name: text_name.into(),
            pcap,
            printed: 0,
            limit: None,
        })
    }

    pub fn done(&self) -> bool {
        self.limit.is_some_and(|l| self.printed >= l)
    }

    fn text_err(&self, e: io::Error) -> DumpError {
        DumpError::Write(self.text_name.clone(), e)
    }

    pub fn line(&mut self, s: &str) -> Result<(), DumpError> {
        writeln!(self.text, "{s}").map_err(|e| self.text_err(e))
    }

    /// One frame: its line and its capture record (payload in pieces).
    pub fn frame(
        &mut self,
        off: u32,
        len: u32,
        sec: u32,
        usec: u32,
        parts: &[&[u8]],
    ) -> Result<(), DumpError> {
        let mut line = LineBuf::default();
        frame_line(
            &mut line,
            self.printed as i32,
            off,
            len,
            sec as i32,
            usec as i32,
        );
        self.text
            .write_all(line.as_bytes())
            .map_err(|e| self.text_err(e))?;
        if let Some((p, name)) = &mut self.pcap {
            p.record(sec, usec, parts)
                .map_err(|e| DumpError::Write(name.clone(), e))?;
        }
        self.printed += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), DumpError> {
        self.text
            .flush()
            .map_err(|e| DumpError::Write(self.text_name.clone(), e))?;
        if let Some((p, name)) = &mut self.pcap {
            p.flush().map_err(|e| DumpError::Write(name.clone(), e))?;
        }
        Ok(())
    }
}

/// shmif_dumpbus on an image of a whole bus file: the header line, and
/// unless `header_only` every frame from `first` to `last`.
pub fn dump_image(
    path: &str,
    img: &[u8],
    header_only: bool,
    out: &mut Dumper,
) -> Result<(), DumpError> {
    let (h, fmt) = parse_image(path, img)?;
    out.line(&header_line(&h))?;
    if header_only {
        return Ok(());
    }
    walk(path, &img[HEADER_LEN..], &h, fmt, out)
}

/// The walk: from `first` (0 while the ring never wrapped) while the
/// position is at most `last`, or the ring has not been wrapped yet when
/// `last` is behind `first`. Bounded: it ends after the frame at `last`
/// and never covers more than two rings, whatever the image holds.
fn walk(
    path: &str,
    ring: &[u8],
    h: &BusHeaderRepr,
    fmt: Format,
    out: &mut Dumper,
) -> Result<(), DumpError> {
    let size = ring.size();
    let corrupt = |why: String| DumpError::Corrupt(path.into(), why);
    if h.first > size || h.last >= size {
        return Err(corrupt(format!(
            "firstoff 0x{:04x} or lastoff 0x{:04x} outside the ring of 0x{size:04x} bytes",
            h.first, h.last
        )));
    }
    let mut pos = if h.first == size { 0 } else { h.first };
    let mut bonus = h.last < h.first;
    let mut walked = 0u64;
    while (pos <= h.last || bonus) && !out.done() {
        let at = pos;
        let (fh, data, w1) = read_header(ring, fmt, pos);
        if w1 {
            bonus = false;
        }
        if u64::from(fh.len) + u64::from(fmt.hdr_len) >= u64::from(size / 2) {
            return Err(corrupt(format!(
                "frame at 0x{at:04x} has length 0x{:04x}",
                fh.len
            )));
        }
        walked += u64::from(fmt.hdr_len) + u64::from(fh.len);
        if walked > 2 * u64::from(size) {
            return Err(corrupt("the frames do not lead to lastoff".into()));
        }
        let (next, w2) = ring_skip(size, data, fh.len);
        if w2 {
            bonus = false;
        }
        pos = next;
        if fh.len != 0 {
            let end = (data as usize + fh.len as usize).min(ring.len());
            let first = &ring[data as usize..end];
            let rest = &ring[..fh.len as usize - first.len()];
            out.frame(data, fh.len, fh.sec, fh.usec, &[first, rest])?;
        }
        if at == h.last {
            break;
        }
    }
    Ok(())
}

/// Read a bus file whole (no mapping: a file truncated meanwhile cannot
/// fault us) and dump it.
pub fn dump_file(path: &Path, header_only: bool, out: &mut Dumper) -> Result<(), DumpError> {
    let name = path.display().to_string();
    let err = |e| DumpError::Open(name.clone(), e);
    if header_only {
        // The header is all it takes.
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(err)?;
        let len = f.metadata().map_err(err)?.len();
        let mut hb = Vec::with_capacity(HEADER_LEN);
        f.take(HEADER_LEN as u64)
            .read_to_end(&mut hb)
            .map_err(err)?;
        let (h, _) = parse_header(&name, &hb, len)?;
        return out.line(&header_line(&h));
    }
    let img = std::fs::read(path).map_err(err)?;
    dump_image(&name, &img, header_only, out)
}

/// What following a bus cost in frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FollowStats {
    pub laps: u64,
    pub lost_bytes: u64,
}

/// `shmifdump -f`: dump what is on the bus, then every frame written after
/// it as it arrives, reading like a shmif interface (under the lock,
/// woken by inotify), until `stop` is set or the output goes away. Each lap
/// is reported through `on_lap` when it happens.
pub fn follow(
    path: &Path,
    out: &mut Dumper,
    stop: &AtomicBool,
    mut on_lap: impl FnMut(&BusReader),
) -> Result<FollowStats, DumpError> {
    let name = path.display().to_string();
    let bus = match Bus::open_existing(path) {
        Ok(b) => b,
        Err(e) if e == crate::ioctl::Errno::ENOEXEC => {
            // Say exactly what is wrong, as the plain dump would.
            let img = std::fs::read(path).map_err(|e| DumpError::Open(name.clone(), e))?;
            parse_image(&name, &img)?;
            return Err(DumpError::Corrupt(name, "not a native-order bus".into()));
        }
        Err(e) => return Err(DumpError::Open(name, io::Error::from_raw_os_error(e.0))),
    };
    let watch = Watch::new(&bus).map_err(|e| DumpError::Open(name.clone(), e))?;
    let mut img = Vec::with_capacity(BUS_SIZE);
    let mut reader = bus.snapshot_reader(&mut img);
    let truncated = |bus: &Bus| {
        DumpError::Truncated(name.clone(), bus.file().metadata().map_or(0, |m| m.len()))
    };
    if bus.truncated() {
        return Err(truncated(&bus));
    }
    if img[4..8] == [0; 4] {
        // Nobody has sent yet (only the wakeup write sets the version).
        let (h, _) = parse_image(&name, &img).or_else(|_| {
            let hb: &[u8; HEADER_LEN] = img[..HEADER_LEN].try_into().unwrap();
            Ok::<_, DumpError>((BusHeaderRepr::parse(hb, false), Format::V3))
        })?;
        out.line(&header_line(&h))?;
    } else {
        dump_image(&name, &img, false, out)?;
    }
    out.flush()?;
    let mut batch = Batch::new(32);
    let mut laps = reader.laps;
    // Stopped (SIGINT), it drains what was on the bus at that moment: at
    // most a ring's worth more, then the first empty read ends it.
    let mut drain: Option<u64> = None;
    while !out.done() && drain.is_none_or(|left| left > 0) {
        if drain.is_none() && stop.load(Ordering::Relaxed) {
            drain = Some(BUS_SIZE as u64);
        }
        let r = reader.recv_batch(&bus, &mut batch, |_| true);
        // Found short, or cut short under the read (which then got zeros).
        if r == Recv::Lost || !bus.intact() {
            return Err(truncated(&bus));
        }
        if reader.laps != laps {
            laps = reader.laps;
            on_lap(&reader);
        }
        for f in &batch.frames {
            if out.done() {
                break;
            }
            let h = f.hdr;
            out.frame(f.off, h.len, h.sec, h.usec, &[batch.frame(f)])?;
            if let Some(left) = &mut drain {
                *left =
                    left.saturating_sub(u64::from(h.len) + u64::from(frame_header_len(VERSION)));
            }
        }
        if matches!(r, Recv::Empty | Recv::Corrupt | Recv::Garbage) {
            if drain.is_some() {
                break;
            }
            out.flush()?;
            watch.wait(Duration::from_millis(100));
        }
    }
    out.flush()?;
    Ok(FollowStats {
        laps: reader.laps,
        lost_bytes: reader.lost_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lines_as_printf() {
        let cases = [
            (0, 0x5fc8, 0x62, 124, 280004),
            (149, 0, 0, 0, 0),
            (i32::MAX, u32::MAX, 0x12345, i32::MIN, -5),
            (-1, 0xabc, 0xfffff, -7, 1_000_000),
        ];
        for (n, off, len, sec, usec) in cases {
            let mut l = LineBuf::default();
            frame_line(&mut l, n, off, len, sec, usec);
            let want =
                format!("packet {n}, offset 0x{off:04x}, length 0x{len:04x}, ts {sec}/{usec:06}\n");
            assert_eq!(std::str::from_utf8(l.as_bytes()).unwrap(), want);
        }
    }

    #[test]
    fn magic_words() {
        assert_eq!(alt_hex(0), "0");
        assert_eq!(alt_hex(MAGIC), "0xca11d054");
        let e = DumpError::BadMagic("b".into(), 0);
        assert_eq!(
            e.to_string(),
            "b not a shmif bus: bad magic 0 != 0xca11d054"
        );
        assert_eq!(
            DumpError::Version(0).to_string(),
            "Unhandled bus version 0, program 3"
        );
    }

    use crate::drivers::shmif::bus::{DATASIZE, field};
    use proptest::prelude::*;

    /// The image of a live bus that carried 300 frames of many lengths.
    fn live_image() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::attach(&dir.path().join("bus")).unwrap();
        for seq in 0..300u32 {
            let mut f = vec![0u8; 60 + (seq as usize * 37) % 1400];
            f[14..18].copy_from_slice(&seq.to_le_bytes());
            bus.send(&f, 1).unwrap();
        }
        let mut img = Vec::new();
        bus.snapshot_reader(&mut img);
        img
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// That image with its generation, first and last words and its
        /// ring scribbled on: the dump walk never panics.
        #[test]
        fn scribbled_image(words in proptest::collection::vec((0usize..4, any::<u32>()), 0..4),
                           pokes in proptest::collection::vec((0u32..DATASIZE, any::<u32>()), 0..64)) {
            let mut img = live_image();
            let header = [field::GEN, field::GEN + 4, field::FIRST, field::LAST];
            let at = words.iter().map(|&(w, v)| (header[w], v));
            let ring = pokes.iter().map(|&(off, v)| (HEADER_LEN + off.min(DATASIZE - 4) as usize, v));
            for (off, v) in at.chain(ring) {
                img[off..off + 4].copy_from_slice(&v.to_ne_bytes());
            }
            let mut out = Dumper::new(Box::new(std::io::sink()), "sink", None).unwrap();
            let _ = dump_image("bus", &img, false, &mut out);
        }

        /// Random bus images with a valid magic and version: the dump walk
        /// ends with output or an error, never a panic or a hang.
        #[test]
        fn random_images(version in 2u32..=3, swap in any::<bool>(), first in any::<u32>(),
                         last in any::<u32>(), ring_len in 3100usize..40_000,
                         seed in any::<u64>(), small in any::<bool>()) {
            let mut img = vec![0u8; HEADER_LEN + ring_len];
            let mut x = seed | 1;
            for b in img.iter_mut() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                // Mostly small numbers so that lengths are plausible.
                *b = if small && x % 4 != 0 { 0 } else { x as u8 };
            }
            let put = |img: &mut Vec<u8>, off: usize, v: u32| {
                let v = if swap { v.swap_bytes() } else { v };
                img[off..off + 4].copy_from_slice(&v.to_ne_bytes());
            };
            let ring = ring_len as u32;
            put(&mut img, 0, MAGIC);
            put(&mut img, 4, version);
            put(&mut img, 16, if small { first % (ring + 1) } else { first });
            put(&mut img, 20, if small { last % ring } else { last });
            let mut out = Dumper::new(Box::new(std::io::sink()), "sink", None).unwrap();
            let _ = dump_image("bus", &img, false, &mut out);
            prop_assert!(out.printed < ring_len as u64);
        }
    }
}
