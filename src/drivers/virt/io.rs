//! virt's data plane: the transmitter (`Port::output` → host TAP) and one
//! I/O thread that reads every running virt's host TAP (→ `Port::input`).
//!
//! One thread for all, as a user-space switch's single loop: a write to a
//! host TAP runs the host's stack at once, so an answer — a ping reply, a
//! TCP ACK — is already queued on the other TAP when the write returns,
//! and the same thread reads it on its next turn. With a thread per TAP
//! that answer would first wake another sleeping thread, which costs a
//! round trip a cross-CPU wakeup and doubles its best case. The price is
//! that all virts of a daemon share one CPU for reading.

use super::tun::{HostTap, VIRTIF_RXBUF};
use crate::cloner::KernelHook;
use crate::drivers::kthread::{KThread, Wakeup};
use crate::frame::Frame;
use crate::ioctl::Errno;
use crate::offload::OffloadCaps;
use crate::port::{Port, Transmit};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, Weak};

/// Frames read from one TAP before turning to the next.
const RX_BATCH: usize = 64;
/// The epoll key of the thread's wakeup descriptor.
const WAKEUP_KEY: u64 = 0;

/// One virt's host TAP as the data plane sees it.
pub struct VirtIo {
    tap: Arc<HostTap>,
    port: Weak<Port>,
    /// Held while frames are read and handed on: `stop_port` takes it to
    /// know no read is under way.
    rx: Mutex<()>,
    /// The interface is running: its frames may be read.
    receiving: AtomicBool,
    /// Its key in the I/O thread's epoll set.
    key: AtomicU64,
}

impl VirtIo {
    pub fn new(tap: Arc<HostTap>, port: &Arc<Port>) -> Arc<VirtIo> {
        Arc::new(VirtIo {
            tap,
            port: Arc::downgrade(port),
            rx: Mutex::new(()),
            receiving: AtomicBool::new(false),
            key: AtomicU64::new(WAKEUP_KEY),
        })
    }

    /// Read up to a batch of frames and hand them on; `true` when the TAP
    /// failed (it is gone).
    fn read_batch(&self, buf: &mut [u8]) -> bool {
        let _reading = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        let Some(port) = self.port.upgrade().filter(|_| self.receiving.load(Relaxed)) else {
            return false;
        };
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
        // run now — they often share our CPU, and frames written while
        // they wait only overflow their socket queues.
        std::thread::yield_now();
        false
    }
}

pub struct VirtTx(pub Arc<VirtIo>);

impl Transmit for VirtTx {
    fn transmit(&self, frame: &Frame) -> Result<(), Errno> {
        // As libvirtif: a frame the host cannot take is dropped (oerrors).
        self.0.tap.send(frame.bytes(), frame.offload())
    }

    fn offloads(&self) -> OffloadCaps {
        self.0.tap.offloads()
    }
}

/// What the I/O thread shares with the control plane.
struct Shared {
    epoll: Epoll,
    ports: Mutex<HashMap<u64, Arc<VirtIo>>>,
    hook: KernelHook,
}

/// The daemon's virt I/O thread, started with the first running virt.
pub struct IoThread {
    shared: Arc<Shared>,
    thread: Mutex<Option<KThread>>,
    next_key: AtomicU64,
}

impl IoThread {
    pub fn new(hook: KernelHook) -> Result<IoThread, Errno> {
        Ok(IoThread {
            shared: Arc::new(Shared {
                epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
                ports: Mutex::new(HashMap::new()),
                hook,
            }),
            thread: Mutex::new(None),
            next_key: AtomicU64::new(WAKEUP_KEY + 1),
        })
    }

    /// Start reading `io`'s TAP. Frames the host queued while the
    /// interface was down are stale: they are dropped first.
    pub fn start_port(&self, io: &Arc<VirtIo>) -> Result<(), Errno> {
        self.ensure_thread()?;
        let mut buf = vec![0u8; VIRTIF_RXBUF];
        while io.tap.recv(&mut buf).is_ok() {}
        let key = self.next_key.fetch_add(1, Relaxed);
        io.key.store(key, Relaxed);
        io.receiving.store(true, Relaxed);
        self.shared.ports.lock().unwrap().insert(key, io.clone());
        if !io.tap.is_dead() {
            let ev = EpollEvent::new(EpollFlags::EPOLLIN, key);
            self.shared.epoll.add(io.tap.as_fd(), ev)?;
        }
        Ok(())
    }

    /// Stop reading `io`'s TAP; no read of it is under way on return.
    pub fn stop_port(&self, io: &VirtIo) {
        io.receiving.store(false, Relaxed);
        let _ = self.shared.epoll.delete(io.tap.as_fd());
        self.shared
            .ports
            .lock()
            .unwrap()
            .remove(&io.key.load(Relaxed));
        drop(io.rx.lock());
    }

    fn ensure_thread(&self) -> Result<(), Errno> {
        let mut thread = self.thread.lock().unwrap();
        if thread.is_some() {
            return Ok(());
        }
        let wakeup = Arc::new(Wakeup::new()?);
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, WAKEUP_KEY);
        self.shared.epoll.add(wakeup.fd(), ev)?;
        let (shared, w) = (self.shared.clone(), wakeup.clone());
        *thread = Some(KThread::spawn("virt-io".into(), wakeup, move || {
            io_loop(&shared, &w)
        })?);
        Ok(())
    }
}

/// Read every TAP that has frames, in turn, until stopped.
fn io_loop(shared: &Shared, wakeup: &Wakeup) {
    let mut buf = vec![0u8; VIRTIF_RXBUF];
    let mut events = [EpollEvent::empty(); 32];
    while !wakeup.stopping() {
        let n = match shared.epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        };
        for ev in &events[..n] {
            if ev.data() == WAKEUP_KEY {
                wakeup.clear();
                continue;
            }
            let io = shared.ports.lock().unwrap().get(&ev.data()).cloned();
            let Some(io) = io else { continue };
            let failed = ev
                .events()
                .intersects(EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP);
            if failed || io.read_batch(&mut buf) {
                tap_gone(shared, &io);
            }
        }
    }
}

/// The host TAP disappeared: count one input error, stop watching it and
/// tell the kernel (link down). The next `up` looks for it again.
fn tap_gone(shared: &Shared, io: &VirtIo) {
    let _ = shared.epoll.delete(io.tap.as_fd());
    io.tap.set_dead();
    if let Some(port) = io.port.upgrade() {
        port.counters.ierrors.fetch_add(1, Relaxed);
        crate::log::warn(&format!(
            "{}: host TAP {} is gone",
            port.name,
            io.tap.name()
        ));
        shared.hook.sync(port.index);
    }
}
