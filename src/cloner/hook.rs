//! How driver threads make the kernel act on an interface (tap's last
//! close, virt's host TAP vanishing): the hook they hold and the events it
//! sends. They only send; the kernel's hook thread takes the table lock,
//! so a driver thread never waits for it and a request holding the lock
//! may join driver threads without deadlock.

use crate::ioctl::Errno;
use std::sync::mpsc::{Receiver, Sender, channel};

/// What [`KernelHook::create_lowest`] calls with the name made.
pub type CreatedFn = Box<dyn FnOnce(Result<String, Errno>) + Send>;

/// What a driver thread asks of the kernel.
pub enum KernelEvent {
    /// Call `Driver::sync` of the interface with this index.
    Sync(u32),
    /// Create the lowest unused unit of a class (a cloning device's open).
    CreateLowest {
        class: &'static str,
        then: CreatedFn,
    },
    /// The kernel is going away: its hook thread ends.
    Quit,
}

/// A driver's line to the kernel: cloned into every thread that needs it.
#[derive(Clone)]
pub struct KernelHook(Sender<KernelEvent>);

impl KernelHook {
    /// A hook and the events sent on it, for the kernel to act on.
    pub fn channel() -> (KernelHook, Receiver<KernelEvent>) {
        let (tx, rx) = channel();
        (KernelHook(tx), rx)
    }

    /// A hook nobody listens to (for drivers made outside a kernel).
    pub fn detached() -> KernelHook {
        KernelHook(channel().0)
    }

    /// Ask the kernel to call `Driver::sync` of interface `index` soon.
    pub fn sync(&self, index: u32) {
        let _ = self.0.send(KernelEvent::Sync(index));
    }

    /// Create the lowest unused `classN` soon, then call `then` with its
    /// name (on the kernel's hook thread, without the table lock). Never
    /// waits: a reactor thread may call it.
    pub fn create_lowest(&self, class: &'static str, then: CreatedFn) {
        if let Err(e) = self.0.send(KernelEvent::CreateLowest { class, then })
            && let KernelEvent::CreateLowest { then, .. } = e.0
        {
            then(Err(Errno::ENXIO));
        }
    }

    /// End the kernel's hook thread.
    pub fn quit(&self) {
        let _ = self.0.send(KernelEvent::Quit);
    }
}
