//! Routing: the kernel's routing table (connected routes and local host
//! routes made from the interfaces' addresses, as NetBSD's rt_ifa_addlocal
//! and in_addprefix do, and the static routes route(8) adds) and the
//! forwarding path between interfaces (`forward`), which every port hands
//! its received frames to first (`port::Forward`).
//!
//! The kernel plugs a [`Router`] in: it hands it each interface's port,
//! calls [`Router::sync`] after every change of the interfaces, and passes
//! it the routing-socket requests. The router names no driver and no
//! kernel type.

mod forward;
mod hbh;
mod icmp;
mod ipopt;
mod neigh;
mod stats;
pub mod table;

use crate::ioctl::{Errno, Knobs, ProtoStats, Reply, Response, RouteReq, RtEntry, rtf};
use crate::port::Port;
use crate::reactor::{Handler, Reactor, Registration};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};
use table::{Fib, Route, key, mask};

pub use forward::parse_input;

/// What the router needs to know of an interface.
#[derive(Clone)]
pub struct IfInfo {
    pub index: u32,
    pub name: String,
    pub port: Arc<Port>,
    /// Up and running.
    pub up: bool,
    pub loopback: bool,
    pub mtu: u32,
    /// Usable addresses (not detached): address, prefix length.
    pub v4: Vec<(Ipv4Addr, u8)>,
    pub v6: Vec<(Ipv6Addr, u8)>,
}

/// The interfaces and the table made from them and the static routes:
/// replaced whole on a change, read by the forwarding path.
#[derive(Default)]
struct Config {
    ifs: Vec<IfInfo>,
    fib: Fib,
}

impl Config {
    fn interface(&self, index: u32) -> Option<&IfInfo> {
        self.ifs.iter().find(|i| i.index == index)
    }
}

pub struct Router {
    cfg: RwLock<Arc<Config>>,
    /// The static routes, as added.
    statics: Mutex<Vec<RtEntry>>,
    forwarding: AtomicBool,
    forwarding6: AtomicBool,
    redirect: AtomicBool,
    allowsrcrt: AtomicBool,
    forwsrcrt: AtomicBool,
    neigh: neigh::Neighbors,
    stats: stats::Stats,
    icmp_limit: Mutex<icmp::RateLimit>,
    echo_limit: Mutex<icmp::RateLimit>,
    ip_id: AtomicU16,
    reg: OnceLock<Weak<Registration>>,
}

impl Router {
    /// A router with no interfaces.
    pub fn new() -> Arc<Router> {
        Arc::new(Router {
            cfg: RwLock::new(Arc::new(Config::default())),
            statics: Mutex::new(Vec::new()),
            forwarding: AtomicBool::new(false),
            forwarding6: AtomicBool::new(false),
            redirect: AtomicBool::new(true),
            allowsrcrt: AtomicBool::new(false),
            forwsrcrt: AtomicBool::new(false),
            neigh: neigh::Neighbors::default(),
            stats: stats::Stats::default(),
            icmp_limit: Mutex::new(icmp::RateLimit::new(Instant::now(), icmp::ERR_PPS)),
            echo_limit: Mutex::new(icmp::RateLimit::new(Instant::now(), icmp::ECHO_PPS)),
            ip_id: AtomicU16::new(1),
            reg: OnceLock::new(),
        })
    }

    /// Have a thread of `reactor` run address resolution's retries. The
    /// caller owns the registration (the router holds it weakly, the timer
    /// holds the router weakly: no cycle keeps either alive).
    pub fn start_timer(self: &Arc<Self>, reactor: &Arc<Reactor>) -> Option<Arc<Registration>> {
        let timer = Arc::new(Timer(Arc::downgrade(self)));
        match reactor.register(None, timer) {
            Ok(reg) => {
                let reg = Arc::new(reg);
                let _ = self.reg.set(Arc::downgrade(&reg));
                Some(reg)
            }
            Err(e) => {
                crate::log::warn(&format!("route: no timer for address resolution: {e}"));
                None
            }
        }
    }

    fn wake(&self) {
        if let Some(r) = self.reg.get().and_then(Weak::upgrade) {
            r.wake();
        }
    }

    /// Take the sysctl knobs.
    pub fn set_knobs(&self, k: &Knobs) {
        self.forwarding.store(k.ip_forwarding, Relaxed);
        self.forwarding6.store(k.ip6_forwarding, Relaxed);
        self.redirect.store(k.ip_redirect, Relaxed);
        self.allowsrcrt.store(k.ip_allowsrcrt, Relaxed);
        self.forwsrcrt.store(k.ip_forwsrcrt, Relaxed);
    }

    fn config(&self) -> Arc<Config> {
        self.cfg.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The interfaces changed: rebuild the table.
    pub fn sync(&self, ifs: Vec<IfInfo>) {
        let statics = self.statics.lock().unwrap_or_else(|e| e.into_inner());
        let fib = build(&ifs, &statics);
        drop(statics);
        let gone: Vec<u32> = {
            let old = self.config();
            old.ifs
                .iter()
                .filter(|o| !ifs.iter().any(|i| i.index == o.index && i.up))
                .map(|o| o.index)
                .collect()
        };
        *self.cfg.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Config { ifs, fib });
        for index in gone {
            self.neigh.forget_interface(index);
        }
    }

    /// The routes through gateways that leave by interface `index`, for
    /// its host: destination, prefix length, gateway.
    pub fn gateway_routes(&self, index: u32) -> Vec<(IpAddr, u8, IpAddr)> {
        let cfg = self.config();
        let mut v = Vec::new();
        for six in [false, true] {
            for r in cfg.fib.routes(six) {
                if let Some(g) = r.gateway
                    && r.ifindex == index
                    && r.flags & rtf::GATEWAY != 0
                    && r.flags & (rtf::REJECT | rtf::BLACKHOLE) == 0
                {
                    let bits = if six { 128 } else { 32 };
                    v.push((from_key(r.net, bits), r.prefix, g));
                }
            }
        }
        v
    }

    /// The next hops the forwarding path resolved: interface, neighbour,
    /// link address, time left.
    pub fn neighbors(&self, now: Instant) -> Vec<(u32, IpAddr, crate::ioctl::Mac, Duration)> {
        self.neigh.entries(now)
    }

    /// Forget the next hops `which` picks (by interface and address).
    pub fn forget_neighbors(
        &self,
        which: &dyn Fn(u32, IpAddr) -> bool,
    ) -> Vec<(u32, IpAddr, crate::ioctl::Mac)> {
        self.neigh.forget(which)
    }

    fn rebuild(&self) {
        let ifs = self.config().ifs.clone();
        self.sync(ifs);
    }

    /// The protocol statistics, for netstat -s.
    pub fn stats(&self) -> ProtoStats {
        self.stats.snapshot()
    }

    /// A routing-socket request.
    pub fn request(&self, req: RouteReq) -> Response {
        match req {
            RouteReq::Add(e) => self.add(e, false),
            RouteReq::Change(e) => self.add(e, true),
            RouteReq::Delete { dst, prefix } => {
                let mut s = self.statics.lock().unwrap_or_else(|e| e.into_inner());
                let (k, bits) = key(dst);
                let pos = s.iter().position(|r| {
                    r.prefix == prefix && key(r.dst) == (k & mask(prefix, bits), bits)
                });
                let Some(pos) = pos else {
                    // A connected or local route is the interface's: not
                    // deletable by route(8) here.
                    return Err(Errno::ESRCH);
                };
                s.remove(pos);
                drop(s);
                self.rebuild();
                Ok(Reply::Ok)
            }
            RouteReq::Get { dst } => {
                let cfg = self.config();
                let r = cfg.fib.lookup(dst).ok_or(Errno::ESRCH)?;
                Ok(Reply::Route(self.entry(&cfg, r, dst.is_ipv6())))
            }
            RouteReq::Flush { v6 } => {
                let mut s = self.statics.lock().unwrap_or_else(|e| e.into_inner());
                let (gone, kept) = s
                    .drain(..)
                    .partition(|r| v6.is_none_or(|six| r.dst.is_ipv6() == six));
                *s = kept;
                drop(s);
                self.rebuild();
                Ok(Reply::Routes(gone))
            }
            RouteReq::Dump => {
                let cfg = self.config();
                let mut v = Vec::new();
                for six in [false, true] {
                    for r in cfg.fib.routes(six) {
                        v.push(self.entry(&cfg, r, six));
                    }
                }
                Ok(Reply::Routes(v))
            }
        }
    }

    /// A table route as route(8) sees it.
    fn entry(&self, cfg: &Config, r: &Route, v6: bool) -> RtEntry {
        let i = cfg.interface(r.ifindex);
        let dst = if v6 {
            IpAddr::V6(Ipv6Addr::from(r.net))
        } else {
            IpAddr::V4(Ipv4Addr::from(r.net as u32))
        };
        let ifa = i.and_then(|i| source_for(i, r.gateway.unwrap_or(dst)));
        RtEntry {
            dst,
            prefix: r.prefix,
            gateway: r.gateway,
            ifname: i.map(|i| i.name.clone()),
            ifa,
            flags: r.flags,
            mtu: r.mtu,
            used: 0,
        }
    }

    /// RTM_ADD and RTM_CHANGE of a static route.
    fn add(&self, mut e: RtEntry, change: bool) -> Response {
        let (k, bits) = key(e.dst);
        if e.prefix > bits {
            return Err(Errno::EINVAL);
        }
        e.dst = from_key(k & mask(e.prefix, bits), bits);
        if e.gateway.is_some_and(|g| g.is_ipv6() != e.dst.is_ipv6()) {
            return Err(Errno::EINVAL);
        }
        let cfg = self.config();
        if let Some(name) = &e.ifname
            && !cfg.ifs.iter().any(|i| &i.name == name)
        {
            return Err(Errno::ENXIO);
        }
        // rtrequest's ifa_ifwithroute: the gateway must be reachable (an
        // interface route's gateway is one of our addresses), unless the
        // route only rejects or drops.
        if e.flags & (rtf::REJECT | rtf::BLACKHOLE) == 0 && resolve(&cfg, &e).is_none() {
            return Err(Errno::ENETUNREACH);
        }
        let mut s = self.statics.lock().unwrap_or_else(|e| e.into_inner());
        let same = |r: &RtEntry| r.dst == e.dst && r.prefix == e.prefix;
        match (s.iter().position(same), change) {
            (Some(_), false) => return Err(Errno::EEXIST),
            (None, true) => return Err(Errno::ESRCH),
            (Some(p), true) => s[p] = e,
            (None, false) => {
                // A connected route of the same key and mask is there.
                if cfg
                    .fib
                    .exact(e.dst, e.prefix)
                    .is_some_and(|r| r.flags & rtf::STATIC == 0)
                {
                    return Err(Errno::EEXIST);
                }
                s.push(e);
            }
        }
        drop(s);
        self.rebuild();
        Ok(Reply::Ok)
    }
}

/// The resolution timer's handler on the reactor.
struct Timer(Weak<Router>);

impl Handler for Timer {
    fn poll(&self, now: Instant) -> Option<Instant> {
        self.0.upgrade()?.resolve_timer(now)
    }
}

fn from_key(k: u128, bits: u8) -> IpAddr {
    if bits == 32 {
        IpAddr::V4(Ipv4Addr::from(k as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(k))
    }
}

/// The address an interface sends to `to` with: one on `to`'s subnet, or
/// its first of the family.
fn source_for(i: &IfInfo, to: IpAddr) -> Option<IpAddr> {
    match to {
        IpAddr::V4(d) => {
            let on = i.v4.iter().find(|(a, p)| {
                let m = mask(*p, 32) as u32;
                u32::from(*a) & m == u32::from(d) & m
            });
            on.or(i.v4.first()).map(|(a, _)| IpAddr::V4(*a))
        }
        IpAddr::V6(d) => {
            let global = |a: &&(Ipv6Addr, u8)| !a.0.is_unicast_link_local();
            let on = i.v6.iter().find(|(a, p)| {
                let m = mask(*p, 128);
                u128::from(*a) & m == u128::from(d) & m
                    && (d.is_unicast_link_local() || !a.is_unicast_link_local())
            });
            on.or_else(|| i.v6.iter().find(global))
                .or(i.v6.first())
                .map(|(a, _)| IpAddr::V6(*a))
        }
    }
}

/// The interface a static route leaves by: the one it names, the one
/// holding an interface route's address, or the one whose connected
/// route reaches its gateway.
fn resolve(cfg: &Config, e: &RtEntry) -> Option<u32> {
    if let Some(name) = &e.ifname {
        return cfg.ifs.iter().find(|i| &i.name == name).map(|i| i.index);
    }
    let g = e.gateway?;
    if e.flags & rtf::GATEWAY == 0 {
        return cfg
            .ifs
            .iter()
            .find(|i| match g {
                IpAddr::V4(a) => i.v4.iter().any(|x| x.0 == a),
                IpAddr::V6(a) => i.v6.iter().any(|x| x.0 == a),
            })
            .map(|i| i.index);
    }
    cfg.fib
        .lookup(g)
        .filter(|r| r.flags & rtf::CONNECTED != 0 || r.is_local())
        .map(|r| r.ifindex)
}

/// The table: local and broadcast host routes and connected routes of
/// every up interface's addresses, then the static routes that resolve.
fn build(ifs: &[IfInfo], statics: &[RtEntry]) -> Fib {
    let mut fib = Fib::default();
    for i in ifs.iter().filter(|i| i.up) {
        for &(a, p) in &i.v4 {
            let k = u128::from(u32::from(a));
            let local = Route {
                net: k,
                prefix: 32,
                gateway: None,
                ifindex: i.index,
                flags: rtf::UP | rtf::HOST | rtf::LOCAL,
                mtu: 0,
            };
            fib.insert(local.clone(), false);
            if p < 32 && !i.loopback {
                let m = mask(p, 32);
                fib.insert(
                    Route {
                        net: k & m,
                        prefix: p,
                        gateway: None,
                        ifindex: i.index,
                        flags: rtf::UP | rtf::CONNECTED,
                        mtu: 0,
                    },
                    false,
                );
                let bcast = Route {
                    net: (k | !m) & 0xffff_ffff,
                    flags: rtf::UP | rtf::HOST | rtf::BROADCAST,
                    ..local
                };
                if p < 31 {
                    fib.insert(bcast, false);
                }
            }
            if i.loopback {
                // lo0's 127/8: everything in it stays in the host.
                let m = mask(p, 32);
                fib.insert(
                    Route {
                        net: k & m,
                        prefix: p,
                        flags: rtf::UP | rtf::LOCAL,
                        ..local
                    },
                    false,
                );
            }
        }
        for &(a, p) in &i.v6 {
            if a.is_unicast_link_local() {
                // Scoped: reached by the host, never forwarded.
                continue;
            }
            let k = u128::from(a);
            let local = Route {
                net: k,
                prefix: 128,
                gateway: None,
                ifindex: i.index,
                flags: rtf::UP | rtf::HOST | rtf::LOCAL,
                mtu: 0,
            };
            fib.insert(local.clone(), true);
            if p < 128 && !i.loopback {
                fib.insert(
                    Route {
                        net: k & mask(p, 128),
                        prefix: p,
                        flags: rtf::UP | rtf::CONNECTED,
                        ..local
                    },
                    true,
                );
            }
        }
    }
    let connected = Config {
        ifs: ifs.to_vec(),
        fib: fib.clone(),
    };
    for e in statics {
        let (k, bits) = key(e.dst);
        let ifindex = match resolve(&connected, e) {
            Some(i) => i,
            None if e.flags & (rtf::REJECT | rtf::BLACKHOLE) != 0 => 0,
            None => continue,
        };
        let mut flags = e.flags | rtf::UP | rtf::STATIC;
        if e.prefix == bits {
            flags |= rtf::HOST;
        }
        fib.insert(
            Route {
                net: k & mask(e.prefix, bits),
                prefix: e.prefix,
                gateway: e.gateway,
                ifindex,
                flags,
                mtu: e.mtu,
            },
            bits == 128,
        );
    }
    fib
}
