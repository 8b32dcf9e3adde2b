//! The shmif bus: NetBSD's shared-memory Ethernet segment, one format for
//! the driver and for `shmifdump`.
//!
//! A bus is a file: a 32-byte header followed by a ring of frames, each a
//! frame header and an Ethernet frame, split at byte granularity across the
//! end of the ring. Every integer is in host byte order. Peers serialise on
//! a spin lock in the header and wake each other with a real write to the
//! file (`inotify` does not see stores into a mapping); ifnet peers also
//! through a futex word in a sidecar file ([`WakeWord`]).
//!
//! - [`BusHeaderRepr`] and [`FrameHeaderRepr`]: what the header bytes mean.
//! - [`Ring`]: ring memory, either a snapshot (`&[u8]`) or the live mapping.
//! - [`ring_read`], [`next_pkt_off`]…: the ring arithmetic, exactly as
//!   NetBSD does it so that we agree on every offset.
//! - [`Bus`]: a mapped bus file: lock, send, wakeup.
//! - [`BusReader`]: one receiver's position, with generation check and lap
//!   recovery.
//! - [`Watch`]: waiting for a peer's wakeup.
//! - [`WakeWord`]: the ifnet peers' futex word, next to the bus.
//!
//! Nothing here trusts the file: every offset and length read from it is
//! bounded before use, so a corrupt bus yields errors, never an
//! out-of-bounds access or an endless loop. A file cut short under the
//! mapping reads as zeros from then on (see [`super::fault`]); every
//! locked operation ends by checking for that, and reports the bus lost
//! ([`Recv::Lost`], EIO from a send).

use super::fault::Registration;
use crate::ioctl::Errno;
use memmap2::{MmapOptions, MmapRaw};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// `shm_magic`.
pub const MAGIC: u32 = 0xca11_d054;
/// The bus version we write (and the only one `shmifdump` calls "program").
pub const VERSION: u32 = 3;
/// Size of a bus file we create or attach to.
pub const BUS_SIZE: usize = 1 << 20;
/// Size of the bus header.
pub const HEADER_LEN: usize = 32;
/// Ring size of a standard bus (`BUSMEM_DATASIZE`).
pub const DATASIZE: u32 = (BUS_SIZE - HEADER_LEN) as u32;
/// Shortest frame a reader accepts (an Ethernet header).
pub const MIN_FRAME: usize = 14;
/// Longest frame on the bus: MTU 1500 plus the Ethernet header, no FCS.
pub const MAX_FRAME: usize = 1514;

/// Byte offsets of the header fields.
pub mod field {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const GEN: usize = 8;
    pub const FIRST: usize = 16;
    pub const LAST: usize = 20;
    pub const LOCK: usize = 24;
    /// NetBSD's spare word, which it never reads nor writes: the token of
    /// the ifnet peer that holds the lock (0: none, or a NetBSD peer).
    pub const OWNER: usize = 28;
}

/// How long a lock may be held without any progress of `gen`/`last` before
/// it is taken to belong to a dead peer and stolen. A frame copy takes
/// microseconds; a second is far beyond any live holder.
pub const STALE_LOCK: Duration = Duration::from_secs(1);

/// How long a control-plane caller waits for the bus lock before it
/// gives up with EBUSY: twice [`STALE_LOCK`], time to steal a dead peer's.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Failed lock attempts between naps, as NetBSD counts them.
const LOCK_SPINS: u32 = 1001;

/// How long a data-plane thread tries for the bus lock before it gives up
/// (drops the frame, or reads later): a live holder copies a frame in far
/// less, and a thread serving other interfaces must not wait for a dead one.
pub const LOCK_BRIEFLY: Duration = Duration::from_micros(5);

/// What [`Bus::check_stale`] saw of a held lock: `gen`, `last`, the lock
/// word, and since when they stand still.
#[derive(Clone, Copy, Debug, Default)]
pub struct StaleWatch {
    seen: Option<((u64, u32, u32, u32), Instant)>,
}

fn u32_at(b: &[u8], off: usize, swap: bool) -> u32 {
    let v = u32::from_ne_bytes(b[off..off + 4].try_into().unwrap());
    if swap { v.swap_bytes() } else { v }
}

fn u64_at(b: &[u8], off: usize, swap: bool) -> u64 {
    let v = u64::from_ne_bytes(b[off..off + 8].try_into().unwrap());
    if swap { v.swap_bytes() } else { v }
}

/// The bus header, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusHeaderRepr {
    pub magic: u32,
    pub version: u32,
    pub generation: u64,
    pub first: u32,
    pub last: u32,
    pub lock: u32,
}

impl BusHeaderRepr {
    /// Decode the first 32 bytes of a bus image; `swap` for a bus written
    /// on a host of the other byte order.
    pub fn parse(b: &[u8; HEADER_LEN], swap: bool) -> BusHeaderRepr {
        BusHeaderRepr {
            magic: u32_at(b, field::MAGIC, swap),
            version: u32_at(b, field::VERSION, swap),
            generation: u64_at(b, field::GEN, swap),
            first: u32_at(b, field::FIRST, swap),
            last: u32_at(b, field::LAST, swap),
            lock: u32_at(b, field::LOCK, swap),
        }
    }
}

/// Size of a frame header of bus version `version`.
pub fn frame_header_len(version: u32) -> u32 {
    if version == 2 { 12 } else { 24 }
}

/// The frame header (`struct shmif_pkthdr`), decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameHeaderRepr {
    pub len: u32,
    pub sec: u32,
    pub usec: u32,
    /// Sender id; 0 on version 2 buses, which have none.
    pub sender: u64,
}

impl FrameHeaderRepr {
    /// Decode a header of `fmt`'s size from `b`.
    pub fn parse(b: &[u8], fmt: Format) -> FrameHeaderRepr {
        FrameHeaderRepr {
            len: u32_at(b, 0, fmt.swap),
            sec: u32_at(b, 4, fmt.swap),
            usec: u32_at(b, 8, fmt.swap),
            sender: if fmt.hdr_len >= 24 {
                u64_at(b, 16, fmt.swap)
            } else {
                0
            },
        }
    }

    /// Encode as a version 3 header (native byte order, zero padding).
    pub fn emit(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&self.len.to_ne_bytes());
        b[4..8].copy_from_slice(&self.sec.to_ne_bytes());
        b[8..12].copy_from_slice(&self.usec.to_ne_bytes());
        b[16..24].copy_from_slice(&self.sender.to_ne_bytes());
        b
    }
}

/// How to read frame headers on a bus: their size and byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub hdr_len: u32,
    pub swap: bool,
}

impl Format {
    /// Version 3, native order: what we write.
    pub const V3: Format = Format {
        hdr_len: 24,
        swap: false,
    };
}

/// Ring memory. Offsets and lengths passed in are already within the ring;
/// implementations still refuse (zero-fill) anything outside it.
pub trait Ring {
    /// The ring size (`DATASIZE` of this bus).
    fn size(&self) -> u32;
    /// Copy `dst.len()` bytes from ring offset `off`, no wrapping.
    fn copy_out(&self, off: u32, dst: &mut [u8]);
}

impl Ring for [u8] {
    fn size(&self) -> u32 {
        self.len().min(u32::MAX as usize) as u32
    }

    fn copy_out(&self, off: u32, dst: &mut [u8]) {
        match self.get(off as usize..off as usize + dst.len()) {
            Some(src) => dst.copy_from_slice(src),
            None => dst.fill(0),
        }
    }
}

/// `advance`: `off + n` around the ring. Exact for every offset a sane bus
/// holds; the modulo keeps wild values from a corrupt bus inside the ring.
pub fn advance(size: u32, off: u32, n: u64) -> u32 {
    ((u64::from(off) + n) % u64::from(size.max(1))) as u32
}

/// How a transfer of `n` bytes at `off` falls on the ring: the bytes before
/// the end, the remainder from offset 0, the offset after it, and whether it
/// reached the end of the ring (a *wrap*).
fn span(size: u32, off: u32, n: u32) -> (u32, u32, u32, bool) {
    let off = off.min(size);
    let n = n.min(size);
    let chunk = n.min(size - off);
    let rest = n - chunk;
    let wrap = off + chunk == size;
    let next = if rest > 0 {
        rest
    } else {
        (off + chunk) % size.max(1)
    };
    (chunk, rest, next, wrap)
}

/// Read `dst.len()` bytes at ring offset `off` (`shmif_busread`): returns
/// the offset after them and whether the read reached the end of the ring.
pub fn ring_read<R: Ring + ?Sized>(ring: &R, off: u32, dst: &mut [u8]) -> (u32, bool) {
    let size = ring.size();
    let n = dst.len().min(size as usize) as u32;
    let (chunk, rest, next, wrap) = span(size, off, n);
    let off = off.min(size);
    ring.copy_out(off, &mut dst[..chunk as usize]);
    if rest > 0 {
        ring.copy_out(0, &mut dst[chunk as usize..(chunk + rest) as usize]);
    }
    (next, wrap)
}

/// Step over `n` bytes at `off` as [`ring_read`] would, without copying.
pub fn ring_skip(size: u32, off: u32, n: u32) -> (u32, bool) {
    let (_, _, next, wrap) = span(size, off, n);
    (next, wrap)
}

/// Read the frame header at `off`.
pub fn read_header<R: Ring + ?Sized>(
    ring: &R,
    fmt: Format,
    off: u32,
) -> (FrameHeaderRepr, u32, bool) {
    let mut b = [0u8; 24];
    let (next, wrap) = ring_read(ring, off, &mut b[..fmt.hdr_len as usize]);
    (FrameHeaderRepr::parse(&b, fmt), next, wrap)
}

/// `nextpktoff`: the offset of the frame header after the one at `off`.
pub fn next_pkt_off<R: Ring + ?Sized>(ring: &R, fmt: Format, off: u32) -> u32 {
    let (h, _, _) = read_header(ring, fmt, off);
    advance(ring.size(), off, u64::from(fmt.hdr_len) + u64::from(h.len))
}

/// A bus file mapped shared: the live bus.
pub struct Bus {
    path: PathBuf,
    file: File,
    // Declared before `map`: unregistered before it is unmapped.
    reg: Registration,
    map: MmapRaw,
    size: u32,
    /// The file had no name left at the last `intact` check.
    unlinked: AtomicBool,
    /// The ifnet peers' wakeup word, if the sidecar could be had.
    wake: Option<Arc<WakeWord>>,
}

/// What ends the name of a bus's sidecar file (see [`WakeWord`]).
pub const WAKE_SUFFIX: &str = ".ifnet-wake";
/// `magic` of a sidecar.
pub const WAKE_MAGIC: u32 = 0x1f4e_7a4b;
/// Size of a sidecar file.
pub const WAKE_LEN: usize = 64;

/// Byte offsets in the sidecar.
pub mod wake_field {
    pub const MAGIC: usize = 0;
    /// Bumped by every ifnet writer's wakeup: the futex word.
    pub const SEQ: usize = 4;
    /// Readers that went to sleep on `SEQ` since the last wake: a writer
    /// makes the wake system call only when it is not 0, and sets it to 0.
    pub const WAITERS: usize = 8;
}

/// The fast wakeup between ifnet peers: a futex word in a small file next
/// to the bus (`<bus>.ifnet-wake`), mapped shared by every ifnet peer of
/// the bus. NetBSD peers never see it, and the bus file stays exactly
/// theirs: its 32-byte header has no free word left (offset 28, the spare,
/// holds our lock owner).
///
/// Why a sidecar and both wakeups: a rump kernel on the bus is woken only
/// by a write to the bus file (inotify), and we cannot know whether one
/// is attached, so every wakeup still writes the file. The futex word is
/// an early, cheaper wakeup on top, never the only one: a writer bumps
/// `seq` and, only if a reader counted itself in `waiters` since the last
/// wake, takes the count to 0 and wakes the futex (one system call, no
/// file write, no inotify event to read), before it writes the file. So a
/// busy writer makes one wake system call per sleep of a reader, not one
/// per frame. A reader that naps on the futex (a reactor thread
/// does, briefly, after work: see [`crate::reactor`]) looks at its
/// inotify descriptor when the nap ends, so a NetBSD peer's wakeup waits
/// for that at most; asleep for longer, it waits on inotify alone, which
/// every writer's file write reaches. So a lost or spurious futex wakeup
/// costs latency, never a frame.
///
/// A reader never takes itself out of the count: one that stopped
/// waiting (a timeout) or died while counted costs the next writer one
/// wake system call that wakes nobody, and is gone from the count then.
/// A sidecar left over from an older bus at the same path wakes its peers
/// spuriously, no worse.
pub struct WakeWord {
    // (No descriptor kept: the mapping holds the file.)
    // Declared before `map`: unregistered before it is unmapped.
    _reg: Registration,
    map: MmapRaw,
}

impl WakeWord {
    /// Open (create) the sidecar of the bus at `bus`. None when it cannot
    /// be had (a read-only directory, a file there that is not ours): the
    /// peers still wake each other through the bus file.
    /// `create`: make it if absent (an attaching peer does; a follower
    /// such as `shmifdump -f` only uses one that is there).
    fn open(bus: &Path, bus_file: &File, create: bool) -> Option<WakeWord> {
        use std::os::fd::AsRawFd;
        // Next to the file itself, whatever name (a symlink) led to it,
        // so that every peer finds the same sidecar.
        let real = std::fs::read_link(format!("/proc/self/fd/{}", bus_file.as_raw_fd()))
            .ok()
            .filter(|p| p.is_absolute());
        let mut name = real.as_deref().unwrap_or(bus).as_os_str().to_owned();
        name.push(WAKE_SUFFIX);
        let file = if create {
            open_bus_file(Path::new(&name)).ok()?
        } else {
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&name)
                .ok()?
        };
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        if meta.len() != WAKE_LEN as u64 {
            if meta.len() != 0 {
                return None;
            }
            file.set_len(WAKE_LEN as u64).ok()?;
        }
        let map = MmapOptions::new().len(WAKE_LEN).map_raw(&file).ok()?;
        drop(file);
        let w = WakeWord {
            _reg: Registration::new(map.as_ptr(), WAKE_LEN),
            map,
        };
        match w.word(wake_field::MAGIC).compare_exchange(
            0,
            WAKE_MAGIC,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => Some(w),
            Err(WAKE_MAGIC) => Some(w),
            Err(_) => None,
        }
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: 4-aligned offsets below WAKE_LEN in a page-aligned
        // mapping that lives as long as self.
        unsafe { &*(self.map.as_mut_ptr().add(off) as *const AtomicU32) }
    }

    /// The futex word.
    pub fn seq(&self) -> &AtomicU32 {
        self.word(wake_field::SEQ)
    }

    /// The count of readers asleep on it.
    pub fn waiters(&self) -> &AtomicU32 {
        self.word(wake_field::WAITERS)
    }

    /// Tell the ifnet peers: bump `seq`, and wake whoever sleeps on it
    /// (the system call only when someone counted itself since the last).
    pub fn wake(&self) {
        self.seq().fetch_add(1, Ordering::SeqCst);
        // A reader counts itself, then looks at `seq`: it either sees our
        // bump, or we see its count (both sequentially consistent).
        if self.waiters().load(Ordering::SeqCst) != 0
            && self.waiters().swap(0, Ordering::SeqCst) != 0
        {
            futex_wake(self.seq(), i32::MAX);
        }
    }

    /// Count ourselves as about to sleep on `seq` (see [`WakeWord::wake`]);
    /// then read `seq`, and sleep only if it is still what was seen.
    pub fn count_waiter(&self) {
        self.waiters().fetch_add(1, Ordering::SeqCst);
    }

    /// Sleep until `seq` moves from `seen` or `timeout` passes. For a
    /// reader that waits on the bus alone.
    pub fn wait(&self, seen: u32, timeout: Duration) {
        self.count_waiter();
        if self.seq().load(Ordering::SeqCst) == seen {
            futex_wait(self.seq(), seen, Some(timeout));
        }
    }
}

/// FUTEX_WAKE on a word of a shared mapping (no FUTEX_PRIVATE_FLAG: the
/// sleepers are other processes). Returns how many were woken.
pub fn futex_wake(word: &AtomicU32, n: i32) -> i32 {
    // SAFETY: a valid, aligned word; the kernel only reads its address.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
        )
    };
    r.max(0) as i32
}

/// FUTEX_WAIT on a word of a shared mapping while it holds `val`, at most
/// `timeout` (None: for ever). Returns on a wake, a change, a signal or
/// the timeout alike: callers look again.
pub fn futex_wait(word: &AtomicU32, val: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let tp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: a valid, aligned word and a timespec that outlives the call.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, val, tp);
    }
}

/// The live ring of a mapped bus. Other processes write it concurrently,
/// so it is only ever copied from and to, never borrowed as a slice.
struct SharedRing<'a>(&'a Bus);

impl Ring for SharedRing<'_> {
    fn size(&self) -> u32 {
        self.0.size
    }

    fn copy_out(&self, off: u32, dst: &mut [u8]) {
        if off as usize + dst.len() > self.0.size as usize {
            dst.fill(0);
            return;
        }
        // SAFETY: bounds checked above; the mapping lives as long as the Bus.
        unsafe {
            let src = self.0.map.as_mut_ptr().add(HEADER_LEN + off as usize);
            std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len());
        }
    }
}

impl SharedRing<'_> {
    fn copy_in(&self, off: u32, src: &[u8]) {
        if off as usize + src.len() > self.0.size as usize {
            return;
        }
        // SAFETY: as in copy_out.
        unsafe {
            let dst = self.0.map.as_mut_ptr().add(HEADER_LEN + off as usize);
            std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len());
        }
    }
}

/// Proof that this process took the bus lock; released on drop, unless
/// it was stolen meanwhile (see [`Bus::lock`]).
pub struct BusGuard<'a> {
    bus: &'a Bus,
    token: u32,
}

impl BusGuard<'_> {
    /// Whether the lock is still ours: a holder stopped for longer than
    /// [`STALE_LOCK`] (a debugger, Ctrl-Z, a paused VM) has lost it.
    pub fn held(&self) -> bool {
        self.bus.word(field::OWNER).load(Ordering::Acquire) == self.token
    }
}

impl Drop for BusGuard<'_> {
    fn drop(&mut self) {
        // Release only a lock we still hold: a thief's stays its own.
        let owner = self.bus.word(field::OWNER);
        if owner
            .compare_exchange(self.token, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.bus.word(field::LOCK).store(0, Ordering::Release);
        }
    }
}

/// A token for one hold of a bus lock: unique within the process, and
/// unlikely (2^-32) to equal another process's.
fn lock_token() -> u32 {
    static SEED: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = *SEED.get_or_init(|| random_u64() as u32);
    loop {
        let t = seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed));
        if t != 0 {
            return t;
        }
    }
}

/// Open (creating, 0644) a bus file the way a client's path should be
/// read: magic links such as /proc/self/cwd or /proc/self/fd/N would
/// resolve against the daemon, not the client, so they are refused.
fn open_bus_file(path: &Path) -> Result<File, Errno> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    use nix::sys::stat::Mode;
    let how = OpenHow::new()
        .flags(OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_CLOEXEC)
        .mode(Mode::from_bits_truncate(0o644))
        .resolve(ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match nix::fcntl::openat2(nix::fcntl::AT_FDCWD, path, how) {
        Ok(fd) => Ok(File::from(fd)),
        // Before Linux 5.6: no openat2, so no magic links through /proc.
        Err(nix::errno::Errno::ENOSYS) if path.starts_with("/proc") => Err(Errno::ELOOP),
        Err(nix::errno::Errno::ENOSYS) => Ok(OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)?),
        Err(e) => Err(Errno(e as i32)),
    }
}

/// Why a bus file cannot be attached.
fn not_a_bus() -> Errno {
    Errno::ENOEXEC
}

impl Bus {
    /// Attach to the bus file at `path` as shmif(4) does: create it if
    /// absent, size it to 1 MiB and initialise a fresh one. Unlike NetBSD, a
    /// non-empty file that is not a bus is refused with ENOEXEC before
    /// anything is written to it.
    pub fn attach(path: &Path) -> Result<Bus, Errno> {
        let file = open_bus_file(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(not_a_bus());
        }
        let len = meta.len();
        if len != 0 {
            // A bus has our magic; a 1 MiB file of zeros at the start is a
            // bus another peer just created and has not initialised yet;
            // 8 bytes of only a wakeup write are a bus truncated to nothing
            // just before a peer's wakeup.
            let mut m = [0u8; 8];
            let n = file.read_at(&mut m, 0)?;
            let magic = u32::from_ne_bytes([m[0], m[1], m[2], m[3]]);
            let woken = len == 8 && m[4..] == VERSION.to_ne_bytes();
            let fresh = n >= 4 && magic == 0 && (len == BUS_SIZE as u64 || woken);
            if n < 4 || (magic != MAGIC && !fresh) {
                return Err(not_a_bus());
            }
        }
        if len != BUS_SIZE as u64 {
            file.set_len(BUS_SIZE as u64)?;
        }
        // Give the file its blocks now: on a full file system (a tmpfs)
        // attaching fails with ENOSPC, where a sparse file would fault
        // under the mapping later, looking like a truncated bus.
        match nix::fcntl::fallocate(
            &file,
            nix::fcntl::FallocateFlags::empty(),
            0,
            BUS_SIZE as i64,
        ) {
            Ok(()) | Err(nix::errno::Errno::EOPNOTSUPP) => {}
            Err(e) => return Err(Errno::from(e)),
        }
        let bus = Bus::map(path, file, BUS_SIZE, true)?;
        {
            // Long enough to steal a dead peer's lock, bounded for a live
            // one that never lets go.
            let _g = bus
                .lock_until(Some(Instant::now() + LOCK_WAIT))
                .ok_or(Errno::EBUSY)?;
            match bus.word(field::MAGIC).load(Ordering::Relaxed) {
                0 => {
                    bus.word(field::MAGIC).store(MAGIC, Ordering::Relaxed);
                    bus.word(field::FIRST).store(bus.size, Ordering::Relaxed);
                }
                MAGIC => {}
                _ => return Err(not_a_bus()),
            }
        }
        Ok(bus)
    }

    /// Open an existing bus of any size to follow it (shmifdump -f): it is
    /// never created, resized or initialised.
    pub fn open_existing(path: &Path) -> Result<Bus, Errno> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        if len > u32::MAX as u64 {
            return Err(Errno::EFBIG);
        }
        if len <= HEADER_LEN as u64 + 2 * (MAX_FRAME as u64 + 24) {
            return Err(not_a_bus());
        }
        let bus = Bus::map(path, file, len as usize, false)?;
        if bus.word(field::MAGIC).load(Ordering::Relaxed) != MAGIC {
            return Err(not_a_bus());
        }
        Ok(bus)
    }

    fn map(path: &Path, file: File, len: usize, create_wake: bool) -> Result<Bus, Errno> {
        let map = MmapOptions::new().len(len).map_raw(&file)?;
        let wake = WakeWord::open(path, &file, create_wake).map(Arc::new);
        Ok(Bus {
            path: path.to_path_buf(),
            file,
            reg: Registration::new(map.as_ptr(), len),
            unlinked: AtomicBool::new(false),
            map,
            size: (len - HEADER_LEN) as u32,
            wake,
        })
    }

    /// The ifnet peers' wakeup word (see [`WakeWord`]), if there is one.
    pub fn wake_word(&self) -> Option<&Arc<WakeWord>> {
        self.wake.as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: header offsets are 4-aligned in a page-aligned mapping
        // that lives as long as self.
        unsafe { &*(self.map.as_mut_ptr().add(off) as *const AtomicU32) }
    }

    fn gen_word(&self) -> &AtomicU64 {
        // SAFETY: offset 8 is 8-aligned.
        unsafe { &*(self.map.as_mut_ptr().add(field::GEN) as *const AtomicU64) }
    }

    fn ring(&self) -> SharedRing<'_> {
        SharedRing(self)
    }

    /// The header as it is now (without the lock: a snapshot that may be
    /// torn; take the lock for a consistent one).
    pub fn header(&self) -> BusHeaderRepr {
        BusHeaderRepr {
            magic: self.word(field::MAGIC).load(Ordering::Relaxed),
            version: self.word(field::VERSION).load(Ordering::Relaxed),
            generation: self.gen_word().load(Ordering::Relaxed),
            first: self.word(field::FIRST).load(Ordering::Relaxed),
            last: self.word(field::LAST).load(Ordering::Relaxed),
            lock: self.word(field::LOCK).load(Ordering::Relaxed),
        }
    }

    /// Whether the file still has the size we mapped. A bus found short
    /// here is marked [`Bus::truncated`] too.
    pub fn intact(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let meta = self.file.metadata();
        if let Ok(m) = &meta {
            self.unlinked.store(m.nlink() == 0, Ordering::Relaxed);
        }
        let ok = !self.truncated()
            && meta.is_ok_and(|m| m.len() >= self.size as u64 + HEADER_LEN as u64);
        if !ok {
            self.reg.set_truncated();
        }
        ok
    }

    /// Whether the bus file's last name was removed, as of the last
    /// `intact` check: the peers attached keep this bus; one that attaches
    /// by the path now makes another.
    pub fn unlinked(&self) -> bool {
        self.unlinked.load(Ordering::Relaxed)
    }

    /// Whether the file was cut short under the mapping: what it reads is
    /// zeros, not the bus, and what is written goes nowhere. For good.
    pub fn truncated(&self) -> bool {
        self.reg.truncated()
    }

    /// EIO when the bus was cut short (the error a read of the file past
    /// its end gives through a mapping).
    fn check(&self) -> Result<(), Errno> {
        if self.truncated() {
            Err(Errno::EIO)
        } else {
            Ok(())
        }
    }

    /// The lock as NetBSD takes it (0→1), then our token in the owner word.
    fn try_lock(&self) -> Option<BusGuard<'_>> {
        self.word(field::LOCK)
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        let token = lock_token();
        self.word(field::OWNER).store(token, Ordering::Relaxed);
        Some(BusGuard { bus: self, token })
    }

    /// Take over a lock seen held, with owner word `owner`, by a peer that
    /// made no progress for [`STALE_LOCK`]. The lock word stays 1 (NetBSD
    /// peers take any other value for a free lock); the owner word moves
    /// from what was seen to our token, so that of several thieves exactly
    /// one wins, and the late holder sees it lost the lock.
    fn steal(&self, owner: u32) -> Option<BusGuard<'_>> {
        let token = lock_token();
        self.word(field::OWNER)
            .compare_exchange(owner, token, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        let g = BusGuard { bus: self, token };
        // The holder let go just now (a NetBSD peer does not clear the
        // owner word): take the free lock the ordinary way, or leave it to
        // whoever did.
        let lock = self.word(field::LOCK);
        if lock.load(Ordering::Acquire) == 0
            && lock
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            std::mem::forget(g);
            let _ = self.word(field::OWNER).compare_exchange(
                token,
                0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            return None;
        }
        Some(g)
    }

    /// What says a holder is alive: `gen`, `last`, the lock and its owner.
    fn progress(&self) -> (u64, u32, u32, u32) {
        (
            self.gen_word().load(Ordering::Relaxed),
            self.word(field::LAST).load(Ordering::Relaxed),
            self.word(field::LOCK).load(Ordering::Relaxed),
            self.word(field::OWNER).load(Ordering::Relaxed),
        )
    }

    /// Take the bus lock: compare-and-swap 0→1, a nap of 1 ms after every
    /// 1001 failures, as NetBSD does. A lock held for [`STALE_LOCK`] while
    /// `gen`, `last` and the owner word did not move belongs to a peer that
    /// died (or is stopped) holding it: it is stolen (see `steal`). A
    /// holder resumed later finds [`BusGuard::held`] false: its writes are
    /// discarded and it does not release the thief's lock.
    pub fn lock(&self) -> BusGuard<'_> {
        loop {
            if let Some(g) = self.lock_until(None) {
                return g;
            }
        }
    }

    /// [`Bus::lock`], giving up at `deadline`: a peer that holds the lock
    /// while it keeps moving `gen` looks alive and is never stolen from,
    /// and must not hold the caller for ever.
    pub fn lock_until(&self, deadline: Option<Instant>) -> Option<BusGuard<'_>> {
        if let Some(g) = self.try_lock() {
            return Some(g);
        }
        let mut tries = 0u32;
        let mut since = Instant::now();
        let mut seen = self.progress();
        loop {
            if let Some(g) = self.try_lock() {
                return Some(g);
            }
            tries += 1;
            if tries < 64 {
                std::hint::spin_loop();
                continue;
            }
            if tries < LOCK_SPINS {
                std::thread::yield_now();
                continue;
            }
            tries = 0;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
            let now = self.progress();
            if now != seen || now.2 == 0 {
                seen = now;
                since = Instant::now();
            } else if since.elapsed() >= STALE_LOCK
                && let Some(g) = self.steal(now.3)
            {
                crate::log::warn(&format!(
                    "shmif: {}: lock held {:?} with no progress, peer presumed dead: stolen",
                    self.path.display(),
                    since.elapsed()
                ));
                self.repair(&g);
                return Some(g);
            }
        }
    }

    /// Take the lock if it comes within [`LOCK_BRIEFLY`]; never steals, never
    /// sleeps: for data-plane threads.
    pub fn try_lock_briefly(&self) -> Option<BusGuard<'_>> {
        let start = Instant::now();
        loop {
            for _ in 0..32 {
                if self.word(field::LOCK).load(Ordering::Relaxed) == 0
                    && let Some(g) = self.try_lock()
                {
                    return Some(g);
                }
                std::hint::spin_loop();
            }
            if start.elapsed() >= LOCK_BRIEFLY {
                return None;
            }
        }
    }

    /// Off the data path (a timer, every so often while the lock is found
    /// held): a lock held for [`STALE_LOCK`] while `gen` and `last` stand
    /// still is a dead peer's, stolen as [`Bus::lock`] does, repaired and
    /// released. Never waits. `true` while someone holds the lock: look
    /// again later.
    pub fn check_stale(&self, w: &mut StaleWatch, now: Instant) -> bool {
        let cur = self.progress();
        if cur.2 == 0 || self.truncated() {
            w.seen = None;
            return false;
        }
        let since = match w.seen {
            Some((seen, since)) if seen == cur => since,
            _ => {
                w.seen = Some((cur, now));
                return true;
            }
        };
        if now.saturating_duration_since(since) < STALE_LOCK {
            return true;
        }
        let Some(g) = self.steal(cur.3) else {
            return true;
        };
        crate::log::warn(&format!(
            "shmif: {}: lock held {:?} with no progress, peer presumed dead: stolen",
            self.path.display(),
            now.saturating_duration_since(since)
        ));
        self.repair(&g);
        w.seen = None;
        false
    }

    /// After stealing the lock: a writer killed between moving `last` and
    /// writing the header there leaves stray bytes as the newest header.
    /// Make it an empty frame so that every peer steps over it the same way.
    fn repair(&self, g: &BusGuard<'_>) {
        self.reset_if_impossible(g);
        let last = self.word(field::LAST).load(Ordering::Relaxed);
        if last > self.size {
            return;
        }
        let (h, _, _) = read_header(&self.ring(), Format::V3, last);
        if h.len as usize > MAX_FRAME {
            let mut first = self.word(field::FIRST).load(Ordering::Relaxed);
            let zero = FrameHeaderRepr::default().emit();
            self.bus_write(&mut first, last, &zero);
        }
    }

    /// A header whose offsets lie outside the ring (one stray store is
    /// enough) leaves every reader stuck on `Corrupt` for good: the writer
    /// that finds it empties the ring as a fresh bus is (`first` at the
    /// end, `last` on an empty frame at 0, what NetBSD's shmif and
    /// shmif_dumpbus read too) and moves `gen` on by two, so that every
    /// reader's position is out of date and it resyncs from `first`.
    fn reset_if_impossible(&self, _g: &BusGuard<'_>) {
        let first = self.word(field::FIRST).load(Ordering::Relaxed);
        let last = self.word(field::LAST).load(Ordering::Relaxed);
        if first <= self.size && last < self.size {
            return;
        }
        crate::log::warn(&format!(
            "shmif: {}: impossible header (first {first:#x}, last {last:#x}): ring reset",
            self.path.display()
        ));
        self.ring().copy_in(0, &FrameHeaderRepr::default().emit());
        self.word(field::FIRST).store(self.size, Ordering::Relaxed);
        self.word(field::LAST).store(0, Ordering::Relaxed);
        self.gen_word().fetch_add(2, Ordering::Relaxed);
    }

    /// `advancefirst`: before bytes [off, off+n) are overwritten, move
    /// `first` past every frame they touch. Bounded so that a corrupt ring
    /// (a cycle of headers) cannot hold us here.
    fn advance_first(&self, first: &mut u32, off: u32, n: u32) {
        let ring = self.ring();
        let hdr = Format::V3.hdr_len;
        let mut steps = self.size / hdr + 1;
        while u64::from(off) <= u64::from(*first) + u64::from(hdr)
            && u64::from(off) + u64::from(n) > u64::from(*first)
        {
            *first = next_pkt_off(&ring, Format::V3, *first);
            self.word(field::FIRST).store(*first, Ordering::Relaxed);
            steps -= 1;
            if steps == 0 {
                break;
            }
        }
    }

    /// `shmif_buswrite`: write `src` at `off`, keeping `first` on an intact
    /// frame. Returns the offset after it and whether it reached the end.
    fn bus_write(&self, first: &mut u32, off: u32, src: &[u8]) -> (u32, bool) {
        let (chunk, rest, next, filled) = span(self.size, off, src.len() as u32);
        let off = off.min(self.size);
        self.advance_first(first, off, chunk + u32::from(filled));
        self.ring().copy_in(off, &src[..chunk as usize]);
        if rest > 0 {
            self.advance_first(first, 0, rest);
            self.ring()
                .copy_in(0, &src[chunk as usize..(chunk + rest) as usize]);
        }
        (next, filled)
    }

    /// Put one frame on the bus (lock held by `g`). `frame` must be
    /// 14..=1514 bytes: the caller checks, NetBSD peers crash on longer ones.
    /// ENOBUFS, and the frame dropped, if the lock was stolen from us.
    ///
    /// `last` moves to the new frame once it is written, so that a writer
    /// killed (or robbed) midway leaves the previous newest frame newest.
    pub fn write_frame(
        &self,
        g: &BusGuard<'_>,
        frame: &[u8],
        sender: u64,
        (sec, usec): (u32, u32),
    ) -> Result<(), Errno> {
        debug_assert!((MIN_FRAME..=MAX_FRAME).contains(&frame.len()));
        let frame = &frame[..frame.len().min(MAX_FRAME)];
        if !g.held() {
            return Err(Errno(libc::ENOBUFS));
        }
        self.reset_if_impossible(g);
        let ring = self.ring();
        let last = next_pkt_off(
            &ring,
            Format::V3,
            self.word(field::LAST).load(Ordering::Relaxed),
        );
        let hdr = FrameHeaderRepr {
            len: frame.len() as u32,
            sec,
            usec,
            sender,
        }
        .emit();
        let mut first = self.word(field::FIRST).load(Ordering::Relaxed);
        let (data, w1) = self.bus_write(&mut first, last, &hdr);
        let (_, w2) = self.bus_write(&mut first, data, frame);
        // Robbed while copying: the thief's `last` stands (and a reader
        // that finds our bytes over its frames resyncs).
        if !g.held() {
            return Err(Errno(libc::ENOBUFS));
        }
        self.word(field::LAST).store(last, Ordering::Relaxed);
        if w1 || w2 {
            self.gen_word().fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Lock, write one frame, unlock. Wake the readers with [`Bus::wakeup`]
    /// after a batch. ENOBUFS (the frame dropped) when the lock does not
    /// come within [`LOCK_WAIT`]: a live-looking peer that keeps it must
    /// not hold the sender for ever.
    pub fn send(&self, frame: &[u8], sender: u64) -> Result<(), Errno> {
        self.send_batch(&[frame], sender)
    }

    /// `send` for a data-plane thread: ENOBUFS (the frame is dropped) when
    /// the lock does not come within [`LOCK_BRIEFLY`].
    pub fn try_send(&self, frame: &[u8], sender: u64) -> Result<(), Errno> {
        self.put(&[frame], sender, |bus| bus.try_lock_briefly())
    }

    /// Put several frames on the bus under one hold of the lock (peers wait
    /// a few microseconds longer, the lock changes hands far less often).
    /// All frames must be 14..=1514 bytes, else nothing is sent.
    pub fn send_batch(&self, frames: &[&[u8]], sender: u64) -> Result<(), Errno> {
        self.put(frames, sender, |bus| {
            bus.lock_until(Some(Instant::now() + LOCK_WAIT))
        })
    }

    /// Put the frames of `q` on the bus, oldest first, under one hold of
    /// the lock taken as [`Bus::try_send`] takes it; those written leave
    /// `q`. ENOBUFS, the rest kept, when the lock does not come or is
    /// stolen midway. The frames were checked with [`Bus::fits`].
    pub fn try_send_queue(&self, q: &mut VecDeque<Vec<u8>>, sender: u64) -> Result<(), Errno> {
        self.check()?;
        let ts = timestamp();
        let g = self.try_lock_briefly().ok_or(Errno(libc::ENOBUFS))?;
        while let Some(f) = q.front() {
            self.write_frame(&g, f, sender, ts)?;
            q.pop_front();
        }
        drop(g);
        self.check()
    }

    /// Whether `frame` may go on a bus: 14..=1514 bytes (EINVAL, EMSGSIZE).
    pub fn fits(frame: &[u8]) -> Result<(), Errno> {
        match frame.len() {
            n if n > MAX_FRAME => Err(Errno::EMSGSIZE),
            n if n < MIN_FRAME => Err(Errno::EINVAL),
            _ => Ok(()),
        }
    }

    /// Check every frame's length, take the lock with `lock` (ENOBUFS when
    /// it gives up) and write the frames.
    fn put<'a>(
        &'a self,
        frames: &[&[u8]],
        sender: u64,
        lock: impl FnOnce(&'a Bus) -> Option<BusGuard<'a>>,
    ) -> Result<(), Errno> {
        frames.iter().try_for_each(|f| Bus::fits(f))?;
        self.check()?;
        let ts = timestamp();
        let g = lock(self).ok_or(Errno(libc::ENOBUFS))?;
        for f in frames {
            self.write_frame(&g, f, sender, ts)?;
        }
        drop(g);
        self.check()
    }

    /// Wake every peer: the ifnet peers through the futex word first (see
    /// [`WakeWord`]), then everyone through the file ([`Bus::wakeup_file`]).
    pub fn wakeup(&self) -> Result<(), Errno> {
        self.wakeup_ifnet();
        self.wakeup_file()
    }

    /// The fast half of [`Bus::wakeup`]: the ifnet peers napping on the
    /// futex word. Cheap (no system call) when none is.
    pub fn wakeup_ifnet(&self) {
        if let Some(w) = &self.wake
            && !self.truncated()
        {
            w.wake();
        }
    }

    /// NetBSD's wakeup write: the version word, through the file, so that
    /// every reader's inotify watch fires. It is also what sets the
    /// version.
    pub fn wakeup_file(&self) -> Result<(), Errno> {
        // A write to a file cut short would grow it again, leaving a
        // file that is not a bus for the next peer.
        self.check()?;
        self.file
            .write_at(&VERSION.to_ne_bytes(), field::VERSION as u64)?;
        Ok(())
    }

    /// Copy the whole bus (header and ring) under the lock, a consistent
    /// image for dumping, and return a reader placed right after it. The
    /// lock word in the image is the one seen before we took it.
    pub fn snapshot_reader(&self, out: &mut Vec<u8>) -> BusReader {
        out.resize(HEADER_LEN + self.size as usize, 0);
        let lock = self.word(field::LOCK).load(Ordering::Relaxed);
        let g = self.lock();
        let h = self.header();
        out[0..4].copy_from_slice(&h.magic.to_ne_bytes());
        out[4..8].copy_from_slice(&h.version.to_ne_bytes());
        out[8..16].copy_from_slice(&h.generation.to_ne_bytes());
        out[16..20].copy_from_slice(&h.first.to_ne_bytes());
        out[20..24].copy_from_slice(&h.last.to_ne_bytes());
        out[24..28].copy_from_slice(&lock.to_ne_bytes());
        out[28..32].fill(0);
        self.ring().copy_out(0, &mut out[HEADER_LEN..]);
        BusReader::after(self, &g)
    }
}

/// The sender's clock for frame headers: wall time, so that captures show
/// real times (NetBSD kernels write their uptime here).
pub fn timestamp() -> (u32, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as u32, d.subsec_micros())
}

/// A random 64-bit id, from the kernel's generator.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        // SAFETY: writes at most the remaining bytes of b.
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), 8 - got, 0) };
        if n <= 0 {
            // No entropy source: fall back to something unlikely to collide.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64;
            return t ^ (u64::from(std::process::id()) << 32);
        }
        got += n as usize;
    }
    u64::from_ne_bytes(b)
}

/// What one receive step found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recv {
    /// Nothing new on the bus.
    Empty,
    /// A frame, copied into the caller's buffer (`hdr.len` bytes); `off` is
    /// the ring offset of its first byte.
    Frame { hdr: FrameHeaderRepr, off: u32 },
    /// A frame the filter refused (not copied), or an empty one.
    Skipped,
    /// A frame shorter than an Ethernet header: dropped.
    Runt,
    /// A frame header with an impossible length: the reader resynchronised
    /// on the newest frame, dropping whatever was between.
    Garbage,
    /// The header holds offsets outside the ring: nothing can be read
    /// until a writer repairs it.
    Corrupt,
    /// The bus file was cut short under the mapping ([`Bus::truncated`]):
    /// nothing read from it is to be trusted, now or later.
    Lost,
    /// The lock did not come within [`LOCK_BRIEFLY`] (`try_recv_batch`):
    /// nothing was read; try again later.
    Busy,
}

/// One receiver's position on a bus (`sc_nextpacket`, `sc_devgen`), and
/// what it lost to being lapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusReader {
    pub nextpacket: u32,
    pub devgen: u64,
    /// Times the writers overtook this reader. Each time it moved on to the
    /// oldest intact frame; the frames in between are lost, by design.
    pub laps: u64,
    /// Bytes of ring the writers wrote past this reader (an estimate of
    /// what the laps cost: headers and frames).
    pub lost_bytes: u64,
    /// Where the last lap put us: coming round to the same place again
    /// means the chain of frames is broken (a corrupt ring), not a lap.
    lap_mark: Option<(u32, u64)>,
}

impl BusReader {
    /// Start at the newest frame on the bus, which will be read (again):
    /// what shmif does on attach and on every up.
    pub fn at_newest(bus: &Bus) -> BusReader {
        let g = bus.lock();
        BusReader::at_newest_locked(bus, &g)
    }

    /// `at_newest` with the lock already held.
    pub fn at_newest_locked(bus: &Bus, _g: &BusGuard<'_>) -> BusReader {
        let h = bus.header();
        BusReader {
            nextpacket: h.last,
            devgen: h.generation,
            ..BusReader::default()
        }
    }

    /// Start after the newest frame: only frames written from now on.
    pub fn at_end(bus: &Bus) -> BusReader {
        let g = bus.lock();
        let r = BusReader::after(bus, &g);
        drop(g);
        r
    }

    /// `at_end` with the lock already held.
    pub fn after(bus: &Bus, _g: &BusGuard<'_>) -> BusReader {
        let h = bus.header();
        let last = h.last.min(bus.size);
        BusReader {
            nextpacket: next_pkt_off(&bus.ring(), Format::V3, last),
            devgen: h.generation,
            ..BusReader::default()
        }
    }

    /// Whether this reader's position is still intact (`stillvalid_p`).
    fn still_valid(&self, h: &BusHeaderRepr, lastoff: u32, size: u32) -> bool {
        let gendiff = h.generation.wrapping_sub(self.devgen);
        if gendiff > 1 {
            return false;
        }
        let mut lastoff = u64::from(lastoff);
        let mut dev = u64::from(self.nextpacket);
        if h.first as u64 >= lastoff {
            lastoff += u64::from(size);
            if gendiff == 0 {
                dev += u64::from(size);
            }
        } else if gendiff != 0 {
            return false;
        }
        u64::from(h.first) <= dev && dev <= lastoff
    }

    /// With the lock held and the header `h` read: find the next frame,
    /// recovering from a lap. Does not move past it (see `passed`).
    fn next_locked(
        &mut self,
        bus: &Bus,
        g: &BusGuard<'_>,
        h: &BusHeaderRepr,
        lastoff: u32,
    ) -> Step {
        let size = bus.size;
        if h.generation == self.devgen && lastoff == self.nextpacket {
            return Step::Empty;
        }
        let valid = self.nextpacket <= size && self.still_valid(h, lastoff, size);
        let gendiff = h.generation.wrapping_sub(self.devgen) as i64;
        if gendiff < 0 || (gendiff == 0 && !valid) {
            // We are past the newest frame (or went round the ring more
            // often than the writers): the chain of frames is broken, no
            // writer lapped us. Going back to `first` would hand out old
            // frames again; wait where the next frame will go instead.
            *self = BusReader {
                laps: self.laps,
                lost_bytes: self.lost_bytes,
                ..BusReader::after(bus, g)
            };
            return Step::Garbage;
        }
        if !valid {
            let abs = |g: u64, off: u32| u128::from(g) * u128::from(size) + u128::from(off);
            let from = abs(self.devgen, self.nextpacket.min(size));
            self.nextpacket = h.first;
            // `first` lies in the previous generation when the live region
            // wraps. NetBSD tests `first > last`, which is wrong when the
            // newest frame itself wraps (its reader then re-reads the ring
            // from `first`); `first >= lastoff` is right in every case.
            self.devgen = if h.first >= lastoff {
                h.generation.wrapping_sub(1)
            } else {
                h.generation
            };
            if self.lap_mark == Some((self.nextpacket, self.devgen)) {
                // The frames from `first` do not lead to `last`.
                *self = BusReader {
                    laps: self.laps,
                    lost_bytes: self.lost_bytes,
                    ..BusReader::after(bus, g)
                };
                return Step::Garbage;
            }
            self.lap_mark = Some((self.nextpacket, self.devgen));
            let lost = abs(self.devgen, h.first).saturating_sub(from);
            self.laps += 1;
            self.lost_bytes = self
                .lost_bytes
                .saturating_add(lost.min(u128::from(u64::MAX)) as u64);
        }
        let (hdr, data, wrap) = read_header(&bus.ring(), Format::V3, self.nextpacket);
        if hdr.len as usize > MAX_FRAME {
            // Nothing after an impossible length can be trusted: go on
            // from the newest frame, as every peer's writer will.
            let (laps, lost_bytes) = (self.laps, self.lost_bytes);
            *self = BusReader {
                laps,
                lost_bytes,
                ..BusReader::after(bus, g)
            };
            return Step::Garbage;
        }
        Step::Frame { hdr, data, wrap }
    }

    /// Move past the frame just read: `next` and whether the header or
    /// the payload reached the end of the ring.
    fn passed(&mut self, next: u32, wrap: bool) {
        self.nextpacket = next;
        if wrap {
            self.devgen = self.devgen.wrapping_add(1);
        }
    }

    /// Lock and read the header, or say why the bus cannot be read. A
    /// newest frame of impossible length makes the end of the live region
    /// meaningless: rather than walk stale ring bytes up to it (and around
    /// again, re-reading old frames), wait where the next frame will go.
    fn begin<'b>(
        &mut self,
        bus: &'b Bus,
        wait: bool,
    ) -> Result<(BusGuard<'b>, BusHeaderRepr, u32), Recv> {
        let g = if wait {
            bus.lock()
        } else {
            bus.try_lock_briefly().ok_or(Recv::Busy)?
        };
        let h = bus.header();
        if h.first > bus.size || h.last > bus.size {
            return Err(Recv::Corrupt);
        }
        let (newest, _, _) = read_header(&bus.ring(), Format::V3, h.last);
        if newest.len as usize > MAX_FRAME {
            let after = BusReader::after(bus, &g);
            if (after.nextpacket, after.devgen) == (self.nextpacket, self.devgen) {
                return Err(Recv::Empty);
            }
            self.nextpacket = after.nextpacket;
            self.devgen = after.devgen;
            return Err(Recv::Garbage);
        }
        let lastoff = next_pkt_off(&bus.ring(), Format::V3, h.last);
        Ok((g, h, lastoff))
    }

    /// Take the next frame off the bus into `buf` (at least 1514 bytes).
    /// `want` sees the header first; refusing it skips the payload copy.
    pub fn recv(
        &mut self,
        bus: &Bus,
        buf: &mut [u8],
        want: impl FnOnce(&FrameHeaderRepr) -> bool,
    ) -> Recv {
        let r = self.recv_one(bus, buf, want);
        if bus.truncated() { Recv::Lost } else { r }
    }

    fn recv_one(
        &mut self,
        bus: &Bus,
        buf: &mut [u8],
        want: impl FnOnce(&FrameHeaderRepr) -> bool,
    ) -> Recv {
        let (g, h, lastoff) = match self.begin(bus, true) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let (hdr, data, w1) = match self.next_locked(bus, &g, &h, lastoff) {
            Step::Empty => return Recv::Empty,
            Step::Garbage => return Recv::Garbage,
            Step::Frame { hdr, data, wrap } => (hdr, data, wrap),
        };
        let len = hdr.len as usize;
        let copy = len >= MIN_FRAME && len <= buf.len() && want(&hdr);
        let (next, w2) = if copy {
            ring_read(&bus.ring(), data, &mut buf[..len])
        } else {
            ring_skip(bus.size, data, hdr.len)
        };
        drop(g);
        self.passed(next, w1 || w2);
        if copy {
            Recv::Frame { hdr, off: data }
        } else if len > 0 && len < MIN_FRAME {
            Recv::Runt
        } else {
            Recv::Skipped
        }
    }

    /// Take every new frame (up to `batch`'s limits) under one hold of the
    /// lock: fewer lock handoffs with the writers, one copy per frame.
    /// Returns what ended the batch: `Empty` when the ring was drained,
    /// `Corrupt` or `Garbage` as [`BusReader::recv`] does, `Skipped` when
    /// the batch filled up (call again), `Lost` with an empty batch.
    pub fn recv_batch(
        &mut self,
        bus: &Bus,
        batch: &mut Batch,
        want: impl FnMut(&FrameHeaderRepr) -> bool,
    ) -> Recv {
        let r = self.fill_batch(bus, batch, want, true);
        if bus.truncated() {
            batch.clear();
            return Recv::Lost;
        }
        r
    }

    /// `recv_batch` for a data-plane thread: `Busy` when the lock does not
    /// come within [`LOCK_BRIEFLY`].
    pub fn try_recv_batch(
        &mut self,
        bus: &Bus,
        batch: &mut Batch,
        want: impl FnMut(&FrameHeaderRepr) -> bool,
    ) -> Recv {
        let r = self.fill_batch(bus, batch, want, false);
        if bus.truncated() {
            batch.clear();
            return Recv::Lost;
        }
        r
    }

    fn fill_batch(
        &mut self,
        bus: &Bus,
        batch: &mut Batch,
        mut want: impl FnMut(&FrameHeaderRepr) -> bool,
        wait: bool,
    ) -> Recv {
        batch.clear();
        let (g, h, lastoff) = match self.begin(bus, wait) {
            Ok(x) => x,
            Err(r) => return r,
        };
        while batch.frames.len() < batch.max_frames && batch.used + MAX_FRAME <= batch.data.len() {
            let (hdr, data, w1) = match self.next_locked(bus, &g, &h, lastoff) {
                Step::Empty => return Recv::Empty,
                Step::Garbage => return Recv::Garbage,
                Step::Frame { hdr, data, wrap } => (hdr, data, wrap),
            };
            let len = hdr.len as usize;
            let (next, w2) = if len >= MIN_FRAME && want(&hdr) {
                let at = batch.used;
                let r = ring_read(&bus.ring(), data, &mut batch.data[at..at + len]);
                batch.frames.push(BatchFrame { hdr, off: data, at });
                batch.used += len;
                r
            } else {
                if len > 0 && len < MIN_FRAME {
                    batch.runts += 1;
                }
                ring_skip(bus.size, data, hdr.len)
            };
            self.passed(next, w1 || w2);
        }
        Recv::Skipped
    }
}

enum Step {
    Empty,
    Garbage,
    Frame {
        hdr: FrameHeaderRepr,
        data: u32,
        wrap: bool,
    },
}

/// One frame of a [`Batch`].
#[derive(Clone, Copy, Debug)]
pub struct BatchFrame {
    pub hdr: FrameHeaderRepr,
    /// Ring offset of the frame's first byte.
    pub off: u32,
    /// Where it is in the batch's data.
    pub at: usize,
}

/// Frames copied out of the ring in one lock hold; reused, so that reading
/// allocates nothing once it is made.
pub struct Batch {
    data: Vec<u8>,
    used: usize,
    pub frames: Vec<BatchFrame>,
    max_frames: usize,
    /// Frames under 14 bytes stepped over in this batch.
    pub runts: u32,
}

impl Batch {
    /// Room for `max_frames` frames of up to 1514 bytes.
    pub fn new(max_frames: usize) -> Batch {
        let max_frames = max_frames.max(1);
        Batch {
            data: vec![0; max_frames * MAX_FRAME],
            used: 0,
            frames: Vec::with_capacity(max_frames),
            max_frames,
            runts: 0,
        }
    }

    fn clear(&mut self) {
        self.used = 0;
        self.frames.clear();
        self.runts = 0;
    }

    /// The bytes of frame `f`.
    pub fn frame(&self, f: &BatchFrame) -> &[u8] {
        &self.data[f.at..f.at + f.hdr.len as usize]
    }
}

/// An inotify watch for IN_MODIFY on a bus file, the way peers are woken.
pub struct Watch {
    ino: nix::sys::inotify::Inotify,
}

impl Watch {
    pub fn new(bus: &Bus) -> std::io::Result<Watch> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        use std::os::fd::AsRawFd;
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        // Watch the file we have open, wherever its name now points.
        let proc = format!("/proc/self/fd/{}", bus.file().as_raw_fd());
        ino.add_watch(proc.as_str(), AddWatchFlags::IN_MODIFY)
            .or_else(|_| ino.add_watch(bus.path(), AddWatchFlags::IN_MODIFY))?;
        Ok(Watch { ino })
    }

    /// The inotify descriptor, to poll along with others.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.ino)
    }

    /// Consume pending events.
    pub fn drain(&self) {
        while let Ok(ev) = self.ino.read_events() {
            if ev.is_empty() {
                break;
            }
        }
    }

    /// Wait up to `timeout` for a modification, then consume the events.
    pub fn wait(&self, timeout: Duration) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut fds = [PollFd::new(self.fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(timeout.as_millis().min(60_000) as i32)
            .unwrap_or(PollTimeout::MAX);
        let _ = poll(&mut fds, ms);
        self.drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock left held: the data path gives up at once; the timer path
    /// steals it once it has stood still for STALE_LOCK (time passed in).
    #[test]
    fn stuck_lock_is_not_waited_for_and_is_stolen_on_the_timer() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::attach(&dir.path().join("bus")).unwrap();
        bus.word(field::LOCK).store(1, Ordering::Relaxed);
        let t = Instant::now();
        assert!(bus.try_lock_briefly().is_none());
        assert_eq!(bus.try_send(&[0xff; 60], 1), Err(Errno(libc::ENOBUFS)));
        assert!(t.elapsed() < Duration::from_millis(50));
        let mut w = StaleWatch::default();
        let now = Instant::now();
        assert!(bus.check_stale(&mut w, now));
        assert!(bus.check_stale(&mut w, now + STALE_LOCK / 2));
        assert_eq!(bus.header().lock, 1);
        assert!(!bus.check_stale(&mut w, now + STALE_LOCK));
        assert_eq!(bus.header().lock, 0);
        bus.try_send(&[0xff; 60], 1).unwrap();
        // Progress (a frame sent) while held is a live holder: not stolen.
        bus.word(field::LOCK).store(1, Ordering::Relaxed);
        assert!(bus.check_stale(&mut w, now));
        bus.gen_word().fetch_add(1, Ordering::Relaxed);
        assert!(bus.check_stale(&mut w, now + STALE_LOCK));
        assert_eq!(bus.header().lock, 1);
    }

    /// A holder stopped past STALE_LOCK (Ctrl-Z, a debugger) has lost the
    /// lock to a thief: the lock word stays 1, as NetBSD peers must see
    /// it; the late holder's write is refused and its release leaves the
    /// thief's lock alone; only the thief's frame is on the bus.
    #[test]
    fn a_late_holder_has_lost_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::attach(&dir.path().join("bus")).unwrap();
        let mut r = BusReader::at_end(&bus);
        let late = bus.lock();
        let thief = bus.steal(bus.progress().3).expect("stolen");
        assert_eq!(bus.header().lock, 1);
        assert!(!late.held() && thief.held());
        let ts = timestamp();
        let lost = bus.write_frame(&late, &test_frame(1, 100), 1, ts);
        assert_eq!(lost, Err(Errno(libc::ENOBUFS)));
        bus.write_frame(&thief, &test_frame(2, 100), 2, ts).unwrap();
        drop(late);
        assert!(thief.held());
        assert_eq!(bus.header().lock, 1);
        // A second thief that saw the first's token loses to nobody else.
        assert!(bus.steal(0).is_none());
        drop(thief);
        assert_eq!(bus.header().lock, 0);
        assert_eq!(bus.word(field::OWNER).load(Ordering::Relaxed), 0);
        let mut buf = vec![0u8; MAX_FRAME];
        let mut got = Vec::new();
        while let Recv::Frame { hdr, .. } = r.recv(&bus, &mut buf, |_| true) {
            got.push(seq_of(&buf[..hdr.len as usize]));
        }
        assert_eq!(got, vec![2]);
    }

    /// A wild `first` (one stray store) is reset by the next writer to a
    /// fresh bus's layout, which NetBSD's shmif_dumpbus reads as empty
    /// (`first` = DATASIZE is read from 0), and readers resync.
    #[test]
    fn impossible_header_is_reset_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::attach(&dir.path().join("bus")).unwrap();
        let mut r = BusReader::at_end(&bus);
        for seq in 0..5 {
            bus.send(&test_frame(seq, 100), 1).unwrap();
        }
        let g0 = bus.header().generation;
        bus.word(field::FIRST).store(0xffff_fff0, Ordering::Relaxed);
        let mut buf = vec![0u8; MAX_FRAME];
        assert_eq!(r.recv(&bus, &mut buf, |_| true), Recv::Corrupt);
        bus.send(&test_frame(7, 100), 1).unwrap();
        let h = bus.header();
        assert_eq!((h.first, h.last, h.generation), (DATASIZE, 0x18, g0 + 2));
        let mut got = Vec::new();
        for _ in 0..10 {
            match r.recv(&bus, &mut buf, |_| true) {
                Recv::Frame { hdr, .. } => got.push(seq_of(&buf[..hdr.len as usize])),
                Recv::Empty => break,
                _ => {}
            }
        }
        assert_eq!(got, vec![7]);
    }

    /// The sidecar: made by the first peer, shared by the next; a writer
    /// takes the count of waiters to 0 (one wake per sleep); a sleeper is
    /// woken by a writer in another thread; a file there that is not a
    /// sidecar is left alone, and the bus works without it.
    #[test]
    fn wake_word_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus");
        let a = Bus::attach(&path).unwrap();
        let b = Bus::attach(&path).unwrap();
        let side = dir.path().join(format!("bus{WAKE_SUFFIX}"));
        assert_eq!(std::fs::metadata(&side).unwrap().len(), WAKE_LEN as u64);
        let (wa, wb) = (a.wake_word().unwrap(), b.wake_word().unwrap().clone());
        let s0 = wa.seq().load(Ordering::SeqCst);
        a.wakeup_ifnet();
        assert_eq!(wb.seq().load(Ordering::SeqCst), s0.wrapping_add(1));
        wb.count_waiter();
        wb.count_waiter();
        a.wakeup_ifnet();
        assert_eq!(wa.waiters().load(Ordering::SeqCst), 0);
        let seen = wb.seq().load(Ordering::SeqCst);
        let t = Instant::now();
        let sleeper = std::thread::spawn(move || wb.wait(seen, Duration::from_secs(10)));
        while wa.waiters().load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        a.wakeup().unwrap();
        sleeper.join().unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
        // A sleeper that finds the word moved does not sleep.
        b.wake_word().unwrap().wait(seen, Duration::from_secs(10));
        assert!(t.elapsed() < Duration::from_secs(5));
        // Not a sidecar: left as it was.
        let other = dir.path().join("other");
        let not_ours = dir.path().join(format!("other{WAKE_SUFFIX}"));
        std::fs::write(&not_ours, b"my notes").unwrap();
        let c = Bus::attach(&other).unwrap();
        assert!(c.wake_word().is_none());
        assert_eq!(std::fs::read(&not_ours).unwrap(), b"my notes");
        c.send(&test_frame(1, 60), 1).unwrap();
        c.wakeup().unwrap();
        // A sidecar cut short under the mappings: no SIGBUS, the futex
        // word goes quiet, the bus file still wakes.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&side)
            .unwrap()
            .set_len(0)
            .unwrap();
        a.wakeup().unwrap();
        b.wake_word().unwrap().wait(0, Duration::from_millis(1));
        a.send(&test_frame(2, 60), 1).unwrap();
        // A follower (shmifdump -f) makes none.
        let lone = dir.path().join("lone");
        drop(Bus::attach(&lone).unwrap());
        std::fs::remove_file(dir.path().join(format!("lone{WAKE_SUFFIX}"))).unwrap();
        assert!(Bus::open_existing(&lone).unwrap().wake_word().is_none());
        assert!(!dir.path().join(format!("lone{WAKE_SUFFIX}")).exists());
    }

    #[test]
    fn span_rules() {
        // Exactly to the end: a wrap, next offset 0.
        assert_eq!(span(100, 90, 10), (10, 0, 0, true));
        // Across the end.
        assert_eq!(span(100, 95, 10), (5, 5, 5, true));
        // At the end: nothing before it, all from 0.
        assert_eq!(span(100, 100, 10), (0, 10, 10, true));
        assert_eq!(span(100, 10, 10), (10, 0, 20, false));
        assert_eq!(advance(100, 95, 10), 5);
        assert_eq!(advance(100, 100, 0), 0);
    }

    #[test]
    fn ring_read_wraps() {
        let ring: Vec<u8> = (0..100u8).collect();
        let mut b = [0u8; 10];
        assert_eq!(ring_read(&ring[..], 95, &mut b), (5, true));
        assert_eq!(b, [95, 96, 97, 98, 99, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn header_round_trip() {
        let h = FrameHeaderRepr {
            len: 60,
            sec: 1,
            usec: 2,
            sender: 0x1122_3344_5566_7788,
        };
        let b = h.emit();
        assert_eq!(FrameHeaderRepr::parse(&b, Format::V3), h);
        let mut s = b;
        for f in [0..4, 4..8, 8..12] {
            s[f].reverse();
        }
        s[16..24].reverse();
        assert_eq!(
            FrameHeaderRepr::parse(
                &s,
                Format {
                    hdr_len: 24,
                    swap: true
                }
            ),
            h
        );
    }

    /// A frame of `len` bytes carrying `seq` and a checksum of itself.
    pub(crate) fn test_frame(seq: u32, len: usize) -> Vec<u8> {
        let mut f = vec![0xffu8; len];
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        for (i, b) in f.iter_mut().enumerate().skip(14) {
            *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
        }
        if len >= 18 {
            f[14..18].copy_from_slice(&seq.to_le_bytes());
        }
        f
    }

    fn seq_of(f: &[u8]) -> u32 {
        let seq = u32::from_le_bytes(f[14..18].try_into().unwrap());
        assert_eq!(f, &test_frame(seq, f.len())[..], "frame {seq} damaged");
        seq
    }

    fn len_of(seq: u32) -> usize {
        // Varied sizes so that headers and payloads fall across the end.
        18 + (seq as usize * 7919) % (MAX_FRAME - 17)
    }

    #[test]
    fn fresh_bus_layout() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::attach(&dir.path().join("bus")).unwrap();
        let h = bus.header();
        assert_eq!(
            (h.magic, h.version, h.generation, h.first, h.last),
            (MAGIC, 0, 0, DATASIZE, 0)
        );
        bus.send(&test_frame(0, 60), 7).unwrap();
        bus.wakeup().unwrap();
        let h = bus.header();
        assert_eq!((h.version, h.first, h.last), (3, DATASIZE, 0x18));
        let mut img = Vec::new();
        bus.snapshot_reader(&mut img);
        let (fh, data, _) = read_header(&img[HEADER_LEN..], Format::V3, 0x18);
        assert_eq!((fh.len, fh.sender, data), (60, 7, 0x30));
    }

    #[test]
    fn wrap_and_lap() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::attach(&dir.path().join("bus")).unwrap();
        let mut fast = BusReader::at_end(&bus);
        let mut slow = BusReader::at_end(&bus);
        let mut buf = vec![0u8; MAX_FRAME];
        let (mut next_fast, mut split, mut slow_got) = (0u32, 0, Vec::new());
        let total = 20_000u32; // about ten rings
        for seq in 0..total {
            bus.send(&test_frame(seq, len_of(seq)), 1).unwrap();
            loop {
                match fast.recv(&bus, &mut buf, |_| true) {
                    Recv::Frame { hdr, off } => {
                        assert_eq!(seq_of(&buf[..hdr.len as usize]), next_fast);
                        next_fast += 1;
                        if off + hdr.len > DATASIZE {
                            split += 1;
                        }
                    }
                    Recv::Empty => break,
                    r => panic!("{r:?}"),
                }
            }
            // The slow reader takes one frame now and then.
            if seq % 50 == 0
                && let Recv::Frame { hdr, .. } = slow.recv(&bus, &mut buf, |_| true)
            {
                slow_got.push(seq_of(&buf[..hdr.len as usize]));
            }
        }
        assert_eq!(next_fast, total);
        assert!(split > 0, "no frame fell across the end of the ring");
        assert_eq!(fast.laps, 0);
        assert!(bus.header().generation >= 9);
        // The slow one was lapped, noticed it, and kept going in order.
        assert!(slow.laps > 0 && slow.lost_bytes > 0, "{slow:?}");
        assert!(slow_got.windows(2).all(|w| w[0] < w[1]));
        while let Recv::Frame { hdr, .. } = slow.recv(&bus, &mut buf, |_| true) {
            slow_got.push(seq_of(&buf[..hdr.len as usize]));
        }
        assert_eq!(*slow_got.last().unwrap(), total - 1);
        assert!(slow_got.windows(2).all(|w| w[0] < w[1]));
        // What is left on the bus is an unbroken run ending at the newest.
        bus.wakeup().unwrap();
        let mut img = Vec::new();
        bus.snapshot_reader(&mut img);
        let h = BusHeaderRepr::parse(img[..HEADER_LEN].try_into().unwrap(), false);
        let fmt = Format::V3;
        let ring = &img[HEADER_LEN..];
        let mut off = h.first;
        let mut seqs = Vec::new();
        loop {
            let (fh, data, _) = read_header(ring, fmt, off);
            let mut f = vec![0u8; fh.len as usize];
            ring_read(ring, data, &mut f);
            seqs.push(seq_of(&f));
            if off == h.last {
                break;
            }
            off = next_pkt_off(ring, fmt, off);
        }
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(*seqs.last().unwrap(), total - 1);
    }

    #[test]
    fn broken_chain_does_not_replay_old_frames() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::attach(&dir.path().join("bus")).unwrap();
        let mut r = BusReader::at_end(&bus);
        let mut offs = Vec::new();
        for seq in 0..10 {
            offs.push(bus.header().last);
            bus.send(&test_frame(seq, 100), 1).unwrap();
        }
        // Frame 5's header now claims 1400 bytes: the chain jumps past the
        // newest frame into never-written ring.
        let at5 = next_pkt_off(&bus.ring(), Format::V3, offs[5]);
        bus.ring().copy_in(at5, &1400u32.to_ne_bytes());
        let mut buf = vec![0u8; MAX_FRAME];
        let mut got = Vec::new();
        for _ in 0..200_000 {
            match r.recv(&bus, &mut buf, |_| true) {
                Recv::Frame { hdr, .. } if hdr.len == 100 => got.push(seq_of(&buf[..100])),
                Recv::Empty => break,
                _ => {}
            }
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        // And the next frame comes through.
        bus.send(&test_frame(10, 100), 1).unwrap();
        assert!(matches!(
            r.recv(&bus, &mut buf, |_| true),
            Recv::Frame { .. }
        ));
        assert_eq!(seq_of(&buf[..100]), 10);
    }

    #[test]
    fn own_frames_skipped_without_copy() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::attach(&dir.path().join("bus")).unwrap();
        let mut r = BusReader::at_end(&bus);
        bus.send(&test_frame(1, 100), 42).unwrap();
        bus.send(&test_frame(2, 100), 43).unwrap();
        let mut buf = vec![0u8; MAX_FRAME];
        assert_eq!(r.recv(&bus, &mut buf, |h| h.sender != 42), Recv::Skipped);
        assert!(matches!(
            r.recv(&bus, &mut buf, |h| h.sender != 42),
            Recv::Frame { .. }
        ));
        assert_eq!(seq_of(&buf[..100]), 2);
        assert_eq!(r.recv(&bus, &mut buf, |_| true), Recv::Empty);
    }

    #[test]
    fn truncated_under_the_mapping() {
        for cut in [0u64, 100, 8192, 500_000] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("bus");
            let bus = Bus::attach(&path).unwrap();
            let mut r = BusReader::at_end(&bus);
            bus.send(&test_frame(0, 60), 1).unwrap();
            assert!(!bus.truncated());
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(cut).unwrap();
            // No size check first: reading the whole ring faults.
            let mut img = Vec::new();
            bus.snapshot_reader(&mut img);
            assert!(bus.truncated(), "cut to {cut}");
            assert!(img[cut.max(4096) as usize..].iter().all(|&b| b == 0));
            assert_eq!(bus.send(&test_frame(1, 60), 1), Err(Errno::EIO));
            let mut buf = vec![0u8; MAX_FRAME];
            assert_eq!(r.recv(&bus, &mut buf, |_| true), Recv::Lost);
            let mut batch = Batch::new(4);
            assert_eq!(r.recv_batch(&bus, &mut batch, |_| true), Recv::Lost);
            assert!(batch.frames.is_empty());
            assert!(!bus.intact());
        }
    }

    #[test]
    fn other_sigbus_still_kills() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus");
        // Installs the handler.
        let _bus = Bus::attach(&path).unwrap();
        let other = dir.path().join("other");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&other)
            .unwrap();
        f.set_len(8192).unwrap();
        let map = MmapOptions::new().len(8192).map_raw(&f).unwrap();
        f.set_len(0).unwrap();
        // SAFETY: the child only reads the mapping and exits; the parent
        // waits for it.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                std::ptr::read_volatile(map.as_ptr().add(4096));
                libc::_exit(0);
            }
            let mut st = 0;
            assert_eq!(libc::waitpid(pid, &mut st, 0), pid);
            assert!(libc::WIFSIGNALED(st), "status {st:#x}");
            assert_eq!(libc::WTERMSIG(st), libc::SIGBUS);
        }
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// A bus whose header and ring were scribbled on: readers and
        /// writers neither crash nor hang, and the bus keeps working.
        #[test]
        fn scribbled_bus(first in any::<u32>(), last in any::<u32>(), generation in any::<u64>(),
                         pokes in proptest::collection::vec((0u32..DATASIZE, any::<u32>()), 0..64),
                         sane in any::<bool>()) {
            let dir = tempfile::tempdir().unwrap();
            let bus = Bus::attach(&dir.path().join("bus")).unwrap();
            let mut r = BusReader::at_end(&bus);
            for seq in 0..300 {
                bus.send(&test_frame(seq, len_of(seq)), 1).unwrap();
            }
            {
                let _g = bus.lock();
                if !sane {
                    bus.word(field::FIRST).store(first, Ordering::Relaxed);
                    bus.word(field::LAST).store(last, Ordering::Relaxed);
                }
                bus.gen_word().store(generation, Ordering::Relaxed);
                for (off, v) in &pokes {
                    bus.ring().copy_in((*off).min(DATASIZE - 4), &v.to_ne_bytes());
                }
            }
            let mut buf = vec![0u8; MAX_FRAME];
            let mut batched = r;
            let mut n = 0;
            let mut seen = std::collections::HashSet::new();
            while n < 5000 {
                match r.recv(&bus, &mut buf, |_| true) {
                    Recv::Empty | Recv::Corrupt => break,
                    Recv::Frame { hdr, .. } if hdr.len >= 18 => {
                        let f = &buf[..hdr.len as usize];
                        let seq = u32::from_le_bytes(f[14..18].try_into().unwrap());
                        if f == &test_frame(seq, f.len())[..] {
                            // Old frames are never handed out twice.
                            prop_assert!(seen.insert(seq), "frame {} twice", seq);
                        }
                        n += 1;
                    }
                    _ => n += 1,
                }
            }
            prop_assert!(n < 5000, "reader does not terminate");
            let mut batch = Batch::new(16);
            let mut n = 0;
            while n < 5000 {
                match batched.recv_batch(&bus, &mut batch, |_| true) {
                    Recv::Empty | Recv::Corrupt => break,
                    _ => n += 1,
                }
            }
            prop_assert!(n < 5000, "batched reader does not terminate");
            // Writers carry on; if the header was sane, a reader placed at
            // the end gets the new frames.
            let mut r = BusReader::at_end(&bus);
            for seq in 1000..1010 {
                bus.send(&test_frame(seq, len_of(seq)), 1).unwrap();
            }
            let mut got = 0;
            for _ in 0..5000 {
                match r.recv(&bus, &mut buf, |_| true) {
                    Recv::Empty | Recv::Corrupt => break,
                    Recv::Frame { hdr, .. } if hdr.len >= 18 => {
                        let f = &buf[..hdr.len as usize];
                        let seq = u32::from_le_bytes(f[14..18].try_into().unwrap());
                        if f == &test_frame(seq, f.len())[..] { got += 1; }
                    }
                    _ => {}
                }
            }
            if bus.header().first <= DATASIZE && bus.header().last <= DATASIZE {
                prop_assert!(got >= 1, "no intact frame after the scribbles");
            }
        }
    }
}
