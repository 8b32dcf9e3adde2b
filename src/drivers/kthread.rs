//! Driver threads that sleep in poll(2) and are woken through an eventfd:
//! to stop, or because the control plane has something for them.

use nix::sys::eventfd::{EfdFlags, EventFd};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// The eventfd a driver thread polls beside its I/O descriptors.
pub struct Wakeup {
    fd: EventFd,
    stop: AtomicBool,
}

impl Wakeup {
    pub fn new() -> Result<Wakeup, crate::ioctl::Errno> {
        let fd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok(Wakeup {
            fd,
            stop: AtomicBool::new(false),
        })
    }

    pub fn wake(&self) {
        // Only fails when the counter would overflow: it is nonzero then.
        let _ = self.fd.write(1);
    }

    /// Reset the counter after a wakeup, before looking at why.
    pub fn clear(&self) {
        let _ = self.fd.read();
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A running driver thread; stopped and joined on `stop` or drop.
pub struct KThread {
    wakeup: Arc<Wakeup>,
    handle: Option<JoinHandle<()>>,
}

impl KThread {
    pub fn spawn(
        name: String,
        wakeup: Arc<Wakeup>,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<KThread, crate::ioctl::Errno> {
        let handle = std::thread::Builder::new().name(name).spawn(f)?;
        Ok(KThread {
            wakeup,
            handle: Some(handle),
        })
    }

    pub fn wakeup(&self) -> &Arc<Wakeup> {
        &self.wakeup
    }

    pub fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.wakeup.stop.store(true, Ordering::Release);
            self.wakeup.wake();
            let _ = h.join();
        }
    }
}

impl Drop for KThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Random bytes for generated MAC addresses (NetBSD's cprng_fast32).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let mut got = 0;
    while got < N {
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), N - got, 0) };
        if n <= 0 {
            // No entropy source: time-based bytes are enough to avoid
            // hard-coding an address (NetBSD's tap used the uptime).
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            for (i, x) in b.iter_mut().enumerate().skip(got) {
                *x = (t >> ((i % 8) * 8)) as u8;
            }
            break;
        }
        got += n as usize;
    }
    b
}
