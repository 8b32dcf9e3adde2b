//! bridge(4): an Ethernet bridge between member interfaces, with NetBSD's
//! learning address cache, per-member LEARNING/DISCOVER/PROTECTED flags
//! and 802.1D spanning tree on the members where `stp` is on.
//!
//! - [`rtable`]: the address cache.
//! - [`forward`]: the data plane, plugged into each member's [`Port`] as
//!   its [`Upper`].
//! - [`bpdu`]: the BPDU wire format; [`stp`]: the spanning tree as a pure
//!   state machine; `tree`: the two at work on the bridge's reactor
//!   thread.
//!
//! On an `stp` member, frames other than BPDUs are forwarded only in the
//! `forwarding` state and addresses learned only in `learning` and
//! `forwarding`; in the other states such a member still delivers what
//! is for its own host side. BPDUs on a member without `stp` are bridged
//! like any multicast, so a bridge without STP is transparent to the
//! spanning tree of others. Any change of a member or of the bridge's
//! priority or times takes effect at once: the tree starts over, as in
//! NetBSD.
//!
//! Broadcasts and multicasts also reach the host side of every member,
//! as in NetBSD's `bridge_broadcast`; frames for a member's own MAC are
//! delivered to that member whichever member they came in on. Frames the
//! host sends on a member (`Port::output`) are bridged too
//! (`bridge_output`): to the member a known destination is behind, else
//! out of every member.
//!
//! Aging: expired entries are never used nor listed; they are swept out
//! of memory at most every [`rtable::BRIDGE_RTABLE_PRUNE_PERIOD`] seconds,
//! on the next frame learned or request (NetBSD: a 5-minute callout).
//!
//! Counters: the bridge's own interface counts each frame that reaches
//! the forwarding decision as input and each copy handed to a member as
//! output (a refused copy as `oerrors`), as NetBSD's `bridge_forward` and
//! `bridge_enqueue` do. The members count what they receive and send; a
//! member that cannot take a frame now drops it (its `oerrors`).

pub mod bpdu;
pub mod forward;
pub mod rtable;
pub mod stp;
mod tree;

use crate::cloner::{IfClone, KernelEnv};
use crate::ifnet::{Driver, IfLookup, IfState, IfType};
use crate::ioctl::{
    BridgeMember, BridgeReq, BridgeRoute, BridgeStatus, BridgeStp, DrvSpec, Errno, Reply, ifbif,
    iff,
};
use crate::port::{Port, Upper};
use crate::reactor::Registration;
use forward::{BridgeIf, Softc};
use rtable::Rtable;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// `IFBF_FILT_USEIPF`
pub const IFBF_FILT_USEIPF: u32 = 0x1;

/// Defaults of a new bridge and a new member (if_bridge.c, bridgestp.c).
const BSTP_DEFAULT_BRIDGE_PRIORITY: u32 = 0x8000;
const BSTP_DEFAULT_HELLO_TIME: u32 = 2;
const BSTP_DEFAULT_FORWARD_DELAY: u32 = 15;
const BSTP_DEFAULT_MAX_AGE: u32 = 20;
const BSTP_DEFAULT_PORT_PRIORITY: u32 = 0x80;
const BSTP_DEFAULT_PATH_COST: u32 = 55;

/// Seconds since some fixed point (`time_uptime`), for the cache ages.
pub trait Clock: Send + Sync {
    fn uptime(&self) -> u64;
}

/// The host's monotonic clock.
pub struct Uptime(Instant);

impl Default for Uptime {
    fn default() -> Self {
        Uptime(Instant::now())
    }
}

impl Clock for Uptime {
    fn uptime(&self) -> u64 {
        self.0.elapsed().as_secs()
    }
}

/// The `bridge` interface class.
pub struct BridgeClone {
    clock: Arc<dyn Clock>,
}

impl Default for BridgeClone {
    fn default() -> Self {
        BridgeClone {
            clock: Arc::new(Uptime::default()),
        }
    }
}

impl BridgeClone {
    /// Bridges whose address cache ages by `clock` (tests drive time).
    pub fn with_clock(clock: Arc<dyn Clock>) -> BridgeClone {
        BridgeClone { clock }
    }
}

impl IfClone for BridgeClone {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn create(&self, env: &KernelEnv, ifs: &mut IfState) -> Result<Box<dyn Driver>, Errno> {
        // No MAC, no BROADCAST/SIMPLEX/MULTICAST: `flags=0x41<UP,RUNNING>` once up.
        ifs.kind = IfType::Bridge;
        ifs.flags = 0;
        ifs.mtu = 1500;
        let sc = Arc::new(Softc {
            port: ifs.port.clone(),
            members: RwLock::new(Arc::new(Vec::new())),
            rt: Mutex::new(Rtable::default()),
            clock: self.clock.clone(),
            stp: Mutex::new(stp::Stp::new(stp::BridgeConf {
                priority: BSTP_DEFAULT_BRIDGE_PRIORITY as u16,
                hello_time: BSTP_DEFAULT_HELLO_TIME as u8,
                max_age: BSTP_DEFAULT_MAX_AGE as u8,
                forward_delay: BSTP_DEFAULT_FORWARD_DELAY as u8,
            })),
            bpdu_errors: AtomicU64::new(0),
        });
        // The tree's timer runs on the thread of the bridge's group, which
        // its members join.
        let timer = env
            .reactor()?
            .register_in(u64::from(ifs.index), None, sc.clone())?;
        Ok(Box::new(Bridge {
            sc,
            priority: BSTP_DEFAULT_BRIDGE_PRIORITY,
            hello_time: BSTP_DEFAULT_HELLO_TIME,
            fwd_delay: BSTP_DEFAULT_FORWARD_DELAY,
            max_age: BSTP_DEFAULT_MAX_AGE,
            filter: 0,
            timer,
        }))
    }
}

/// The control-plane half of a bridge.
struct Bridge {
    sc: Arc<Softc>,
    priority: u32,
    hello_time: u32,
    fwd_delay: u32,
    max_age: u32,
    filter: u32,
    /// The spanning tree's reactor source: woken after every change so
    /// that the tree takes it in at once.
    timer: Registration,
}

impl Bridge {
    /// Hand the tree the bridge's parameters and have it look at the
    /// members again.
    fn stp_update(&self) {
        let conf = stp::BridgeConf {
            priority: self.priority as u16,
            hello_time: self.hello_time as u8,
            max_age: self.max_age as u8,
            forward_delay: self.fwd_delay as u8,
        };
        let now = Instant::now();
        let mut t = self.sc.stp.lock().unwrap_or_else(|e| e.into_inner());
        t.set_conf(conf, now);
        drop(t);
        self.sc.stp_configure(now);
        self.timer.wake();
    }

    fn member(&self, name: &str) -> Result<BridgeIf, Errno> {
        self.sc
            .members()
            .iter()
            .find(|m| m.port.name == name)
            .cloned()
            .ok_or(Errno::ENOENT)
    }

    /// Replace the member list the data plane sees.
    fn update_members(&self, f: impl FnOnce(&mut Vec<BridgeIf>)) {
        let mut w = self.sc.members.write().unwrap();
        let mut v = Vec::clone(&w);
        f(&mut v);
        *w = Arc::new(v);
    }

    fn set_member<F: FnOnce(&mut BridgeIf)>(&self, name: &str, f: F) -> Result<(), Errno> {
        self.member(name)?;
        self.update_members(|v| {
            if let Some(m) = v.iter_mut().find(|m| m.port.name == name) {
                f(m);
            }
        });
        Ok(())
    }

    /// `BRDGADD`
    fn add(&self, ifs: &IfState, others: &mut dyn IfLookup, name: &str) -> Result<(), Errno> {
        if name == ifs.name {
            return Err(Errno::EINVAL); // a bridge is not Ethernet
        }
        let (st, drv) = others.lookup(name).ok_or(Errno::ENOENT)?;
        if self
            .sc
            .members()
            .iter()
            .any(|m| Arc::ptr_eq(&m.port, &st.port))
        {
            return Err(Errno::EEXIST);
        }
        if st.port.has_upper() {
            return Err(Errno::EBUSY);
        }
        if st.kind != IfType::Ethernet || st.mtu != ifs.mtu {
            return Err(Errno::EINVAL);
        }
        // ifpromisc(ifs, 1): the member must hear every station.
        let old = st.flags;
        st.set_flags(old | iff::PROMISC);
        if old & iff::PROMISC == 0 {
            drv.flags_changed(st, old);
        }
        let port = st.port.clone();
        self.update_members(|v| {
            v.insert(
                0,
                BridgeIf {
                    port: port.clone(),
                    flags: ifbif::LEARNING | ifbif::DISCOVER,
                    priority: BSTP_DEFAULT_PORT_PRIORITY,
                    path_cost: BSTP_DEFAULT_PATH_COST,
                    state: Arc::new(AtomicU8::new(0)),
                },
            )
        });
        port.set_upper(Some(self.sc.clone() as Arc<dyn Upper>));
        drv.set_bridge(st, Some(ifs.index));
        Ok(())
    }

    /// `bridge_delete_member`: unhook the port, forget its addresses and,
    /// when we can reach its state, take it out of promiscuous mode.
    fn delete_member(&self, port: &Arc<Port>, st: Option<(&mut IfState, &mut dyn Driver)>) {
        self.update_members(|v| v.retain(|m| !Arc::ptr_eq(&m.port, port)));
        port.set_upper(None);
        self.sc.rt.lock().unwrap().delete_member(port.index);
        if let Some((st, drv)) = st {
            drv.set_bridge(st, None);
            let old = st.flags;
            if old & iff::PROMISC != 0 {
                st.set_flags(old & !iff::PROMISC);
                drv.flags_changed(st, old);
            }
        }
    }

    fn status(&self, ifs: &IfState) -> BridgeStatus {
        let now = self.sc.now();
        let members = self.sc.members();
        let running = ifs.flags & iff::RUNNING != 0;
        let t = self.sc.stp.lock().unwrap_or_else(|e| e.into_inner());
        // Without `stp` a running member forwards.
        let state = |m: &BridgeIf| match (m.flags & ifbif::STP != 0, running) {
            (_, false) => "disabled",
            (false, true) => "forwarding",
            (true, true) => t.state(m.port.index).name(),
        };
        let name_of = |ifindex: u32| {
            members
                .iter()
                .find(|m| m.port.index == ifindex)
                .map(|m| m.port.name.clone())
        };
        let (max_cache, timeout, routes) = {
            let mut rt = self.sc.rt.lock().unwrap();
            rt.maybe_sweep(now);
            (rt.max, rt.timeout, rt.list(now))
        };
        BridgeStatus {
            priority: self.priority,
            hello_time: self.hello_time,
            fwd_delay: self.fwd_delay,
            max_age: self.max_age,
            filter: self.filter & IFBF_FILT_USEIPF != 0,
            filter_flags: self.filter,
            members: members
                .iter()
                .map(|m| BridgeMember {
                    name: m.port.name.clone(),
                    flags: m.flags,
                    port: m.port.index & 0xff,
                    priority: m.priority,
                    path_cost: m.path_cost,
                    state: state(m).to_string(),
                })
                .collect(),
            max_cache,
            timeout,
            routes: routes
                .iter()
                .filter_map(|e| {
                    Some(BridgeRoute {
                        mac: e.mac,
                        member: name_of(e.ifindex)?,
                        expire: e.expire,
                        flags: e.flags,
                    })
                })
                .collect(),
            stp: BridgeStp {
                bridge_id: if t.is_running() { t.bridge_id() } else { 0 },
                root_id: if t.is_running() { t.root_id() } else { 0 },
                root_path_cost: t.root_path_cost(),
                root_port: t.root_port().and_then(name_of),
                topology_change: t.topology_change(),
                config_in: t.counters.config_in,
                tcn_in: t.counters.tcn_in,
                config_out: t.counters.config_out,
                tcn_out: t.counters.tcn_out,
                bad_in: self.sc.bpdu_errors.load(Relaxed),
            },
        }
    }
}

/// An STP timer (`BRDGSHT`, `BRDGSFD`, `BRDGSMA`): 1–255 seconds.
fn stp_time(v: u32) -> Result<u32, Errno> {
    if (1..=255).contains(&v) {
        Ok(v)
    } else {
        Err(Errno::EINVAL)
    }
}

impl Driver for Bridge {
    fn init(&mut self, ifs: &mut IfState) -> Result<(), Errno> {
        ifs.set_flags(ifs.flags | iff::RUNNING);
        self.stp_update();
        Ok(())
    }

    fn stop(&mut self, ifs: &mut IfState) {
        ifs.set_flags(ifs.flags & !iff::RUNNING);
        self.sc.rt.lock().unwrap().flush(false);
        self.stp_update();
    }

    /// As NetBSD's bridge (ifioctl_common): any MTU, the members
    /// unchecked. It is checked when a member is added, so a jumbo bridge
    /// is built by setting the bridge's MTU and its members', then adding.
    fn set_mtu(&mut self, _ifs: &mut IfState, _mtu: u32) -> Result<(), Errno> {
        Ok(())
    }

    fn drvspec(
        &mut self,
        ifs: &mut IfState,
        others: &mut dyn IfLookup,
        req: &DrvSpec,
    ) -> Result<Reply, Errno> {
        let DrvSpec::Bridge(req) = req else {
            return Err(Errno::EINVAL);
        };
        let now = self.sc.now();
        match req {
            BridgeReq::Add { member } => self.add(ifs, others, member)?,
            BridgeReq::Del { member } => {
                let m = self.member(member)?;
                self.delete_member(&m.port, others.lookup(member));
            }
            BridgeReq::SetIfFlags { member, set, clear } => {
                self.set_member(member, |m| m.flags = (m.flags | set) & !clear)?
            }
            BridgeReq::SetIfPriority { member, priority } => {
                self.set_member(member, |m| m.priority = priority & 0xff)?
            }
            BridgeReq::SetIfCost { member, cost } => {
                self.set_member(member, |m| m.path_cost = cost & 0xff)?
            }
            BridgeReq::SetCacheSize(n) => self.sc.rt.lock().unwrap().set_max(*n, now),
            BridgeReq::SetTimeout(t) => self.sc.rt.lock().unwrap().timeout = *t,
            BridgeReq::AddStatic { member, mac } => {
                let m = self.member(member)?;
                self.sc
                    .rt
                    .lock()
                    .unwrap()
                    .add_static(mac, m.port.index, now)?
            }
            BridgeReq::DelAddr { mac } => self.sc.rt.lock().unwrap().delete(mac, now)?,
            BridgeReq::Flush { all } => self.sc.rt.lock().unwrap().flush(*all),
            BridgeReq::SetPriority(p) => {
                if *p > 0xffff {
                    return Err(Errno::EINVAL);
                }
                self.priority = *p
            }
            BridgeReq::SetHelloTime(t) => self.hello_time = stp_time(*t)?,
            BridgeReq::SetFwdDelay(t) => self.fwd_delay = stp_time(*t)?,
            BridgeReq::SetMaxAge(t) => self.max_age = stp_time(*t)?,
            BridgeReq::SetFilter(on) => self.filter = if *on { IFBF_FILT_USEIPF } else { 0 },
            BridgeReq::Get => return Ok(Reply::Bridge(self.status(ifs))),
        }
        self.stp_update();
        Ok(Reply::Ok)
    }

    fn ifdetach(&mut self, _ifs: &mut IfState, gone: &mut IfState) {
        if self
            .sc
            .members()
            .iter()
            .any(|m| Arc::ptr_eq(&m.port, &gone.port))
        {
            // Its flags die with it; only the bridge's hold on it matters.
            self.delete_member(&gone.port.clone(), None);
        }
    }

    fn release(&mut self, _ifs: &mut IfState, others: &mut dyn IfLookup) {
        for m in self.sc.members().iter() {
            self.delete_member(&m.port, others.lookup(&m.port.name));
        }
        self.sc.rt.lock().unwrap().flush(true);
    }
}
