//! virt's data plane: the receive thread (host TAP → `Port::input`) and the
//! transmitter (`Port::output` → host TAP).
//!
//! A write to a host TAP runs the host's stack at once, so an answer — a
//! ping reply, a TCP ACK — is often queued on another virt's TAP by the
//! time the write returns. The thread that wrote picks it up right away
//! (`pick_up_answers`) instead of waking that virt's own thread, which
//! halves the round trip and the wakeups: the single-loop behaviour of a
//! user-space switch, kept with one thread per port. A per-port lock keeps
//! each TAP read by one thread at a time, so frames stay in order.

use super::tun::{HostTap, VIRTIF_RXBUF};
use crate::drivers::kthread::Wakeup;
use crate::ioctl::Errno;
use crate::kernel::KernelHook;
use crate::offload::Offload;
use crate::port::{Port, Transmit};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::cell::RefCell;
use std::os::fd::AsFd;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, Weak};

/// One virt's host TAP as the data plane sees it.
pub struct VirtIo {
    tap: Arc<HostTap>,
    port: Weak<Port>,
    /// Held while reading the TAP and handing the frames on.
    rx: Mutex<()>,
    /// The interface is up: its frames may be read.
    receiving: AtomicBool,
}

impl VirtIo {
    pub fn new(tap: Arc<HostTap>, port: &Arc<Port>) -> Arc<VirtIo> {
        Arc::new(VirtIo {
            tap,
            port: Arc::downgrade(port),
            rx: Mutex::new(()),
            receiving: AtomicBool::new(false),
        })
    }

    pub fn set_receiving(&self, on: bool) {
        self.receiving.store(on, Relaxed);
    }

    /// Read up to a batch of frames and hand them on; `true` when the TAP
    /// failed (it is gone).
    fn read_batch(&self, port: &Arc<Port>, buf: &mut [u8]) -> bool {
        for _ in 0..RX_BATCH {
            match self.tap.recv(buf) {
                Ok((off, frame)) => port.input_offload(frame, &off),
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

impl VirtTx {
    /// A virt receive thread wrote to this TAP: remember to look for an
    /// answer there.
    fn note_written(&self) {
        WRITTEN.with_borrow_mut(|w| {
            if let Some(w) = w
                && !w.iter().any(|v| Arc::ptr_eq(v, &self.0))
                && w.len() < MAX_NOTED
            {
                w.push(self.0.clone());
            }
        });
    }
}

impl Transmit for VirtTx {
    fn transmit(&self, frame: &[u8]) -> Result<(), Errno> {
        // As libvirtif: a frame the host cannot take is dropped (oerrors).
        self.0.tap.send(frame)?;
        self.note_written();
        Ok(())
    }

    fn takes_offload(&self, off: &Offload) -> bool {
        self.0.tap.takes(off)
    }

    fn transmit_offload(&self, frame: &[u8], off: &Offload) -> Result<(), Errno> {
        self.0.tap.send_offload(frame, off)?;
        self.note_written();
        Ok(())
    }
}

/// Frames read per wakeup before looking at the wakeup fd again.
const RX_BATCH: usize = 64;
/// Rounds of picking up answers before going back to poll(2).
const ANSWER_ROUNDS: usize = 4;
/// TAPs remembered per round (a bridge floods to every member).
const MAX_NOTED: usize = 32;

thread_local! {
    /// The TAPs this thread wrote to since it last looked for answers;
    /// `None` on threads that are not virt receive threads.
    static WRITTEN: RefCell<Option<Vec<Arc<VirtIo>>>> = const { RefCell::new(None) };
}

/// Read the answers the host queued on the TAPs this thread wrote to, in
/// a few rounds (answers cause writes that cause answers). A TAP another
/// thread is reading is left to it.
fn pick_up_answers(buf: &mut [u8]) {
    for _ in 0..ANSWER_ROUNDS {
        let written = WRITTEN.with_borrow_mut(|w| w.as_mut().map(std::mem::take));
        let Some(written) = written.filter(|w| !w.is_empty()) else {
            return;
        };
        for io in written {
            if !io.receiving.load(Relaxed) {
                continue;
            }
            let Some(port) = io.port.upgrade() else {
                continue;
            };
            if let Ok(_reading) = io.rx.try_lock() {
                // A failing TAP is left for its own thread to report.
                io.read_batch(&port, buf);
            }
        }
    }
    WRITTEN.with_borrow_mut(|w| w.as_mut().map(Vec::clear));
}

/// Read frames until stopped. When the host TAP disappears, count one
/// input error, tell the kernel (link down) and wait to be stopped.
pub fn rx_loop(io: Arc<VirtIo>, port: Arc<Port>, wakeup: Arc<Wakeup>, hook: KernelHook) {
    let tap = io.tap.clone();
    let mut buf = vec![0u8; VIRTIF_RXBUF];
    // Frames the host queued while we were down are stale: drop them.
    while tap.recv(&mut buf).is_ok() {}
    WRITTEN.set(Some(Vec::new()));
    io.set_receiving(true);
    let mut gone = tap.is_dead();
    while !wakeup.stopping() {
        let mut fds = [
            PollFd::new(wakeup.fd(), PollFlags::POLLIN),
            PollFd::new(tap.as_fd(), PollFlags::POLLIN),
        ];
        let nfds = if gone { 1 } else { 2 };
        match poll(&mut fds[..nfds], PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let tap_ev = fds[1].revents().unwrap_or(PollFlags::empty());
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            wakeup.clear();
            continue;
        }
        if gone {
            continue;
        }
        let mut lost =
            tap_ev.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL);
        if !lost && tap_ev.contains(PollFlags::POLLIN) {
            lost = {
                let _reading = io.rx.lock().unwrap_or_else(|e| e.into_inner());
                io.read_batch(&port, &mut buf[..])
            };
            pick_up_answers(&mut buf);
        }
        if lost {
            gone = true;
            tap.set_dead();
            port.counters.ierrors.fetch_add(1, Relaxed);
            crate::log::warn(&format!("{}: host TAP {} is gone", port.name, tap.name()));
            hook.sync(port.index);
        }
    }
    io.set_receiving(false);
    WRITTEN.set(None);
}
