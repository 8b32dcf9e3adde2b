//! shmif(4): Ethernet over a shared-memory bus file, compatible with
//! NetBSD rump kernels on the same file.
//!
//! - [`bus`]: the bus format, lock and reader (shared with `shmifdump`,
//!   whose printer is `crate::shmifdump`).
//! - this module: the interface class and driver. Each attached
//!   interface is a reactor source ([`crate::reactor`]), on no thread of
//!   its own. Sending takes the bus lock — on a reactor thread only if it
//!   comes within a few microseconds, else the frame is dropped (an output
//!   error) — and copies
//!   the frame into the ring; from a reactor thread, the ifnet peers are
//!   woken at once through the bus's futex word ([`bus::WakeWord`]: a
//!   system call only when one naps on it); the wakeup write follows at
//!   once when the sender is the source's own thread or no reactor thread
//!   (with the futex wake), else the source does it (and the futex wake),
//!   and back-to-back frames are coalesced into one write.
//!   Receiving, while up: woken through inotify (one instance per reactor
//!   thread, a watch per bus file), through the futex word while the
//!   thread naps after work (see [`crate::reactor`]), or a safety timer,
//!   the source copies up to 32 frames per hold of the lock
//!   into a per-thread batch (no allocation per frame) and hands each to
//!   `Port::input`. A lock that stands still is looked at on a timer and
//!   stolen from a dead holder there, never waited for on the data path.
//! - Attaching (`linkstr`) opens, maps and initialises the bus file
//!   without the table lock (it may wait for a dead peer's lock), then
//!   commits under it.
//!
//! Where we differ from NetBSD, on purpose:
//! - `linkstr` on a non-empty file that is not a bus (wrong magic, either
//!   byte order, or too short) fails with ENOEXEC and leaves the file as it
//!   was; NetBSD resizes it to 1 MiB first. An empty file, a 1 MiB file
//!   whose magic is still 0 (a peer is creating it), or 8 bytes holding
//!   only a wakeup write (a bus truncated to nothing as a peer woke the
//!   others), becomes a bus.
//! - A bus lock held for a second while `gen` and `last` stay still is
//!   taken from its (presumed dead) holder, logged; see [`bus::Bus::lock`].
//! - Frame time stamps are wall-clock time, so captures show real times;
//!   NetBSD kernels write their uptime.
//! - Each time the receive thread is lapped, `iqdrops` grows by one (the
//!   number of frames lost is not knowable from the ring).
//! - A bus file shrunk while attached is given up: found short at a
//!   wakeup, or cut short under a read or write of the mapping (the SIGBUS
//!   that raises is caught, see [`fault`]), it is logged once, counted as
//!   an input or output error, its link goes down and the mapping is let
//!   go of; `-linkstr` / `linkstr` attach another.

pub mod bus;
mod fault;

use crate::cloner::{IfClone, KernelEnv, KernelHook};
use crate::frame::Frame;
use crate::ifnet::{Driver, IfState, IfType, LinkPrep};
use crate::ioctl::{Errno, IfMedia, LinkState, Request, iff};
use crate::port::{Port, Transmit};
use crate::reactor::{Handler, NapWord, Reactor, Registration, io_group};
use bus::{Batch, Bus, BusReader, Recv, StaleWatch};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

const MEDIA_AUTO: &str = "Ethernet autoselect";
const MEDIA_NONE: &str = "Ethernet none";

/// How long a receiving interface goes without an inotify event before it
/// looks at the ring anyway.
const RX_POLL: Duration = Duration::from_millis(100);

/// After a wakeup write, this passes before the next one, so that a busy
/// sender announces many frames per write (instead of burning a CPU on
/// back-to-back writes). A lone frame is announced at once.
const WAKE_COALESCE: Duration = Duration::from_micros(50);

/// When the bus lock was busy: try to read again at once, then after a
/// delay doubling up to this (a dead holder costs little until stolen).
const RX_RETRY: Duration = Duration::from_millis(1);

/// How often a lock found held is looked at, to steal it from a dead peer.
const STALE_POLL: Duration = Duration::from_millis(100);

/// Frames copied out per hold of the bus lock.
const RX_BATCH: usize = 32;

/// Batches read per poll before letting the thread's other sources run.
const RX_BATCHES: usize = 8;

/// Most frames that wait for the bus lock (NetBSD's IFQ_MAXLEN); more
/// are dropped, counted as output errors.
const BACKLOG_MAX: usize = 256;

thread_local! {
    /// One receive batch per reactor thread: no allocation per frame.
    static BATCH: RefCell<Batch> = RefCell::new(Batch::new(RX_BATCH));
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
pub struct ShmifClone {
    hook: Mutex<Option<KernelHook>>,
    notify: Arc<Notifiers>,
}

impl Drop for ShmifClone {
    fn drop(&mut self) {
        self.detach();
    }
}

/// The class's inotify instances, one per reactor thread (inotify
/// instances are few: 128 per user by default), each with a watch per bus
/// file an interface on that thread receives from.
#[derive(Default)]
struct Notifiers(Mutex<HashMap<usize, Arc<Notify>>>);

impl Notifiers {
    fn on(&self, reactor: &Arc<Reactor>, worker: usize) -> Result<Arc<Notify>, Errno> {
        let mut m = lock(&self.0);
        if let Some(n) = m.get(&worker) {
            return Ok(n.clone());
        }
        let n = Arc::new(Notify {
            ino: Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?,
            watches: Mutex::new(HashMap::new()),
            reg: Mutex::new(None),
        });
        let reg = reactor.register_on(worker, Some(n.ino.as_fd()), n.clone())?;
        // What inotify says the futex words say first, but for NetBSD
        // peers' wakeups: those wait for a nap's end (at most 200 us).
        reg.tolerate_naps();
        *lock(&n.reg) = Some(reg);
        m.insert(worker, n.clone());
        Ok(n)
    }
}

struct Notify {
    ino: Inotify,
    /// Watch → the interfaces receiving from that bus file.
    watches: Mutex<HashMap<WatchDescriptor, Vec<Weak<ShmifIo>>>>,
    reg: Mutex<Option<Registration>>,
}

impl Notify {
    fn add(&self, io: &Arc<ShmifIo>) -> Result<WatchDescriptor, Errno> {
        // Watch the file we have open, wherever its name now points.
        let proc = format!("/proc/self/fd/{}", io.bus.file().as_raw_fd());
        let wd = self
            .ino
            .add_watch(proc.as_str(), AddWatchFlags::IN_MODIFY)
            .or_else(|_| self.ino.add_watch(io.bus.path(), AddWatchFlags::IN_MODIFY))?;
        lock(&self.watches)
            .entry(wd)
            .or_default()
            .push(Arc::downgrade(io));
        Ok(wd)
    }

    fn remove(&self, wd: WatchDescriptor, io: &ShmifIo) {
        let mut w = lock(&self.watches);
        let Some(v) = w.get_mut(&wd) else { return };
        v.retain(|x| !std::ptr::eq(x.as_ptr(), io));
        if v.is_empty() {
            w.remove(&wd);
            let _ = self.ino.rm_watch(wd);
        }
    }
}

impl Handler for Notify {
    fn poll(&self, _now: Instant) -> Option<Instant> {
        while let Ok(evs) = self.ino.read_events() {
            if evs.is_empty() {
                break;
            }
            let w = lock(&self.watches);
            for ev in evs {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    // Events were lost: every bus may have news.
                    for io in w.values().flatten().filter_map(Weak::upgrade) {
                        io.wake();
                    }
                    continue;
                }
                for io in w.get(&ev.wd).into_iter().flatten() {
                    if let Some(io) = io.upgrade() {
                        io.wake();
                    }
                }
            }
        }
        None
    }
}

impl IfClone for ShmifClone {
    fn name(&self) -> &'static str {
        "shmif"
    }

    fn attach(&self, _env: &KernelEnv, hook: &KernelHook) {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook.clone());
    }

    fn detach(&self) {
        let regs: Vec<_> = lock(&self.notify.0)
            .drain()
            .map(|(_, n)| lock(&n.reg).take())
            .collect();
        drop(regs);
    }

    fn create(&self, env: &KernelEnv, ifs: &mut IfState) -> Result<Box<dyn Driver>, Errno> {
        // As NetBSD 10: one random number is the sender id and gives the MAC.
        let id = bus::random_u64();
        let r = id.to_ne_bytes();
        ifs.kind = IfType::Ethernet;
        ifs.mtu = 1500;
        ifs.flags = iff::BROADCAST | iff::SIMPLEX | iff::MULTICAST;
        ifs.set_lladdr([0xb2, 0xa0, r[0], r[1], r[2], r[3]]);
        ifs.link_state = LinkState::Unknown;
        let hook = self
            .hook
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(KernelHook::detached);
        Ok(Box::new(Shmif {
            sender: id,
            port: ifs.port.clone(),
            hook,
            reactor: env.reactor()?,
            notify: self.notify.clone(),
            group: io_group(None),
            link_up: Arc::new(AtomicBool::new(false)),
            media_none: false,
            attached: None,
        }))
    }
}

struct Attached {
    /// None once the bus was lost (its file cut short).
    io: Option<Arc<ShmifIo>>,
    linkstr: String,
}

/// How the data path of one attachment reports its bus lost: once, and to
/// the kernel, which has `Driver::sync` let go of it.
struct Loss {
    hook: KernelHook,
    reported: AtomicBool,
}

impl Loss {
    fn report(&self, port: &Port, bus: &Bus) {
        if !self.reported.swap(true, SeqCst) {
            crate::log::warn(&format!(
                "{}: bus file {} was truncated",
                port.name,
                bus.path().display()
            ));
            self.hook.sync(port.index);
        }
    }
}

struct Shmif {
    sender: u64,
    port: Arc<Port>,
    hook: KernelHook,
    reactor: Arc<Reactor>,
    notify: Arc<Notifiers>,
    /// Its reactor group: its bridge's index, or the routing group.
    group: u64,
    /// Link state is up: frames go out and come in.
    link_up: Arc<AtomicBool>,
    media_none: bool,
    attached: Option<Attached>,
}

impl Shmif {
    fn set_link(&mut self, ifs: &mut IfState, state: LinkState) {
        ifs.link_state = state;
        self.link_up.store(state == LinkState::Up, SeqCst);
    }

    /// The link state of an attached interface.
    fn attached_link(&self) -> LinkState {
        let lost = self.attached.as_ref().is_some_and(|a| a.io.is_none());
        if self.media_none || lost {
            LinkState::Down
        } else {
            LinkState::Up
        }
    }

    fn io(&self) -> Option<&Arc<ShmifIo>> {
        self.attached.as_ref().and_then(|a| a.io.as_ref())
    }

    fn stop_rx(&mut self) {
        if let Some(io) = self.io() {
            io.stop_rx();
        }
    }

    /// Let go of the bus: no poll of it runs on return.
    fn drop_io(&mut self) {
        self.port.set_transmit(None);
        if let Some(io) = self.attached.as_mut().and_then(|a| a.io.take()) {
            io.stop_rx();
            let reg = lock(&io.reg).take();
            drop(reg);
        }
    }

    fn detach(&mut self, ifs: &mut IfState) {
        self.drop_io();
        self.attached = None;
        self.set_link(ifs, LinkState::Unknown);
    }

    /// Attach a bus opened and initialised beforehand.
    fn attach_bus(&mut self, ifs: &mut IfState, path: &str, bus: Arc<Bus>) -> Result<(), Errno> {
        let loss = Arc::new(Loss {
            hook: self.hook.clone(),
            reported: AtomicBool::new(false),
        });
        let io = Arc::new(ShmifIo {
            bus,
            port: self.port.clone(),
            sender: self.sender,
            link_up: self.link_up.clone(),
            loss,
            pending: AtomicBool::new(false),
            contended: AtomicBool::new(false),
            backlog: Mutex::new(VecDeque::new()),
            queued: AtomicBool::new(false),
            receiving: AtomicBool::new(false),
            st: Mutex::new(IoState::default()),
            reg: Mutex::new(None),
        });
        let reg = self.reactor.register_in(self.group, None, io.clone())?;
        *lock(&io.reg) = Some(reg);
        self.port
            .set_transmit(Some(Arc::new(ShmifTx { io: io.clone() })));
        self.attached = Some(Attached {
            io: Some(io),
            linkstr: path.to_string(),
        });
        self.set_link(ifs, self.attached_link());
        Ok(())
    }

    /// Whether `linkstr` may attach the bus at `path` now. The client
    /// resolves a relative path (ifconfig does): one that arrives relative
    /// would be resolved against the daemon's cwd.
    fn may_attach(&self, ifs: &IfState, path: &str) -> Result<(), Errno> {
        if ifs.flags & iff::UP != 0 || self.io().is_some() {
            return Err(Errno::EBUSY);
        }
        if !Path::new(path).is_absolute() {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }
}

/// A kernel dropped with the interface still up (no destroy): its
/// reactor source (which holds the reactor and the port) goes too.
impl Drop for Shmif {
    fn drop(&mut self) {
        self.drop_io();
    }
}

impl Driver for Shmif {
    fn init(&mut self, ifs: &mut IfState) -> Result<(), Errno> {
        let io = self.io().ok_or(Errno::ENXIO)?.clone();
        io.start_rx(&self.notify, &self.reactor)?;
        ifs.set_flags(ifs.flags | iff::RUNNING);
        Ok(())
    }

    fn stop(&mut self, ifs: &mut IfState) {
        self.stop_rx();
        ifs.set_flags(ifs.flags & !iff::RUNNING);
    }

    fn set_linkstr(&mut self, ifs: &mut IfState, linkstr: Option<&str>) -> Result<(), Errno> {
        if ifs.flags & iff::UP != 0 {
            return Err(Errno::EBUSY);
        }
        let Some(path) = linkstr else {
            self.detach(ifs);
            return Ok(());
        };
        self.may_attach(ifs, path)?;
        let bus = Arc::new(crate::cred::as_requester(|| Bus::attach(Path::new(path)))?);
        self.attach_bus(ifs, path, bus)
    }

    /// Opening, mapping and initialising the file may wait for a dead
    /// peer's lock: done without the table lock.
    fn prepare_linkstr(
        &mut self,
        ifs: &mut IfState,
        linkstr: &str,
    ) -> Result<Option<LinkPrep>, Errno> {
        self.may_attach(ifs, linkstr)?;
        let path = linkstr.to_string();
        Ok(Some(Box::new(move || {
            // The client's file, opened with the client's rights.
            let bus = crate::cred::as_requester(|| Bus::attach(Path::new(&path)))?;
            let bus: Box<dyn Any + Send> = Box::new(Arc::new(bus));
            Ok(bus)
        })))
    }

    fn commit_linkstr(
        &mut self,
        ifs: &mut IfState,
        linkstr: &str,
        prepared: Box<dyn Any + Send>,
    ) -> Result<(), Errno> {
        // Up or attached meanwhile: the bus opened is let go of.
        self.may_attach(ifs, linkstr)?;
        let bus = prepared.downcast::<Arc<Bus>>().map_err(|_| Errno::EINVAL)?;
        self.attach_bus(ifs, linkstr, *bus)
    }

    fn linkstr(&self) -> Option<String> {
        self.attached.as_ref().map(|a| a.linkstr.clone())
    }

    fn set_bridge(&mut self, ifs: &mut IfState, bridge: Option<u32>) {
        self.group = io_group(bridge);
        if let Some(io) = self.io()
            && let Err(e) = io.move_to(&self.notify, &self.reactor, self.group)
        {
            crate::log::warn(&format!("{}: {e}", ifs.name));
        }
    }

    fn media(&self, ifs: &IfState) -> Option<IfMedia> {
        Some(IfMedia {
            current: if self.media_none {
                MEDIA_NONE
            } else {
                MEDIA_AUTO
            }
            .to_string(),
            active: Some(ifs.link_state == LinkState::Up),
            supported: vec![MEDIA_AUTO.to_string(), MEDIA_NONE.to_string()],
        })
    }

    fn set_media(&mut self, ifs: &mut IfState, media: &str) -> Result<(), Errno> {
        let word = media.trim().to_ascii_lowercase();
        let word = word.strip_prefix("ethernet ").unwrap_or(&word).trim();
        match word {
            "none" => {
                self.media_none = true;
                self.set_link(ifs, LinkState::Down);
            }
            "auto" | "autoselect" => {
                self.media_none = false;
                self.set_link(ifs, self.attached_link());
            }
            _ => return Err(Errno::ENXIO),
        }
        Ok(())
    }

    fn destroy(&mut self, ifs: &mut IfState) -> Result<(), Errno> {
        self.detach(ifs);
        Ok(())
    }

    /// The data path found the bus file cut short: stop using it (the
    /// receive thread and transmitter go, and with them the mapping) and
    /// take the link down. The linkstr stays on show until changed.
    fn sync(&mut self, ifs: &mut IfState) -> Vec<Request> {
        let lost = self.io().is_some_and(|io| io.bus.truncated());
        if lost {
            self.drop_io();
            ifs.set_flags(ifs.flags & !iff::RUNNING);
            self.set_link(ifs, self.attached_link());
        }
        Vec::new()
    }
}

/// The transmit side of an attached interface.
struct ShmifTx {
    io: Arc<ShmifIo>,
}

impl Transmit for ShmifTx {
    fn transmit(&self, frame: &Frame) -> Result<(), Errno> {
        let frame = frame.bytes();
        let io = &self.io;
        if !io.link_up.load(Relaxed) {
            return Err(Errno::ENETDOWN);
        }
        // The data plane queues a frame rather than wait for the lock (it
        // serves other interfaces); the host stack may wait, as a
        // blocking write would.
        let sent = if crate::reactor::on_reactor() {
            io.send_or_queue(frame)
        } else {
            io.bus.send(frame, io.sender).map(|()| true)
        };
        match sent {
            Ok(false) => {
                // Queued: the poll sends it, and looks for a dead holder.
                io.contended.store(true, SeqCst);
                io.wake();
                return Ok(());
            }
            // Counted as an output error by the port.
            Err(e) if io.bus.truncated() => {
                io.loss.report(&io.port, &io.bus);
                return Err(e);
            }
            Err(e) if e == Errno(libc::ENOBUFS) => {
                // Held by a peer (the queue full, or a host-stack send
                // waited too long): perhaps a dead one, which the timer sees.
                if !io.contended.swap(true, SeqCst) {
                    io.wake();
                }
                return Err(e);
            }
            Err(e) => return Err(e),
            Ok(true) => {}
        }
        // The ifnet peers at once from a reactor thread (a futex wake, and
        // only if one naps); the file write for everyone, possibly
        // coalesced, below. Other threads wake both ways together, at
        // most once per WAKE_COALESCE: our own reactor thread, napping on
        // the word, would be woken by every frame (measured: a paced
        // sender fell to half its rate).
        if crate::reactor::on_reactor() {
            io.bus.wakeup_ifnet();
        }
        // Release pairs with the poll's swap: the frame is in the ring
        // before the write that announces it.
        if !io.wakeup_here() && !io.pending.swap(true, SeqCst) {
            io.wake();
        }
        Ok(())
    }
}

/// An attached interface as its reactor thread sees it.
struct ShmifIo {
    bus: Arc<Bus>,
    port: Arc<Port>,
    /// Our sender id: our own frames are skipped.
    sender: u64,
    link_up: Arc<AtomicBool>,
    loss: Arc<Loss>,
    /// A frame was sent and not yet announced by a wakeup write.
    pending: AtomicBool,
    /// A send found the lock held: look for a dead holder.
    contended: AtomicBool,
    /// Frames of the data plane that found the lock held, oldest first
    /// (NetBSD's if_snd): sent by the poll, or dropped with the bus.
    backlog: Mutex<VecDeque<Vec<u8>>>,
    /// `backlog` is not empty: later frames queue behind it.
    queued: AtomicBool,
    /// The interface is up: frames are read.
    receiving: AtomicBool,
    st: Mutex<IoState>,
    reg: Mutex<Option<Registration>>,
}

#[derive(Default)]
struct IoState {
    last_wakeup: Option<Instant>,
    stale: StaleWatch,
    /// The lock was found held: look at it on a timer.
    watching_lock: bool,
    /// Receive passes in a row that found the lock held.
    busy_rx: u32,
    /// Flushes of the backlog in a row that found the lock held.
    busy_tx: u32,
    rx: Option<RxState>,
}

/// The receive side, while up.
struct RxState {
    /// Placed after the newest frame on the first poll after up.
    reader: Option<BusReader>,
    laps: u64,
    lost: bool,
    unlinked: bool,
    /// The inotify watch that wakes us.
    watch: Option<(Arc<Notify>, WatchDescriptor)>,
}

/// How a receive pass ended.
enum Rx {
    Done,
    /// The batch limit: more to read.
    More,
    /// The lock was held: try again soon.
    Busy,
}

impl ShmifIo {
    /// The wakeup write for a frame just sent, made at once when the
    /// sender is the thread that polls this source, or no reactor thread
    /// (the host stack, a library caller: no hand-off to the reactor and
    /// no turn of it before the peers hear of it), and none was made in
    /// the last [`WAKE_COALESCE`]. `false`: left to the poll (coalesced).
    fn wakeup_here(&self) -> bool {
        let reactor = crate::reactor::on_reactor();
        if reactor && !lock(&self.reg).as_ref().is_some_and(|r| r.is_current()) {
            return false;
        }
        let Ok(mut st) = self.st.try_lock() else {
            return false;
        };
        let now = Instant::now();
        if st.last_wakeup.is_some_and(|t| now < t + WAKE_COALESCE) || self.pending.load(SeqCst) {
            return false;
        }
        st.last_wakeup = Some(now);
        drop(st);
        // A reactor sender woke the ifnet peers already (see transmit).
        let _ = if reactor {
            self.bus.wakeup_file()
        } else {
            self.bus.wakeup()
        };
        true
    }

    /// A data-plane send: on the bus at once when nothing waits before it
    /// and the lock comes within [`bus::LOCK_BRIEFLY`], else (`Ok(false)`)
    /// queued behind what waits, for the poll. ENOBUFS when the queue is
    /// full.
    fn send_or_queue(&self, frame: &[u8]) -> Result<bool, Errno> {
        if !self.queued.load(SeqCst) {
            match self.bus.try_send(frame, self.sender) {
                Err(e) if e == Errno(libc::ENOBUFS) && !self.bus.truncated() => {}
                r => return r.map(|()| true),
            }
        }
        Bus::fits(frame)?;
        let mut q = lock(&self.backlog);
        if q.len() >= BACKLOG_MAX {
            return Err(Errno(libc::ENOBUFS));
        }
        q.push_back(frame.to_vec());
        self.queued.store(true, SeqCst);
        Ok(false)
    }

    /// Send the frames that wait, to be announced by the poll. ENOBUFS:
    /// the lock is still held, try again; any other error: the bus is
    /// gone, and they are dropped as output errors.
    fn flush(&self) -> Result<(), Errno> {
        let mut q = lock(&self.backlog);
        let waiting = q.len();
        let r = self.bus.try_send_queue(&mut q, self.sender);
        if r.is_err_and(|e| e != Errno(libc::ENOBUFS)) {
            let lost = q.len() as u64;
            self.port.counters.oerrors.fetch_add(lost, Relaxed);
            q.clear();
        }
        self.queued.store(!q.is_empty(), SeqCst);
        if q.len() < waiting {
            self.bus.wakeup_ifnet();
            self.pending.store(true, SeqCst);
        }
        r
    }

    fn wake(&self) {
        if let Some(r) = lock(&self.reg).as_ref() {
            r.wake();
        }
    }

    /// Start receiving (up): on the reactor thread's inotify instance.
    fn start_rx(self: &Arc<Self>, notify: &Notifiers, reactor: &Arc<Reactor>) -> Result<(), Errno> {
        let mut st = lock(&self.st);
        if st.rx.is_some() {
            return Ok(());
        }
        let worker = lock(&self.reg)
            .as_ref()
            .map(|r| r.worker())
            .ok_or(Errno::ENXIO)?;
        let n = notify.on(reactor, worker)?;
        let wd = n.add(self)?;
        // Reset on every up, after the newest frame. (NetBSD reads that
        // frame again; but a frame from before the up, such as a dead
        // predecessor's DAD probe, must not reach a tentative address.)
        // Placed now, so that what is sent after the up is read; if the
        // lock is busy, by the first poll.
        let reader = self
            .bus
            .try_lock_briefly()
            .map(|g| BusReader::after(&self.bus, &g));
        st.rx = Some(RxState {
            reader,
            laps: reader.map_or(0, |r| r.laps),
            lost: false,
            unlinked: false,
            watch: Some((n, wd)),
        });
        self.receiving.store(true, SeqCst);
        drop(st);
        self.set_nap(true);
        self.wake();
        Ok(())
    }

    /// Have the reactor thread nap on the bus's futex word (see
    /// [`bus::WakeWord`]) while receiving, or not.
    fn set_nap(&self, on: bool) {
        let word = self
            .bus
            .wake_word()
            .filter(|_| on)
            .map(|w| w.clone() as Arc<dyn NapWord>);
        if let Some(r) = lock(&self.reg).as_ref() {
            r.set_nap(word);
        }
    }

    /// Poll on the thread of `group` from now on.
    fn move_to(
        self: &Arc<Self>,
        notify: &Notifiers,
        reactor: &Arc<Reactor>,
        group: u64,
    ) -> Result<(), Errno> {
        let new = reactor.register_in(group, None, self.clone())?;
        let worker = new.worker();
        let old = lock(&self.reg).replace(new);
        drop(old);
        let mut st = lock(&self.st);
        if let Some(rx) = &mut st.rx {
            if let Some((n, wd)) = rx.watch.take() {
                n.remove(wd, self);
            }
            let n = notify.on(reactor, worker)?;
            let wd = n.add(self)?;
            rx.watch = Some((n, wd));
        }
        let receiving = st.rx.is_some();
        drop(st);
        self.set_nap(receiving);
        self.wake();
        Ok(())
    }

    /// Stop receiving: no frame of this bus is handed on after return.
    fn stop_rx(&self) {
        self.receiving.store(false, SeqCst);
        self.set_nap(false);
        let rx = lock(&self.st).rx.take();
        if let Some(RxState {
            watch: Some((n, wd)),
            ..
        }) = rx
        {
            n.remove(wd, self);
            // The wakeup NetBSD writes when an interface stops.
            let _ = self.bus.wakeup();
        }
    }

    /// Read what is new on the bus and hand it on.
    fn receive(&self, rx: &mut RxState, batch: &mut Batch) -> Rx {
        let (bus, port) = (&self.bus, &self.port);
        let intact = bus.intact();
        if !rx.unlinked && bus.unlinked() {
            // Not an error: the attached peers keep talking. Say why a
            // newcomer on the same path does not hear them.
            rx.unlinked = true;
            crate::log::warn(&format!(
                "{}: bus file {} was removed; attached peers keep this bus, new ones get another",
                port.name,
                bus.path().display()
            ));
        }
        // Found short here, or cut short under a read: never touch it
        // again, and wait for the driver to stop us.
        if !intact {
            if !rx.lost {
                rx.lost = true;
                port.counters.ierrors.fetch_add(1, Relaxed);
                self.loss.report(port, bus);
            }
            return Rx::Done;
        }
        let reader = match &mut rx.reader {
            Some(r) => r,
            None => {
                // Reset on every up, after the newest frame (see start_rx).
                let Some(g) = bus.try_lock_briefly() else {
                    return Rx::Busy;
                };
                let r = BusReader::after(bus, &g);
                drop(g);
                rx.laps = r.laps;
                rx.reader.insert(r)
            }
        };
        for _ in 0..RX_BATCHES {
            let r = reader.try_recv_batch(bus, batch, |h| h.sender != self.sender);
            if reader.laps != rx.laps {
                port.counters
                    .iqdrops
                    .fetch_add(reader.laps - rx.laps, Relaxed);
                rx.laps = reader.laps;
                crate::log::debug(&format!("{}: lapped on the bus, frames lost", port.name));
            }
            if batch.runts > 0 {
                port.counters
                    .ierrors
                    .fetch_add(u64::from(batch.runts), Relaxed);
            }
            // shmif's filter: link down drops everything; then our MAC,
            // group addresses, or promiscuous mode.
            if self.link_up.load(Relaxed) && self.receiving.load(Relaxed) {
                let promisc = port.flags() & iff::PROMISC != 0;
                // The bus hands over no runts (counted above).
                let frames = batch
                    .frames
                    .iter()
                    .filter_map(|f| Frame::new(batch.frame(f)));
                for frame in frames {
                    if promisc || frame.is_multicast() || port.is_own_mac(&frame.dst()) {
                        port.input(&frame);
                    }
                }
            }
            match r {
                Recv::Skipped => {}
                Recv::Busy => return Rx::Busy,
                Recv::Garbage => {
                    port.counters.ierrors.fetch_add(1, Relaxed);
                    warn_limited(&format!(
                        "{}: garbage frame on bus {}, skipped",
                        port.name,
                        bus.path().display()
                    ));
                    return Rx::Done;
                }
                Recv::Corrupt => {
                    port.counters.ierrors.fetch_add(1, Relaxed);
                    warn_limited(&format!(
                        "{}: bus {} header corrupt",
                        port.name,
                        bus.path().display()
                    ));
                    return Rx::Done;
                }
                _ => return Rx::Done,
            }
        }
        Rx::More
    }
}

impl NapWord for bus::WakeWord {
    fn word(&self) -> &std::sync::atomic::AtomicU32 {
        self.seq()
    }

    fn waiters(&self) -> &std::sync::atomic::AtomicU32 {
        bus::WakeWord::waiters(self)
    }
}

/// `t` rounded up to a multiple of 10 ms since the first call: the safety
/// polls of many interfaces fall due together, one timer wakeup for all.
fn coarse(t: Instant) -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    const SLOT: u128 = 10_000_000;
    let epoch = *EPOCH.get_or_init(Instant::now);
    let ns = t.saturating_duration_since(epoch).as_nanos();
    let up = ns.div_ceil(SLOT) * SLOT;
    epoch + Duration::from_nanos(u64::try_from(up).unwrap_or(u64::MAX))
}

/// When to look at a held lock again, after `tries` in a row found it
/// held: a live holder lets go within microseconds, a preempted one later.
fn retry(tries: u32) -> Duration {
    let us = 1u64 << tries.min(20);
    Duration::from_micros(us / 16).min(RX_RETRY)
}

fn earliest(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl ShmifIo {
    /// Announce frames sent: at most one wakeup write per WAKE_COALESCE,
    /// else a deadline for the next.
    fn announce(&self, st: &mut IoState, next: &mut Option<Instant>) {
        if !self.pending.load(SeqCst) {
            return;
        }
        let now = Instant::now();
        match st.last_wakeup {
            Some(t) if now < t + WAKE_COALESCE => *next = earliest(*next, t + WAKE_COALESCE),
            _ => {
                self.pending.swap(false, SeqCst);
                let _ = self.bus.wakeup();
                st.last_wakeup = Some(now);
            }
        }
    }
}

impl Handler for ShmifIo {
    fn poll(&self, now: Instant) -> Option<Instant> {
        let mut st = lock(&self.st);
        let mut next = None;
        let mut busy = self.contended.swap(false, SeqCst);
        if self.queued.load(SeqCst) {
            st.busy_tx = match self.flush() {
                Err(e) if e == Errno(libc::ENOBUFS) => {
                    busy = true;
                    next = Some(now + retry(st.busy_tx));
                    st.busy_tx.saturating_add(1)
                }
                _ => 0,
            };
        }
        // Frames sent by other threads first: a receive pass (over a busy
        // bus, our own frames too) must not delay their wakeup.
        self.announce(&mut st, &mut next);
        if let Some(mut rx) = st.rx.take() {
            let r = BATCH.with(|b| self.receive(&mut rx, &mut b.borrow_mut()));
            st.rx = Some(rx);
            st.busy_rx = match r {
                Rx::Busy => st.busy_rx.saturating_add(1),
                _ => 0,
            };
            next = earliest(
                next,
                match r {
                    Rx::Done => coarse(now + RX_POLL),
                    Rx::More => now,
                    Rx::Busy => {
                        busy = true;
                        now + retry(st.busy_rx)
                    }
                },
            );
        }
        // A lock that stands still: stolen here, off the data path, once
        // it has stood still long enough; looked at again until released.
        // Again after the receive: the answers it gave (a host on this
        // interface replies on this thread) go in this poll.
        self.announce(&mut st, &mut next);
        if busy || st.watching_lock {
            let IoState { stale, .. } = &mut *st;
            st.watching_lock = self.bus.check_stale(stale, now);
            if st.watching_lock {
                next = earliest(next, now + STALE_POLL);
            }
        }
        next
    }
}

/// Last warning time, so that a broken bus does not flood the log.
static WARNED: Mutex<Option<std::time::Instant>> = Mutex::new(None);

fn warn_limited(msg: &str) {
    let mut w = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if w.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
        *w = Some(std::time::Instant::now());
        crate::log::warn(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloner::Cloners;
    use crate::drivers::lo::LoClone;
    use crate::ioctl::{IfStatus, Reply, Request};
    use crate::kernel::Kernel;

    fn kernel() -> Kernel {
        let classes: Vec<Box<dyn IfClone>> = vec![Box::new(LoClone), Box::<ShmifClone>::default()];
        Kernel::new(KernelEnv::default(), Cloners::new(classes))
    }

    fn status(k: &Kernel, name: &str) -> IfStatus {
        match k.ioctl(Request::GetIfConf {
            name: Some(name.into()),
        }) {
            Ok(Reply::IfConf(mut v)) => v.remove(0),
            r => panic!("{r:?}"),
        }
    }

    fn linkstr(k: &Kernel, name: &str, l: Option<&str>) -> Result<Reply, Errno> {
        k.ioctl(Request::SetLinkStr {
            name: name.into(),
            linkstr: l.map(String::from),
        })
    }

    fn flags(k: &Kernel, name: &str, f: u32) -> Result<Reply, Errno> {
        k.ioctl(Request::SetIfFlags {
            name: name.into(),
            flags: f,
        })
    }

    fn media(k: &Kernel, name: &str, m: &str) -> Result<Reply, Errno> {
        k.ioctl(Request::SetIfMedia {
            name: name.into(),
            media: m.into(),
        })
    }

    #[test]
    fn create_attach_up_down_destroy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus");
        let p = path.to_str().unwrap();
        let k = kernel();
        k.ioctl(Request::IfCreate {
            name: "shmif0".into(),
        })
        .unwrap();
        let s = status(&k, "shmif0");
        assert_eq!(s.flags, 0x8802);
        assert_eq!(s.mtu, 1500);
        assert_eq!(&s.lladdr.unwrap()[..2], &[0xb2, 0xa0]);
        assert_eq!(s.link_state, LinkState::Unknown);
        assert_eq!(s.linkstr, None);
        assert_eq!(flags(&k, "shmif0", iff::UP), Err(Errno::ENXIO));
        linkstr(&k, "shmif0", Some(p)).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            bus::BUS_SIZE as u64
        );
        let s = status(&k, "shmif0");
        assert_eq!(s.linkstr.as_deref(), Some(p));
        assert_eq!(s.link_state, LinkState::Up);
        let m = s.media.unwrap();
        assert_eq!((m.current.as_str(), m.active), (MEDIA_AUTO, Some(true)));
        assert_eq!(linkstr(&k, "shmif0", Some(p)), Err(Errno::EBUSY));
        flags(&k, "shmif0", iff::UP).unwrap();
        assert_eq!(status(&k, "shmif0").flags, 0x8843);
        assert_eq!(linkstr(&k, "shmif0", None), Err(Errno::EBUSY));
        media(&k, "shmif0", "none").unwrap();
        let s = status(&k, "shmif0");
        assert_eq!(s.link_state, LinkState::Down);
        assert_eq!(s.media.unwrap().current, MEDIA_NONE);
        assert_eq!(k.send("shmif0", &[0xff; 60]), Err(Errno::ENETDOWN));
        media(&k, "shmif0", "auto").unwrap();
        assert_eq!(status(&k, "shmif0").link_state, LinkState::Up);
        k.send("shmif0", &[0xff; 60]).unwrap();
        assert_eq!(k.send("shmif0", &[0xff; 1515]), Err(Errno::EMSGSIZE));
        assert_eq!(k.send("shmif0", &[0xff; 13]), Err(Errno::EINVAL));
        // Up and down keep the link state.
        flags(&k, "shmif0", 0).unwrap();
        assert_eq!(status(&k, "shmif0").link_state, LinkState::Up);
        linkstr(&k, "shmif0", None).unwrap();
        assert_eq!(status(&k, "shmif0").link_state, LinkState::Unknown);
        linkstr(&k, "shmif0", Some(p)).unwrap();
        flags(&k, "shmif0", iff::UP).unwrap();
        // Destroy while up.
        k.ioctl(Request::IfDestroy {
            name: "shmif0".into(),
        })
        .unwrap();
        assert!(k.port("shmif0").is_none());
    }

    #[test]
    fn not_a_bus_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("precious");
        std::fs::write(&path, b"my thesis, chapter 1").unwrap();
        let k = kernel();
        k.ioctl(Request::IfCreate {
            name: "shmif0".into(),
        })
        .unwrap();
        assert_eq!(linkstr(&k, "shmif0", path.to_str()), Err(Errno::ENOEXEC));
        assert_eq!(std::fs::read(&path).unwrap(), b"my thesis, chapter 1");
        assert_eq!(Errno::ENOEXEC.to_string(), "Exec format error");
        // A byte-swapped bus is not ours to write either.
        let mut img = vec![0u8; bus::BUS_SIZE];
        img[0..4].copy_from_slice(&bus::MAGIC.swap_bytes().to_ne_bytes());
        std::fs::write(&path, &img).unwrap();
        assert_eq!(linkstr(&k, "shmif0", path.to_str()), Err(Errno::ENOEXEC));
        assert_eq!(std::fs::read(&path).unwrap(), img);
    }

    /// The next test frame (ethertype 0x88b5), passing over what a kernel
    /// sends of its own accord (neighbour discovery on up).
    fn next_ours(
        rx: &crate::port::FrameReceiver,
        t: Duration,
    ) -> Result<Vec<u8>, std::sync::mpsc::RecvTimeoutError> {
        loop {
            let f = rx.recv_timeout(t)?;
            if f[12..14] == [0x88, 0xb5] {
                return Ok(f);
            }
        }
    }

    /// shmif0 of `k`, up on the bus at `p`.
    fn up_on(k: &Kernel, p: &Path) {
        k.ioctl(Request::IfCreate {
            name: "shmif0".into(),
        })
        .unwrap();
        linkstr(k, "shmif0", p.to_str()).unwrap();
        flags(k, "shmif0", iff::UP).unwrap();
    }

    fn frame(dst: [u8; 6], src: [u8; 6], tag: u8) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14] = tag;
        f
    }

    #[test]
    fn two_kernels_one_bus() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bus");
        let ks: Vec<Kernel> = (0..2).map(|_| kernel()).collect();
        let mut rxs = Vec::new();
        let mut macs = Vec::new();
        for k in &ks {
            up_on(k, &p);
            rxs.push(k.listen("shmif0").unwrap());
            macs.push(status(k, "shmif0").lladdr.unwrap());
        }
        let bcast = [0xff; 6];
        ks[0].send("shmif0", &frame(bcast, macs[0], 1)).unwrap();
        ks[0].send("shmif0", &frame(macs[1], macs[0], 2)).unwrap();
        ks[0]
            .send("shmif0", &frame([0xb2, 0xa0, 9, 9, 9, 9], macs[0], 3))
            .unwrap();
        ks[1].send("shmif0", &frame(macs[0], macs[1], 4)).unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(next_ours(&rxs[1], t).unwrap()[14], 1);
        assert_eq!(next_ours(&rxs[1], t).unwrap()[14], 2);
        assert_eq!(next_ours(&rxs[0], t).unwrap()[14], 4);
        // Nobody got its own frames, nor the unicast to a stranger.
        let quiet = Duration::from_millis(200);
        assert!(next_ours(&rxs[0], quiet).is_err());
        assert!(next_ours(&rxs[1], quiet).is_err());
        let s1 = status(&ks[1], "shmif0");
        assert!(s1.data.ipackets >= 2);
        assert!(s1.data.opackets >= 1);
        // Promiscuous: the stranger's frame arrives too.
        flags(&ks[1], "shmif0", iff::UP | iff::PROMISC).ok();
        ks[1]
            .port("shmif0")
            .unwrap()
            .set_flags(iff::UP | iff::RUNNING | iff::PROMISC);
        ks[0]
            .send("shmif0", &frame([0xb2, 0xa0, 9, 9, 9, 9], macs[0], 5))
            .unwrap();
        assert_eq!(next_ours(&rxs[1], t).unwrap()[14], 5);
    }

    /// Sends a burst from a reactor thread, as the data plane does.
    struct Burst {
        port: Arc<Port>,
        frames: Mutex<Vec<Vec<u8>>>,
        done: std::sync::mpsc::Sender<Vec<Result<(), Errno>>>,
    }

    impl Handler for Burst {
        fn poll(&self, _: Instant) -> Option<Instant> {
            let frames = std::mem::take(&mut *lock(&self.frames));
            if !frames.is_empty() {
                let sent = frames
                    .iter()
                    .map(|f| self.port.output(&Frame::new(f).unwrap()))
                    .collect();
                self.done.send(sent).unwrap();
            }
            None
        }
    }

    #[test]
    fn data_plane_frames_wait_for_a_held_lock_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bus");
        let reactor = Reactor::new(1).unwrap();
        let env = KernelEnv {
            reactor: Some(reactor.clone()),
            no_auto_linklocal: true,
            ..KernelEnv::default()
        };
        let classes: Vec<Box<dyn IfClone>> = vec![Box::new(LoClone), Box::<ShmifClone>::default()];
        let ks = [Kernel::new(env, Cloners::new(classes)), kernel()];
        for k in &ks {
            up_on(k, &p);
        }
        let rx = ks[1].listen("shmif0").unwrap();
        let mac0 = status(&ks[0], "shmif0").lladdr.unwrap();
        let peer = Bus::attach(&p).unwrap();
        let held = peer.lock();
        // More than the queue holds, sent while a peer holds the lock.
        let frames = (0..BACKLOG_MAX as u16 + 44).map(|n| {
            let mut f = frame([0xff; 6], mac0, 0);
            f[14..16].copy_from_slice(&n.to_be_bytes());
            f
        });
        let (done, results) = std::sync::mpsc::channel();
        let burst = Arc::new(Burst {
            port: ks[0].port("shmif0").unwrap(),
            frames: Mutex::new(frames.collect()),
            done,
        });
        let reg = reactor.register(None, burst).unwrap();
        reg.wake();
        let sent = results.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(sent[..BACKLOG_MAX].iter().all(Result::is_ok));
        assert!(
            sent[BACKLOG_MAX..]
                .iter()
                .all(|r| *r == Err(Errno(libc::ENOBUFS)))
        );
        // The poll finds the lock held a few times, then it is let go.
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
        for n in 0..BACKLOG_MAX as u16 {
            let f = next_ours(&rx, Duration::from_secs(5)).unwrap();
            assert_eq!(f[14..16], n.to_be_bytes());
        }
        assert!(next_ours(&rx, Duration::from_millis(200)).is_err());
        let d = status(&ks[0], "shmif0").data;
        assert_eq!((d.opackets, d.oerrors), (BACKLOG_MAX as u64, 44));
        // Nothing waits now: the next frame goes at once.
        let mut f = frame([0xff; 6], mac0, 0);
        f[14..16].copy_from_slice(&999u16.to_be_bytes());
        ks[0].send("shmif0", &f).unwrap();
        assert_eq!(
            next_ours(&rx, Duration::from_secs(5)).unwrap()[14..16],
            999u16.to_be_bytes()
        );
    }

    #[test]
    fn garbage_on_the_bus_is_dropped_and_the_link_keeps_working() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bus");
        let ks: Vec<Kernel> = (0..2).map(|_| kernel()).collect();
        for k in &ks {
            up_on(k, &p);
        }
        let rx = ks[1].listen("shmif0").unwrap();
        let mac0 = status(&ks[0], "shmif0").lladdr.unwrap();
        ks[0].send("shmif0", &frame([0xff; 6], mac0, 1)).unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(next_ours(&rx, t).unwrap()[14], 1);
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        // Wild offsets in the header, then a header with an impossible
        // length where the next frame goes.
        f.write_at(&0xffff_fff0u32.to_ne_bytes(), 20).unwrap();
        f.write_at(&0x0012_3456u32.to_ne_bytes(), 16).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        f.write_at(&0x400u32.to_ne_bytes(), 20).unwrap();
        f.write_at(&bus::DATASIZE.to_ne_bytes(), 16).unwrap();
        f.write_at(&0xdead_beefu32.to_ne_bytes(), 32 + 0x400)
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // The writer steps over the garbage as every peer would; after a
        // resync the reader gets frames again.
        let mut got = Vec::new();
        for tag in 2..40u8 {
            ks[0].send("shmif0", &frame([0xff; 6], mac0, tag)).unwrap();
            std::thread::sleep(Duration::from_millis(5));
            while let Ok(f) = next_ours(&rx, Duration::ZERO) {
                got.push(f[14]);
            }
        }
        while let Ok(f) = next_ours(&rx, Duration::from_millis(500)) {
            got.push(f[14]);
        }
        assert!(got.contains(&39), "{got:?}");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        assert!(status(&ks[1], "shmif0").data.ierrors > 0);
    }
}
