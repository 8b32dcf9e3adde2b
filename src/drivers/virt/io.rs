//! virt's data plane: the receive thread (host TAP → `Port::input`) and the
//! transmitter (`Port::output` → host TAP).

use super::tun::{HostTap, VIRTIF_RXBUF};
use crate::drivers::kthread::Wakeup;
use crate::ioctl::Errno;
use crate::kernel::KernelHook;
use crate::port::{Port, Transmit};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

pub struct VirtTx(pub Arc<HostTap>);

impl Transmit for VirtTx {
    fn transmit(&self, frame: &[u8]) -> Result<(), Errno> {
        // As libvirtif: a frame the host cannot take is dropped (oerrors).
        self.0.send(frame)
    }
}

/// Frames read per wakeup before looking at the wakeup fd again.
const RX_BATCH: usize = 64;

/// Read frames until stopped. When the host TAP disappears, count one
/// input error, tell the kernel (link down) and wait to be stopped.
pub fn rx_loop(tap: Arc<HostTap>, port: Arc<Port>, wakeup: Arc<Wakeup>, hook: KernelHook) {
    let mut buf = [0u8; VIRTIF_RXBUF];
    // Frames the host queued while we were down are stale: drop them.
    while tap.recv(&mut buf).is_ok() {}
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
            Err(_) => return,
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
            for _ in 0..RX_BATCH {
                match tap.recv(&mut buf) {
                    Ok(n) => port.input(&buf[..n]),
                    Err(Errno::EAGAIN) => break,
                    Err(Errno(libc::EINTR)) => {}
                    Err(_) => {
                        lost = true;
                        break;
                    }
                }
            }
        }
        if lost {
            gone = true;
            tap.set_dead();
            port.counters.ierrors.fetch_add(1, Relaxed);
            crate::log::warn(&format!("{}: host TAP {} is gone", port.name, tap.name()));
            hook.sync(port.index);
        }
    }
}
