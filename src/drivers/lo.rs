//! lo(4): the software loopback. What it sends it receives.

use crate::cloner::{IfClone, KernelEnv};
use crate::frame::Frame;
use crate::ifnet::{Driver, IfState, IfType, link_local_entry, loopback6_entry};
use crate::ioctl::{Errno, InAddr, iff};
use crate::port::{Port, Transmit};
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

/// NetBSD's default loopback MTU.
pub const LOMTU: u32 = 33624;
const LOMTU_MAX: u32 = 65536;

pub struct LoClone;

struct Lo;

struct Loopback(Weak<Port>);

impl Transmit for Loopback {
    fn transmit(&self, frame: &Frame) -> Result<(), Errno> {
        let port = self.0.upgrade().ok_or(Errno::ENXIO)?;
        // As looutput: packets and bytes in, no multicasts; no link-level
        // filter, and never a bridge member.
        let (packets, bytes) = frame.wire_size();
        port.counters.ipackets.fetch_add(packets, Relaxed);
        port.counters.ibytes.fetch_add(bytes, Relaxed);
        port.deliver_local(frame);
        Ok(())
    }
}

impl IfClone for LoClone {
    fn name(&self) -> &'static str {
        "lo"
    }

    fn create(&self, _env: &KernelEnv, ifs: &mut IfState) -> Result<Box<dyn Driver>, Errno> {
        ifs.kind = IfType::Loopback;
        ifs.mtu = LOMTU;
        ifs.flags = iff::LOOPBACK | iff::MULTICAST;
        ifs.port
            .set_transmit(Some(Arc::new(Loopback(Arc::downgrade(&ifs.port)))));
        if ifs.unit == 0 {
            // lo0 is configured at boot, as NetBSD's rc does.
            ifs.flags |= iff::UP | iff::RUNNING;
            ifs.inet.push(InAddr {
                addr: Ipv4Addr::LOCALHOST,
                mask: Ipv4Addr::new(255, 0, 0, 0),
                broadcast: None,
                dst: None,
                flags: 0,
            });
            ifs.inet6.push(loopback6_entry());
            ifs.inet6
                .push(link_local_entry(ifs.link_local().unwrap(), ifs.index));
            ifs.in6_attached = true;
        }
        Ok(Box::new(Lo))
    }
}

impl Driver for Lo {
    fn set_mtu(&mut self, _ifs: &mut IfState, mtu: u32) -> Result<(), Errno> {
        if mtu > LOMTU_MAX {
            Err(Errno::EINVAL)
        } else {
            Ok(())
        }
    }
}
