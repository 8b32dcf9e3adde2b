//! The bridge data plane (`bridge_input`, `bridge_forward`,
//! `bridge_broadcast`): runs on the members' receive threads, never blocks
//! on a member and allocates nothing per frame.

use super::Clock;
use super::rtable::Rtable;
use crate::ioctl::{Errno, Mac, ifbif};
use crate::offload::Offload;
use crate::port::{Port, Upper, is_multicast};
use std::sync::{Arc, Mutex, RwLock};

/// Destination of 802.1D BPDUs (`bstp_etheraddr`).
const BSTP_ETHERADDR: [u8; 6] = [0x01, 0x80, 0xc2, 0, 0, 0];

/// A member as the data plane sees it (`struct bridge_iflist`).
#[derive(Clone)]
pub struct BridgeIf {
    pub port: Arc<Port>,
    /// `IFBIF_*`
    pub flags: u32,
    pub priority: u32,
    pub path_cost: u32,
}

/// State shared by the control plane and every member's receive path
/// (`struct bridge_softc`).
pub struct Softc {
    /// The bridge's own interface: its flags gate forwarding, its
    /// counters count what the bridge forwards.
    pub port: Arc<Port>,
    /// Newest first. Replaced whole on change, so the fast path only
    /// clones an `Arc` and never holds the lock while sending.
    pub members: RwLock<Arc<Vec<BridgeIf>>>,
    pub rt: Mutex<Rtable>,
    pub clock: Arc<dyn Clock>,
}

impl Softc {
    pub fn members(&self) -> Arc<Vec<BridgeIf>> {
        self.members.read().unwrap().clone()
    }

    pub fn now(&self) -> u64 {
        self.clock.uptime()
    }

    /// Send one frame out of member `dst` (`bridge_enqueue`). A member that
    /// is not running is skipped; one that cannot take the frame drops it
    /// (counted in its `oerrors` and ours).
    fn enqueue(&self, dst: &BridgeIf, frame: &[u8]) -> Result<(), Errno> {
        self.enqueue_offload(dst, frame, &Offload::NONE)
    }

    /// `enqueue` for a frame with offload work left, counted as the frames
    /// it stands for.
    fn enqueue_offload(&self, dst: &BridgeIf, frame: &[u8], off: &Offload) -> Result<(), Errno> {
        if !dst.port.is_running() {
            return Ok(());
        }
        let r = dst.port.transmit_offload(frame, off);
        let (packets, bytes) = off.wire_size(frame);
        self.port.counters.count_output(frame, packets, bytes, r)
    }

    /// `bridge_broadcast`: send to every member but the input one (only to
    /// DISCOVER ones for an unknown unicast destination). A broadcast or
    /// multicast also reaches the host side of every member, the input one
    /// included, as the host is on the whole bridged segment.
    fn flood(&self, members: &[BridgeIf], src: &BridgeIf, frame: &[u8]) {
        let bmcast = is_multicast(frame);
        for m in members {
            if (!bmcast && m.flags & ifbif::DISCOVER == 0) || !m.port.is_running() {
                continue;
            }
            if !Arc::ptr_eq(&m.port, &src.port) && !protected_pair(src, m) {
                let _ = self.enqueue(m, frame);
            }
            if bmcast {
                m.port.deliver_local(frame);
            }
        }
    }

    /// The member `dst` is known to be behind (`bridge_rtlookup`). An entry
    /// for a member that just left counts as unknown.
    fn lookup<'a>(&self, members: &'a [BridgeIf], dst: &[u8], now: u64) -> Option<&'a BridgeIf> {
        let ifindex = self.rt.lock().unwrap().lookup(dst, now)?;
        members.iter().find(|m| m.port.index == ifindex)
    }

    fn learn(&self, bif: &BridgeIf, src: &[u8], now: u64) {
        if let Some(src) = learnable(bif, src) {
            self.rt.lock().unwrap().learn(src, bif.port.index, now);
        }
    }

    /// Learn `src` and look `dst` up under one lock: the unicast fast path.
    fn learn_lookup<'a>(
        &self,
        members: &'a [BridgeIf],
        bif: &BridgeIf,
        src: &[u8],
        dst: &[u8],
        now: u64,
    ) -> Option<&'a BridgeIf> {
        let ifindex = {
            let mut rt = self.rt.lock().unwrap();
            if let Some(src) = learnable(bif, src) {
                rt.learn(src, bif.port.index, now);
            }
            rt.lookup(dst, now)?
        };
        members.iter().find(|m| m.port.index == ifindex)
    }
}

/// The source address to learn from a frame received on `bif`, if any:
/// not on a -learn member, not a multicast or all-zero address.
fn learnable<'a>(bif: &BridgeIf, src: &'a [u8]) -> Option<&'a Mac> {
    if bif.flags & ifbif::LEARNING == 0 || is_multicast(src) || src.iter().all(|&b| b == 0) {
        return None;
    }
    src.try_into().ok()
}

/// `addr` is member `m`'s own address (a member without one has none).
fn is_own(m: &BridgeIf, addr: &[u8]) -> bool {
    m.port.is_own_mac(addr) && addr.iter().any(|&b| b != 0)
}

/// Frames never go from one protected member to another.
fn protected_pair(a: &BridgeIf, b: &BridgeIf) -> bool {
    a.flags & b.flags & ifbif::PROTECTED != 0
}

/// What a member does with a frame when it is not bridging: keep what is
/// addressed to it, as `ether_input` would (its PROMISC is the bridge's).
fn host_input(from: &Port, frame: &[u8]) {
    if is_multicast(frame) || from.is_own_mac(frame) {
        from.deliver_local(frame);
    }
}

impl Upper for Softc {
    fn input(&self, from: &Arc<Port>, frame: &[u8]) {
        // Port::input only hands us frames with a whole Ethernet header.
        if frame.len() < 14 {
            return;
        }
        let (dst, src) = (&frame[..6], &frame[6..12]);
        if !self.port.is_running() {
            host_input(from, frame);
            return;
        }
        let members = self.members();
        let Some(bif) = members.iter().find(|m| Arc::ptr_eq(&m.port, from)) else {
            host_input(from, frame);
            return;
        };
        if bif.flags & ifbif::STP != 0 && dst == BSTP_ETHERADDR {
            // A BPDU for the spanning tree, which we do not run: consume it.
            return;
        }
        let now = self.now();
        if !is_multicast(dst) {
            // For one of the members' own addresses: deliver it there.
            if let Some(m) = members.iter().find(|m| is_own(m, dst)) {
                self.learn(bif, src, now);
                m.port.deliver_local(frame);
                return;
            }
        }
        // A frame one of our members sent, coming back in.
        if members.iter().any(|m| is_own(m, src)) {
            return;
        }
        self.port.counters.count_input(frame, 1, frame.len() as u64);
        if is_multicast(dst) {
            self.learn(bif, src, now);
            self.flood(&members, bif, frame);
            return;
        }
        match self.learn_lookup(&members, bif, src, dst, now) {
            Some(m) if Arc::ptr_eq(&m.port, from) => {} // no hairpin
            Some(m) if protected_pair(bif, m) => {}
            Some(m) => {
                let _ = self.enqueue(m, frame);
            }
            None => self.flood(&members, bif, frame),
        }
    }

    /// The fast path for offloaded frames (TCP super-frames between host
    /// TAPs): a known unicast destination on another member whose medium
    /// takes the offload gets the frame as it is. Anything else — the
    /// host's own addresses, floods, members without offloads — is left to
    /// `input`, one finished frame at a time.
    fn input_offload(&self, from: &Arc<Port>, frame: &[u8], off: &Offload) -> bool {
        let (dst, src) = (&frame[..6], &frame[6..12]);
        if !self.port.is_running() || is_multicast(dst) {
            return false;
        }
        let members = self.members();
        let Some(bif) = members.iter().find(|m| Arc::ptr_eq(&m.port, from)) else {
            return false;
        };
        if members.iter().any(|m| is_own(m, dst) || is_own(m, src)) {
            return false;
        }
        match self.learn_lookup(&members, bif, src, dst, self.now()) {
            Some(m)
                if !Arc::ptr_eq(&m.port, from)
                    && !protected_pair(bif, m)
                    && m.port.takes_offload(off) =>
            {
                let (packets, bytes) = off.wire_size(frame);
                self.port.counters.count_input(frame, packets, bytes);
                let _ = self.enqueue_offload(m, frame, off);
                true
            }
            _ => false,
        }
    }

    /// Locally sent frames (`bridge_output`): a known destination gets
    /// them on its member; broadcast, multicast and unknown destinations go
    /// out of every member, the sending one included, and a broadcast or
    /// multicast reaches the host side of the other members too. Nothing
    /// is learned from them.
    fn output(&self, from: &Port, frame: &[u8]) -> Result<(), Errno> {
        if frame.len() < 14 || !self.port.is_running() {
            return from.transmit(frame);
        }
        let members = self.members();
        if !members.iter().any(|m| m.port.index == from.index) {
            return from.transmit(frame);
        }
        let dst = &frame[..6];
        let bmcast = is_multicast(dst);
        if !bmcast && let Some(m) = self.lookup(&members, dst, self.now()) {
            return self.enqueue(m, frame);
        }
        let mut r = Ok(());
        for m in members.iter().filter(|m| m.port.is_running()) {
            let sent = self.enqueue(m, frame);
            if m.port.index == from.index {
                r = sent;
            } else if bmcast {
                m.port.deliver_local(frame);
            }
        }
        r
    }
}
