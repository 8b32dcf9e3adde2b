//! virt(4): an Ethernet interface whose other end is a Linux TAP device.
//!
//! `virtN` attaches to the host TAP `tapN`, or to the one `linkstr` names
//! (set while down). The host TAP is opened on the first `up` (NetBSD's
//! virtif_init) and kept until destroy or a linkstr change, so the host's
//! configuration of it survives `down`/`up`. A missing TAP is created
//! (needs CAP_NET_ADMIN) and, not being persistent, disappears when we
//! close it; an existing persistent one is attached without privileges and
//! left in place. Both, and changes of the host TAP's MTU, are done with
//! the rights of the client that asked (see `cred`). While virt is down its host TAP is not read and the
//! host TAP has no carrier.
//!
//! Media: "Ethernet autoselect" only. Status is active while virt is
//! running and the host TAP exists and, when visible in the daemon's
//! network namespace, is up with carrier (IFF_UP|IFF_RUNNING). A TAP moved
//! to another namespace cannot be looked at and counts as active.

mod io;
pub mod tun;
pub mod uso;

use crate::cloner::{IfClone, KernelEnv, KernelHook};
use crate::drivers::ether;
use crate::drivers::kthread::random_bytes;
use crate::ifnet::{Driver, IfState};
use crate::ioctl::{Errno, IfMedia, LinkState, Mac, Request, ifcap, iff};
use crate::port::Port;
use crate::reactor::{Reactor, io_group};
use std::sync::{Arc, Mutex};
use tun::HostTap;

/// Largest MTU: a VLAN-tagged jumbo frame is 9018 bytes.
pub const VIRT_MAXMTU: u32 = 9000;

const CSUM_CAPS: u32 = ifcap::TCP4CSUM_RX
    | ifcap::TCP4CSUM_TX
    | ifcap::UDP4CSUM_RX
    | ifcap::UDP4CSUM_TX
    | ifcap::TCP6CSUM_RX
    | ifcap::TCP6CSUM_TX
    | ifcap::UDP6CSUM_RX
    | ifcap::UDP6CSUM_TX;

/// What the host TAP can do for us: TCP/UDP checksums and TCP
/// segmentation, on by default.
pub const VIRT_CAPS: u32 = CSUM_CAPS | ifcap::TSO4 | ifcap::TSO6;

/// The host TAP offloads (TUNSETOFFLOAD) that enabled capabilities ask
/// for. Linux's checksum offload is one switch for every protocol, so it
/// is on only while every checksum capability is; segmentation needs it.
fn tun_offloads(enabled: u32) -> u32 {
    if enabled & CSUM_CAPS != CSUM_CAPS {
        return 0;
    }
    let mut f = tun::TUN_F_CSUM;
    if enabled & ifcap::TSO4 != 0 {
        f |= tun::TUN_F_TSO4;
    }
    if enabled & ifcap::TSO6 != 0 {
        f |= tun::TUN_F_TSO6;
    }
    f
}

#[derive(Default)]
pub struct VirtClone {
    hook: Mutex<Option<KernelHook>>,
}

/// NetBSD's scheme: b2:0a:RR:0b:0e:NN, RR random, NN the unit.
pub fn virt_mac(unit: u32) -> std::io::Result<Mac> {
    let [r] = random_bytes::<1>()?;
    Ok([0xb2, 0x0a, r, 0x0b, 0x0e, (unit & 0xff) as u8])
}

impl IfClone for VirtClone {
    fn name(&self) -> &'static str {
        "virt"
    }

    fn attach(&self, _env: &KernelEnv, hook: &KernelHook) {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook.clone());
    }

    fn create(&self, env: &KernelEnv, ifs: &mut IfState) -> Result<Box<dyn Driver>, Errno> {
        ifs.flags = iff::BROADCAST | iff::SIMPLEX | iff::MULTICAST;
        ifs.mtu = 1500;
        ifs.set_lladdr(virt_mac(ifs.unit)?);
        ifs.link_state = LinkState::Down;
        ifs.capabilities = Some((VIRT_CAPS, VIRT_CAPS));
        let hook = self
            .hook
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(KernelHook::detached);
        let reactor = env.reactor()?;
        Ok(Box::new(Virt {
            name: ifs.name.clone(),
            linkstr: format!("tap{}", ifs.unit),
            default_linkstr: format!("tap{}", ifs.unit),
            host: None,
            io: None,
            reactor,
            hook,
            group: io_group(None),
            port: ifs.port.clone(),
            caps: VIRT_CAPS,
        }))
    }
}

pub struct Virt {
    name: String,
    /// The host TAP's name.
    linkstr: String,
    default_linkstr: String,
    /// Open from the first `up` until destroy or a linkstr change.
    host: Option<Arc<HostTap>>,
    /// The host TAP as the data plane sees it; with `host`.
    io: Option<Arc<io::VirtIo>>,
    /// Reads the host TAP while the interface is up.
    reactor: Arc<Reactor>,
    hook: KernelHook,
    /// Its reactor group: its bridge's index, or the routing group.
    group: u64,
    port: Arc<Port>,
    /// Enabled capabilities (IFCAP_*).
    caps: u32,
}

impl Virt {
    fn attach_host(&mut self) -> Result<Arc<HostTap>, Errno> {
        if let Some(h) = &self.host {
            if h.alive() {
                return Ok(h.clone());
            }
            // Deleted underneath us: let go and look for it again.
            self.detach_host();
        }
        // Attached or created with the client's rights: tun checks the
        // device's owner and group, and CAP_NET_ADMIN to create one.
        let h = Arc::new(crate::cred::as_requester(|| {
            HostTap::open(&self.name, &self.linkstr)
        })?);
        self.apply_offloads(&h);
        let vio = io::VirtIo::new(h.clone(), &self.port, self.hook.clone());
        self.port
            .set_transmit(Some(Arc::new(io::VirtTx(vio.clone()))));
        self.io = Some(vio);
        self.host = Some(h.clone());
        Ok(h)
    }

    /// Ask the host TAP for the offloads the enabled capabilities name;
    /// a host that cannot do them leaves all the work to the host stack.
    fn apply_offloads(&self, h: &HostTap) {
        if let Err(e) = h.set_offloads(tun_offloads(self.caps)) {
            crate::log::warn(&format!(
                "{}: host TAP {}: no offloads: {e}",
                self.name,
                h.name()
            ));
        }
    }

    /// Close the host TAP, which removes it if we created it.
    fn detach_host(&mut self) {
        self.stop_rx();
        // The port's transmitter holds the last other reference; once it is
        // replaced no transmit is in flight.
        self.port.set_transmit(None);
        self.io = None;
        if let Some(h) = self.host.take()
            && h.created()
        {
            crate::log::info(&format!("{}: removing host TAP {}", self.name, h.name()));
        }
    }

    fn stop_rx(&mut self) {
        if let Some(io) = &self.io {
            io.stop();
        }
    }

    fn link_active(&self, ifs: &IfState) -> bool {
        let Some(h) = &self.host else { return false };
        if ifs.flags & iff::RUNNING == 0 || !h.alive() {
            return false;
        }
        let want = (libc::IFF_UP | libc::IFF_RUNNING) as u32;
        h.host_status()
            .is_none_or(|(flags, _)| flags & want == want)
    }
}

impl Driver for Virt {
    fn init(&mut self, ifs: &mut IfState) -> Result<(), Errno> {
        let host = self.attach_host()?;
        if let Some((_, host_mtu)) = host.host_status()
            && host_mtu < ifs.mtu
            // Both ends of a link want the same MTU; raising the host's
            // needs root, and a smaller host MTU only drops big frames.
            && let Err(e) = crate::cred::as_requester(|| host.set_host_mtu(ifs.mtu))
        {
            crate::log::warn(&format!(
                "{}: host TAP {} has MTU {host_mtu} < {}: {e}",
                self.name,
                host.name(),
                ifs.mtu
            ));
        }
        let vio = self.io.clone().ok_or(Errno::ENXIO)?;
        vio.start(&self.reactor, self.group)?;
        host.set_carrier(true);
        ifs.set_flags(ifs.flags | iff::RUNNING);
        ifs.link_state = LinkState::Up;
        Ok(())
    }

    fn stop(&mut self, ifs: &mut IfState) {
        self.stop_rx();
        if let Some(h) = &self.host {
            h.set_carrier(false);
        }
        ifs.set_flags(ifs.flags & !iff::RUNNING);
        ifs.link_state = LinkState::Down;
    }

    fn set_linkstr(&mut self, ifs: &mut IfState, linkstr: Option<&str>) -> Result<(), Errno> {
        if ifs.flags & iff::UP != 0 {
            return Err(Errno::EBUSY);
        }
        let name = linkstr.unwrap_or(&self.default_linkstr).to_string();
        if !tun::valid_host_name(&name) {
            return Err(Errno::EINVAL);
        }
        if name != self.linkstr {
            self.detach_host();
            self.linkstr = name;
        }
        Ok(())
    }

    fn linkstr(&self) -> Option<String> {
        Some(self.linkstr.clone())
    }

    fn capabilities_changed(&mut self, ifs: &mut IfState) {
        self.caps = ifs.capabilities.map_or(0, |c| c.1);
        if let Some(h) = &self.host {
            self.apply_offloads(h);
        }
    }

    fn set_bridge(&mut self, _ifs: &mut IfState, bridge: Option<u32>) {
        self.group = io_group(bridge);
        if let Some(io) = &self.io
            && let Err(e) = io.move_to(&self.reactor, self.group)
        {
            crate::log::warn(&format!("{}: {e}", self.name));
        }
    }

    fn media(&self, ifs: &IfState) -> Option<IfMedia> {
        Some(ether::autoselect_media(self.link_active(ifs)))
    }

    fn set_media(&mut self, _ifs: &mut IfState, media: &str) -> Result<(), Errno> {
        ether::set_autoselect_media(media)
    }

    fn set_mtu(&mut self, _ifs: &mut IfState, mtu: u32) -> Result<(), Errno> {
        if !(68..=VIRT_MAXMTU).contains(&mtu) {
            return Err(Errno::EINVAL);
        }
        // Attached: the host TAP must carry it too.
        if let Some(h) = &self.host
            && let Some((_, host_mtu)) = h.host_status()
            && host_mtu < mtu
        {
            crate::cred::as_requester(|| h.set_host_mtu(mtu))?;
        }
        Ok(())
    }

    /// As NetBSD's virt: refused while up.
    fn destroy(&mut self, ifs: &mut IfState) -> Result<(), Errno> {
        if ifs.flags & iff::UP != 0 {
            return Err(Errno::EBUSY);
        }
        self.detach_host();
        Ok(())
    }

    /// The I/O thread saw the host TAP go away.
    fn sync(&mut self, ifs: &mut IfState) -> Vec<Request> {
        ifs.link_state = if self.link_active(ifs) {
            LinkState::Up
        } else {
            LinkState::Down
        };
        Vec::new()
    }
}

impl Drop for Virt {
    fn drop(&mut self) {
        self.detach_host();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_scheme() {
        let m = virt_mac(0x1_05).unwrap();
        assert_eq!(
            [m[0], m[1], m[3], m[4], m[5]],
            [0xb2, 0x0a, 0x0b, 0x0e, 0x05]
        );
        assert!(!crate::port::is_multicast(&m));
    }
}
