//! The interface model (`struct ifnet`) and the driver interface.

use crate::ioctl::{
    DrvSpec, Errno, IfMedia, IfStatus, In6Addr, InAddr, LinkState, LinkStatus, Mac, Reply, in6_iff,
};
use crate::port::Port;
use std::net::Ipv6Addr;
use std::sync::Arc;

/// What kind of link an interface is (`if_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfType {
    Loopback,
    Ethernet,
    Bridge,
}

/// The driver-independent state of an interface.
pub struct IfState {
    pub name: String,
    pub unit: u32,
    pub index: u32,
    pub kind: IfType,
    pub flags: u32,
    pub mtu: u32,
    pub metric: u32,
    /// (capabilities, enabled).
    pub capabilities: Option<(u32, u32)>,
    pub ec_capabilities: Option<(u32, u32)>,
    pub description: Option<String>,
    /// Link addresses; the active one is first.
    pub lladdrs: Vec<Mac>,
    pub link_state: LinkState,
    pub inet: Vec<InAddr>,
    pub inet6: Vec<In6Addr>,
    /// The IPv6 link-local address was attached (once, on first up).
    pub in6_attached: bool,
    pub port: Arc<Port>,
}

impl IfState {
    pub fn new(name: &str, unit: u32, index: u32, kind: IfType) -> IfState {
        IfState {
            name: name.to_string(),
            unit,
            index,
            kind,
            flags: 0,
            mtu: 1500,
            metric: 0,
            capabilities: None,
            ec_capabilities: None,
            description: None,
            lladdrs: Vec::new(),
            link_state: LinkState::Unknown,
            inet: Vec::new(),
            inet6: Vec::new(),
            in6_attached: false,
            port: Port::new(index, name),
        }
    }

    pub fn lladdr(&self) -> Option<Mac> {
        self.lladdrs.first().copied()
    }

    /// Make `mac` the active link address.
    pub fn set_lladdr(&mut self, mac: Mac) {
        self.lladdrs.retain(|m| *m != mac);
        self.lladdrs.insert(0, mac);
        self.port.set_mac(Some(mac));
    }

    pub fn set_flags(&mut self, flags: u32) {
        self.flags = flags;
        self.port.set_flags(flags);
    }

    /// The link-local address NetBSD's in6_ifattach assigns on first up.
    pub fn link_local(&self) -> Option<Ipv6Addr> {
        match self.kind {
            IfType::Loopback => Some(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            IfType::Ethernet => self.lladdr().map(eui64_link_local),
            IfType::Bridge => None,
        }
    }

    pub fn status(&self, driver: &dyn Driver) -> IfStatus {
        IfStatus {
            name: self.name.clone(),
            index: self.index,
            flags: self.flags,
            mtu: self.mtu,
            metric: self.metric,
            capabilities: self.capabilities,
            ec_capabilities: self.ec_capabilities,
            description: self.description.clone(),
            lladdr: self.lladdr(),
            lladdrs: self.lladdrs.clone(),
            linkstr: driver.linkstr(),
            txqueue: driver.txqueue(),
            link_state: self.link_state,
            media: driver.media(self),
            data: self.port.counters.snapshot(),
            inet: self.inet.clone(),
            inet6: self.inet6.clone(),
            link: driver.link_status(),
        }
    }
}

/// fe80::/64 with the modified EUI-64 interface identifier of `mac`.
pub fn eui64_link_local(mac: Mac) -> Ipv6Addr {
    let b = [
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ];
    Ipv6Addr::from(b)
}

/// A link-local inet6 address entry on interface `index`.
pub fn link_local_entry(addr: Ipv6Addr, index: u32) -> In6Addr {
    In6Addr {
        addr,
        prefixlen: 64,
        dst: None,
        flags: 0,
        pltime: crate::ioctl::INFINITE_LIFETIME,
        vltime: crate::ioctl::INFINITE_LIFETIME,
        scopeid: index,
    }
}

/// The loopback address entry (`::1/128`, NODAD).
pub fn loopback6_entry() -> In6Addr {
    In6Addr {
        addr: Ipv6Addr::LOCALHOST,
        prefixlen: 128,
        dst: None,
        flags: in6_iff::NODAD,
        pltime: crate::ioctl::INFINITE_LIFETIME,
        vltime: crate::ioctl::INFINITE_LIFETIME,
        scopeid: 0,
    }
}

/// The other interfaces, as a driver sees them during a request that
/// concerns them too (a bridge adding a member).
pub trait IfLookup {
    fn lookup(&mut self, name: &str) -> Option<(&mut IfState, &mut dyn Driver)>;
    fn lookup_index(&mut self, index: u32) -> Option<(&mut IfState, &mut dyn Driver)>;
}

/// Slow work a driver does for `linkstr` without the table lock (opening a
/// bus file), run by the requesting thread; its result goes to
/// [`Driver::commit_linkstr`].
pub type LinkPrep = Box<dyn FnOnce() -> Result<Box<dyn std::any::Any + Send>, Errno> + Send>;

/// What a driver does for the control plane. Defaults answer as a NetBSD
/// driver that does not handle the request.
pub trait Driver: Send {
    /// IFF_UP was set: start the interface (`if_init`). Set RUNNING on success.
    fn init(&mut self, ifs: &mut IfState) -> Result<(), Errno> {
        ifs.set_flags(ifs.flags | crate::ioctl::iff::RUNNING);
        Ok(())
    }

    /// IFF_UP was cleared (`if_stop`).
    fn stop(&mut self, ifs: &mut IfState) {
        ifs.set_flags(ifs.flags & !crate::ioctl::iff::RUNNING);
    }

    /// Flags other than UP changed (PROMISC, LINK0…).
    fn flags_changed(&mut self, _ifs: &mut IfState, _old: u32) {}

    fn set_linkstr(&mut self, _ifs: &mut IfState, _linkstr: Option<&str>) -> Result<(), Errno> {
        Err(Errno::ENOTTY)
    }

    /// `set_linkstr` in two steps, so that nothing waits under the table
    /// lock: under it, check and return the slow work (`None`: there is
    /// none, `set_linkstr` runs); the kernel runs it without the lock.
    fn prepare_linkstr(
        &mut self,
        _ifs: &mut IfState,
        _linkstr: &str,
    ) -> Result<Option<LinkPrep>, Errno> {
        Ok(None)
    }

    /// Under the lock again: take the prepared result. The interface may
    /// have changed meanwhile: check again.
    fn commit_linkstr(
        &mut self,
        ifs: &mut IfState,
        linkstr: &str,
        _prepared: Box<dyn std::any::Any + Send>,
    ) -> Result<(), Errno> {
        self.set_linkstr(ifs, Some(linkstr))
    }

    fn linkstr(&self) -> Option<String> {
        None
    }

    fn media(&self, _ifs: &IfState) -> Option<IfMedia> {
        None
    }

    fn set_media(&mut self, _ifs: &mut IfState, _media: &str) -> Result<(), Errno> {
        Err(Errno::ENOTTY)
    }

    /// The socket address of the client attached to the interface's
    /// control device (a tap's), if it has one: TAPGIFNAME.
    fn control_peer(&self) -> Option<Vec<u8>> {
        None
    }

    /// The enabled capabilities changed (SIOCSIFCAP); `ifs` has them.
    fn capabilities_changed(&mut self, _ifs: &mut IfState) {}

    /// Check (and apply to the medium) a new MTU; the kernel stores it.
    fn set_mtu(&mut self, ifs: &mut IfState, mtu: u32) -> Result<(), Errno> {
        match ifs.kind {
            IfType::Ethernet if !(68..=1500).contains(&mtu) => Err(Errno::EINVAL),
            _ => Ok(()),
        }
    }

    /// Called before the interface is removed; an error refuses the destroy.
    fn destroy(&mut self, _ifs: &mut IfState) -> Result<(), Errno> {
        Ok(())
    }

    /// Bytes the interface queues for its peer at most, where that is a
    /// setting (`ifconfig txqueue`, an ifnet extension).
    fn txqueue(&self) -> Option<u32> {
        None
    }

    fn set_txqueue(&mut self, _ifs: &mut IfState, _bytes: u32) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }

    /// A driver-specific request (SIOCSDRVSPEC/SIOCGDRVSPEC).
    fn drvspec(
        &mut self,
        _ifs: &mut IfState,
        _others: &mut dyn IfLookup,
        _req: &DrvSpec,
    ) -> Result<Reply, Errno> {
        Err(Errno::EINVAL)
    }

    /// Link-specific status for `ifconfig` (a vxlan's configuration).
    fn link_status(&self) -> Option<LinkStatus> {
        None
    }

    /// The interface joined the bridge with index `bridge`, or left it
    /// (`None`). A driver with reactor sources moves them to the bridge's
    /// group: the members of a bridge share a thread (see `crate::reactor`).
    fn set_bridge(&mut self, _ifs: &mut IfState, _bridge: Option<u32>) {}

    /// Another interface is being destroyed: forget it.
    fn ifdetach(&mut self, _ifs: &mut IfState, _gone: &mut IfState) {}

    /// This interface is being destroyed (after `destroy` agreed): let go
    /// of the interfaces it holds, as a bridge releases its members.
    fn release(&mut self, _ifs: &mut IfState, _others: &mut dyn IfLookup) {}

    /// One of this driver's threads called [`crate::cloner::KernelHook::sync`]:
    /// bring `ifs` up to date with what the threads saw (link state, a
    /// control device closed) and return requests for the kernel to run on
    /// this interface, as ifconfig would (e.g. clear IFF_UP).
    fn sync(&mut self, _ifs: &mut IfState) -> Vec<crate::ioctl::Request> {
        Vec::new()
    }
}
