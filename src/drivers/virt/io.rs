//! virt's data plane: the transmitter (`Port::output` → host TAP) and the
//! receiver, a reactor source per running virt (host TAP → `Port::input`).
//!
//! The members of one bridge share a reactor thread, as a user-space
//! switch's single loop: a write to a host TAP runs the host's stack at
//! once, so an answer — a ping reply, a TCP ACK — is already queued on the
//! other TAP when the write returns, and the same thread reads it on its
//! next turn. On another thread that answer would first wake a sleeping
//! thread, which costs a round trip a cross-CPU wakeup and doubles its best
//! case. Two bridges are two groups, on two threads (see [`crate::reactor`]).
//!
//! Small UDP datagrams written in a reactor turn are held to its end and
//! leave in batches (see [`super::uso`]); every other frame is written at
//! once, after the datagrams held before it.

use super::tun::{HostTap, VIRTIF_RXBUF};
use super::uso::{self, Uso};
use crate::cloner::KernelHook;
use crate::frame::Frame;
use crate::ioctl::Errno;
use crate::offload::{Offload, OffloadCaps};
use crate::port::{Port, Transmit};
use crate::reactor::{self, Deferred, Handler, Reactor, Registration};
use std::cell::RefCell;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

/// Frames read from one TAP before turning to the next.
const RX_BATCH: usize = 64;

thread_local! {
    /// One receive buffer per reactor thread: no allocation per frame.
    static RXBUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; VIRTIF_RXBUF]);
    static YIELD: Arc<Yield> = Arc::new(Yield);
}

/// Give up the CPU at the end of the turn.
struct Yield;

impl Deferred for Yield {
    fn run(&self) {
        std::thread::yield_now();
    }
}

/// One virt's host TAP as the data plane sees it.
pub struct VirtIo {
    tap: Arc<HostTap>,
    port: Weak<Port>,
    hook: KernelHook,
    /// Its reactor source while the interface is running.
    reg: Mutex<Option<Registration>>,
    /// Datagrams held for the end of the turn.
    batch: Mutex<Batch>,
}

#[derive(Default)]
struct Batch {
    uso: Uso,
    /// A reactor thread flushes it at the end of its turn.
    deferred: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl VirtIo {
    pub fn new(tap: Arc<HostTap>, port: &Arc<Port>, hook: KernelHook) -> Arc<VirtIo> {
        Arc::new(VirtIo {
            tap,
            port: Arc::downgrade(port),
            hook,
            reg: Mutex::new(None),
            batch: Mutex::default(),
        })
    }

    /// Start reading the TAP on the thread of `group`. Frames the host
    /// queued while the interface was down are stale: they are dropped
    /// first.
    pub fn start(self: &Arc<Self>, reactor: &Arc<Reactor>, group: u64) -> Result<(), Errno> {
        self.stop();
        let mut buf = vec![0u8; VIRTIF_RXBUF];
        while self.tap.recv(&mut buf).is_ok() {}
        if self.tap.is_dead() {
            return Ok(());
        }
        let reg = reactor.register_in(group, Some(self.tap.as_fd()), self.clone())?;
        *lock(&self.reg) = Some(reg);
        Ok(())
    }

    /// Read the TAP on the thread of `group` from now on, if it is read.
    pub fn move_to(self: &Arc<Self>, reactor: &Arc<Reactor>, group: u64) -> Result<(), Errno> {
        if lock(&self.reg).is_none() {
            return Ok(());
        }
        self.stop();
        let reg = reactor.register_in(group, Some(self.tap.as_fd()), self.clone())?;
        *lock(&self.reg) = Some(reg);
        Ok(())
    }

    /// Stop reading the TAP; no read of it is under way on return.
    pub fn stop(&self) {
        let reg = lock(&self.reg).take();
        drop(reg);
    }

    /// Read up to a batch of frames and hand them on; `true` when the TAP
    /// failed (it is gone).
    fn read_batch(&self, port: &Arc<Port>, buf: &mut [u8]) -> bool {
        for _ in 0..RX_BATCH {
            match self.tap.recv(buf) {
                Ok((off, bytes)) => match Frame::with_offload(bytes, off) {
                    Some(frame) => port.input(&frame),
                    None => port.input_error(),
                },
                Err(Errno::EAGAIN) => return false,
                Err(Errno(libc::EINTR)) => {}
                // Shorter than the offload header: not a frame.
                Err(Errno::EINVAL) => {
                    port.counters.ierrors.fetch_add(1, Relaxed);
                }
                Err(_) => return true,
            }
        }
        // A full batch: the host keeps us busy. Let the processes we feed
        // run — they often share our CPU, and frames written while they
        // wait only overflow their socket queues — once the turn's held
        // datagrams are written (deferred after them).
        if !reactor::defer(YIELD.with(|y| y.clone())) {
            std::thread::yield_now();
        }
        false
    }

    /// The host TAP disappeared: count one input error, stop watching it and
    /// tell the kernel (link down). The next `up` looks for it again.
    fn gone(&self, port: &Port) {
        self.stop();
        self.tap.set_dead();
        port.counters.ierrors.fetch_add(1, Relaxed);
        crate::log::warn(&format!(
            "{}: host TAP {} is gone",
            port.name,
            self.tap.name()
        ));
        self.hook.sync(port.index);
    }
}

impl Deferred for VirtIo {
    fn run(&self) {
        let mut b = lock(&self.batch);
        b.deferred = false;
        self.flush(&mut b.uso);
    }
}

impl VirtIo {
    /// Write the datagrams held. They were counted as sent when they were
    /// taken; a write the host refuses makes them output errors instead.
    fn flush(&self, uso: &mut Uso) {
        uso.flush(&mut |bytes, off, n| self.write_held(bytes, off, n));
    }

    /// Write `n` held datagrams, as `bytes` with `off`'s work on them.
    fn write_held(&self, bytes: &[u8], off: &Offload, n: usize) {
        if self.tap.send(bytes, off).is_ok() {
            return;
        }
        let Some(port) = self.port.upgrade() else {
            return;
        };
        let c = &port.counters;
        let (n, hdr) = (n as u64, if n > 1 { off.hdr_len as u64 } else { 0 });
        c.opackets.fetch_sub(n, Relaxed);
        c.obytes
            .fetch_sub(bytes.len() as u64 + (n - 1) * hdr, Relaxed);
        c.oerrors.fetch_add(n, Relaxed);
    }
}

impl Handler for VirtIo {
    fn poll(&self, _now: Instant) -> Option<Instant> {
        let port = self.port.upgrade()?;
        let failed = RXBUF.with(|b| self.read_batch(&port, &mut b.borrow_mut()));
        if failed {
            self.gone(&port);
        }
        None
    }
}

pub struct VirtTx(pub Arc<VirtIo>);

impl Transmit for VirtTx {
    fn transmit(&self, frame: &Frame) -> Result<(), Errno> {
        let io = &self.0;
        let mut b = lock(&io.batch);
        let held = match io.tap.takes_uso() {
            true => uso::datagram(frame.bytes(), frame.offload()),
            false => None,
        };
        if let Some(d) = held {
            let out = &mut |f: &[u8], off: &Offload, n| io.write_held(f, off, n);
            b.uso.push(frame.bytes(), frame.offload(), d, out);
            if b.deferred || reactor::defer(io.clone()) {
                b.deferred = true;
            } else {
                // Off a reactor thread: nothing to batch with.
                io.flush(&mut b.uso);
            }
            return Ok(());
        }
        io.flush(&mut b.uso);
        // As libvirtif: a frame the host cannot take is dropped (oerrors).
        io.tap.send(frame.bytes(), frame.offload())
    }

    fn offloads(&self) -> OffloadCaps {
        self.0.tap.offloads()
    }
}
