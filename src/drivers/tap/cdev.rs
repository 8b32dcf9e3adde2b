//! The tap control device: a Unix stream socket through which one client
//! program exchanges frames with the interface. One thread per interface
//! accepts clients, reads their frames into `Port::input` and writes the
//! frames the interface transmits, queued by [`Softc`]'s `Transmit`.
//!
//! Exclusive open: while a client is attached, another one is accepted and
//! closed at once, without a byte written (it reads EOF).

use super::framing::{Deframer, Record, TxRing};
use crate::cloner::KernelHook;
use crate::drivers::kthread::Wakeup;
use crate::frame::Frame;
use crate::ioctl::Errno;
use crate::port::{Port, Transmit};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, send};
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex};

/// Bytes queued for a client before frames are dropped.
pub const TAP_QUEUE_BYTES: usize = 256 * 1024;

/// Ethernet header length: the least a frame has, and MTU + this the most.
const ETHER_HDR_LEN: usize = 14;

/// `Softc::events` bits: what happened since the kernel last looked.
pub const EV_OPENED: u32 = 1;
pub const EV_CLOSED: u32 = 2;

/// A tap's state shared by the control plane, the transmitter and its thread.
pub struct Softc {
    pub name: String,
    pub port: Arc<Port>,
    pub hook: KernelHook,
    pub wakeup: Arc<Wakeup>,
    pub mtu: AtomicU32,
    /// Frames for the client; `None` while no client is attached, so that
    /// the interface's output is dropped (and counted) rather than queued.
    txq: Mutex<Option<TxRing>>,
    /// A ring kept between clients, to allocate it once.
    spare: Mutex<Option<TxRing>>,
    /// A client handed over by the cloning socket.
    handoff: Mutex<Option<UnixStream>>,
    attached: AtomicBool,
    /// The attached client's own socket address, when it has one (an
    /// abstract name, see `super::connect`): what TAPGIFNAME matches.
    peer: Mutex<Option<Vec<u8>>>,
    pub events: AtomicU32,
}

impl Softc {
    pub fn new(name: &str, port: Arc<Port>, hook: KernelHook, mtu: u32) -> Result<Softc, Errno> {
        Ok(Softc {
            name: name.to_string(),
            port,
            hook,
            wakeup: Arc::new(Wakeup::new()?),
            mtu: AtomicU32::new(mtu),
            txq: Mutex::new(None),
            spare: Mutex::new(Some(TxRing::new(TAP_QUEUE_BYTES))),
            handoff: Mutex::new(None),
            attached: AtomicBool::new(false),
            peer: Mutex::new(None),
            events: AtomicU32::new(0),
        })
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
        *self.handoff.lock().unwrap() = Some(conn);
        self.wakeup.wake();
    }

    /// Throw queued frames away (the interface went down).
    pub fn flush(&self) {
        if let Some(q) = self.txq.lock().unwrap().as_mut() {
            q.clear();
        }
    }

    fn open(&self) {
        let ring = self
            .spare
            .lock()
            .unwrap()
            .take()
            .unwrap_or_else(|| TxRing::new(TAP_QUEUE_BYTES));
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
        if was_empty {
            sc.wakeup.wake();
        }
        Ok(())
    }
}

/// The control device thread, until the wakeup says stop.
pub fn run(sc: Arc<Softc>, listener: UnixListener) {
    let mut client: Option<UnixStream> = None;
    let mut rx = Deframer::new();
    while !sc.wakeup.stopping() {
        let want_out = client.is_some()
            && sc
                .txq
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|q| !q.is_empty());
        let (wake_ev, listen_ev, client_ev) = {
            let mut fds = [
                PollFd::new(sc.wakeup.fd(), PollFlags::POLLIN),
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(sc.wakeup.fd(), PollFlags::empty()),
            ];
            if let Some(c) = &client {
                let mut ev = PollFlags::POLLIN;
                if want_out {
                    ev |= PollFlags::POLLOUT;
                }
                fds[2] = PollFd::new(c.as_fd(), ev);
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => break,
            }
            let ev = |i: usize| fds[i].revents().unwrap_or(PollFlags::empty());
            (
                ev(0),
                ev(1),
                if client.is_some() {
                    ev(2)
                } else {
                    PollFlags::empty()
                },
            )
        };
        if !wake_ev.is_empty() {
            sc.wakeup.clear();
            if let Some(conn) = sc.handoff.lock().unwrap().take() {
                attach(&sc, &mut client, conn);
            }
        }
        if !listen_ev.is_empty() {
            while let Ok((conn, _)) = listener.accept() {
                attach(&sc, &mut client, conn);
            }
        }
        let mut keep = true;
        if client_ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            keep = client.as_mut().is_some_and(|c| receive(&sc, c, &mut rx));
        }
        if keep && client.is_some() && (client_ev.contains(PollFlags::POLLOUT) || want_out) {
            keep = client.as_ref().is_some_and(|c| transmit(&sc, c));
        }
        if !keep {
            detach(&sc, &mut client, &mut rx);
        }
    }
    if client.is_some() {
        detach(&sc, &mut client, &mut rx);
    }
}

fn attach(sc: &Softc, client: &mut Option<UnixStream>, conn: UnixStream) {
    if client.is_some() {
        crate::log::info(&format!(
            "{}: control device busy; closing a second client",
            sc.name
        ));
        return;
    }
    if conn.set_nonblocking(true).is_err() {
        return;
    }
    let peer = conn.peer_addr().ok();
    *sc.peer.lock().unwrap() = peer.and_then(|a| a.as_abstract_name().map(<[u8]>::to_vec));
    *client = Some(conn);
    sc.open();
}

/// Last close: frames still queued are thrown away; the kernel is told.
fn detach(sc: &Softc, client: &mut Option<UnixStream>, rx: &mut Deframer) {
    if rx.pending() > 0 {
        // A frame cut short by the disconnect.
        sc.port.counters.ierrors.fetch_add(1, Relaxed);
    }
    rx.reset();
    *client = None;
    sc.close();
}

/// Read what the client wrote; false when it must be disconnected.
fn receive(sc: &Softc, mut c: &UnixStream, rx: &mut Deframer) -> bool {
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
                    Some(f) if sc.port.is_running() => sc.port.input(&f),
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
