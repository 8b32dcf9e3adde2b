//! The spanning tree of a bridge at work: the pure [`Stp`] machine driven
//! from the reactor thread the bridge and its members share (a source
//! with no descriptor: its deadline is the next tick) and from the
//! members' receive path (BPDUs), which is the same thread. What it
//! decides is published to the data plane (each member's state), to the
//! address cache (fast aging during a topology change; a port that stops
//! forwarding forgets what it learned) and to the wire (the BPDUs it
//! queued, sent past the bridge on their member).

use super::bpdu::BpduRepr;
use super::forward::{BridgeIf, Softc};
use super::stp::{PortConf, PortState, Stp};
use crate::frame::Frame;
use crate::ioctl::ifbif;
use crate::reactor::Handler;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

impl Softc {
    fn stp(&self) -> MutexGuard<'_, Stp> {
        self.stp.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A frame to the BPDU address on spanning tree member `bif`.
    pub(super) fn bstp_input(&self, bif: &BridgeIf, frame: &Frame) {
        match BpduRepr::from_frame(frame) {
            Ok(bpdu) => {
                let mut stp = self.stp();
                stp.input(Instant::now(), bif.port.index, &bpdu);
                self.publish(&stp);
                let out = stp.take_output();
                drop(stp);
                self.send(out);
            }
            Err(_) => {
                self.bpdu_errors.fetch_add(1, Relaxed);
            }
        }
    }

    /// The control plane changed something: the tree takes it in and the
    /// data plane sees the new states before the request returns. What
    /// it has to send waits for the reactor thread, which `Bridge` wakes.
    pub(super) fn stp_configure(&self, now: Instant) {
        let mut stp = self.stp();
        self.stp_sync(&mut stp, now);
        self.publish(&stp);
    }

    /// Bring the tree up to date with the members, their links and the
    /// bridge's own state.
    fn stp_sync(&self, stp: &mut Stp, now: Instant) {
        let members = self.members();
        let ports: Vec<(PortConf, bool)> = members
            .iter()
            .filter(|m| m.flags & ifbif::STP != 0)
            .filter_map(|m| {
                let conf = PortConf {
                    ifindex: m.port.index,
                    mac: m.port.mac()?,
                    priority: m.priority as u8,
                    path_cost: m.path_cost,
                };
                Some((conf, m.port.is_running()))
            })
            .collect();
        stp.set_ports(&ports, now);
        let running = self.port.is_running();
        if running && !stp.is_running() {
            stp.start(now);
        } else if !running && stp.is_running() {
            stp.stop();
        }
    }

    /// Hand the tree's decisions to the data plane and the address cache.
    fn publish(&self, stp: &Stp) {
        let members = self.members();
        let now = self.now();
        let mut rt = self.rt.lock().unwrap();
        let fast = stp.topology_change().then(|| stp.forward_delay_secs());
        rt.set_fast_age(fast, now);
        for m in members.iter().filter(|m| m.flags & ifbif::STP != 0) {
            let new = stp.state(m.port.index);
            let old = PortState::from_u8(m.state.swap(new as u8, Relaxed));
            if old.learns() && !new.learns() {
                rt.flush_member(m.port.index);
            }
        }
    }

    /// Send the tree's BPDUs, each past the bridge on its member, counted
    /// as the bridge's output as NetBSD's `bridge_enqueue` counts them.
    fn send(&self, out: Vec<(u32, BpduRepr)>) {
        if out.is_empty() {
            return;
        }
        let members = self.members();
        for (ifindex, bpdu) in out {
            let Some(m) = members.iter().find(|m| m.port.index == ifindex) else {
                continue;
            };
            let Some(mac) = m.port.mac() else { continue };
            let bytes = bpdu.frame(mac);
            if let Some(f) = Frame::new(&bytes) {
                let _ = self.enqueue(m, &f);
            }
        }
    }
}

/// The tree's timer: a reactor source of the bridge's group.
impl Handler for Softc {
    fn poll(&self, now: Instant) -> Option<Instant> {
        let mut stp = self.stp();
        self.stp_sync(&mut stp, now);
        stp.poll(now);
        self.publish(&stp);
        let out = stp.take_output();
        let next = stp.poll_at();
        drop(stp);
        self.send(out);
        next
    }
}
