//! vxlan(4): a virtual Ethernet carried in UDP (RFC 7348) between VTEPs,
//! with FreeBSD's configuration and semantics. Its other ends are Linux
//! kernel vxlan devices, other ifnetds, Open vSwitch.
//!
//! Configured while down through SIOCSDRVSPEC ([`VxlanReq`]); a set while
//! running is refused with EBUSY, as FreeBSD does. Going up takes the UDP
//! socket of its local address and port in the daemon's network namespace
//! ([`vtep`], shared by VNI) and starts its data plane ([`io`]): unicast
//! mode sends unknown destinations, broadcast and multicast to
//! `vxlanremote`, multicast mode to the `vxlangroup` it joined (on
//! `vxlandev`). The forwarding table ([`ftable`]) learns inner source MACs
//! from the outer source addresses of what arrives.

mod flow;
mod ftable;
mod gso;
pub mod header;
pub mod io;
mod params;
mod vtep;

pub use ftable::Ftable;

use crate::cloner::{IfClone, KernelEnv};
use crate::drivers::ether;
use crate::drivers::kthread::random_bytes;
use crate::ifnet::{Driver, IfLookup, IfState};
use crate::ioctl::{
    DrvSpec, Errno, IfMedia, LinkState, LinkStatus, Mac, Reply, VXLAN_VNI_MAX, VxlanConfig,
    VxlanReq, iff,
};
use crate::port::Port;
use crate::reactor::Reactor;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The IANA port (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// The MTU over an IPv4 underlay of MTU 1500, and over IPv6.
pub const MTU_V4: u32 = 1500 - 50;
pub const MTU_V6: u32 = 1500 - 70;
/// Largest MTU: a jumbo underlay's.
pub const VXLAN_MAXMTU: u32 = 9000 - 50;
/// Source ports, when none are configured.
pub const PORT_MIN: u16 = 32768;
pub const PORT_MAX: u16 = 65535;
/// FreeBSD's default TTL (IPDEFTTL) and its bound.
pub const TTL_DEFAULT: u32 = 64;
pub const TTL_MAX: u32 = 255;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The class; its interfaces share the UDP sockets of one kernel.
#[derive(Default)]
pub struct VxlanClone {
    sockets: Arc<vtep::Registry>,
}

/// A locally administered unicast MAC, random as Linux's vxlan makes one.
fn vxlan_mac() -> std::io::Result<Mac> {
    let mut m: Mac = random_bytes()?;
    m[0] = (m[0] & 0xfe) | 0x02;
    Ok(m)
}

impl IfClone for VxlanClone {
    fn name(&self) -> &'static str {
        "vxlan"
    }

    fn create(&self, env: &KernelEnv, ifs: &mut IfState) -> Result<Box<dyn Driver>, Errno> {
        ifs.flags = iff::BROADCAST | iff::SIMPLEX | iff::MULTICAST;
        ifs.mtu = MTU_V4;
        ifs.set_lladdr(vxlan_mac()?);
        ifs.link_state = LinkState::Down;
        let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), VXLAN_PORT);
        Ok(Box::new(Vxlan {
            name: ifs.name.clone(),
            vni: None,
            local: any,
            remote: any,
            dev: None,
            port_min: PORT_MIN,
            port_max: PORT_MAX,
            ttl: TTL_DEFAULT,
            learn: true,
            ftable: Arc::new(Mutex::new(Ftable::default())),
            io: None,
            sockets: self.sockets.clone(),
            reactor: env.reactor()?,
            group: u64::from(ifs.index),
            port: ifs.port.clone(),
        }))
    }
}

pub struct Vxlan {
    name: String,
    vni: Option<u32>,
    local: SocketAddr,
    /// The default destination: unicast remote or multicast group.
    remote: SocketAddr,
    dev: Option<String>,
    port_min: u16,
    port_max: u16,
    ttl: u32,
    learn: bool,
    ftable: Arc<Mutex<Ftable>>,
    /// The data plane, while running.
    io: Option<Arc<io::VxlanIo>>,
    sockets: Arc<vtep::Registry>,
    reactor: Arc<Reactor>,
    /// Its reactor group: its bridge's index, or its own.
    group: u64,
    port: Arc<Port>,
}

fn is_v6(a: &SocketAddr) -> bool {
    a.is_ipv6()
}

/// `a` with another address, of either family, and the same port.
fn with_ip(a: SocketAddr, ip: IpAddr) -> SocketAddr {
    SocketAddr::new(ip, a.port())
}

impl Vxlan {
    /// The family of the underlay, when an address gave one.
    fn family_v6(&self) -> Option<bool> {
        [self.remote, self.local]
            .iter()
            .find(|a| !a.ip().is_unspecified())
            .map(is_v6)
    }

    /// The MTU follows the underlay's family while it has its default.
    fn adjust_mtu(&self, ifs: &mut IfState) {
        match self.family_v6() {
            Some(true) if ifs.mtu == MTU_V4 => ifs.mtu = MTU_V6,
            Some(false) if ifs.mtu == MTU_V6 => ifs.mtu = MTU_V4,
            _ => {}
        }
    }

    fn config(&self) -> VxlanConfig {
        let mut ft = lock(&self.ftable);
        ft.expire(Instant::now());
        VxlanConfig {
            vni: self.vni,
            local: self.local,
            remote: self.remote,
            dev: self.dev.clone(),
            ftable_cnt: ft.len() as u32,
            ftable_max: ft.max,
            ftable_timeout: ft.timeout,
            port_min: self.port_min,
            port_max: self.port_max,
            learn: self.learn,
            ttl: self.ttl,
        }
    }

    fn set(&mut self, ifs: &mut IfState, req: &VxlanReq) -> Result<(), Errno> {
        // vxlan_can_change_config
        if ifs.flags & iff::RUNNING != 0 {
            return Err(Errno::EBUSY);
        }
        match req {
            VxlanReq::GetConfig | VxlanReq::Flush { .. } => {}
            VxlanReq::SetVni(v) if *v < VXLAN_VNI_MAX => self.vni = Some(*v),
            // Families are checked when it starts, as FreeBSD does: a
            // change of family sets both addresses one after the other.
            VxlanReq::SetLocalAddr(a) if !a.is_multicast() => self.local = with_ip(self.local, *a),
            VxlanReq::SetRemoteAddr(a) => self.remote = with_ip(self.remote, *a),
            VxlanReq::SetLocalPort(p) if *p != 0 => self.local.set_port(*p),
            VxlanReq::SetRemotePort(p) if *p != 0 => self.remote.set_port(*p),
            VxlanReq::SetPortRange { min, max } if *min != 0 && min <= max => {
                (self.port_min, self.port_max) = (*min, *max)
            }
            VxlanReq::SetFtableTimeout(t) if *t <= ftable::FTABLE_MAX_TIMEOUT => {
                lock(&self.ftable).timeout = *t
            }
            VxlanReq::SetFtableMax(m) => lock(&self.ftable).max = *m,
            VxlanReq::SetMulticastIf(d) if !d.is_empty() && d.len() < 16 => {
                self.dev = Some(d.clone())
            }
            VxlanReq::SetTtl(t) if *t <= TTL_MAX => self.ttl = *t,
            VxlanReq::SetLearn(on) => self.learn = *on,
            _ => return Err(Errno::EINVAL),
        }
        self.adjust_mtu(ifs);
        Ok(())
    }

    /// Why the interface cannot start (vxlan_valid_init_config).
    fn params(&self) -> Result<params::Params, &'static str> {
        let vni = self.vni.ok_or("without a network identifier")?;
        if self.remote.ip().is_unspecified() {
            return Err("without a remote address");
        }
        if !self.local.ip().is_unspecified() && self.local.is_ipv6() != self.remote.is_ipv6() {
            return Err("with mixed IPv4 and IPv6 addresses");
        }
        let dev_index = match &self.dev {
            Some(d) if self.remote.ip().is_multicast() => {
                let c = std::ffi::CString::new(d.as_str()).map_err(|_| "bad vxlandev")?;
                // SAFETY: a NUL-terminated name.
                match unsafe { libc::if_nametoindex(c.as_ptr()) } {
                    0 => return Err("vxlandev does not exist"),
                    i => i,
                }
            }
            _ => 0,
        };
        Ok(params::Params {
            vni,
            local: self.local,
            remote: self.remote,
            dev_index,
            ttl: self.ttl,
            learn: self.learn,
            port_min: self.port_min,
            port_max: self.port_max,
        })
    }

    fn teardown(&mut self) {
        if let Some(io) = self.io.take() {
            io.close();
        }
        self.port.set_transmit(None);
    }
}

impl Driver for Vxlan {
    fn init(&mut self, ifs: &mut IfState) -> Result<(), Errno> {
        let p = self.params().map_err(|why| {
            crate::log::warn(&format!("{}: cannot initialize {why}", self.name));
            Errno::EINVAL
        })?;
        self.teardown();
        let vio = io::VxlanIo::open(
            p,
            self.ftable.clone(),
            ifs.mtu,
            &self.port,
            &self.sockets,
            &self.reactor,
            self.group,
        )
        .inspect_err(|e| {
            crate::log::warn(&format!(
                "{}: cannot start on {}: {e}",
                self.name, self.local
            ))
        })?;
        self.port
            .set_transmit(Some(Arc::new(io::VxlanTx(vio.clone()))));
        self.io = Some(vio);
        ifs.set_flags(ifs.flags | iff::RUNNING);
        ifs.link_state = LinkState::Up;
        Ok(())
    }

    fn stop(&mut self, ifs: &mut IfState) {
        self.teardown();
        ifs.set_flags(ifs.flags & !iff::RUNNING);
        ifs.link_state = LinkState::Down;
    }

    fn drvspec(
        &mut self,
        ifs: &mut IfState,
        _others: &mut dyn IfLookup,
        req: &DrvSpec,
    ) -> Result<Reply, Errno> {
        let DrvSpec::Vxlan(req) = req else {
            return Err(Errno::EINVAL);
        };
        match req {
            VxlanReq::GetConfig => {}
            VxlanReq::Flush { all } => lock(&self.ftable).flush(*all),
            _ => self.set(ifs, req)?,
        }
        Ok(Reply::Vxlan(self.config()))
    }

    fn link_status(&self) -> Option<LinkStatus> {
        Some(LinkStatus::Vxlan(self.config()))
    }

    fn set_bridge(&mut self, ifs: &mut IfState, bridge: Option<u32>) {
        self.group = u64::from(bridge.unwrap_or(ifs.index));
        if let Some(io) = &self.io {
            io.move_to(&self.reactor, self.group);
        }
    }

    fn media(&self, ifs: &IfState) -> Option<IfMedia> {
        Some(ether::autoselect_media(ifs.flags & iff::RUNNING != 0))
    }

    fn set_media(&mut self, _ifs: &mut IfState, media: &str) -> Result<(), Errno> {
        ether::set_autoselect_media(media)
    }

    fn set_mtu(&mut self, _ifs: &mut IfState, mtu: u32) -> Result<(), Errno> {
        if !(68..=VXLAN_MAXMTU).contains(&mtu) {
            return Err(Errno::EINVAL);
        }
        if let Some(io) = &self.io {
            io.set_mtu(mtu);
        }
        Ok(())
    }

    fn destroy(&mut self, _ifs: &mut IfState) -> Result<(), Errno> {
        self.teardown();
        Ok(())
    }
}

impl Drop for Vxlan {
    fn drop(&mut self) {
        self.teardown();
    }
}
