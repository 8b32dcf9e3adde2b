//! The data-plane face of an interface: counters, the flags the fast path
//! needs, and where received frames go. Drivers hold an `Arc<Port>` in their
//! I/O threads; the control plane updates it without stopping them.

use crate::ioctl::{Errno, IfData, Mac, iff};
use crate::offload::{self, Offload};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, RwLock};

/// `struct if_data` counters, updated lock-free from any thread.
#[derive(Default)]
pub struct IfCounters {
    pub ipackets: AtomicU64,
    pub ierrors: AtomicU64,
    pub opackets: AtomicU64,
    pub oerrors: AtomicU64,
    pub collisions: AtomicU64,
    pub ibytes: AtomicU64,
    pub obytes: AtomicU64,
    pub imcasts: AtomicU64,
    pub omcasts: AtomicU64,
    pub iqdrops: AtomicU64,
    pub noproto: AtomicU64,
}

macro_rules! counters {
    ($($f:ident),*) => {
        impl IfCounters {
            pub fn snapshot(&self) -> IfData {
                IfData { $($f: self.$f.load(Relaxed),)* }
            }
            pub fn zero(&self) {
                $(self.$f.store(0, Relaxed);)*
            }
        }
    };
}
counters!(
    ipackets, ierrors, opackets, oerrors, collisions, ibytes, obytes, imcasts, omcasts, iqdrops,
    noproto
);

impl IfCounters {
    /// Count `frame` received, as the `packets` frames of `bytes` in all
    /// it stands for on a wire (more than one for a TCP super-frame).
    pub fn count_input(&self, frame: &[u8], packets: u64, bytes: u64) {
        self.ipackets.fetch_add(packets, Relaxed);
        self.ibytes.fetch_add(bytes, Relaxed);
        if frame.first().is_some_and(|b| b & 1 != 0) {
            self.imcasts.fetch_add(packets, Relaxed);
        }
    }

    /// Count `frame` sent, or its `packets` as output errors when `r` says
    /// it was dropped; hands `r` back.
    pub fn count_output(
        &self,
        frame: &[u8],
        packets: u64,
        bytes: u64,
        r: Result<(), Errno>,
    ) -> Result<(), Errno> {
        match r {
            Ok(()) => {
                self.opackets.fetch_add(packets, Relaxed);
                self.obytes.fetch_add(bytes, Relaxed);
                if frame.first().is_some_and(|b| b & 1 != 0) {
                    self.omcasts.fetch_add(packets, Relaxed);
                }
            }
            Err(_) => {
                self.oerrors.fetch_add(packets, Relaxed);
            }
        }
        r
    }
}

/// How a driver puts a frame on its medium. Must not block for long: a
/// medium that cannot take the frame now returns an error and it is dropped.
pub trait Transmit: Send + Sync {
    fn transmit(&self, frame: &[u8]) -> Result<(), Errno>;

    /// Whether the medium takes `off`'s work along with the frame (a
    /// host TAP with offloads on); if not, it is done before `transmit`.
    fn takes_offload(&self, _off: &Offload) -> bool {
        false
    }

    /// Send a frame with offload work left; only called when
    /// `takes_offload` said yes.
    fn transmit_offload(&self, frame: &[u8], _off: &Offload) -> Result<(), Errno> {
        self.transmit(frame)
    }
}

/// Where a port hands the frames it receives when it is a bridge member.
pub trait Upper: Send + Sync {
    fn input(&self, from: &Arc<Port>, frame: &[u8]);

    /// Forward a frame with offload work left, if it can go on unchanged;
    /// `false` and the port does the work and calls `input` per frame.
    fn input_offload(&self, _from: &Arc<Port>, _frame: &[u8], _off: &Offload) -> bool {
        false
    }

    /// The host sends a frame out of member `from` (`bridge_output`):
    /// by default it goes on that member's own medium.
    fn output(&self, from: &Port, frame: &[u8]) -> Result<(), Errno> {
        from.transmit(frame)
    }
}

/// The host side of an interface: the IP presence (`crate::inet`).
pub trait Stack: Send + Sync {
    fn input(&self, frame: &[u8]);
}

/// Frames taken off an interface through the library API.
pub type FrameReceiver = Receiver<Vec<u8>>;

/// Bound of the library receive queue; beyond it frames count as `iqdrops`.
const LISTEN_QUEUE: usize = 4096;

pub struct Port {
    pub index: u32,
    pub name: String,
    pub counters: IfCounters,
    flags: AtomicU32,
    /// The active MAC in the low 48 bits; 0 for interfaces without one.
    mac: AtomicU64,
    tx: RwLock<Option<Arc<dyn Transmit>>>,
    upper: RwLock<Option<Arc<dyn Upper>>>,
    stack: RwLock<Option<Arc<dyn Stack>>>,
    listener: Mutex<Option<SyncSender<Vec<u8>>>>,
}

pub fn is_multicast(mac: &[u8]) -> bool {
    mac[0] & 1 != 0
}

fn mac_to_u64(mac: &Mac) -> u64 {
    mac.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

impl Port {
    pub fn new(index: u32, name: &str) -> Arc<Port> {
        Arc::new(Port {
            index,
            name: name.to_string(),
            counters: IfCounters::default(),
            flags: AtomicU32::new(0),
            mac: AtomicU64::new(0),
            tx: RwLock::new(None),
            upper: RwLock::new(None),
            stack: RwLock::new(None),
            listener: Mutex::new(None),
        })
    }

    pub fn flags(&self) -> u32 {
        self.flags.load(Relaxed)
    }

    pub(crate) fn set_flags(&self, flags: u32) {
        self.flags.store(flags, Relaxed)
    }

    pub fn is_running(&self) -> bool {
        self.flags() & (iff::UP | iff::RUNNING) == iff::UP | iff::RUNNING
    }

    pub fn mac(&self) -> Option<Mac> {
        let v = self.mac.load(Relaxed);
        (v != 0).then(|| {
            let b = v.to_be_bytes();
            [b[2], b[3], b[4], b[5], b[6], b[7]]
        })
    }

    pub(crate) fn set_mac(&self, mac: Option<Mac>) {
        self.mac.store(mac.as_ref().map_or(0, mac_to_u64), Relaxed)
    }

    pub fn is_own_mac(&self, mac: &[u8]) -> bool {
        mac.len() >= 6 && self.mac.load(Relaxed) == mac_to_u64(&mac[..6].try_into().unwrap())
    }

    /// Install the driver's transmitter (`None`: frames are dropped).
    pub fn set_transmit(&self, tx: Option<Arc<dyn Transmit>>) {
        *self.tx.write().unwrap() = tx;
    }

    pub fn set_upper(&self, upper: Option<Arc<dyn Upper>>) {
        *self.upper.write().unwrap() = upper;
    }

    pub fn set_stack(&self, stack: Option<Arc<dyn Stack>>) {
        *self.stack.write().unwrap() = stack;
    }

    pub fn has_upper(&self) -> bool {
        self.upper.read().unwrap().is_some()
    }

    /// Send a frame out of this interface (`if_output`); a bridge member
    /// hands it to its bridge.
    pub fn output(&self, frame: &[u8]) -> Result<(), Errno> {
        if !self.is_running() {
            self.counters.oerrors.fetch_add(1, Relaxed);
            return Err(Errno::ENETDOWN);
        }
        let upper = self.upper.read().unwrap().clone();
        match upper {
            Some(upper) => upper.output(self, frame),
            None => self.transmit(frame),
        }
    }

    /// Put a frame on this interface's own medium (`if_transmit`), past
    /// any bridge. Counts it; an error means it was dropped.
    pub fn transmit(&self, frame: &[u8]) -> Result<(), Errno> {
        self.transmit_offload(frame, &Offload::NONE)
    }

    /// Whether `transmit_offload` passes `off`'s work on to the medium.
    pub fn takes_offload(&self, off: &Offload) -> bool {
        self.tx
            .read()
            .unwrap()
            .as_ref()
            .is_some_and(|tx| tx.takes_offload(off))
    }

    /// `transmit` for a frame with offload work left: the medium takes it
    /// along, or it is done here first. Counted as the frames it stands for.
    pub fn transmit_offload(&self, frame: &[u8], off: &Offload) -> Result<(), Errno> {
        if !self.is_running() {
            self.counters.oerrors.fetch_add(1, Relaxed);
            return Err(Errno::ENETDOWN);
        }
        // Not held across the send: `set_transmit` never waits for one.
        let tx = self.tx.read().unwrap().clone();
        let Some(tx) = tx else {
            self.counters.oerrors.fetch_add(1, Relaxed);
            return Err(Errno::ENXIO);
        };
        if off.is_none() || tx.takes_offload(off) {
            let r = if off.is_none() {
                tx.transmit(frame)
            } else {
                tx.transmit_offload(frame, off)
            };
            let (packets, bytes) = off.wire_size(frame);
            return self.counters.count_output(frame, packets, bytes, r);
        }
        let mut r = Ok(());
        let done = offload::resolve(frame, off, |f| {
            let sent = tx.transmit(f);
            if let Err(e) = self.counters.count_output(f, 1, f.len() as u64, sent) {
                r = Err(e);
            }
        });
        if done.is_err() {
            self.counters.oerrors.fetch_add(1, Relaxed);
            return Err(Errno::EINVAL);
        }
        r
    }

    /// A frame arrived from the medium (`ether_input`): count it and pass it
    /// to the bridge, or deliver it locally if it is for us.
    pub fn input(self: &Arc<Self>, frame: &[u8]) {
        if frame.len() < 14 {
            self.counters.ierrors.fetch_add(1, Relaxed);
            return;
        }
        self.counters.count_input(frame, 1, frame.len() as u64);
        if let Some(upper) = self.upper.read().unwrap().as_ref() {
            upper.input(self, frame);
            return;
        }
        if is_multicast(frame) || self.is_own_mac(frame) || self.flags() & iff::PROMISC != 0 {
            self.deliver_local(frame);
        }
    }

    /// `input` for a frame with offload work left (from a host TAP): a
    /// bridge may forward it as it is; anywhere else the work is done
    /// first. A frame whose offload header does not fit it is an input
    /// error.
    pub fn input_offload(self: &Arc<Self>, frame: &[u8], off: &Offload) {
        if off.is_none() {
            return self.input(frame);
        }
        let upper = self.upper.read().unwrap().clone();
        if frame.len() >= 14
            && let Some(upper) = upper
            && upper.input_offload(self, frame, off)
        {
            let (packets, bytes) = off.wire_size(frame);
            self.counters.count_input(frame, packets, bytes);
            return;
        }
        if offload::resolve(frame, off, |f| self.input(f)).is_err() {
            self.counters.ierrors.fetch_add(1, Relaxed);
        }
    }

    /// Hand a frame to the host side of this interface: the IP stack and
    /// the library listener. Frames nobody takes count as noproto.
    pub fn deliver_local(&self, frame: &[u8]) {
        let stack = self.stack.read().unwrap().clone();
        if let Some(stack) = &stack {
            stack.input(frame);
        }
        let mut listener = self.listener.lock().unwrap();
        let Some(tx) = listener.as_ref() else {
            if stack.is_none() {
                self.counters.noproto.fetch_add(1, Relaxed);
            }
            return;
        };
        match tx.try_send(frame.to_vec()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counters.iqdrops.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => *listener = None,
        }
    }

    /// Start taking this interface's locally delivered frames.
    pub fn listen(&self) -> FrameReceiver {
        let (tx, rx) = sync_channel(LISTEN_QUEUE);
        *self.listener.lock().unwrap() = Some(tx);
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Null;
    impl Transmit for Null {
        fn transmit(&self, _frame: &[u8]) -> Result<(), Errno> {
            Ok(())
        }
    }

    #[test]
    fn any_frame_is_counted_never_a_panic() {
        let p = Port::new(1, "x0");
        p.set_flags(iff::UP | iff::RUNNING);
        p.set_transmit(Some(Arc::new(Null)));
        for f in [&[][..], &[1], &[0; 13]] {
            assert_eq!(p.transmit(f), Ok(()));
            p.input(f);
        }
        let d = p.counters.snapshot();
        assert_eq!((d.opackets, d.omcasts, d.ierrors), (3, 1, 3));
    }

    #[test]
    fn mac_round_trip() {
        let p = Port::new(1, "x0");
        assert_eq!(p.mac(), None);
        let m = [0xb2, 0xa0, 1, 2, 3, 4];
        p.set_mac(Some(m));
        assert_eq!(p.mac(), Some(m));
        assert!(p.is_own_mac(&m));
    }
}
