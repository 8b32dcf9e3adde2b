//! The virtual kernel: the interface table and the request dispatcher.
//! Used in-process by tests and Rust programs, and behind `ifnetd`.

use crate::cloner::{Cloners, DadTimers, KernelEnv, KernelEvent, KernelHook};
use crate::frame::Frame;
use crate::ifnet::{Driver, IfLookup, IfState, IfType, link_local_entry, loopback6_entry};
use crate::inet::{self, HostAddr};
use crate::ioctl::{
    Errno, In6Addr, In6AliasReq, InAddr, InAliasReq, Knobs, LinkState, LlEntry, Mac, Reply,
    Request, Response, iff, in_iff, in6_iff,
};
use crate::port::{FrameReceiver, Port};
use crate::reactor::{Reactor, io_group};
use crate::route::{IfInfo, Router};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Longest interface description (IFDESCRSIZE less the NUL).
pub const MAX_DESCR: usize = 63;
/// Longest link string.
pub const MAX_LINKSTR: usize = 1024;

pub struct Ifnet {
    pub state: IfState,
    pub driver: Box<dyn Driver>,
    /// The IP presence, while the interface is up with addresses.
    pub inet: Option<inet::Presence>,
    /// When each inet6 address with a finite lifetime got it.
    pub lifetimes: Vec<Lifetime>,
}

/// An address's preferred and valid lifetimes, in seconds from `set`
/// (in6_update_ifa1's ia6_lifetime).
#[derive(Clone, Copy, Debug)]
pub struct Lifetime {
    pub addr: std::net::Ipv6Addr,
    pub set: Instant,
    pub pltime: u32,
    pub vltime: u32,
}

impl Lifetime {
    /// Seconds left of `secs` at `now`, rounded up; infinite stays so.
    fn left(&self, secs: u32, now: Instant) -> u32 {
        if secs == crate::ioctl::INFINITE_LIFETIME {
            return secs;
        }
        let end = self.set + std::time::Duration::from_secs(u64::from(secs));
        let left = end.saturating_duration_since(now);
        left.as_secs() as u32 + u32::from(left.subsec_nanos() > 0)
    }

    /// When the address becomes invalid, if ever.
    fn expire(&self) -> Option<Instant> {
        (self.vltime != crate::ioctl::INFINITE_LIFETIME)
            .then(|| self.set + std::time::Duration::from_secs(u64::from(self.vltime)))
    }
}

/// Interfaces in index order.
#[derive(Default)]
pub struct IfTable {
    ifs: Vec<Ifnet>,
    next_index: u32,
}

impl IfTable {
    fn position(&self, name: &str) -> Option<usize> {
        self.ifs.iter().position(|i| i.state.name == name)
    }

    fn get(&mut self, name: &str) -> Result<&mut Ifnet, Errno> {
        self.ifs
            .iter_mut()
            .find(|i| i.state.name == name)
            .ok_or(Errno::ENXIO)
    }
}

impl IfLookup for IfTable {
    fn lookup(&mut self, name: &str) -> Option<(&mut IfState, &mut dyn Driver)> {
        let i = self.ifs.iter_mut().find(|i| i.state.name == name)?;
        Some((&mut i.state, i.driver.as_mut()))
    }

    fn lookup_index(&mut self, index: u32) -> Option<(&mut IfState, &mut dyn Driver)> {
        let i = self.ifs.iter_mut().find(|i| i.state.index == index)?;
        Some((&mut i.state, i.driver.as_mut()))
    }
}

/// See [`KernelInner::set_on_sync_change`].
pub type SyncHook = dyn Fn(&KernelInner) + Send + Sync;

/// The kernel proper. [`Kernel`] owns it and derefs to it; the
/// [`KernelHook`] thread shares it.
pub struct KernelInner {
    env: KernelEnv,
    cloners: Cloners,
    table: Mutex<IfTable>,
    /// Polls the IP presence of every interface.
    /// The data plane's threads: drivers' sources and the IP presences.
    reactor: Arc<Reactor>,
    /// What sysctl sets at run time, from `env` at first.
    knobs: Mutex<Knobs>,
    /// The routing table and the forwarding path between interfaces.
    router: Arc<Router>,
    /// Its resolution timer on the reactor, for as long as the kernel is.
    _route_timer: Option<Arc<crate::reactor::Registration>>,
    /// Called after a driver's `sync` (which may have changed the
    /// configuration) or an interface it had made (a tap cloned on
    /// connect), without the table lock: the daemon writes its state.
    on_sync_change: Mutex<Option<Box<SyncHook>>>,
}

pub struct Kernel {
    inner: Arc<KernelInner>,
    hook: KernelHook,
    hook_thread: Option<JoinHandle<()>>,
}

impl std::ops::Deref for Kernel {
    type Target = KernelInner;
    fn deref(&self) -> &KernelInner {
        &self.inner
    }
}

fn hook_thread(k: Arc<KernelInner>, events: Receiver<KernelEvent>) {
    for ev in events {
        match ev {
            KernelEvent::Quit => return,
            KernelEvent::Sync(index) => k.sync(index),
            KernelEvent::CreateLowest { class, then } => {
                then(k.create_lowest(class));
                k.driver_changed();
            }
        }
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        self.hook.quit();
        if let Some(t) = self.hook_thread.take() {
            let _ = t.join();
        }
    }
}

/// The classful netmask NetBSD still applies when none is given.
fn classful_mask(a: Ipv4Addr) -> Ipv4Addr {
    match a.octets()[0] {
        0..=127 => Ipv4Addr::new(255, 0, 0, 0),
        128..=191 => Ipv4Addr::new(255, 255, 0, 0),
        _ => Ipv4Addr::new(255, 255, 255, 0),
    }
}

impl Kernel {
    /// The kernel as a connection another thread can own, as a client
    /// opens several to `ifnetd` (ifping's requests in flight).
    pub fn connection(&self) -> Arc<KernelInner> {
        self.inner.clone()
    }

    /// A kernel with the interface classes `cloners` (the driver set; it
    /// must hold `lo`) and `lo0` attached.
    pub fn new(mut env: KernelEnv, cloners: Cloners) -> Kernel {
        // The data plane's threads, made here by whoever makes the kernel
        // (the daemon's main thread), so that they run with its credentials.
        let reactor = env
            .reactor
            .clone()
            .unwrap_or_else(|| Reactor::new(0).expect("the reactor threads start"));
        env.reactor = Some(reactor.clone());
        let knobs = Knobs {
            ip_dad_count: env.dad.probes_v4,
            ip6_dad_count: env.dad.probes_v6,
            auto_linklocal: !env.no_auto_linklocal,
            ip_forwarding: false,
            ip6_forwarding: false,
            ip_redirect: true,
            ip_allowsrcrt: false,
            ip_forwsrcrt: false,
        };
        let router = Router::new();
        router.set_knobs(&knobs);
        let route_timer = router.start_timer(&reactor);
        let inner = Arc::new(KernelInner {
            cloners,
            table: Mutex::new(IfTable {
                ifs: Vec::new(),
                next_index: 1,
            }),
            reactor,
            knobs: Mutex::new(knobs),
            router,
            _route_timer: route_timer,
            on_sync_change: Mutex::new(None),
            env,
        });
        let (hook, rx) = KernelHook::channel();
        let k2 = inner.clone();
        let hook_thread = std::thread::Builder::new()
            .name("ifnet-hook".into())
            .spawn(move || hook_thread(k2, rx))
            .ok();
        for class in inner.cloners.classes() {
            class.attach(&inner.env, &hook);
        }
        let k = Kernel {
            inner,
            hook,
            hook_thread,
        };
        k.ioctl(Request::IfCreate { name: "lo0".into() })
            .expect("lo0 attaches");
        k
    }
}

/// The in-process kernel answers requests as a connection to `ifnetd` does.
/// (Not imported: `k.ioctl()` on a `&Kernel` means the inherent method.)
impl crate::ioctl::Ioctl for &Kernel {
    fn ioctl(&mut self, req: Request) -> Response {
        KernelInner::ioctl(self, req)
    }
}

impl crate::ioctl::Ioctl for &KernelInner {
    fn ioctl(&mut self, req: Request) -> Response {
        KernelInner::ioctl(self, req)
    }
}

/// A connection of its own to the in-process kernel, for a thread (see
/// [`Kernel::connection`]).
impl crate::ioctl::Ioctl for Arc<KernelInner> {
    fn ioctl(&mut self, req: Request) -> Response {
        KernelInner::ioctl(self, req)
    }
}

impl KernelInner {
    pub fn env(&self) -> &KernelEnv {
        &self.env
    }

    /// The data-plane port of an interface.
    pub fn port(&self, name: &str) -> Option<Arc<Port>> {
        let mut t = self.table.lock().unwrap();
        t.get(name).ok().map(|i| i.state.port.clone())
    }

    /// Put a frame on an interface, as if the host stack sent it.
    /// Bytes too short for an Ethernet header are refused (`EINVAL`).
    pub fn send(&self, name: &str, frame: &[u8]) -> Result<(), Errno> {
        let port = self.port(name).ok_or(Errno::ENXIO)?;
        port.output(&Frame::new(frame).ok_or(Errno::EINVAL)?)
    }

    /// Take the frames an interface receives for the host.
    pub fn listen(&self, name: &str) -> Result<FrameReceiver, Errno> {
        Ok(self.port(name).ok_or(Errno::ENXIO)?.listen())
    }

    /// Destroy every interface (daemon shutdown). Interfaces that refuse
    /// while up are brought down first.
    pub fn shutdown(&self) {
        let names: Vec<String> = {
            let t = self.table.lock().unwrap();
            t.ifs.iter().rev().map(|i| i.state.name.clone()).collect()
        };
        for name in names {
            let _ = self.ioctl(Request::SetIfFlags {
                name: name.clone(),
                flags: 0,
            });
            if let Err(e) = self.ioctl(Request::IfDestroy { name: name.clone() }) {
                crate::log::warn(&format!("shutdown: destroy {name}: {e}"));
            }
        }
        for class in self.cloners.classes() {
            class.detach();
        }
    }

    /// Answer one request.
    pub fn ioctl(&self, req: Request) -> Response {
        if let Request::Echo {
            dst,
            scope,
            ident,
            seq,
            len,
            timeout_ms,
        } = req
        {
            return self.echo(dst, scope.as_deref(), ident, seq, len, timeout_ms);
        }
        if let Request::EchoFrom {
            dst,
            src,
            ttl,
            ident,
            seq,
            len,
            timeout_ms,
            mut opts,
        } = req
        {
            if opts.len() > 40 || (!opts.is_empty() && dst.is_ipv6()) {
                return Err(Errno::EINVAL);
            }
            opts.resize(opts.len().div_ceil(4) * 4, 0);
            let timeout = std::time::Duration::from_millis(u64::from(timeout_ms));
            let len = (usize::from(len), opts.as_slice());
            return self.echo_routed(dst, src, ttl, (ident, seq), len, timeout);
        }
        if let Request::SetLinkStr {
            name,
            linkstr: Some(l),
        } = &req
            && !l.is_empty()
            && l.len() <= MAX_LINKSTR
        {
            return self.set_linkstr(name, l);
        }
        let mut t = self.table.lock().unwrap();
        self.ioctl_locked(&mut t, req)
    }

    /// SIOCSLINKSTR: check under the table lock, let the driver do its
    /// slow work (open a bus file) without it, commit under it again.
    fn set_linkstr(&self, name: &str, linkstr: &str) -> Response {
        let (index, prep) = {
            let mut t = self.table.lock().unwrap();
            let i = t.get(name)?;
            match i.driver.prepare_linkstr(&mut i.state, linkstr)? {
                Some(prep) => (i.state.index, prep),
                None => {
                    i.driver.set_linkstr(&mut i.state, Some(linkstr))?;
                    return Ok(Reply::Ok);
                }
            }
        };
        let prepared = prep()?;
        let mut t = self.table.lock().unwrap();
        let i = t.get(name)?;
        if i.state.index != index {
            // Destroyed and made again meanwhile: not the one asked about.
            return Err(Errno::ENXIO);
        }
        i.driver
            .commit_linkstr(&mut i.state, linkstr, prepared)
            .map(|_| Reply::Ok)
    }

    /// Run `hook` after every driver `sync` and every interface a driver
    /// has made, which may have changed the configuration.
    pub fn set_on_sync_change(&self, hook: Box<SyncHook>) {
        *self.on_sync_change.lock().unwrap() = Some(hook);
    }

    /// A driver thread asked to be looked at: let the driver update its
    /// state and run what it asks for, all under one lock.
    fn sync(&self, index: u32) {
        let mut t = self.table.lock().unwrap();
        let Some(i) = t.ifs.iter_mut().find(|i| i.state.index == index) else {
            return;
        };
        let link = i.state.link_state;
        let reqs = i.driver.sync(&mut i.state);
        if_link_state_change(i, link, self.dad(), &self.reactor);
        for req in reqs {
            if let Err(e) = self.ioctl_locked(&mut t, req.clone()) {
                crate::log::warn(&format!("{req:?}: {e}"));
            }
        }
        self.sync_routes(&t);
        drop(t);
        // A driver may also change its state directly (a tap drops its
        // addresses): the hook looks at the whole.
        self.driver_changed();
    }

    /// A driver changed the configuration (or may have): tell the hook.
    fn driver_changed(&self) {
        if let Some(hook) = &*self.on_sync_change.lock().unwrap() {
            hook(self);
        }
    }

    fn create_lowest(&self, class: &str) -> Result<String, Errno> {
        let mut t = self.table.lock().unwrap();
        let unit = (0..u32::MAX)
            .find(|u| t.position(&format!("{class}{u}")).is_none())
            .ok_or(Errno::ENOSPC)?;
        let name = format!("{class}{unit}");
        self.create(&mut t, &name)?;
        Ok(name)
    }

    /// Run a request with the table locked, then start, reconfigure or stop
    /// the IP presence of the interface it changed.
    fn ioctl_locked(&self, t: &mut IfTable, req: Request) -> Response {
        let inet_changes = match &req {
            Request::SetIfFlags { name, .. }
            | Request::AifAddr { name, .. }
            | Request::DifAddr { name, .. }
            | Request::AifAddrIn6 { name, .. }
            | Request::DifAddrIn6 { name, .. }
            | Request::ALifAddr { name, .. } => Some(name.clone()),
            _ => None,
        };
        // Anything but a read or a routing request may change what the
        // routing table is made of.
        let changes = req.changes_config() && !matches!(req, Request::Route(_));
        age_addrs(t, Instant::now(), self.dad(), &self.reactor);
        let links: Vec<_> = t
            .ifs
            .iter()
            .map(|i| (i.state.index, i.state.link_state))
            .collect();
        let r = self.dispatch(t, req);
        for i in &mut t.ifs {
            if let Some(&(_, was)) = links.iter().find(|(x, _)| *x == i.state.index) {
                if_link_state_change(i, was, self.dad(), &self.reactor);
            }
        }
        if let Some(i) = inet_changes.and_then(|n| t.get(&n).ok()) {
            sync_inet(i, self.dad(), &self.reactor);
        }
        if changes {
            self.sync_routes(t);
        }
        r
    }

    fn dispatch(&self, t: &mut IfTable, req: Request) -> Response {
        match req {
            Request::IfCreate { name } => self.create(t, &name).map(|_| Reply::Ok),
            Request::IfDestroy { name } => destroy(t, &name).map(|_| Reply::Ok),
            Request::IfGCloners => Ok(Reply::Cloners(self.cloners.names())),
            Request::GetIfConf { name } => {
                let list = t
                    .ifs
                    .iter()
                    .filter(|i| name.as_ref().is_none_or(|n| *n == i.state.name))
                    .map(status)
                    .collect::<Vec<_>>();
                if name.is_some() && list.is_empty() {
                    return Err(Errno::ENXIO);
                }
                Ok(Reply::IfConf(list))
            }
            Request::GetIfFlags { name } => Ok(Reply::Flags(t.get(&name)?.state.flags)),
            Request::SetIfFlags { name, flags } => {
                set_flags(t.get(&name)?, flags).map(|_| Reply::Ok)
            }
            Request::GetIfMtu { name } => Ok(Reply::Mtu(t.get(&name)?.state.mtu)),
            Request::SetIfMtu { name, mtu } => {
                let i = t.get(&name)?;
                i.driver.set_mtu(&mut i.state, mtu)?;
                i.state.mtu = mtu;
                Ok(Reply::Ok)
            }
            Request::SetIfTxQueue { name, bytes } => {
                let i = t.get(&name)?;
                i.driver
                    .set_txqueue(&mut i.state, bytes)
                    .map(|()| Reply::Ok)
            }
            Request::SetIfMetric { name, metric } => {
                t.get(&name)?.state.metric = metric;
                Ok(Reply::Ok)
            }
            Request::AifAddr { name, req } => add_inet(t.get(&name)?, req).map(|_| Reply::Ok),
            Request::DifAddr { name, addr } => {
                let s = &mut t.get(&name)?.state;
                let pos = s
                    .inet
                    .iter()
                    .position(|a| a.addr == addr)
                    .ok_or(Errno::EADDRNOTAVAIL)?;
                s.inet.remove(pos);
                Ok(Reply::Ok)
            }
            Request::AifAddrIn6 { name, req } => add_inet6(t.get(&name)?, req).map(|_| Reply::Ok),
            Request::DifAddrIn6 { name, addr } => {
                let s = &mut t.get(&name)?.state;
                let pos = s
                    .inet6
                    .iter()
                    .position(|a| a.addr == addr)
                    .ok_or(Errno::EADDRNOTAVAIL)?;
                s.inet6.remove(pos);
                Ok(Reply::Ok)
            }
            Request::ALifAddr { name, mac, active } => {
                let s = &mut t.get(&name)?.state;
                if s.kind != IfType::Ethernet {
                    return Err(Errno::EOPNOTSUPP);
                }
                if crate::port::is_multicast(&mac) {
                    return Err(Errno::EINVAL);
                }
                if active {
                    s.set_lladdr(mac);
                } else if !s.lladdrs.contains(&mac) {
                    s.lladdrs.push(mac);
                }
                Ok(Reply::Ok)
            }
            Request::DLifAddr { name, mac } => {
                let s = &mut t.get(&name)?.state;
                match s.lladdrs.iter().position(|m| *m == mac) {
                    None => Err(Errno::EADDRNOTAVAIL),
                    Some(0) => Err(Errno::EBUSY),
                    Some(p) => {
                        s.lladdrs.remove(p);
                        Ok(Reply::Ok)
                    }
                }
            }
            Request::SetLinkStr { name, linkstr } => {
                if let Some(l) = &linkstr {
                    if l.is_empty() {
                        return Err(Errno::EINVAL);
                    }
                    if l.len() > MAX_LINKSTR {
                        return Err(Errno::E2BIG);
                    }
                }
                let i = t.get(&name)?;
                i.driver
                    .set_linkstr(&mut i.state, linkstr.as_deref())
                    .map(|_| Reply::Ok)
            }
            Request::GetLinkStr { name } => {
                let i = t.get(&name)?;
                Ok(Reply::LinkStr(i.driver.linkstr()))
            }
            Request::SetIfDescr { name, descr } => {
                let s = &mut t.get(&name)?.state;
                if descr.as_ref().is_some_and(|d| d.len() > MAX_DESCR) {
                    return Err(Errno::ENAMETOOLONG);
                }
                s.description = descr.filter(|d| !d.is_empty());
                Ok(Reply::Ok)
            }
            Request::GetIfMedia { name } => {
                let i = t.get(&name)?;
                i.driver
                    .media(&i.state)
                    .map(Reply::Media)
                    .ok_or(Errno::ENOTTY)
            }
            Request::SetIfMedia { name, media } => {
                let i = t.get(&name)?;
                i.driver.set_media(&mut i.state, &media).map(|_| Reply::Ok)
            }
            Request::SetIfCap { name, enabled } => {
                let i = t.get(&name)?;
                let s = &mut i.state;
                // As ifioctl_common: no capabilities is capabilities 0.
                let caps = s.capabilities.map_or(0, |c| c.0);
                if enabled & !caps != 0 {
                    return Err(Errno::EINVAL);
                }
                if s.capabilities.is_some() {
                    s.capabilities = Some((caps, enabled));
                    i.driver.capabilities_changed(s);
                }
                Ok(Reply::Ok)
            }
            Request::GetIfData { name } => {
                Ok(Reply::Data(t.get(&name)?.state.port.counters.snapshot()))
            }
            Request::ZIfData { name } => {
                let c = &t.get(&name)?.state.port.counters;
                let data = c.snapshot();
                c.zero();
                Ok(Reply::Data(data))
            }
            Request::SetDrvSpec { name, req } | Request::GetDrvSpec { name, req } => {
                let pos = t.position(&name).ok_or(Errno::ENXIO)?;
                // Take the interface out so its driver can see the others.
                let mut me = t.ifs.remove(pos);
                let r = me.driver.drvspec(&mut me.state, t, &req);
                t.ifs.insert(pos, me);
                r
            }
            // The daemon acts on it; in-process it only tears down.
            Request::Shutdown => Ok(Reply::Ok),
            Request::TapGIfName { peer } => t
                .ifs
                .iter()
                .find(|i| i.driver.control_peer().is_some_and(|p| p == peer))
                .map(|i| Reply::IfName(i.state.name.clone()))
                .ok_or(Errno::ENXIO),
            Request::Echo { .. } | Request::EchoFrom { .. } => {
                unreachable!("answered without the table lock")
            }
            Request::GetLlTable => Ok(Reply::LlTable(lltable(t, &self.router))),
            Request::DelLlEntry { addr, v6, ifname } => Ok(Reply::LlTable(lltable_delete(
                t,
                &self.router,
                addr,
                v6,
                ifname.as_deref(),
            ))),
            Request::GetKnobs => Ok(Reply::Knobs(self.knobs())),
            Request::Route(r) => {
                let r = self.router.request(r);
                self.give_routes(t);
                r
            }
            Request::GetProtoStats => Ok(Reply::ProtoStats(self.router.stats())),
            Request::SetKnobs(k) => {
                *self.knobs.lock().unwrap_or_else(|e| e.into_inner()) = k;
                self.router.set_knobs(&k);
                let dad = self.dad();
                for h in t.ifs.iter().filter_map(|i| i.inet.as_ref()) {
                    h.set_timers(dad);
                }
                Ok(Reply::Ok)
            }
        }
    }

    /// The interfaces changed: the routing table follows, and each host
    /// gets the routes through gateways on its link.
    fn sync_routes(&self, t: &IfTable) {
        self.router.sync(route_ifs(t));
        self.give_routes(t);
    }

    fn give_routes(&self, t: &IfTable) {
        for i in &t.ifs {
            if let Some(h) = &i.inet {
                h.set_routes(self.router.gateway_routes(i.state.index));
            }
        }
    }

    fn knobs(&self) -> Knobs {
        *self.knobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The DAD timers with the counts sysctl set.
    fn dad(&self) -> DadTimers {
        let k = self.knobs();
        DadTimers {
            probes_v4: k.ip_dad_count,
            probes_v6: k.ip6_dad_count,
            ..self.env.dad
        }
    }

    fn create(&self, t: &mut IfTable, name: &str) -> Result<(), Errno> {
        if t.position(name).is_some() {
            return Err(Errno::EEXIST);
        }
        let (class, unit) = self.cloners.lookup(name)?;
        if let Some(max) = self.env.max_interfaces
            && t.ifs.len() >= max
        {
            crate::log::warn(&format!("{name}: not created: {max} interfaces, the limit"));
            return Err(Errno::ENOSPC);
        }
        let mut state = IfState::new(name, unit, t.next_index, IfType::Ethernet);
        state.in6_attached = !self.knobs().auto_linklocal;
        let driver = class.create(&self.env, &mut state)?;
        state.port.set_flags(state.flags);
        state.port.set_mac(state.lladdr());
        state.port.set_forward(Some(self.router.clone()));
        t.next_index += 1;
        t.ifs.push(Ifnet {
            state,
            driver,
            inet: None,
            lifetimes: Vec::new(),
        });
        Ok(())
    }

    /// Send one echo request. The table lock is not held while waiting.
    fn echo(
        &self,
        dst: IpAddr,
        scope: Option<&str>,
        ident: u16,
        seq: u16,
        len: u16,
        timeout_ms: u32,
    ) -> Response {
        let timeout = std::time::Duration::from_millis(u64::from(timeout_ms));
        let pinger = {
            let t = self.table.lock().unwrap();
            match is_local(&t, dst) {
                // Our own address: answered inside the kernel, as by lo0.
                Some(true) => {
                    loop_count(&t, dst, len);
                    return Ok(Reply::Echo {
                        from: dst,
                        bytes: u32::from(len) + 8,
                        ttl: 255,
                        rtt_us: 0,
                        opts: Vec::new(),
                    });
                }
                Some(false) => None,
                None => match route(&t, dst, scope) {
                    Ok(p) => Some(p.pinger()),
                    // Beyond the attached subnets: along the routing table,
                    // through its gateway; the reply comes back to the
                    // interface it left by.
                    Err(Errno::EHOSTUNREACH) if scope.is_none() => {
                        drop(t);
                        let len = (usize::from(len), &[][..]);
                        return self.echo_routed(dst, None, 0, (ident, seq), len, timeout);
                    }
                    Err(e) => return Err(e),
                },
            }
        };
        let Some(pinger) = pinger else {
            // Only on a down interface: NetBSD's ip_input takes such an
            // address as not ours and, not forwarding, drops the request.
            std::thread::sleep(timeout);
            return Err(Errno::ETIMEDOUT);
        };
        let r = pinger.echo(dst, ident, seq, usize::from(len), timeout)?;
        Ok(echo_reply(r))
    }
}

/// What the routing table is made of: each interface's usable addresses.
fn route_ifs(t: &IfTable) -> Vec<IfInfo> {
    t.ifs
        .iter()
        .map(|i| {
            let s = &i.state;
            IfInfo {
                index: s.index,
                name: s.name.clone(),
                port: s.port.clone(),
                up: s.flags & iff::UP != 0
                    && (s.flags & iff::RUNNING != 0 || s.kind == IfType::Loopback),
                loopback: s.kind == IfType::Loopback,
                mtu: s.mtu,
                v4: s
                    .inet
                    .iter()
                    .filter(|a| a.flags & in_iff::DETACHED == 0)
                    .map(|a| (a.addr, u32::from(a.mask).count_ones() as u8))
                    .collect(),
                v6: s
                    .inet6
                    .iter()
                    .filter(|a| a.flags & in6_iff::DETACHED == 0)
                    .map(|a| (a.addr, a.prefixlen))
                    .collect(),
            }
        })
        .collect()
}

impl KernelInner {
    /// An echo request of the host's own along the routing table (through
    /// gateways; with a source address or TTL asked for), its reply waited
    /// for by the host of the interface it leaves by.
    fn echo_routed(
        &self,
        dst: IpAddr,
        src: Option<IpAddr>,
        ttl: u8,
        key: (u16, u16),
        len: (usize, &[u8]),
        timeout: std::time::Duration,
    ) -> Response {
        let (pinger, src) = {
            let t = self.table.lock().unwrap();
            let (index, via) = self.router.route_out(dst)?;
            let src = match src {
                Some(a) if is_local(&t, a).is_none() || a.is_ipv4() != dst.is_ipv4() => {
                    return Err(Errno::EADDRNOTAVAIL);
                }
                Some(a) => a,
                None => via,
            };
            let p = t
                .ifs
                .iter()
                .find(|i| i.state.index == index)
                .and_then(|i| i.inet.as_ref())
                .ok_or(Errno::EHOSTUNREACH)?;
            (p.pinger(), src)
        };
        let ttl = if ttl == 0 { 64 } else { ttl };
        let r = pinger.echo_sent_by(key, timeout, || {
            self.router.send_echo((src, dst), ttl, key, len)
        })?;
        Ok(echo_reply(r))
    }
}

/// The answer to an echo request: its reply, or the error it got.
fn echo_reply(r: inet::EchoReply) -> Reply {
    match r.error {
        Some(error) => Reply::EchoError {
            from: r.from,
            bytes: r.bytes,
            error,
        },
        None => Reply::Echo {
            from: r.from,
            bytes: r.bytes,
            ttl: r.ttl,
            rtt_us: r.rtt_us,
            opts: r.opts,
        },
    }
}

/// Every interface's neighbour cache entries, in interface order.
fn lltable(t: &IfTable, router: &Router) -> Vec<LlEntry> {
    let now = Instant::now();
    let routed = router.neighbors(now);
    let mut all = Vec::new();
    for i in &t.ifs {
        let index = i.state.index;
        let mut v: Vec<(IpAddr, Mac, std::time::Duration)> = i
            .inet
            .as_ref()
            .map(|h| h.neighbors(now))
            .unwrap_or_default();
        // The next hops the forwarding path resolved, unless the host
        // knows them too (one entry an address, as one lltable).
        for &(_, addr, mac, left) in routed.iter().filter(|r| r.0 == index) {
            if !v.iter().any(|e| e.0 == addr) {
                v.push((addr, mac, left));
            }
        }
        v.sort_by_key(|e| e.0);
        all.extend(v.into_iter().map(|(addr, mac, left)| LlEntry {
            ifname: i.state.name.clone(),
            index,
            addr,
            mac,
            expire: left.as_secs() as u32 + u32::from(left.subsec_nanos() > 0),
        }));
    }
    all
}

/// Delete the entry for `addr`, or all of one family, from the hosts'
/// caches and the forwarding path's.
fn lltable_delete(
    t: &IfTable,
    router: &Router,
    addr: Option<IpAddr>,
    v6: bool,
    ifname: Option<&str>,
) -> Vec<LlEntry> {
    let which = |ip: IpAddr| addr.map_or(ip.is_ipv6() == v6, |a| a == ip);
    let mut gone = Vec::new();
    for i in t
        .ifs
        .iter()
        .filter(|i| ifname.is_none_or(|n| n == i.state.name))
    {
        let index = i.state.index;
        let mut v: Vec<(IpAddr, Mac)> = i
            .inet
            .as_ref()
            .map(|h| h.forget(&which))
            .unwrap_or_default();
        for (_, addr, mac) in router.forget_neighbors(&|i, ip| i == index && which(ip)) {
            if !v.iter().any(|e| e.0 == addr) {
                v.push((addr, mac));
            }
        }
        v.sort_by_key(|e| e.0);
        gone.extend(v.into_iter().map(|(addr, mac)| LlEntry {
            ifname: i.state.name.clone(),
            index,
            addr,
            mac,
            expire: 0,
        }));
    }
    gone
}

/// A local echo went out and in lo0 twice, the request and the reply
/// (NetBSD routes its own addresses to lo0: looutput, then if_input).
fn loop_count(t: &IfTable, dst: IpAddr, len: u16) {
    let Some(lo) = t.ifs.iter().find(|i| i.state.kind == IfType::Loopback) else {
        return;
    };
    let ip_hdr = if dst.is_ipv4() { 20 } else { 40 };
    let bytes = ip_hdr + 8 + u64::from(len);
    let c = &lo.state.port.counters;
    for (p, b) in [(&c.opackets, &c.obytes), (&c.ipackets, &c.ibytes)] {
        p.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
        b.fetch_add(2 * bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether `dst` is one of our addresses: `Some(up)`, up if an interface
/// that holds it is up.
fn is_local(t: &IfTable, dst: IpAddr) -> Option<bool> {
    t.ifs
        .iter()
        .filter(|i| match dst {
            IpAddr::V4(d) => i.state.inet.iter().any(|a| a.addr == d),
            IpAddr::V6(d) => i.state.inet6.iter().any(|a| a.addr == d),
        })
        .map(|i| i.state.flags & iff::UP != 0)
        .reduce(|a, b| a || b)
}

/// The interface whose IP presence reaches `dst`: on-link routes only,
/// as a host with no gateway configured.
fn route<'a>(
    t: &'a IfTable,
    dst: IpAddr,
    scope: Option<&str>,
) -> Result<&'a inet::Presence, Errno> {
    let on_link = |i: &Ifnet| match dst {
        IpAddr::V4(d) => i.state.inet.iter().any(|a| {
            let m = u32::from(a.mask);
            u32::from(a.addr) & m == u32::from(d) & m
        }),
        IpAddr::V6(d) if d.is_unicast_link_local() || d.is_multicast() => {
            scope.is_some_and(|s| s == i.state.name)
        }
        IpAddr::V6(d) => i
            .state
            .inet6
            .iter()
            .any(|a| prefix_match(a.addr, d, a.prefixlen)),
    };
    if let Some(name) = scope
        && !t.ifs.iter().any(|i| i.state.name == name)
    {
        return Err(Errno::ENXIO);
    }
    t.ifs
        .iter()
        .filter(|i| scope.is_none_or(|s| s == i.state.name))
        .filter(|i| on_link(i))
        .find_map(|i| i.inet.as_ref())
        .ok_or(Errno::EHOSTUNREACH)
}

fn prefix_match(a: std::net::Ipv6Addr, b: std::net::Ipv6Addr, len: u8) -> bool {
    let len = u32::from(len.min(128));
    if len == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - len);
    u128::from(a) & mask == u128::from(b) & mask
}

/// nd6_timer's look at the address lifetimes: an address past its
/// preferred lifetime is DEPRECATED, past its valid lifetime it goes.
fn age_addrs(t: &mut IfTable, now: Instant, dad: DadTimers, reactor: &Arc<Reactor>) {
    for i in &mut t.ifs {
        if i.lifetimes.is_empty() {
            continue;
        }
        let s = &mut i.state;
        i.lifetimes
            .retain(|l| s.inet6.iter().any(|a| a.addr == l.addr));
        let gone: Vec<_> = i
            .lifetimes
            .iter()
            .filter(|l| l.expire().is_some_and(|e| e <= now))
            .map(|l| l.addr)
            .collect();
        s.inet6.retain(|a| !gone.contains(&a.addr));
        i.lifetimes.retain(|l| !gone.contains(&l.addr));
        for l in &i.lifetimes {
            if l.left(l.pltime, now) == 0
                && let Some(a) = s.inet6.iter_mut().find(|a| a.addr == l.addr)
            {
                a.flags |= in6_iff::DEPRECATED;
            }
        }
        if !gone.is_empty() {
            sync_inet(i, dad, reactor);
        }
    }
}

/// The status of an interface, with the DAD state of its addresses: the
/// host's, once it runs DAD; the kernel's TENTATIVE only asked for it.
/// Lifetimes are the seconds left, as ifconfig -L shows them.
fn status(i: &Ifnet) -> crate::ioctl::IfStatus {
    let mut st = i.state.status(i.driver.as_ref());
    let now = Instant::now();
    for l in &i.lifetimes {
        if let Some(a) = st.inet6.iter_mut().find(|a| a.addr == l.addr) {
            a.pltime = l.left(l.pltime, now);
            a.vltime = l.left(l.vltime, now);
        }
    }
    if let Some(host) = &i.inet {
        for a in &mut st.inet {
            a.flags &= !(in_iff::TENTATIVE | in_iff::DUPLICATED);
            a.flags |= host.addr_flags(IpAddr::V4(a.addr));
        }
        for a in &mut st.inet6 {
            a.flags &= !(in6_iff::TENTATIVE | in6_iff::DUPLICATED);
            a.flags |= host.addr_flags(IpAddr::V6(a.addr));
        }
    }
    st
}

/// Start, reconfigure or stop the IP presence after a change: an Ethernet
/// interface that is up and has addresses is a host on its segment.
fn sync_inet(i: &mut Ifnet, dad: DadTimers, reactor: &Arc<Reactor>) {
    let s = &i.state;
    let mac = match s.lladdr() {
        Some(mac) if s.kind == IfType::Ethernet && s.flags & iff::UP != 0 => mac,
        _ => {
            i.inet = None;
            return;
        }
    };
    if s.inet.is_empty() && s.inet6.is_empty() {
        i.inet = None;
        return;
    }
    // A detached address is not used (arpannounce, the ARP reply).
    let v4 = s.inet.iter().filter(|a| a.flags & in_iff::DETACHED == 0);
    let v6 = s.inet6.iter().filter(|a| a.flags & in6_iff::DETACHED == 0);
    let v4 = v4.map(|a| HostAddr {
        ip: IpAddr::V4(a.addr),
        prefix: u32::from(a.mask).count_ones() as u8,
        nodad: a.flags & in_iff::TENTATIVE == 0,
        expire: None,
    });
    let v6 = v6.map(|a| HostAddr {
        ip: IpAddr::V6(a.addr),
        prefix: a.prefixlen,
        nodad: a.flags & in6_iff::TENTATIVE == 0
            || a.flags & (in6_iff::NODAD | in6_iff::ANYCAST) != 0,
        expire: i
            .lifetimes
            .iter()
            .find(|l| l.addr == a.addr)
            .and_then(Lifetime::expire),
    });
    let want: Vec<HostAddr> = v4.chain(v6).collect();
    if i.inet.is_none() {
        // A bridge's sources are in its own group, others' in the
        // routing group (see `reactor::io_group`).
        let group = match s.kind {
            IfType::Bridge => u64::from(s.index),
            _ => io_group(None),
        };
        match inet::Presence::start(s.port.clone(), mac, dad, (reactor, group)) {
            Ok(h) => i.inet = Some(h),
            Err(e) => {
                crate::log::warn(&format!("{}: cannot start the IP presence: {e}", s.name));
                return;
            }
        }
    }
    if let Some(h) = &i.inet {
        h.set_timers(dad);
        h.configure(Instant::now(), mac, &want);
    }
}

fn destroy(t: &mut IfTable, name: &str) -> Result<(), Errno> {
    let pos = t.position(name).ok_or(Errno::ENXIO)?;
    let mut gone = t.ifs.remove(pos);
    if let Err(e) = gone.driver.destroy(&mut gone.state) {
        t.ifs.insert(pos, gone);
        return Err(e);
    }
    gone.driver.release(&mut gone.state, t);
    for other in &mut t.ifs {
        other.driver.ifdetach(&mut other.state, &mut gone.state);
    }
    gone.inet = None;
    if gone.state.flags & iff::UP != 0 {
        gone.driver.stop(&mut gone.state);
    }
    gone.state.port.set_transmit(None);
    gone.state.port.set_upper(None);
    gone.state.port.set_forward(None);
    gone.state.port.set_flags(0);
    Ok(())
}

/// SIOCSIFFLAGS: change what the user may change, start or stop the driver.
fn set_flags(i: &mut Ifnet, requested: u32) -> Result<(), Errno> {
    let old = i.state.flags;
    let new = (old & iff::CANTCHANGE) | (requested & !iff::CANTCHANGE) & 0xffff;
    if new & iff::UP != 0 && old & iff::UP == 0 {
        if_up(i, new)?;
    } else if new & iff::UP == 0 && old & iff::UP != 0 {
        i.state.set_flags(new);
        i.driver.stop(&mut i.state);
        if_link_down(&mut i.state);
    } else {
        i.state.set_flags(new);
    }
    if (old ^ i.state.flags) & !(iff::UP | iff::RUNNING) != 0 {
        i.driver.flags_changed(&mut i.state, old);
    }
    Ok(())
}

/// Bring an interface up with `flags`, attaching IPv6 on the first up.
fn if_up(i: &mut Ifnet, flags: u32) -> Result<(), Errno> {
    let old = i.state.flags;
    i.state.set_flags(flags | iff::UP);
    if let Err(e) = i.driver.init(&mut i.state) {
        i.state.set_flags(old);
        return Err(e);
    }
    let s = &mut i.state;
    if !s.in6_attached {
        s.in6_attached = true;
        if s.kind == IfType::Loopback && !s.inet6.iter().any(|a| a.addr.is_loopback()) {
            s.inet6.push(loopback6_entry());
        }
        if let Some(ll) = s.link_local()
            && !s.inet6.iter().any(|a| a.addr.is_unicast_link_local())
        {
            let mut e = link_local_entry(ll, s.index);
            if if_do_dad(s) {
                e.flags |= in6_iff::TENTATIVE;
            }
            s.inet6.push(e);
        }
    }
    if_link_up(s);
    Ok(())
}

/// NetBSD's if_do_dad: DAD needs the interface up and running, and never
/// runs on a loopback.
fn if_do_dad(s: &IfState) -> bool {
    s.kind != IfType::Loopback && s.flags & (iff::UP | iff::RUNNING) == iff::UP | iff::RUNNING
}

/// in_if_link_up, in6_if_link_up: once up and running, the addresses
/// detached while the interface was down are tried again (not on lo0).
fn if_link_up(s: &mut IfState) {
    if s.flags & (iff::UP | iff::RUNNING) != iff::UP | iff::RUNNING {
        return;
    }
    let (tentative, tentative6) = if if_do_dad(s) {
        (in_iff::TENTATIVE, in6_iff::TENTATIVE)
    } else {
        (0, 0)
    };
    for a in &mut s.inet {
        if a.flags & in_iff::DETACHED != 0 {
            a.flags = a.flags & !(in_iff::DETACHED | in_iff::DUPLICATED) | tentative;
        }
    }
    for a in &mut s.inet6 {
        if a.flags & in6_iff::DETACHED != 0 {
            a.flags = a.flags & !(in6_iff::DETACHED | in6_iff::DUPLICATED) | tentative6;
        }
    }
}

/// in_if_link_state_change: a link that went down detaches the addresses,
/// one that came up tries them again.
fn if_link_state_change(i: &mut Ifnet, was: LinkState, dad: DadTimers, reactor: &Arc<Reactor>) {
    match i.state.link_state {
        now if now == was => return,
        LinkState::Down => if_link_down(&mut i.state),
        LinkState::Up => if_link_up(&mut i.state),
        LinkState::Unknown => return,
    }
    sync_inet(i, dad, reactor);
}

/// in_if_link_down, in6_if_link_down: DAD stops (the host goes) and the
/// addresses are marked detached.
fn if_link_down(s: &mut IfState) {
    for a in &mut s.inet {
        a.flags = a.flags & !(in_iff::TENTATIVE | in_iff::DUPLICATED) | in_iff::DETACHED;
    }
    for a in &mut s.inet6 {
        a.flags = a.flags & !(in6_iff::TENTATIVE | in6_iff::DUPLICATED) | in6_iff::DETACHED;
    }
}

/// Adding an address brings the interface up (SIOCINITIFADDR).
fn ensure_up(i: &mut Ifnet) -> Result<(), Errno> {
    if i.state.flags & iff::UP == 0 {
        if_up(i, i.state.flags)?;
    }
    Ok(())
}

/// SIOCAIFADDR: add an inet address, or change the one with the same address.
fn add_inet(i: &mut Ifnet, req: InAliasReq) -> Result<(), Errno> {
    if i.state.kind == IfType::Bridge {
        return Err(Errno::EAFNOSUPPORT);
    }
    let s = &mut i.state;
    let existing = s.inet.iter().position(|a| a.addr == req.addr);
    let mask = req
        .mask
        .or(existing.map(|p| s.inet[p].mask))
        .unwrap_or_else(|| classful_mask(req.addr));
    let broadcast = if s.flags & iff::BROADCAST != 0 {
        Some(
            req.broadcast
                .unwrap_or_else(|| Ipv4Addr::from(u32::from(req.addr) | !u32::from(mask))),
        )
    } else {
        None
    };
    // in_ifinit: a new address is tried (TENTATIVE) only on an interface
    // up and running; the first one, which brings it up, is usable at once.
    let tentative = if existing.is_none() && if_do_dad(s) {
        in_iff::TENTATIVE
    } else {
        0
    };
    let detached = existing.map_or(0, |p| s.inet[p].flags & in_iff::DETACHED);
    let entry = InAddr {
        addr: req.addr,
        mask,
        broadcast,
        dst: req.dst,
        flags: req.flags | tentative | detached,
    };
    let saved = s.inet.clone();
    match existing {
        Some(p) => s.inet[p] = entry,
        None => s.inet.push(entry),
    }
    ensure_up(i).inspect_err(|_| i.state.inet = saved)
}

/// SIOCAIFADDR_IN6.
fn add_inet6(i: &mut Ifnet, req: In6AliasReq) -> Result<(), Errno> {
    if i.state.kind == IfType::Bridge {
        return Err(Errno::EAFNOSUPPORT);
    }
    if req.prefixlen > 128 {
        return Err(Errno::EINVAL);
    }
    let s = &mut i.state;
    let scopeid = if req.addr.is_unicast_link_local() {
        s.index
    } else {
        0
    };
    // in6_update_ifa1: a new address is tentative on an interface up and
    // running; a TENTATIVE asked for stays (on lo0, for good).
    let existing = s.inet6.iter().position(|a| a.addr == req.addr);
    let tentative = if existing.is_none() && if_do_dad(s) {
        in6_iff::TENTATIVE
    } else {
        0
    };
    let detached = existing.map_or(0, |p| s.inet6[p].flags & in6_iff::DETACHED);
    let entry = In6Addr {
        addr: req.addr,
        prefixlen: req.prefixlen,
        dst: req.dst,
        flags: req.flags | tentative | detached,
        pltime: req.pltime,
        vltime: req.vltime,
        scopeid,
    };
    let saved = s.inet6.clone();
    match existing {
        Some(p) => s.inet6[p] = entry,
        None => s.inet6.push(entry),
    }
    i.lifetimes.retain(|l| l.addr != req.addr);
    if req.pltime != crate::ioctl::INFINITE_LIFETIME
        || req.vltime != crate::ioctl::INFINITE_LIFETIME
    {
        i.lifetimes.push(Lifetime {
            addr: req.addr,
            set: Instant::now(),
            pltime: req.pltime,
            vltime: req.vltime,
        });
    }
    ensure_up(i).inspect_err(|_| i.state.inet6 = saved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::lo::LoClone;
    use crate::ioctl::IfStatus;

    fn kernel() -> Kernel {
        Kernel::new(KernelEnv::default(), Cloners::new(vec![Box::new(LoClone)]))
    }

    fn status(k: &Kernel, name: &str) -> IfStatus {
        match k.ioctl(Request::GetIfConf {
            name: Some(name.into()),
        }) {
            Ok(Reply::IfConf(mut v)) => v.remove(0),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn lo0_at_start() {
        let k = kernel();
        let s = status(&k, "lo0");
        assert_eq!(s.flags, 0x8049);
        assert_eq!(s.mtu, 33624);
        assert_eq!(s.inet[0].addr, Ipv4Addr::LOCALHOST);
        assert_eq!(s.inet6.len(), 2);
        assert_eq!(s.inet6[1].scopeid, 1);
    }

    #[test]
    fn create_destroy() {
        let k = kernel();
        k.ioctl(Request::IfCreate { name: "lo1".into() }).unwrap();
        assert_eq!(
            k.ioctl(Request::IfCreate { name: "lo1".into() }),
            Err(Errno::EEXIST)
        );
        assert_eq!(
            k.ioctl(Request::IfCreate {
                name: "nope0".into()
            }),
            Err(Errno::EINVAL)
        );
        let req = InAliasReq {
            addr: Ipv4Addr::new(10, 1, 0, 1),
            mask: None,
            broadcast: None,
            dst: None,
            flags: 0,
        };
        k.ioctl(Request::AifAddr {
            name: "lo1".into(),
            req,
        })
        .unwrap();
        let s = status(&k, "lo1");
        assert_eq!(s.flags & iff::UP, iff::UP);
        assert_eq!(s.inet[0].mask, Ipv4Addr::new(255, 0, 0, 0));
        k.ioctl(Request::IfDestroy { name: "lo1".into() }).unwrap();
        assert_eq!(
            k.ioctl(Request::IfDestroy { name: "lo1".into() }),
            Err(Errno::ENXIO)
        );
    }
}
