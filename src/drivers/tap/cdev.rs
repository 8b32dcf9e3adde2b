//! The tap control device: a Unix stream socket through which one client
//! program exchanges frames with the interface. Its listening socket and
//! its client are reactor sources: polled, it accepts clients, reads their
//! frames into `Port::input` and writes the frames the interface
//! transmits, queued by [`Softc`]'s `Transmit`.
//!
//! Exclusive open: while a client is attached, another one is accepted and
//! closed at once, without a byte written (it reads EOF).

use super::framing::{Deframer, Record, TxRing};
use crate::cloner::KernelHook;
use crate::drivers::gro::Gro;
use crate::frame::Frame;
use crate::ioctl::Errno;
use crate::port::{Port, Transmit};
use crate::reactor::{Deferred, Handler, Reactor, Registration, io_group};
use nix::sys::socket::{MsgFlags, send};
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Bytes queued for a client before frames are dropped. A switch port
/// must absorb a burst of its peer's TCP window: one 64 KiB super-frame
/// from a virt becomes ~44 frames at once, and 256 KiB (5 of them) cost a
/// guest 1-6 % of its frames downstream. Pages are touched only as used.
pub const TAP_QUEUE_BYTES: usize = 4 << 20;

/// Bounds of `ifconfig tapN txqueue`: room for a jumbo frame at least.
pub const TAP_QUEUE_MIN: usize = 64 << 10;
pub const TAP_QUEUE_MAX: usize = 256 << 20;

/// Ethernet header length: the least a frame has, and MTU + this the most.
const ETHER_HDR_LEN: usize = 14;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `Softc::events` bits: what happened since the kernel last looked.
pub const EV_OPENED: u32 = 1;
pub const EV_CLOSED: u32 = 2;

/// A tap's state shared by the control plane, the transmitter and its thread.
pub struct Softc {
    pub name: String,
    pub port: Arc<Port>,
    pub hook: KernelHook,
    pub mtu: AtomicU32,
    reactor: Arc<Reactor>,
    /// Reactor group of its sources.
    group: AtomicU64,
    /// The device, touched by its sources' polls (on one reactor thread).
    dev: Mutex<Dev>,
    /// The listening socket's source, while the device exists.
    reg: Mutex<Option<Registration>>,
    /// The handler of the client's source.
    me: std::sync::Weak<Softc>,
    /// Frames for the client; `None` while no client is attached, so that
    /// the interface's output is dropped (and counted) rather than queued.
    txq: Mutex<Option<TxRing>>,
    /// A ring kept between clients, to allocate it once.
    spare: Mutex<Option<TxRing>>,
    /// The size of the client's ring (`ifconfig tapN txqueue`).
    queue_bytes: AtomicUsize,
    /// A client handed over by the cloning socket.
    handoff: Mutex<Option<UnixStream>>,
    attached: AtomicBool,
    /// The attached client's own socket address, when it has one (an
    /// abstract name, see `super::connect`): what TAPGIFNAME matches.
    peer: Mutex<Option<Vec<u8>>>,
    pub events: AtomicU32,
    /// A bridge a new clone is to join (the class's template), taken by
    /// the next `Driver::sync`.
    pub join: Mutex<Option<String>>,
}

impl Softc {
    /// A device listening on `listener`, its sources on `reactor`.
    pub fn start(
        name: &str,
        port: Arc<Port>,
        hook: KernelHook,
        mtu: u32,
        listener: UnixListener,
        reactor: &Arc<Reactor>,
    ) -> Result<Arc<Softc>, Errno> {
        let sc = Arc::new_cyclic(|me| Softc {
            me: me.clone(),
            name: name.to_string(),
            group: AtomicU64::new(io_group(None)),
            port,
            hook,
            mtu: AtomicU32::new(mtu),
            reactor: reactor.clone(),
            dev: Mutex::new(Dev {
                listener,
                client: None,
                busy_logged: None,
                busy_quiet: 0,
            }),
            reg: Mutex::new(None),
            txq: Mutex::new(None),
            spare: Mutex::new(Some(TxRing::new(TAP_QUEUE_BYTES))),
            queue_bytes: AtomicUsize::new(TAP_QUEUE_BYTES),
            handoff: Mutex::new(None),
            attached: AtomicBool::new(false),
            peer: Mutex::new(None),
            events: AtomicU32::new(0),
            join: Mutex::new(None),
        });
        let reg = {
            let dev = lock(&sc.dev);
            reactor.register_in(
                sc.group.load(Relaxed),
                Some(dev.listener.as_fd()),
                sc.clone(),
            )?
        };
        *lock(&sc.reg) = Some(reg);
        Ok(sc)
    }

    /// Poll its sources on the thread of `group` from now on. (Each source
    /// goes before it comes back: a descriptor is in an epoll set once.)
    pub fn move_to(self: &Arc<Self>, group: u64) -> Result<(), Errno> {
        self.group.store(group, Relaxed);
        let old = lock(&self.reg).take();
        drop(old);
        let new = {
            let dev = lock(&self.dev);
            self.reactor
                .register_in(group, Some(dev.listener.as_fd()), self.clone())?
        };
        *lock(&self.reg) = Some(new);
        // Its poll waits for the device lock: the old source goes without it.
        let client = lock(&self.dev).client.take();
        let Some(Client {
            reg,
            conn,
            rx,
            gro,
            writable,
        }) = client
        else {
            return Ok(());
        };
        drop(reg);
        let reg = match self
            .reactor
            .register_in(group, Some(conn.as_fd()), self.clone())
        {
            Ok(r) => r,
            Err(e) => {
                self.detached(&rx);
                return Err(e.into());
            }
        };
        if writable {
            let _ = reg.set_writable(true);
        }
        lock(&self.dev).client = Some(Client {
            reg,
            conn,
            rx,
            gro,
            writable,
        });
        self.wake();
        Ok(())
    }

    fn wake(&self) {
        if let Some(r) = lock(&self.reg).as_ref() {
            r.wake();
        }
    }

    /// Stop the device: its sources are gone on return; a client attached
    /// is closed, as on its last close.
    pub fn stop(&self) {
        let reg = lock(&self.reg).take();
        drop(reg);
        let client = lock(&self.dev).client.take();
        if let Some(c) = client {
            drop(c.reg);
            self.detached(&c.rx);
        }
    }

    pub fn attached(&self) -> bool {
        self.attached.load(Relaxed)
    }

    /// The attached client's socket address, if it has one.
    pub fn peer(&self) -> Option<Vec<u8>> {
        self.peer.lock().unwrap().clone()
    }

    /// Give the thread a client from the cloning socket.
    pub fn hand_over(&self, conn: UnixStream) {
        *lock(&self.handoff) = Some(conn);
        self.wake();
    }

    /// Give the thread a client from the cloning socket if the device is
    /// unused: no client attached or handed over. Under the device lock,
    /// which the thread holds from taking a client to attaching it.
    pub fn hand_over_if_unused(&self, conn: UnixStream) -> Result<(), UnixStream> {
        let dev = lock(&self.dev);
        let mut handoff = lock(&self.handoff);
        if dev.client.is_some() || handoff.is_some() {
            return Err(conn);
        }
        *handoff = Some(conn);
        drop((handoff, dev));
        self.wake();
        Ok(())
    }

    /// Throw queued frames away (the interface went down).
    pub fn flush(&self) {
        if let Some(q) = self.txq.lock().unwrap().as_mut() {
            q.clear();
        }
    }

    /// Bytes queued for a client at most.
    pub fn queue_bytes(&self) -> usize {
        self.queue_bytes.load(Relaxed)
    }

    /// Resize the client's queue, at once if one is attached (keeping what
    /// it holds: EBUSY when that is more than `bytes`).
    pub fn set_queue_bytes(&self, bytes: usize) -> Result<(), Errno> {
        if !(TAP_QUEUE_MIN..=TAP_QUEUE_MAX).contains(&bytes) {
            return Err(Errno::EINVAL);
        }
        if let Some(q) = self.txq.lock().unwrap().as_mut() {
            q.resize(bytes)?;
        }
        *self.spare.lock().unwrap() = None;
        self.queue_bytes.store(bytes, Relaxed);
        Ok(())
    }

    fn open(&self) {
        let bytes = self.queue_bytes();
        let ring = self
            .spare
            .lock()
            .unwrap()
            .take()
            .filter(|r| r.capacity() == bytes)
            .unwrap_or_else(|| TxRing::new(bytes));
        *self.txq.lock().unwrap() = Some(ring);
        self.attached.store(true, Relaxed);
        self.notify(EV_OPENED);
    }

    fn close(&self) {
        if let Some(mut ring) = self.txq.lock().unwrap().take() {
            ring.clear();
            *self.spare.lock().unwrap() = Some(ring);
        }
        self.attached.store(false, Relaxed);
        *self.peer.lock().unwrap() = None;
        self.notify(EV_CLOSED);
    }

    fn notify(&self, ev: u32) {
        self.events.fetch_or(ev, AcqRel);
        self.hook.sync(self.port.index);
    }
}

/// `if_start`: queue for the client; never waits for it.
pub struct TapTx(pub Arc<Softc>);

impl Transmit for TapTx {
    fn transmit(&self, frame: &Frame) -> Result<(), Errno> {
        let sc = &self.0;
        let mut q = sc.txq.lock().unwrap();
        // No client: dropped, and counted as an output error by the port.
        let ring = q.as_mut().ok_or(Errno::EHOSTDOWN)?;
        let was_empty = ring.is_empty();
        ring.push(frame.bytes())?;
        drop(q);
        // On a reactor thread the queue is written at the end of its turn,
        // by that thread: no wakeup of the tap's source (another thread's,
        // or another turn of this one) before the client hears of it.
        if was_empty && !sc.me.upgrade().is_some_and(|me| crate::reactor::defer(me)) {
            sc.wake();
        }
        Ok(())
    }
}

/// The device as its polls see it.
struct Dev {
    listener: UnixListener,
    client: Option<Client>,
    /// When "busy" was last logged, and the clients closed since unlogged.
    busy_logged: Option<Instant>,
    busy_quiet: u32,
}

/// At most one "busy" line per this interval (ratecheck(9)'s way): a
/// QEMU with `reconnect-ms` retries against a busy device forever.
const BUSY_LOG_INTERVAL: Duration = Duration::from_secs(10);

struct Client {
    /// First, so that it goes before the socket it watches.
    reg: Registration,
    conn: UnixStream,
    rx: Deframer,
    /// The client's TCP segments of one turn, coalesced.
    gro: Gro,
    /// Polled for POLLOUT too: output is queued.
    writable: bool,
}

impl Deferred for Softc {
    /// The frames queued in a reactor turn, written at its end. A device
    /// busy in its own poll, or a client gone, is left to that poll.
    fn run(&self) {
        let Ok(mut dev) = self.dev.try_lock() else {
            return self.wake();
        };
        let Some(c) = dev.client.as_mut() else { return };
        if !self.send_queued(c) {
            drop(dev);
            self.wake();
        }
    }
}

impl Handler for Softc {
    fn poll(&self, _now: Instant) -> Option<Instant> {
        let mut dev = lock(&self.dev);
        let handed = lock(&self.handoff).take();
        if let Some(conn) = handed {
            self.attach(&mut dev, conn);
        }
        while let Ok((conn, _)) = dev.listener.accept() {
            self.attach(&mut dev, conn);
        }
        let c = dev.client.as_mut()?;
        let mut keep = receive(self, &c.conn, &mut c.rx, &mut c.gro);
        c.gro.flush(&mut |f| self.port.input(f));
        if keep {
            keep = self.send_queued(c);
        }
        if !keep && let Some(c) = dev.client.take() {
            // On this thread: dropping its source does not wait.
            drop(c.reg);
            self.detached(&c.rx);
        }
        None
    }
}

impl Softc {
    /// Write what is queued for client `c`, and poll it for POLLOUT while
    /// some is left; false when the client is gone.
    fn send_queued(&self, c: &mut Client) -> bool {
        let keep = transmit(self, &c.conn);
        let want_out = keep && lock(&self.txq).as_ref().is_some_and(|q| !q.is_empty());
        if want_out != c.writable && c.reg.set_writable(want_out).is_ok() {
            c.writable = want_out;
        }
        keep
    }

    fn attach(&self, dev: &mut Dev, conn: UnixStream) {
        if dev.client.is_some() {
            let now = Instant::now();
            if dev
                .busy_logged
                .is_some_and(|t| now.duration_since(t) < BUSY_LOG_INTERVAL)
            {
                dev.busy_quiet += 1;
                return;
            }
            let pid =
                nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials)
                    .map_or_else(|_| "?".to_string(), |c| c.pid().to_string());
            let more = match std::mem::take(&mut dev.busy_quiet) {
                0 => String::new(),
                n => format!(" ({n} more since the last report)"),
            };
            crate::log::info(&format!(
                "{}: control device busy; closing a second client, pid {pid}{more}",
                self.name
            ));
            dev.busy_logged = Some(now);
            return;
        }
        if conn.set_nonblocking(true).is_err() {
            return;
        }
        // The handler is this softc, found again through the listener's source.
        let Some(me) = self.me.upgrade() else { return };
        let reg = match self
            .reactor
            .register_in(self.group.load(Relaxed), Some(conn.as_fd()), me)
        {
            Ok(r) => r,
            Err(e) => {
                crate::log::warn(&format!("{}: control device: {e}", self.name));
                return;
            }
        };
        let peer = conn.peer_addr().ok();
        *lock(&self.peer) = peer.and_then(|a| a.as_abstract_name().map(<[u8]>::to_vec));
        dev.client = Some(Client {
            reg,
            conn,
            rx: Deframer::new(),
            gro: Gro::default(),
            writable: false,
        });
        self.open();
        // What the client already wrote is read on the next turn.
        self.wake();
    }

    /// Last close: frames still queued are thrown away; the kernel is told.
    fn detached(&self, rx: &Deframer) {
        if rx.pending() > 0 {
            // A frame cut short by the disconnect.
            self.port.counters.ierrors.fetch_add(1, Relaxed);
        }
        self.close();
    }
}

/// Read what the client wrote; false when it must be disconnected. Its
/// frames go through `gro` (a guest's TCP stream reaches a virt as
/// super-frames: one write and one trip through the host's stack for up
/// to 44 segments); the caller flushes it.
fn receive(sc: &Softc, mut c: &UnixStream, rx: &mut Deframer, gro: &mut Gro) -> bool {
    let counters = &sc.port.counters;
    // Bounded, so that a fast writer does not starve the other direction.
    for _ in 0..16 {
        let n = match c.read(rx.space()) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        rx.filled(n);
        let max = sc.mtu.load(Relaxed) as usize + ETHER_HDR_LEN;
        loop {
            match rx.next_record() {
                Record::Frame(f) => match Frame::new(f).filter(|f| f.len() <= max) {
                    None => sc.port.input_error(),
                    // A write to an interface that is down is thrown away.
                    Some(f) if sc.port.is_running() => gro.push(&f, &mut |f| sc.port.input(f)),
                    Some(_) => {
                        counters.iqdrops.fetch_add(1, Relaxed);
                    }
                },
                Record::TooLong(len) => {
                    counters.ierrors.fetch_add(1, Relaxed);
                    crate::log::info(&format!(
                        "{}: client claimed a {len}-byte frame; disconnecting",
                        sc.name
                    ));
                    rx.reset();
                    return false;
                }
                Record::Incomplete => break,
            }
        }
    }
    true
}

/// Write queued frames; false when the client is gone.
fn transmit(sc: &Softc, c: &UnixStream) -> bool {
    let mut q = sc.txq.lock().unwrap();
    let Some(ring) = q.as_mut() else { return true };
    while !ring.is_empty() {
        // Non-blocking, so the ring's lock is held only for a copy.
        match send(
            c.as_raw_fd(),
            ring.front(),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(n) => ring.consume(n),
            Err(nix::errno::Errno::EAGAIN) => return true,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
    true
}
