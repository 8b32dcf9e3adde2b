//! The data-plane face of an interface: counters, the flags the fast path
//! needs, and where received frames go. Drivers hold an `Arc<Port>` in their
//! I/O threads; the control plane updates it without stopping them.

use crate::frame::Frame;
use crate::ioctl::{Errno, IfData, Mac, iff};
use crate::offload::OffloadCaps;
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
    /// Count `frame` received, as the frames it stands for on a wire.
    pub fn count_input(&self, frame: &Frame) {
        let (packets, bytes) = frame.wire_size();
        self.ipackets.fetch_add(packets, Relaxed);
        self.ibytes.fetch_add(bytes, Relaxed);
        if frame.is_multicast() {
            self.imcasts.fetch_add(packets, Relaxed);
        }
    }

    /// Count `frame` sent, or as output errors when `r` says it was
    /// dropped, as the frames it stands for on a wire; hands `r` back.
    pub fn count_output(&self, frame: &Frame, r: Result<(), Errno>) -> Result<(), Errno> {
        let (packets, bytes) = frame.wire_size();
        match r {
            Ok(()) => {
                self.opackets.fetch_add(packets, Relaxed);
                self.obytes.fetch_add(bytes, Relaxed);
                if frame.is_multicast() {
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
    /// Put `frame` on the medium. Any offload work left on it is work
    /// `offloads` said the medium takes.
    fn transmit(&self, frame: &Frame) -> Result<(), Errno>;

    /// The offload work the medium takes along with a frame (a host TAP
    /// with offloads on); any other is done before `transmit`.
    fn offloads(&self) -> OffloadCaps {
        OffloadCaps::NONE
    }
}

/// Where a port hands the frames it receives when it is a bridge member.
/// Frames may carry offload work: whoever needs them finished finishes
/// them (`Port::transmit`, `Port::deliver_local`).
pub trait Upper: Send + Sync {
    fn input(&self, from: &Arc<Port>, frame: &Frame);

    /// The host sends a frame out of member `from` (`bridge_output`):
    /// by default it goes on that member's own medium.
    fn output(&self, from: &Port, frame: &Frame) -> Result<(), Errno> {
        from.transmit(frame)
    }
}

/// The host side of an interface: the IP presence (`crate::inet`). Gets
/// finished frames only.
pub trait Stack: Send + Sync {
    fn input(&self, frame: &Frame);
}

/// What sees an interface's received frames before its host side: the
/// forwarding plane (`crate::route`). It takes frames addressed to the
/// link but not to the host, and looks at the others (ARP) in passing.
pub trait Forward: Send + Sync {
    /// `frame` arrived on `from` for its host side; true if taken (forwarded
    /// or dropped), false to deliver it as usual.
    fn input(&self, from: &Port, frame: &Frame) -> bool;
}

/// Frames taken off an interface through the library API.
pub type FrameReceiver = Receiver<Vec<u8>>;

thread_local! {
    /// The port whose `input` this thread is in, bridge lock held (0: none).
    static IN_INPUT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

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
    forward: RwLock<Option<Arc<dyn Forward>>>,
    listener: Mutex<Option<SyncSender<Vec<u8>>>>,
}

/// A group address: broadcast or multicast.
pub fn is_multicast(mac: &Mac) -> bool {
    mac[0] & 1 != 0
}

/// A MAC as one word, as a port keeps it: cheap to compare against
/// every member of a bridge.
pub fn mac_word(mac: &Mac) -> u64 {
    let [a, b, c, d, e, f] = *mac;
    u64::from_be_bytes([0, 0, a, b, c, d, e, f])
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
            forward: RwLock::new(None),
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
        self.mac.store(mac.as_ref().map_or(0, mac_word), Relaxed)
    }

    /// The active MAC as a [`mac_word`]; 0 for none.
    pub fn mac_word(&self) -> u64 {
        self.mac.load(Relaxed)
    }

    pub fn is_own_mac(&self, mac: &Mac) -> bool {
        self.mac_word() == mac_word(mac)
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

    pub fn set_forward(&self, forward: Option<Arc<dyn Forward>>) {
        *self.forward.write().unwrap() = forward;
    }

    pub fn has_upper(&self) -> bool {
        self.upper.read().unwrap().is_some()
    }

    /// Send a frame out of this interface (`if_output`); a bridge member
    /// hands it to its bridge.
    pub fn output(&self, frame: &Frame) -> Result<(), Errno> {
        if !self.is_running() {
            return self.counters.count_output(frame, Err(Errno::ENETDOWN));
        }
        let upper = self.upper.read().unwrap().clone();
        match upper {
            Some(upper) => upper.output(self, frame),
            None => self.transmit(frame),
        }
    }

    /// Put a frame on this interface's own medium (`if_transmit`), past
    /// any bridge: with its offload work if the medium takes it, else
    /// finished here. Counted as the frames it stands for; an error means
    /// it was dropped.
    pub fn transmit(&self, frame: &Frame) -> Result<(), Errno> {
        // Not held across the send: `set_transmit` never waits for one.
        let tx = self.tx.read().unwrap().clone();
        let mut r = Ok(());
        let dropped = match tx.as_ref() {
            _ if !self.is_running() => Err(Errno::ENETDOWN),
            None => Err(Errno::ENXIO),
            Some(tx) => frame
                .finish(tx.offloads(), |f| {
                    let sent = tx.transmit(f);
                    if let Err(e) = self.counters.count_output(f, sent) {
                        r = Err(e);
                    }
                })
                .map_err(|_| Errno::EINVAL),
        };
        match dropped {
            Err(e) => self.counters.count_output(frame, Err(e)),
            Ok(()) => r,
        }
    }

    /// Count an input error: bytes from the medium that are no frame.
    pub fn input_error(&self) {
        self.counters.ierrors.fetch_add(1, Relaxed);
    }

    /// A frame arrived from the medium (`ether_input`): count it and pass it
    /// to the bridge, or deliver it locally if it is for us.
    pub fn input(self: &Arc<Self>, frame: &Frame) {
        self.counters.count_input(frame);
        // Held across the input: removing a member waits for the frames
        // it is forwarding (no cache entry for it learned after).
        if let Some(upper) = self.upper.read().unwrap().as_ref() {
            let outer = IN_INPUT.replace(Arc::as_ptr(self) as usize);
            upper.input(self, frame);
            IN_INPUT.set(outer);
            return;
        }
        if frame.is_multicast() || self.is_own_mac(&frame.dst()) || self.flags() & iff::PROMISC != 0
        {
            self.deliver_local(frame);
        }
    }

    /// Whether this thread is inside `input` of this port, holding its
    /// bridge: a host that answered there, out of this port, would take
    /// that lock again (and wait for good behind a writer).
    pub fn in_input(&self) -> bool {
        IN_INPUT.get() == self as *const Port as usize
    }

    /// Hand a frame to the host side of this interface: the library
    /// listener (which sees every frame delivered here, as a bpf tap
    /// does), the forwarding path, and the IP stack if the forwarding path
    /// does not take it. The listener and the stack take finished frames
    /// (a frame whose offload header does not fit it is an input error).
    /// Frames nobody takes count as noproto.
    pub fn deliver_local(&self, frame: &Frame) {
        let listening = self.listener.lock().unwrap().is_some();
        // A frame whose offload work does not fit it is one input error,
        // however many of the host side look at it.
        let mut malformed = listening && !self.finished(frame, None, true);
        let forward = self.forward.read().unwrap().clone();
        // A frame the forwarding path takes is its own: the stack is not
        // even looked up (a lock and a reference count less per frame).
        if !forward.is_some_and(|f| f.input(self, frame)) {
            let stack = self.stack.read().unwrap().clone();
            match stack {
                Some(stack) => malformed |= !self.finished(frame, Some(&stack), false),
                None if !listening => {
                    self.counters
                        .noproto
                        .fetch_add(frame.wire_size().0, Relaxed);
                }
                None => {}
            }
        }
        if malformed {
            self.input_error();
        }
    }

    /// Hand the IP stack a frame the forwarding path rewrote in place of
    /// the one that arrived (its IPv4 options processed): past the
    /// forwarding path and the listener, which saw the original.
    pub fn to_stack(&self, frame: &Frame) {
        let stack = self.stack.read().unwrap().clone();
        if let Some(stack) = stack
            && !self.finished(frame, Some(&stack), false)
        {
            self.input_error();
        }
    }

    /// `frame` finished, to the stack and/or the listener; false if its
    /// offload work does not fit it.
    fn finished(&self, frame: &Frame, stack: Option<&Arc<dyn Stack>>, listener: bool) -> bool {
        let done = frame.finish(OffloadCaps::NONE, |f| {
            if let Some(stack) = stack {
                stack.input(f);
            }
            if !listener {
                return;
            }
            let mut listener = self.listener.lock().unwrap();
            let Some(tx) = listener.as_ref() else { return };
            match tx.try_send(f.bytes().to_vec()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.counters.iqdrops.fetch_add(1, Relaxed);
                }
                Err(TrySendError::Disconnected(_)) => *listener = None,
            }
        });
        done.is_ok()
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
    use crate::offload::Offload;

    /// Records what reaches the medium, and the work left on it.
    struct Medium(OffloadCaps, Mutex<Vec<(Vec<u8>, Offload)>>);
    impl Transmit for Medium {
        fn transmit(&self, frame: &Frame) -> Result<(), Errno> {
            let f = (frame.bytes().to_vec(), *frame.offload());
            self.1.lock().unwrap().push(f);
            Ok(())
        }
        fn offloads(&self) -> OffloadCaps {
            self.0
        }
    }

    fn port(caps: OffloadCaps) -> (Arc<Port>, Arc<Medium>) {
        let p = Port::new(1, "x0");
        p.set_flags(iff::UP | iff::RUNNING);
        let m = Arc::new(Medium(caps, Mutex::new(Vec::new())));
        p.set_transmit(Some(m.clone()));
        (p, m)
    }

    #[test]
    fn frames_are_counted_in_and_out() {
        let (p, m) = port(OffloadCaps::NONE);
        let b = [[0xff; 6], [2; 6], [0; 6]].concat();
        let f = Frame::new(&b).unwrap();
        assert_eq!(p.transmit(&f), Ok(()));
        p.input(&f);
        let d = p.counters.snapshot();
        assert_eq!((d.opackets, d.obytes, d.omcasts), (1, 18, 1));
        assert_eq!((d.ipackets, d.ibytes, d.imcasts, d.noproto), (1, 18, 1, 1));
        assert_eq!(m.1.lock().unwrap().len(), 1);
        p.set_flags(iff::UP);
        assert_eq!(p.output(&f), Err(Errno::ENETDOWN));
        assert_eq!(p.counters.snapshot().oerrors, 1);
    }

    #[test]
    fn offload_work_is_done_only_for_a_medium_that_does_not_take_it() {
        let b = [[2; 6], [2; 6], [0; 6]].concat();
        let csum = Offload {
            flags: 1,
            csum_start: 14,
            csum_offset: 2,
            ..Offload::NONE
        };
        let f = Frame::with_offload(&b, csum).unwrap();
        let (p, m) = port(OffloadCaps::CSUM);
        assert_eq!(p.transmit(&f), Ok(()));
        assert_eq!(m.1.lock().unwrap()[0], (b.clone(), csum));
        let (p, m) = port(OffloadCaps::NONE);
        assert_eq!(p.transmit(&f), Ok(()));
        let (sent, off) = m.1.lock().unwrap()[0].clone();
        assert!(off.is_none() && sent[16..] == [0xff, 0xff]);
        let bad = Offload {
            csum_offset: 9,
            ..csum
        };
        let f = Frame::with_offload(&b, bad).unwrap();
        assert_eq!(p.transmit(&f), Err(Errno::EINVAL));
        let d = p.counters.snapshot();
        assert_eq!((d.opackets, d.oerrors), (1, 1));
    }

    #[test]
    fn the_host_side_gets_finished_frames() {
        let (p, _) = port(OffloadCaps::CSUM);
        let rx = p.listen();
        let b = [[0xff; 6], [2; 6], [0; 6]].concat();
        let csum = Offload {
            flags: 1,
            csum_start: 14,
            csum_offset: 2,
            ..Offload::NONE
        };
        p.input(&Frame::with_offload(&b, csum).unwrap());
        assert_eq!(rx.try_recv().unwrap()[16..], [0xff, 0xff]);
        let bad = Offload {
            csum_offset: 9,
            ..csum
        };
        p.input(&Frame::with_offload(&b, bad).unwrap());
        assert!(rx.try_recv().is_err());
        let d = p.counters.snapshot();
        assert_eq!((d.ipackets, d.ierrors), (2, 1));
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
