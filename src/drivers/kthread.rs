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

/// Random bytes from the kernel's generator (NetBSD's cprng), for
/// generated MAC addresses and the IP presence. No generator is an error:
/// a fixed or guessable fallback would repeat across interfaces and hosts.
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    let mut got = 0;
    while got < N {
        // SAFETY: writes at most the remaining N - got bytes of b.
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), N - got, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        got += n as usize;
    }
    Ok(b)
}
