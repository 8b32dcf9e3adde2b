//! The bridge data plane (`bridge_input`, `bridge_forward`,
//! `bridge_broadcast`): runs on the members' receive threads, never blocks
//! on a member and allocates nothing per frame.

use super::Clock;
use super::bpdu::BSTP_ETHERADDR;
use super::rtable::Rtable;
use super::stp::{PortState, Stp};
use crate::frame::Frame;
use crate::ioctl::{Errno, Mac, ifbif};
use crate::port::{Port, Upper, is_multicast, mac_word};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

/// A member as the data plane sees it (`struct bridge_iflist`).
#[derive(Clone)]
pub struct BridgeIf {
    pub port: Arc<Port>,
    /// `IFBIF_*`
    pub flags: u32,
    pub priority: u32,
    pub path_cost: u32,
    /// Its spanning tree [`PortState`], as the tree last published it;
    /// shared by every copy of the member list.
    pub state: Arc<AtomicU8>,
}

impl BridgeIf {
    fn stp_state(&self) -> Option<PortState> {
        (self.flags & ifbif::STP != 0).then(|| PortState::from_u8(self.state.load(Relaxed)))
    }

    /// Frames other than BPDUs go out of it: it is not a spanning tree
    /// port, or a forwarding one.
    pub fn forwards(&self) -> bool {
        self.stp_state().is_none_or(|s| s == PortState::Forwarding)
    }
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
    /// The spanning tree (see `super::tree`).
    pub stp: Mutex<Stp>,
    /// Frames to the BPDU address on a spanning tree port that are no
    /// BPDU we take: ignored, counted.
    pub bpdu_errors: AtomicU64,
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
    /// (counted in its `oerrors` and ours). The member's medium takes the
    /// frame's offload work or the member does it: a TCP super-frame goes
    /// on unchanged between host TAPs with offloads.
    pub(super) fn enqueue(&self, dst: &BridgeIf, frame: &Frame) -> Result<(), Errno> {
        if !dst.port.is_running() {
            return Ok(());
        }
        let r = dst.port.transmit(frame);
        self.port.counters.count_output(frame, r)
    }

    /// `bridge_broadcast`: send to every member but the input one (only to
    /// DISCOVER ones for an unknown unicast destination). A broadcast or
    /// multicast also reaches the host side of every member, the input one
    /// included, as the host is on the whole bridged segment.
    fn flood(&self, members: &[BridgeIf], src: &BridgeIf, frame: &Frame, bmcast: bool) {
        for m in members {
            if (!bmcast && m.flags & ifbif::DISCOVER == 0) || !m.port.is_running() || !m.forwards()
            {
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
    fn lookup<'a>(&self, members: &'a [BridgeIf], dst: &Mac, now: u64) -> Option<&'a BridgeIf> {
        let ifindex = self.rt.lock().unwrap().lookup(dst, now)?;
        members.iter().find(|m| m.port.index == ifindex)
    }

    fn learn(&self, bif: &BridgeIf, src: &Mac, now: u64) {
        if learnable(bif, src) {
            self.rt.lock().unwrap().learn(src, bif.port.index, now);
        }
    }

    /// Learn `src` and look `dst` up under one lock: the unicast fast path.
    fn learn_lookup<'a>(
        &self,
        members: &'a [BridgeIf],
        bif: &BridgeIf,
        src: &Mac,
        dst: &Mac,
        now: u64,
    ) -> Option<&'a BridgeIf> {
        let ifindex = {
            let mut rt = self.rt.lock().unwrap();
            if learnable(bif, src) {
                rt.learn(src, bif.port.index, now);
            }
            rt.lookup(dst, now)?
        };
        members.iter().find(|m| m.port.index == ifindex)
    }
}

/// Whether to learn `src` from a frame received on `bif`: not on a -learn
/// member, not a multicast or all-zero address.
fn learnable(bif: &BridgeIf, src: &Mac) -> bool {
    bif.flags & ifbif::LEARNING != 0 && !is_multicast(src) && *src != [0; 6]
}

/// Frames never go from one protected member to another.
fn protected_pair(a: &BridgeIf, b: &BridgeIf) -> bool {
    a.flags & b.flags & ifbif::PROTECTED != 0
}

/// What a member does with a frame when it is not bridging: keep what is
/// addressed to it, as `ether_input` would (its PROMISC is the bridge's).
fn host_input(from: &Port, frame: &Frame) {
    if frame.is_multicast() || from.is_own_mac(&frame.dst()) {
        from.deliver_local(frame);
    }
}

/// What the forwarding decision rests on, read off a frame and the member
/// list in one pass.
struct Facts<'m> {
    dst: Mac,
    src: Mac,
    bmcast: bool,
    /// The member the frame came in on (`None`: it just left).
    bif: Option<&'m BridgeIf>,
    /// The member whose own unicast address the frame is for.
    for_member: Option<&'m BridgeIf>,
    /// The frame is one a member sent, coming back in.
    from_member: bool,
}

impl<'m> Facts<'m> {
    fn of(frame: &Frame, from: &Port, members: &'m [BridgeIf]) -> Facts<'m> {
        let (dst, src, bmcast) = (frame.dst(), frame.src(), frame.is_multicast());
        let mut f = Facts {
            dst,
            src,
            bmcast,
            bif: None,
            for_member: None,
            from_member: false,
        };
        let (dst_w, src_w) = (mac_word(&dst), mac_word(&src));
        for m in members {
            if f.bif.is_none() && std::ptr::eq(&*m.port, from) {
                f.bif = Some(m);
            }
            // 0: a member without an address, which has no own frames.
            let own = m.port.mac_word();
            if own == 0 {
                continue;
            }
            if own == dst_w && !bmcast && f.for_member.is_none() {
                f.for_member = Some(m);
            }
            f.from_member |= own == src_w;
        }
        f
    }
}

impl Upper for Softc {
    /// `bridge_input` and `bridge_forward`, for finished frames and
    /// frames with offload work alike: whoever they go to finishes them
    /// if it needs to.
    fn input(&self, from: &Arc<Port>, frame: &Frame) {
        if !self.port.is_running() {
            host_input(from, frame);
            return;
        }
        let members = self.members();
        let fx = Facts::of(frame, from, &members);
        let Some(bif) = fx.bif else {
            host_input(from, frame);
            return;
        };
        if bif.flags & ifbif::STP != 0 && fx.dst == BSTP_ETHERADDR {
            // For the spanning tree; BPDUs are never forwarded.
            self.bstp_input(bif, frame);
            return;
        }
        let now = self.now();
        match bif.stp_state() {
            Some(PortState::Forwarding) | None => {}
            // Addresses are learned, nothing is forwarded.
            Some(PortState::Learning) => {
                self.learn(bif, &fx.src, now);
                host_input(from, frame);
                return;
            }
            Some(_) => {
                host_input(from, frame);
                return;
            }
        }
        // For one of the members' own addresses: deliver it there.
        if let Some(m) = fx.for_member {
            self.learn(bif, &fx.src, now);
            m.port.deliver_local(frame);
            return;
        }
        if fx.from_member {
            return;
        }
        self.port.counters.count_input(frame);
        if fx.bmcast {
            self.learn(bif, &fx.src, now);
            self.flood(&members, bif, frame, true);
            return;
        }
        match self.learn_lookup(&members, bif, &fx.src, &fx.dst, now) {
            Some(m) if Arc::ptr_eq(&m.port, from) => {} // no hairpin
            Some(m) if protected_pair(bif, m) || !m.forwards() => {}
            Some(m) => {
                let _ = self.enqueue(m, frame);
            }
            None => self.flood(&members, bif, frame, false),
        }
    }

    /// Locally sent frames (`bridge_output`): a known destination gets
    /// them on its member; broadcast, multicast and unknown destinations go
    /// out of every member, the sending one included, and a broadcast or
    /// multicast reaches the host side of the other members too. Nothing
    /// is learned from them.
    fn output(&self, from: &Port, frame: &Frame) -> Result<(), Errno> {
        if !self.port.is_running() {
            return from.transmit(frame);
        }
        let members = self.members();
        if !members.iter().any(|m| m.port.index == from.index) {
            return from.transmit(frame);
        }
        let bmcast = frame.is_multicast();
        if !bmcast && let Some(m) = self.lookup(&members, &frame.dst(), self.now()) {
            if !m.forwards() && m.port.index != from.index {
                return Ok(());
            }
            return self.enqueue(m, frame);
        }
        let mut r = Ok(());
        // As NetBSD's bridge_output: the sending member always, the others
        // when they forward.
        for m in members
            .iter()
            .filter(|m| m.port.is_running() && (m.forwards() || m.port.index == from.index))
        {
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
