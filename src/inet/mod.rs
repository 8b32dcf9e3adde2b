//! The IP presence of an interface: what makes `ifconfig shmif0 inet
//! 10.0.0.2/24` a host on its segment. A smoltcp interface per ifnet
//! answers ARP, neighbor solicitations and echo requests for the addresses
//! that passed duplicate address detection; this module runs DAD (smoltcp
//! has none), defends held addresses, rate-limits echo floods, and sends
//! the echo requests of the ping tool.
//!
//! A [`Host`] is a state machine, as smoltcp's `Interface`: frames from the
//! data plane are queued, and [`Host::poll`] with the time passed in does
//! all the work and returns when it wants to be polled next. A reactor
//! thread calls it, the one that serves the interface's own sources.

mod frames;

pub use frames::{
    arp_probe, arp_request, dad_solicit, defend_advert, gratuitous_arp, neighbor_solicit,
};
use frames::{arp_reply, neighbor_advert};

use crate::cloner::DadTimers;
use crate::frame::Frame;
use crate::ioctl::{Errno, IcmpError, Mac, in_iff, in6_iff};
use crate::log;
use crate::port::{Port, Stack};
use crate::reactor::{Handler, Reactor, Registration};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::icmp;
use smoltcp::wire::{
    ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, HardwareAddress,
    Icmpv4Message, Icmpv4Packet, Icmpv4Repr, Icmpv6Message, Icmpv6Packet, Icmpv6Repr, IpAddress,
    IpCidr, IpProtocol, Ipv4Packet, Ipv6Packet, NdiscRepr,
};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Frames waiting for the stack, in number and in bytes; beyond either
/// they are dropped (iqdrops).
const RX_QUEUE: usize = 1024;
const RX_BYTES: usize = 2 << 20;
/// Buffers kept for reuse, and the largest one kept: whatever arrives
/// (a burst of new neighbours, each primed with a frame of its own, or of
/// big frames), the pool stays this small.
const POOL: usize = 64;
const POOL_BUF: usize = 2048;
/// Echo requests waiting to be sent, and waiting for their reply; more
/// are refused (EAGAIN), the oldest waiting one is forgotten.
const MAX_CMDS: usize = 64;
const MAX_PENDING: usize = 256;
/// ICMP sockets, one per echo identifier (ping process); the least
/// recently used goes first, an idle one after `ECHO_SOCKET_IDLE`.
const MAX_ECHO_SOCKETS: usize = 16;
const ECHO_SOCKET_IDLE: Duration = Duration::from_secs(30);
/// Echo requests answered per second at most (burst of one second).
const ECHO_RATE: f64 = 20_000.0;
/// Frames are answered inline (on the receiving thread, at once) at most
/// once in this time; more are queued for one poll of the reactor.
const INLINE_GAP: Duration = Duration::from_micros(50);
/// smoltcp holds this many addresses per interface (its build feature).
const MAX_ADDRS: usize = 8;
/// Neighbours remembered to refill smoltcp's cache (as its build feature:
/// a busy segment, 32 hosts with v4 and v6, fits several times over).
const MAX_NEIGHBORS: usize = 256;
/// How often a neighbour that keeps talking is put back into smoltcp's
/// cache, whose entries live 60 s.
const REPRIME: Duration = Duration::from_secs(20);
/// A neighbour not primed for this long is forgotten: smoltcp's own entry
/// has expired too.
const NEIGHBOR_LIFE: Duration = Duration::from_secs(60);
/// RFC 5227 DEFEND_INTERVAL, as NetBSD's if_arp.c: a held address is
/// defended at most once in this time, and a conflict within it after a
/// defence gives the address up. Conflicts are logged at most once in it.
const DEFEND_INTERVAL: Duration = Duration::from_secs(10);
/// RFC 5227 ANNOUNCE_NUM: announcements of an address once probed.
const ANNOUNCE_NUM: u8 = 2;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dad {
    /// Send a probe at `next` while `probes_left`; with none left, the
    /// address is usable at `next`.
    Tentative {
        next: Instant,
        probes_left: u8,
    },
    Ok,
    Duplicated,
}

#[derive(Clone, Debug)]
struct Addr {
    ip: IpAddr,
    prefix: u8,
    dad: Dad,
    /// ARP announcements still due, the next at the instant.
    announce: Option<(Instant, u8)>,
    /// The last defence (ia_dad_defended) and the last conflict logged.
    defended: Option<Instant>,
    logged: Option<Instant>,
    /// The end of its valid lifetime, if it has one.
    expire: Option<Instant>,
}

/// An address the stack should hold, as the kernel hands it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostAddr {
    pub ip: IpAddr,
    pub prefix: u8,
    /// Usable at once: the kernel did not mark it tentative (IN6_IFF_NODAD,
    /// anycast, or added while the interface was not up and running).
    pub nodad: bool,
    /// The end of its valid lifetime: no longer held from then on, even
    /// before the kernel removes it.
    pub expire: Option<Instant>,
}

/// The answer to one echo request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoReply {
    pub from: IpAddr,
    /// ICMP message length (header and data), as ping prints it.
    pub bytes: u32,
    pub ttl: u8,
    pub rtt_us: u64,
    /// An ICMP error about the request instead of a reply.
    pub error: Option<IcmpError>,
    /// The reply's IPv4 options.
    pub opts: Vec<u8>,
}

struct Pending {
    sent: Instant,
    expires: Instant,
    tx: SyncSender<EchoReply>,
}

/// An echo request to send, from a [`Pinger`].
struct Echo {
    dst: IpAddr,
    ident: u16,
    seq: u16,
    len: usize,
    sent: Instant,
    expires: Instant,
    tx: SyncSender<EchoReply>,
}

/// What other threads hand the host: the data plane's frames, the
/// pinger's requests. Its own lock, so input never waits for a poll.
#[derive(Default)]
struct Input {
    frames: VecDeque<Vec<u8>>,
    bytes: usize,
    free: Vec<Vec<u8>>,
    echoes: Vec<Echo>,
}

impl Input {
    fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.echoes.is_empty()
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        if self.free.len() < POOL && buf.capacity() <= POOL_BUF {
            self.free.push(buf);
        }
    }
}

/// One interface's IP presence: a smoltcp interface and what it lacks.
pub struct Host {
    port: Arc<Port>,
    input: Mutex<Input>,
    state: Mutex<State>,
    /// Asks the driver for a poll; set once registered.
    waker: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Whether the caller is the thread that polls the host: input there
    /// is answered at once, without a turn of the reactor.
    here: OnceLock<Box<dyn Fn() -> bool + Send + Sync>>,
}

/// Everything a poll works on.
struct State {
    mac: Mac,
    timers: DadTimers,
    addrs: Vec<Addr>,
    /// `addrs` or `mac` changed since smoltcp last saw them.
    changed: bool,
    /// The routes through gateways on this link, for smoltcp to answer
    /// hosts beyond them; `Some` until smoltcp has them.
    routes: Option<Vec<(IpAddr, u8, IpAddr)>>,
    /// For the random delays of RFC 5227 (xorshift).
    rng: u64,
    /// Address conflicts logged, for the tests of their rate.
    conflicts_logged: u64,
    epoch: Instant,
    /// The deadline the last poll by the reactor returned: an inline poll
    /// that wants an earlier one asks for a poll.
    reactor_next: Option<Instant>,
    /// When the host last answered inline (see `Host::poll_here`).
    inline_at: Option<Instant>,
    iface: Interface,
    dev: IfDevice,
    sockets: SocketSet<'static>,
    echo_sockets: HashMap<u16, (SocketHandle, Instant)>,
    pending: HashMap<(u16, u16), Pending>,
    /// Who was seen where: smoltcp forgets its neighbour cache whenever
    /// the address list changes, and would drop the replies it owes while
    /// it resolves again; these refill it.
    neighbors: HashMap<IpAddr, (Mac, Instant)>,
    /// Neighbours learned from the frame being sniffed, new or moved.
    fresh: Vec<(IpAddr, Mac)>,
    echo_bucket: (f64, Instant),
    /// Taken from the input queue by a poll, kept for their capacity.
    batch: VecDeque<Vec<u8>>,
    echoes: Vec<Echo>,
    out: Vec<Vec<u8>>,
}

impl Host {
    /// A host on `port` with no addresses yet; `now` starts its clock.
    pub fn new(port: Arc<Port>, mac: Mac, timers: DadTimers, now: Instant) -> Result<Host, Errno> {
        let seed = random_seed().inspect_err(|e| {
            log::warn(&format!(
                "{}: no random seed for the IP stack: {e}",
                port.name
            ))
        })?;
        let mut dev = IfDevice {
            rx: VecDeque::new(),
            done: Vec::new(),
            port: port.clone(),
            txbuf: Vec::with_capacity(1514),
            mtu: 1514,
        };
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed;
        let iface = Interface::new(config, &mut dev, smol_time(now, now));
        Ok(Host {
            port,
            input: Mutex::new(Input::default()),
            state: Mutex::new(State {
                mac,
                timers,
                addrs: Vec::new(),
                changed: false,
                routes: None,
                rng: seed | 1,
                conflicts_logged: 0,
                epoch: now,
                reactor_next: None,
                inline_at: None,
                iface,
                dev,
                sockets: SocketSet::new(Vec::new()),
                echo_sockets: HashMap::new(),
                pending: HashMap::new(),
                neighbors: HashMap::new(),
                fresh: Vec::new(),
                echo_bucket: (ECHO_RATE, now),
                batch: VecDeque::new(),
                echoes: Vec::new(),
                out: Vec::new(),
            }),
            waker: OnceLock::new(),
            here: OnceLock::new(),
        })
    }

    /// How the host asks to be polled soon (after input, a change).
    pub fn set_waker(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.waker.set(wake);
    }

    /// How the host tells the thread that polls it (see `Stack::input`).
    pub fn set_here(&self, here: Box<dyn Fn() -> bool + Send + Sync>) {
        let _ = self.here.set(here);
    }

    fn wake(&self) {
        if let Some(w) = self.waker.get() {
            w();
        }
    }

    /// Poll now, on the thread that polls the host, if it is the caller,
    /// no poll is under way (a frame the host itself sent, looped back)
    /// and the frame is not being forwarded by its port's bridge (see
    /// `Port::in_input`); `false` if not done.
    fn poll_here(&self, now: Instant) -> bool {
        if !self.here.get().is_some_and(|f| f()) || self.port.in_input() {
            return false;
        }
        let Ok(mut st) = self.state.try_lock() else {
            return false;
        };
        // A burst (a flood of broadcasts) is left to the reactor, which
        // polls once for many frames: a poll per frame costs more than
        // the frames.
        if st.inline_at.is_some_and(|t| now < t + INLINE_GAP) {
            return false;
        }
        st.inline_at = Some(now);
        let next = self.poll_locked(&mut st, now);
        let sooner = next.is_some_and(|n| st.reactor_next.is_none_or(|r| n < r));
        drop(st);
        if sooner {
            self.wake();
        }
        true
    }

    /// Set the addresses the host holds. New tentative ones start
    /// duplicate address detection at `now`, new others are announced;
    /// ones that stay keep their state.
    pub fn configure(&self, now: Instant, mac: Mac, want: &[HostAddr]) {
        {
            let mut st = lock(&self.state);
            let mut next = Vec::with_capacity(want.len());
            for w in want {
                if let Some(a) = st.addrs.iter().find(|a| a.ip == w.ip) {
                    next.push(Addr {
                        prefix: w.prefix,
                        expire: w.expire,
                        ..a.clone()
                    });
                    continue;
                }
                let probes = match w.ip {
                    IpAddr::V4(_) => st.timers.probes_v4,
                    IpAddr::V6(_) => st.timers.probes_v6,
                };
                let (dad, announce) = if w.nodad || probes == 0 {
                    // arp_ifinit: an address not tried (or with DAD off,
                    // dad_count 0) is announced once.
                    (Dad::Ok, w.ip.is_ipv4().then_some((now, 1)))
                } else {
                    (st.dad_start(now, w.ip), None)
                };
                next.push(Addr {
                    ip: w.ip,
                    prefix: w.prefix,
                    dad,
                    announce,
                    defended: None,
                    logged: None,
                    expire: w.expire,
                });
            }
            st.addrs = next;
            st.mac = mac;
            st.changed = true;
        }
        self.wake();
    }

    /// The routes through gateways on this link (destination, prefix
    /// length, gateway), longest prefix first: the host answers (echo
    /// replies) those beyond them through them. smoltcp holds 16.
    pub fn set_routes(&self, routes: Vec<(IpAddr, u8, IpAddr)>) {
        lock(&self.state).routes = Some(routes);
        self.wake();
    }

    /// Take DAD counts set at run time (sysctl): addresses tried from
    /// now on use them, as NetBSD reads ip_dad_count at each start.
    pub fn set_timers(&self, timers: DadTimers) {
        lock(&self.state).timers = timers;
    }

    /// The neighbour cache: address, link address, time left.
    pub fn neighbors(&self, now: Instant) -> Vec<(IpAddr, Mac, Duration)> {
        let st = lock(&self.state);
        st.neighbors
            .iter()
            .map(|(&ip, &(mac, at))| {
                let age = now.saturating_duration_since(at);
                (ip, mac, NEIGHBOR_LIFE.saturating_sub(age))
            })
            .filter(|(_, _, left)| !left.is_zero())
            .collect()
    }

    /// Forget the neighbours `which` picks (arp -d, ndp -c), in smoltcp's
    /// cache too; returns those forgotten.
    pub fn forget(&self, which: &dyn Fn(IpAddr) -> bool) -> Vec<(IpAddr, Mac)> {
        let gone = {
            let mut st = lock(&self.state);
            let gone: Vec<(IpAddr, Mac)> = st
                .neighbors
                .iter()
                .filter(|(ip, _)| which(**ip))
                .map(|(&ip, &(mac, _))| (ip, mac))
                .collect();
            if gone.is_empty() {
                return gone;
            }
            st.neighbors.retain(|ip, _| !which(*ip));
            st.flush_neighbors();
            gone
        };
        self.wake();
        gone
    }

    /// The TENTATIVE/DUPLICATED bits of an address, in the flag space of
    /// its family, for ifconfig's status.
    pub fn addr_flags(&self, ip: IpAddr) -> u32 {
        match (lock(&self.state).dad_state(ip), ip) {
            (Some(Dad::Tentative { .. }), IpAddr::V4(_)) => in_iff::TENTATIVE,
            (Some(Dad::Duplicated), IpAddr::V4(_)) => in_iff::DUPLICATED,
            (Some(Dad::Tentative { .. }), IpAddr::V6(_)) => in6_iff::TENTATIVE,
            (Some(Dad::Duplicated), IpAddr::V6(_)) => in6_iff::DUPLICATED,
            (Some(Dad::Ok) | None, _) => 0,
        }
    }

    /// Do what is due at `now`: take the queued frames and echo requests,
    /// run DAD, feed smoltcp, send. Returns when to be polled next, if
    /// nothing arrives before.
    pub fn poll(&self, now: Instant) -> Option<Instant> {
        let mut st = lock(&self.state);
        let next = self.poll_locked(&mut st, now);
        st.reactor_next = next;
        next
    }

    fn poll_locked(&self, st: &mut State, now: Instant) -> Option<Instant> {
        {
            let mut q = lock(&self.input);
            q.bytes = 0;
            std::mem::swap(&mut st.batch, &mut q.frames);
            std::mem::swap(&mut st.echoes, &mut q.echoes);
        }
        st.run(now);
        if !st.dev.done.is_empty() {
            let mut q = lock(&self.input);
            for buf in st.dev.done.drain(..) {
                q.recycle(buf);
            }
        }
        st.next_deadline(now)
    }
}

impl Handler for Host {
    fn poll(&self, now: Instant) -> Option<Instant> {
        Host::poll(self, now)
    }
}

impl Stack for Host {
    fn input(&self, frame: &Frame) {
        // As ether_input: a type no protocol here takes is dropped at once
        // (if_noproto), without a copy and a poll of the stack.
        let et = EthernetProtocol::from(frame.ethertype());
        if !matches!(
            et,
            EthernetProtocol::Arp | EthernetProtocol::Ipv4 | EthernetProtocol::Ipv6
        ) {
            self.port.counters.noproto.fetch_add(1, Relaxed);
            return;
        }
        let frame = frame.bytes();
        let mut q = lock(&self.input);
        if q.frames.len() >= RX_QUEUE || q.bytes + frame.len() > RX_BYTES {
            self.port.counters.iqdrops.fetch_add(1, Relaxed);
            return;
        }
        // The first frame of a batch asks for the poll that takes them all.
        let wake = q.is_empty();
        let mut buf = q.free.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        q.bytes += frame.len();
        q.frames.push_back(buf);
        drop(q);
        // On the thread that polls the host: the answer leaves now.
        if wake && !self.poll_here(Instant::now()) {
            self.wake();
        }
    }
}

/// An interface's IP presence as the kernel holds it: the host, fed by
/// its port and polled by a reactor thread, until dropped.
pub struct Presence {
    host: Arc<Host>,
    _reg: Arc<Registration>,
}

impl Presence {
    /// `group`: the reactor group of the interface's own sources.
    pub fn start(
        port: Arc<Port>,
        mac: Mac,
        timers: DadTimers,
        (reactor, group): (&Arc<Reactor>, u64),
    ) -> Result<Presence, Errno> {
        let host = Arc::new(Host::new(port.clone(), mac, timers, Instant::now())?);
        // With the interface's own sources: answers leave from the thread
        // that read the question.
        let reg = reactor
            .register_in(group, None, host.clone())
            .map_err(|_| Errno::ENOMEM)?;
        let reg = Arc::new(reg);
        let weak = Arc::downgrade(&reg);
        host.set_waker(Box::new(move || {
            if let Some(r) = weak.upgrade() {
                r.wake();
            }
        }));
        let weak = Arc::downgrade(&reg);
        host.set_here(Box::new(move || {
            weak.upgrade().is_some_and(|r| r.is_current())
        }));
        port.set_stack(Some(host.clone()));
        Ok(Presence { host, _reg: reg })
    }

    /// A handle to send echo requests without holding the kernel's lock.
    pub fn pinger(&self) -> Pinger {
        Pinger(self.host.clone())
    }
}

impl std::ops::Deref for Presence {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.host
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        // No more input; the registration goes next, after any poll.
        self.host.port.set_stack(None);
    }
}

/// Sends echo requests through a host and waits for the replies.
#[derive(Clone)]
pub struct Pinger(Arc<Host>);

impl Pinger {
    /// One echo request of `len` data bytes; the reply, or ETIMEDOUT.
    pub fn echo(
        &self,
        dst: IpAddr,
        ident: u16,
        seq: u16,
        len: usize,
        timeout: Duration,
    ) -> Result<EchoReply, Errno> {
        let (tx, rx): (SyncSender<EchoReply>, Receiver<EchoReply>) = sync_channel(1);
        let sent = Instant::now();
        let wake = {
            let mut q = lock(&self.0.input);
            if q.echoes.len() >= MAX_CMDS {
                return Err(Errno::EAGAIN);
            }
            let wake = q.is_empty();
            q.echoes.push(Echo {
                dst,
                ident,
                seq,
                len,
                sent,
                expires: sent + timeout,
                tx,
            });
            wake
        };
        if wake {
            self.0.wake();
        }
        rx.recv_timeout(timeout).map_err(|_| Errno::ETIMEDOUT)
    }
}

impl Pinger {
    /// Wait for the reply to an echo request sent some other way (through
    /// a gateway, by the forwarding path): registered before `send` runs,
    /// so that no reply can come first.
    pub fn echo_sent_by(
        &self,
        key: (u16, u16),
        timeout: Duration,
        send: impl FnOnce() -> Result<(), Errno>,
    ) -> Result<EchoReply, Errno> {
        let (tx, rx): (SyncSender<EchoReply>, Receiver<EchoReply>) = sync_channel(1);
        let sent = Instant::now();
        {
            let mut st = lock(&self.0.state);
            st.expect(key, sent, sent + timeout, tx);
        }
        send()?;
        rx.recv_timeout(timeout).map_err(|_| Errno::ETIMEDOUT)
    }
}

/// smoltcp's view of the interface: frames the sniffer let through, and
/// the port to send on.
struct IfDevice {
    rx: VecDeque<Vec<u8>>,
    done: Vec<Vec<u8>>,
    port: Arc<Port>,
    txbuf: Vec<u8>,
    mtu: usize,
}

struct RxTok<'a>(Vec<u8>, &'a mut Vec<Vec<u8>>);
struct TxTok<'a>(&'a Arc<Port>, &'a mut Vec<u8>);

impl phy::RxToken for RxTok<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(&self.0);
        self.1.push(self.0);
        r
    }
}

impl phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.1.clear();
        self.1.resize(len, 0);
        let r = f(self.1);
        if let Some(f) = Frame::new(self.1) {
            let _ = self.0.output(&f);
        }
        r
    }
}

impl Device for IfDevice {
    type RxToken<'a> = RxTok<'a>;
    type TxToken<'a> = TxTok<'a>;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(RxTok<'_>, TxTok<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((
            RxTok(frame, &mut self.done),
            TxTok(&self.port, &mut self.txbuf),
        ))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<TxTok<'_>> {
        Some(TxTok(&self.port, &mut self.txbuf))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

/// `now` on smoltcp's clock, which starts at the host's `epoch`.
fn smol_time(epoch: Instant, now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(now.saturating_duration_since(epoch).as_micros() as i64)
}

/// A seed for smoltcp's randomness (its ports and sequence numbers).
fn random_seed() -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    let mut got = 0;
    while got < b.len() {
        // SAFETY: writes at most `b.len() - got` bytes into `b[got..]`.
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), b.len() - got, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Errno::from_io(&e));
        }
        got += n as usize;
    }
    Ok(u64::from_ne_bytes(b))
}

impl State {
    fn run(&mut self, now: Instant) {
        if let Some(routes) = self.routes.take() {
            self.iface.routes_mut().update(|v| {
                v.clear();
                for &(dst, prefix, gw) in &routes {
                    let route = smoltcp::iface::Route {
                        cidr: IpCidr::new(IpAddress::from(dst), prefix),
                        via_router: IpAddress::from(gw),
                        preferred_until: None,
                        expires_at: None,
                    };
                    if v.push(route).is_err() {
                        log::warn(&format!(
                            "{}: only {} routes answer through gateways",
                            self.dev.port.name,
                            v.len()
                        ));
                        break;
                    }
                }
            });
        }
        if self.changed {
            self.changed = false;
            let hw = HardwareAddress::Ethernet(EthernetAddress(self.mac));
            if self.iface.hardware_addr() != hw {
                self.iface.set_hardware_addr(hw);
            }
            self.sync_addrs();
        }
        self.age(now);
        let mut batch = std::mem::take(&mut self.batch);
        for frame in batch.drain(..) {
            let pass = self.sniff(now, &frame);
            // A neighbour seen for the first time (or moved) goes into
            // smoltcp's cache before its frame, so that the reply smoltcp
            // owes it is not dropped while it would resolve the address.
            for (ip, nmac) in std::mem::take(&mut self.fresh) {
                self.dev.rx.extend(primer(&self.iface, self.mac, ip, nmac));
            }
            if pass {
                self.dev.rx.push_back(frame);
            } else {
                self.dev.done.push(frame);
            }
        }
        self.batch = batch;
        // DAD may finish, a conflict may give an address up, a lifetime
        // may end.
        let held = self.addrs.len();
        self.addrs.retain(|a| a.expire.is_none_or(|e| e > now));
        if self.run_dad(now) | std::mem::take(&mut self.changed) | (self.addrs.len() != held) {
            self.sync_addrs();
        }
        for f in self.out.drain(..) {
            if let Some(f) = Frame::new(&f) {
                let _ = self.dev.port.output(&f);
            }
        }
        let mut echoes = std::mem::take(&mut self.echoes);
        for e in echoes.drain(..) {
            self.send_echo(now, e);
        }
        self.echoes = echoes;
        let smol_now = smol_time(self.epoch, now);
        self.iface.poll(smol_now, &mut self.dev, &mut self.sockets);
        // Replies were matched by the sniffer; empty the sockets' queues and
        // close the ones nobody used for a while.
        let sockets = &mut self.sockets;
        self.echo_sockets.retain(|_, (h, last)| {
            let sock = sockets.get_mut::<icmp::Socket>(*h);
            while sock.recv().is_ok() {}
            let keep = now.saturating_duration_since(*last) < ECHO_SOCKET_IDLE;
            if !keep {
                sockets.remove(*h);
            }
            keep
        });
    }

    /// The earliest of smoltcp's next action and the DAD timers.
    fn next_deadline(&mut self, now: Instant) -> Option<Instant> {
        // smoltcp has just been polled: "at once" would be a busy loop.
        let soonest = now + Duration::from_millis(1);
        let smol = self
            .iface
            .poll_at(smol_time(self.epoch, now), &self.sockets)
            .map(|t| self.epoch + Duration::from_micros(t.total_micros().max(0) as u64))
            .map(|t| t.max(soonest));
        let dad = self
            .addrs
            .iter()
            .flat_map(|a| {
                let probe = match a.dad {
                    Dad::Tentative { next, .. } => Some(next),
                    _ => None,
                };
                probe
                    .into_iter()
                    .chain(a.announce.map(|(at, _)| at))
                    .chain(a.expire)
            })
            .min();
        match (smol, dad) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Forget neighbours and echo requests whose time has passed.
    fn age(&mut self, now: Instant) {
        self.neighbors
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < NEIGHBOR_LIFE);
        self.pending.retain(|_, p| p.expires > now);
    }

    /// Give smoltcp the addresses that passed DAD, and refill the neighbour
    /// cache it flushes when they change.
    fn sync_addrs(&mut self) {
        let ok: Vec<IpCidr> = self
            .addrs
            .iter()
            .filter(|a| a.dad == Dad::Ok)
            .map(|a| IpCidr::new(IpAddress::from(a.ip), a.prefix))
            .collect();
        if ok.len() > MAX_ADDRS {
            log::warn(&format!(
                "{}: only the first {MAX_ADDRS} addresses answer",
                self.dev.port.name
            ));
        }
        let ok: Vec<IpCidr> = ok.into_iter().take(MAX_ADDRS).collect();
        if self.iface.ip_addrs() == ok.as_slice() {
            return;
        }
        self.iface.update_ip_addrs(|v| {
            v.clear();
            for c in &ok {
                let _ = v.push(*c);
            }
        });
        for (&ip, &(nmac, _)) in &self.neighbors {
            if let Some(f) = primer(&self.iface, self.mac, ip, nmac) {
                self.dev.rx.push_front(f);
            }
        }
    }

    /// Empty smoltcp's neighbour cache (it has no single delete) and
    /// refill it with the neighbours still known.
    fn flush_neighbors(&mut self) {
        self.iface.update_ip_addrs(|_| {});
        for (&ip, &(nmac, _)) in &self.neighbors {
            if let Some(f) = primer(&self.iface, self.mac, ip, nmac) {
                self.dev.rx.push_front(f);
            }
        }
    }

    fn dad_state(&self, ip: IpAddr) -> Option<Dad> {
        self.addrs.iter().find(|a| a.ip == ip).map(|a| a.dad)
    }

    /// A random duration in [0, `d`), for RFC 5227's delays.
    fn jitter(&mut self, d: Duration) -> Duration {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        let us = d.as_micros() as u64;
        Duration::from_micros(if us == 0 { 0 } else { x % us })
    }

    /// The state of an address that starts DAD at `now`: IPv4 probes
    /// first within PROBE_WAIT (arp_dad_start), IPv6 at once
    /// (nd6_dad_start for an address given by ioctl).
    fn dad_start(&mut self, now: Instant, ip: IpAddr) -> Dad {
        let (probes_left, delay) = match ip {
            IpAddr::V4(_) => (self.timers.probes_v4, self.jitter(self.timers.retrans)),
            IpAddr::V6(_) => (self.timers.probes_v6, Duration::ZERO),
        };
        Dad::Tentative {
            next: now + delay,
            probes_left,
        }
    }

    /// Send the due DAD probes and announcements; true when an address
    /// became usable. IPv4 as arp_dad_timer: probes PROBE_MIN to PROBE_MAX
    /// apart, usable ANNOUNCE_WAIT after the last, then ANNOUNCE_NUM
    /// announcements ANNOUNCE_INTERVAL apart (a second is `retrans`).
    /// IPv6 as nd6_dad_timer: probes `retrans` apart, usable `retrans`
    /// after the last.
    fn run_dad(&mut self, now: Instant) -> bool {
        let mut changed = false;
        let retrans = self.timers.retrans;
        let mut addrs = std::mem::take(&mut self.addrs);
        for a in &mut addrs {
            if let Dad::Tentative { next, probes_left } = a.dad
                && next <= now
            {
                if probes_left == 0 {
                    a.dad = Dad::Ok;
                    changed = true;
                    if a.ip.is_ipv4() {
                        a.announce = Some((now, ANNOUNCE_NUM));
                    }
                } else {
                    let left = probes_left - 1;
                    let wait = match a.ip {
                        IpAddr::V4(ip) => {
                            self.out.push(arp_probe(self.mac, ip));
                            if left > 0 {
                                retrans + self.jitter(retrans)
                            } else {
                                2 * retrans
                            }
                        }
                        IpAddr::V6(ip) => {
                            self.out.push(dad_solicit(self.mac, ip));
                            retrans
                        }
                    };
                    a.dad = Dad::Tentative {
                        next: now + wait,
                        probes_left: left,
                    };
                }
            }
            if let (Some((at, n)), IpAddr::V4(ip)) = (a.announce, a.ip)
                && at <= now
                && a.dad == Dad::Ok
            {
                self.out.push(gratuitous_arp(self.mac, ip));
                a.announce = (n > 1).then(|| (now + 2 * retrans, n - 1));
            }
        }
        self.addrs = addrs;
        changed
    }

    /// Someone else uses one of our addresses (arp_dad_duplicated): a
    /// tentative address is given up; a held one is defended once per
    /// DEFEND_INTERVAL, and given up on a second conflict within it
    /// (RFC 5227 2.4 (b)). Each change is logged; conflicts with an
    /// address already given up, at most once per DEFEND_INTERVAL.
    fn dad_duplicated(&mut self, now: Instant, ip: IpAddr, from: &[u8]) {
        let name = &self.dev.port.name;
        let Some(a) = self.addrs.iter_mut().find(|a| a.ip == ip) else {
            return;
        };
        let logs = &mut self.conflicts_logged;
        let mut say = |a: &mut Addr, what: &str| {
            a.logged = Some(now);
            *logs += 1;
            log::warn(&format!("{name}: DAD {what} {ip} from {}", fmt_mac(from)));
        };
        match a.dad {
            Dad::Duplicated => {
                if a.logged.is_none_or(|t| now >= t + DEFEND_INTERVAL) {
                    say(a, "duplicate address");
                }
                return;
            }
            Dad::Tentative { .. } => say(a, "duplicate address"),
            Dad::Ok => {
                if a.defended.is_none_or(|t| now >= t + DEFEND_INTERVAL) {
                    a.defended = Some(now);
                    if let IpAddr::V4(v4) = ip {
                        self.out.push(gratuitous_arp(self.mac, v4));
                    }
                    say(a, "defended address");
                    return;
                }
                say(a, "defence failed for");
                self.changed = true;
            }
        }
        a.dad = Dad::Duplicated;
        a.announce = None;
    }

    /// Remember that `ip` is at `mac` (a unicast neighbour, not one of ours).
    fn learn(&mut self, now: Instant, ip: IpAddr, mac: Mac) {
        if mac[0] & 1 != 0
            || ip.is_unspecified()
            || ip.is_multicast()
            || self.dad_state(ip).is_some()
        {
            return;
        }
        let n = &mut self.neighbors;
        if n.len() >= MAX_NEIGHBORS
            && !n.contains_key(&ip)
            && let Some(oldest) = n.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k)
        {
            n.remove(&oldest);
        }
        // New, moved, or primed long enough ago that smoltcp's own entry
        // (60 s) may have expired.
        let stale =
            |&(m, at): &(Mac, Instant)| m != mac || now.saturating_duration_since(at) >= REPRIME;
        if n.get(&ip).is_none_or(stale) {
            n.insert(ip, (mac, now));
            self.fresh.push((ip, mac));
        }
    }

    /// Look at a received frame before smoltcp does: duplicate detection
    /// and defence, echo reply matching, echo flood limiting. Returns
    /// whether smoltcp should see it.
    fn sniff(&mut self, now: Instant, frame: &[u8]) -> bool {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return false;
        };
        if eth.src_addr().0 == self.mac {
            return false; // our own frame came back: nothing to learn from it
        }
        match eth.ethertype() {
            EthernetProtocol::Arp => self.sniff_arp(now, eth.payload()),
            EthernetProtocol::Ipv4 => self.sniff_ipv4(now, eth.payload(), eth.src_addr().0),
            EthernetProtocol::Ipv6 => self.sniff_ipv6(now, eth.payload(), eth.src_addr().0),
            _ => false,
        }
    }

    fn sniff_arp(&mut self, now: Instant, payload: &[u8]) -> bool {
        let Ok(pkt) = ArpPacket::new_checked(payload) else {
            return false;
        };
        let Ok(ArpRepr::EthernetIpv4 {
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_protocol_addr: tpa,
            ..
        }) = ArpRepr::parse(&pkt)
        else {
            return false;
        };
        // in_arpinput's DAD check: a collision on the sender address is
        // always a conflict.
        if self.dad_state(IpAddr::V4(spa)).is_some() {
            self.dad_duplicated(now, IpAddr::V4(spa), &sha.0);
            return false;
        }
        // Like NetBSD (and Linux), learn only from ARP aimed at us, not from
        // other hosts' announcements and queries.
        if self.dad_state(IpAddr::V4(tpa)) == Some(Dad::Ok) {
            self.learn(now, IpAddr::V4(spa), sha.0);
        }
        // An RFC 5227 probe (sender 0.0.0.0): a conflict for an address we
        // probe; for one we hold, answered (in_arpinput's reply).
        if spa == Ipv4Addr::UNSPECIFIED {
            match self.dad_state(IpAddr::V4(tpa)) {
                Some(Dad::Tentative { .. } | Dad::Duplicated) => {
                    self.dad_duplicated(now, IpAddr::V4(tpa), &sha.0)
                }
                Some(Dad::Ok) => self.out.push(arp_reply(self.mac, tpa, sha.0, spa)),
                None => {}
            }
            return false;
        }
        true
    }

    /// Take a token for answering an echo request.
    fn echo_allowed(&mut self, now: Instant) -> bool {
        let b = &mut self.echo_bucket;
        let elapsed = now.saturating_duration_since(b.1).as_secs_f64();
        b.0 = (b.0 + elapsed * ECHO_RATE).min(ECHO_RATE);
        b.1 = b.1.max(now);
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            true
        } else {
            self.dev.port.counters.iqdrops.fetch_add(1, Relaxed);
            false
        }
    }

    fn complete_echo(
        &mut self,
        now: Instant,
        key: (u16, u16),
        from: IpAddr,
        bytes: usize,
        ttl: u8,
        (error, opts): (Option<IcmpError>, &[u8]),
    ) {
        if let Some(p) = self.pending.remove(&key) {
            let rtt_us = now.saturating_duration_since(p.sent).as_micros() as u64;
            let _ = p.tx.try_send(EchoReply {
                from,
                bytes: bytes as u32,
                ttl,
                rtt_us,
                error,
                opts: opts.to_vec(),
            });
        }
    }

    /// An ICMP or ICMPv6 error message (`icmp`: its 8-byte header, then
    /// the quote: the request's IP header and at least the ICMP header's
    /// 8 bytes) about one of our echo requests: the wait for its reply
    /// ends with the error, as ping reports it.
    fn echo_error(&mut self, now: Instant, from: IpAddr, bytes: usize, icmp: &[u8]) {
        let (Some(&[typ, code, _, _, a, b, c, d]), Some(quote)) =
            (icmp.first_chunk::<8>(), icmp.get(8..))
        else {
            return;
        };
        let (hlen, echo) = match quote.first().map(|b| b >> 4) {
            Some(4) => (usize::from(quote[0] & 0xf) * 4, 8u8),
            Some(6) => (40, 128u8),
            _ => return,
        };
        let proto = if echo == 8 {
            quote.get(9)
        } else {
            quote.get(6)
        };
        // The quoted request's own ICMP header.
        let Some(req) = quote.get(hlen..hlen + 8) else {
            return;
        };
        if proto != Some(&if echo == 8 { 1 } else { 58 }) || req[0] != echo {
            return;
        }
        let key = (
            u16::from_be_bytes([req[4], req[5]]),
            u16::from_be_bytes([req[6], req[7]]),
        );
        let err = IcmpError {
            typ,
            code,
            info: u32::from_be_bytes([a, b, c, d]),
            quote: quote[..hlen + 8].to_vec(),
        };
        self.complete_echo(now, key, from, bytes, 0, (Some(err), &[]));
    }

    fn sniff_ipv4(&mut self, now: Instant, payload: &[u8], src_mac: Mac) -> bool {
        let Ok(ip) = Ipv4Packet::new_checked(payload) else {
            return false;
        };
        if !ip.verify_checksum() {
            return false;
        }
        self.learn(now, IpAddr::V4(ip.src_addr()), src_mac);
        if ip.next_header() != IpProtocol::Icmp {
            return true;
        }
        let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
            return false;
        };
        match icmp.msg_type() {
            Icmpv4Message::EchoReply => {
                let key = (icmp.echo_ident(), icmp.echo_seq_no());
                let from = IpAddr::V4(ip.src_addr());
                let opts = &payload[20..usize::from(ip.header_len())];
                let (len, ttl) = (ip.payload().len(), ip.hop_limit());
                self.complete_echo(now, key, from, len, ttl, (None, opts));
                true
            }
            Icmpv4Message::EchoRequest => self.echo_allowed(now),
            Icmpv4Message::DstUnreachable
            | Icmpv4Message::TimeExceeded
            | Icmpv4Message::ParamProblem => {
                let from = IpAddr::V4(ip.src_addr());
                self.echo_error(now, from, ip.payload().len(), ip.payload());
                true
            }
            _ => true,
        }
    }

    fn sniff_ipv6(&mut self, now: Instant, payload: &[u8], src: Mac) -> bool {
        let Ok(ip) = Ipv6Packet::new_checked(payload) else {
            return false;
        };
        self.learn(now, IpAddr::V6(ip.src_addr()), src);
        if ip.next_header() != IpProtocol::Icmpv6 {
            return true;
        }
        let Ok(icmp) = Icmpv6Packet::new_checked(ip.payload()) else {
            return false;
        };
        match icmp.msg_type() {
            Icmpv6Message::EchoReply => {
                let key = (icmp.echo_ident(), icmp.echo_seq_no());
                let from = IpAddr::V6(ip.src_addr());
                let (len, hlim) = (ip.payload().len(), ip.hop_limit());
                self.complete_echo(now, key, from, len, hlim, (None, &[]));
                true
            }
            Icmpv6Message::EchoRequest => self.echo_allowed(now),
            Icmpv6Message::DstUnreachable
            | Icmpv6Message::TimeExceeded
            | Icmpv6Message::PktTooBig
            | Icmpv6Message::ParamProblem => {
                let from = IpAddr::V6(ip.src_addr());
                self.echo_error(now, from, ip.payload().len(), ip.payload());
                true
            }
            Icmpv6Message::NeighborSolicit | Icmpv6Message::NeighborAdvert => {
                let Ok(Icmpv6Repr::Ndisc(nd)) = Icmpv6Repr::parse(
                    &ip.src_addr(),
                    &ip.dst_addr(),
                    &icmp,
                    &ChecksumCapabilities::default(),
                ) else {
                    return false;
                };
                match nd {
                    NdiscRepr::NeighborSolicit { target_addr, .. } => {
                        let state = self.dad_state(IpAddr::V6(target_addr));
                        if ip.src_addr().is_unspecified() {
                            match state {
                                Some(Dad::Tentative { .. }) => {
                                    self.dad_duplicated(now, IpAddr::V6(target_addr), &src)
                                }
                                Some(Dad::Ok) => {
                                    self.out.push(defend_advert(self.mac, target_addr))
                                }
                                _ => {}
                            }
                            return false;
                        }
                        // Never answer for an address still under DAD.
                        !matches!(state, Some(Dad::Tentative { .. } | Dad::Duplicated))
                    }
                    NdiscRepr::NeighborAdvert { target_addr, .. } => {
                        match self.dad_state(IpAddr::V6(target_addr)) {
                            Some(Dad::Tentative { .. }) => {
                                self.dad_duplicated(now, IpAddr::V6(target_addr), &src);
                                false
                            }
                            Some(_) => false,
                            None => true,
                        }
                    }
                    _ => true,
                }
            }
            _ => true,
        }
    }

    /// Wait for the reply `key` until `expires`; the oldest wait goes when
    /// there are too many.
    fn expect(
        &mut self,
        key: (u16, u16),
        sent: Instant,
        expires: Instant,
        tx: SyncSender<EchoReply>,
    ) {
        if self.pending.len() >= MAX_PENDING
            && !self.pending.contains_key(&key)
            && let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.expires)
                .map(|(k, _)| *k)
        {
            self.pending.remove(&oldest);
        }
        self.pending.insert(key, Pending { sent, expires, tx });
    }

    fn send_echo(&mut self, now: Instant, e: Echo) {
        // smoltcp paces all its address resolution together (one query a
        // second); resolve this destination now.
        if !self.neighbors.contains_key(&e.dst)
            && let Some(q) = solicit(&self.iface, self.mac, e.dst)
            && let Some(q) = Frame::new(&q)
        {
            let _ = self.dev.port.output(&q);
        }
        self.expect((e.ident, e.seq), e.sent, e.expires, e.tx);
        if !self.echo_sockets.contains_key(&e.ident)
            && self.echo_sockets.len() >= MAX_ECHO_SOCKETS
            && let Some((&old, &(h, _))) = self.echo_sockets.iter().min_by_key(|(_, (_, at))| *at)
        {
            self.sockets.remove(h);
            self.echo_sockets.remove(&old);
        }
        let sockets = &mut self.sockets;
        let entry = self.echo_sockets.entry(e.ident).or_insert_with(|| {
            let rx =
                icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 16], vec![0; 16 * 1600]);
            let tx =
                icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 16], vec![0; 16 * 1600]);
            let mut sock = icmp::Socket::new(rx, tx);
            let _ = sock.bind(icmp::Endpoint::Ident(e.ident));
            (sockets.add(sock), now)
        });
        entry.1 = now;
        let sock = sockets.get_mut::<icmp::Socket>(entry.0);
        let data: Vec<u8> = (0..e.len).map(|i| i as u8).collect();
        let caps = ChecksumCapabilities::default();
        match e.dst {
            IpAddr::V4(d) => {
                let repr = Icmpv4Repr::EchoRequest {
                    ident: e.ident,
                    seq_no: e.seq,
                    data: &data,
                };
                if let Ok(buf) = sock.send(repr.buffer_len(), IpAddress::Ipv4(d)) {
                    repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
                }
            }
            IpAddr::V6(d) => {
                let src: Ipv6Addr = self.iface.get_source_address_ipv6(&d);
                let repr = Icmpv6Repr::EchoRequest {
                    ident: e.ident,
                    seq_no: e.seq,
                    data: &data,
                };
                if let Ok(buf) = sock.send(repr.buffer_len(), IpAddress::Ipv6(d)) {
                    repr.emit(&src, &d, &mut Icmpv6Packet::new_unchecked(buf), &caps);
                }
            }
        }
    }
}

/// A frame that tells smoltcp `ip` is at `nmac`: an ARP reply or a
/// neighbour advertisement to one of our addresses on the same link.
fn primer(iface: &Interface, mac: Mac, ip: IpAddr, nmac: Mac) -> Option<Vec<u8>> {
    let ours = iface
        .ip_addrs()
        .iter()
        .find(|c| c.contains_addr(&IpAddress::from(ip)))?;
    match (ip, ours.address()) {
        (IpAddr::V4(n), IpAddress::Ipv4(me)) => Some(arp_reply(nmac, n, mac, me)),
        (IpAddr::V6(n), IpAddress::Ipv6(me)) => Some(neighbor_advert(nmac, n, mac, me)),
        _ => None,
    }
}

/// An ARP request or neighbour solicitation for `dst` from our address on
/// its link.
fn solicit(iface: &Interface, mac: Mac, dst: IpAddr) -> Option<Vec<u8>> {
    let ours = iface
        .ip_addrs()
        .iter()
        .find(|c| c.contains_addr(&IpAddress::from(dst)))?;
    match (dst, ours.address()) {
        (IpAddr::V4(d), IpAddress::Ipv4(me)) => Some(arp_request(mac, me, d)),
        (IpAddr::V6(d), IpAddress::Ipv6(me)) => Some(neighbor_solicit(mac, me, d)),
        _ => None,
    }
}

fn fmt_mac(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The state machine on a fake clock: no threads, no sleeps. Time moves
/// only when a test adds to it.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioctl::iff;
    use crate::port::Transmit;
    use smoltcp::wire::{ArpOperation, EthernetRepr, Ipv4Repr};

    const MAC: Mac = [2, 0, 0, 0, 0, 1];
    const PEER: Mac = [2, 0, 0, 0, 0, 2];
    const V4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const V6: Ipv6Addr = Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 1);

    /// A test frame into the host, as the data plane hands it over.
    fn feed(h: &Host, f: &[u8]) {
        h.input(&Frame::new(f).expect("a whole Ethernet header"));
    }

    /// The medium: what the host sent.
    #[derive(Default)]
    struct Wire(Mutex<Vec<Vec<u8>>>);

    impl Transmit for Wire {
        fn transmit(&self, frame: &Frame) -> Result<(), Errno> {
            self.0.lock().unwrap().push(frame.bytes().to_vec());
            Ok(())
        }
    }

    impl Wire {
        fn take(&self) -> Vec<Vec<u8>> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn host(timers: DadTimers) -> (Host, Arc<Wire>, Instant) {
        let port = Port::new(1, "eth0");
        port.set_flags(iff::UP | iff::RUNNING);
        let wire = Arc::new(Wire::default());
        port.set_transmit(Some(wire.clone()));
        let t0 = Instant::now();
        (Host::new(port, MAC, timers, t0).unwrap(), wire, t0)
    }

    fn addrs(nodad: bool) -> Vec<HostAddr> {
        vec![
            HostAddr {
                ip: IpAddr::V4(V4),
                prefix: 24,
                nodad,
                expire: None,
            },
            HostAddr {
                ip: IpAddr::V6(V6),
                prefix: 64,
                nodad,
                expire: None,
            },
        ]
    }

    /// A host holding V4 and V6, past DAD.
    fn holder() -> (Host, Arc<Wire>, Instant) {
        let (h, wire, t0) = host(DadTimers::default());
        h.configure(t0, MAC, &addrs(true));
        h.poll(t0);
        wire.take();
        (h, wire, t0)
    }

    /// Poll at every deadline the host asks for up to `end`, and at `end`.
    fn run_until(h: &Host, mut t: Instant, end: Instant) {
        loop {
            let next = h.poll(t).unwrap_or(end);
            if t >= end {
                return;
            }
            t = next.clamp(t, end);
        }
    }

    fn is_garp(f: &[u8], ip: Ipv4Addr) -> bool {
        let Ok(eth) = EthernetFrame::new_checked(f) else {
            return false;
        };
        let Ok(arp) = ArpPacket::new_checked(eth.payload()) else {
            return false;
        };
        matches!(ArpRepr::parse(&arp), Ok(ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_protocol_addr: s,
            target_protocol_addr: t,
            ..
        }) if s == ip && t == ip)
    }

    fn is_dad_probe(f: &[u8], ip: Ipv6Addr) -> bool {
        let Ok(eth) = EthernetFrame::new_checked(f) else {
            return false;
        };
        let Ok(p) = Ipv6Packet::new_checked(eth.payload()) else {
            return false;
        };
        let Ok(icmp) = Icmpv6Packet::new_checked(p.payload()) else {
            return false;
        };
        let caps = ChecksumCapabilities::default();
        p.src_addr().is_unspecified()
            && matches!(
                Icmpv6Repr::parse(&p.src_addr(), &p.dst_addr(), &icmp, &caps),
                Ok(Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr, .. }))
                    if target_addr == ip
            )
    }

    fn echo_request(src_mac: Mac, src: Ipv4Addr, dst: Ipv4Addr, seq: u16) -> Vec<u8> {
        let caps = ChecksumCapabilities::default();
        let icmp = Icmpv4Repr::EchoRequest {
            ident: 9,
            seq_no: seq,
            data: b"abcdefgh",
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Icmp,
            payload_len: icmp.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress(src_mac),
            dst_addr: EthernetAddress(MAC),
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf = vec![0; eth.buffer_len() + ip.buffer_len() + icmp.buffer_len()];
        let mut f = EthernetFrame::new_unchecked(&mut buf);
        eth.emit(&mut f);
        let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
        ip.emit(&mut p, &caps);
        icmp.emit(&mut Icmpv4Packet::new_unchecked(p.payload_mut()), &caps);
        buf
    }

    fn echo_reply_seq(f: &[u8]) -> Option<(Mac, Ipv4Addr, u16)> {
        let eth = EthernetFrame::new_checked(f).ok()?;
        let p = Ipv4Packet::new_checked(eth.payload()).ok()?;
        let icmp = Icmpv4Packet::new_checked(p.payload()).ok()?;
        (icmp.msg_type() == Icmpv4Message::EchoReply)
            .then(|| (eth.dst_addr().0, p.dst_addr(), icmp.echo_seq_no()))
    }

    fn is_arp_probe(f: &[u8], ip: Ipv4Addr) -> bool {
        let Ok(eth) = EthernetFrame::new_checked(f) else {
            return false;
        };
        let Ok(arp) = ArpPacket::new_checked(eth.payload()) else {
            return false;
        };
        eth.dst_addr().is_broadcast()
            && matches!(ArpRepr::parse(&arp), Ok(ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_protocol_addr: s,
                target_protocol_addr: t,
                ..
            }) if s.is_unspecified() && t == ip)
    }

    /// Step the clock 1 ms at a time; what went out, and when, in ms.
    fn timeline(h: &Host, wire: &Wire, t0: Instant, ms: u64) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        for i in 0..=ms {
            h.poll(t0 + Duration::from_millis(i));
            out.extend(wire.take().into_iter().map(|f| (i, f)));
        }
        out
    }

    /// NetBSD's defaults (dad_count 3 and 1) with a 100 ms "second":
    /// arp_dad_start/arp_dad_timer for IPv4 (probes `who-has A tell
    /// 0.0.0.0`, PROBE_WAIT, PROBE_MIN..PROBE_MAX, ANNOUNCE_WAIT, then
    /// ANNOUNCE_NUM announcements `who-has A tell A`), nd6_dad_timer for
    /// IPv6 (one NS at once, usable a RetransTimer later).
    #[test]
    fn dad_follows_netbsd() {
        let timers = DadTimers {
            retrans: Duration::from_millis(100),
            ..DadTimers::default()
        };
        assert_eq!((timers.probes_v4, timers.probes_v6), (3, 1));
        let (h, wire, t0) = host(timers);
        h.configure(t0, MAC, &addrs(false));
        let (v4, v6) = (IpAddr::V4(V4), IpAddr::V6(V6));
        assert_eq!(h.addr_flags(v4), in_iff::TENTATIVE);
        assert_eq!(h.addr_flags(v6), in6_iff::TENTATIVE);
        let mut usable = (None, None);
        let mut sent = Vec::new();
        for i in 0..=1500u64 {
            let t = t0 + Duration::from_millis(i);
            h.poll(t);
            sent.extend(wire.take().into_iter().map(|f| (i, f)));
            if usable.0.is_none() && h.addr_flags(v4) == 0 {
                usable.0 = Some(i);
            }
            if usable.1.is_none() && h.addr_flags(v6) == 0 {
                usable.1 = Some(i);
            }
        }
        let at = |f: &dyn Fn(&[u8]) -> bool| -> Vec<u64> {
            sent.iter().filter(|(_, x)| f(x)).map(|(i, _)| *i).collect()
        };
        assert_eq!(at(&|f| is_dad_probe(f, V6)), vec![0], "one NS at once");
        assert_eq!(usable.1, Some(100), "usable a RetransTimer later");
        let probes = at(&|f| is_arp_probe(f, V4));
        assert_eq!(probes.len(), 3, "{probes:?}");
        assert!(probes[0] <= 100, "PROBE_WAIT: {probes:?}");
        // Polled each millisecond: a gap just under PROBE_MAX is seen as
        // PROBE_MAX.
        for w in probes.windows(2) {
            assert!(
                (100..=200).contains(&(w[1] - w[0])),
                "PROBE_MIN/MAX: {probes:?}"
            );
        }
        assert_eq!(usable.0, Some(probes[2] + 200), "ANNOUNCE_WAIT");
        let announced = at(&|f| is_garp(f, V4));
        assert_eq!(announced, vec![probes[2] + 200, probes[2] + 400]);
        assert_eq!(h.poll(t0 + Duration::from_millis(1500)), None, "all done");
    }

    /// in_ifinit/arp_ifinit: an address not tried is usable at once and
    /// announced once.
    /// Frames of a type no protocol here takes are counted and dropped,
    /// not queued for the stack.
    #[test]
    fn other_ethertypes_are_noproto() {
        let (h, _wire, _t0) = host(DadTimers::default());
        let mut f = vec![0x5a; 64];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        h.input(&Frame::new(&f).unwrap());
        assert_eq!(h.port.counters.snapshot().noproto, 1);
        assert!(lock(&h.input).is_empty());
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        h.input(&Frame::new(&f).unwrap());
        assert_eq!(h.port.counters.snapshot().noproto, 1);
        assert!(!lock(&h.input).is_empty());
    }

    #[test]
    fn an_address_not_tried_is_usable_and_announced() {
        let (h, wire, t0) = host(DadTimers::default());
        h.configure(t0, MAC, &addrs(true));
        assert_eq!(h.addr_flags(IpAddr::V4(V4)), 0);
        let sent = timeline(&h, &wire, t0, 5000);
        assert_eq!(sent.iter().filter(|(_, f)| is_garp(f, V4)).count(), 1);
        assert!(!sent.iter().any(|(_, f)| is_arp_probe(f, V4)));
    }

    /// An address past its valid lifetime is no longer answered for, at
    /// its time, whether or not the kernel has removed it yet.
    #[test]
    fn an_address_expires_at_its_time() {
        let (h, wire, t0) = host(DadTimers::default());
        let end = t0 + Duration::from_secs(3);
        let mut a = addrs(true);
        a[0].expire = Some(end);
        h.configure(t0, MAC, &a);
        assert_eq!(h.poll(t0), Some(end), "polled when it expires");
        wire.take();
        feed(&h, &arp_request(PEER, PEER4, V4));
        h.poll(end - Duration::from_millis(1));
        assert_eq!(wire.take().len(), 1, "answered while valid");
        feed(&h, &arp_request(PEER, PEER4, V4));
        h.poll(end);
        assert!(wire.take().is_empty(), "not once expired");
    }

    #[test]
    fn a_conflict_during_dad_marks_the_address_duplicated() {
        let (h, wire, t0) = host(DadTimers::default());
        h.configure(t0, MAC, &addrs(false));
        h.poll(t0);
        let t = t0 + Duration::from_millis(10);
        // Someone answers for both addresses.
        feed(&h, &arp_reply(PEER, V4, MAC, PEER4));
        feed(&h, &neighbor_advert(PEER, V6, MAC, V6));
        h.poll(t);
        assert_eq!(h.addr_flags(IpAddr::V4(V4)), in_iff::DUPLICATED);
        assert_eq!(h.addr_flags(IpAddr::V6(V6)), in6_iff::DUPLICATED);
        // Never usable, never probed again.
        wire.take();
        run_until(&h, t, t + Duration::from_secs(5));
        assert_eq!(h.addr_flags(IpAddr::V4(V4)), in_iff::DUPLICATED);
        assert!(wire.take().iter().all(|f| !is_garp(f, V4)));
    }

    #[test]
    fn a_held_address_is_defended() {
        let (h, wire, t0) = holder();
        // Another host's RFC 5227 probe for our address: answered, as
        // in_arpinput replies to it, and by an advertisement.
        feed(&h, &arp_request(PEER, Ipv4Addr::UNSPECIFIED, V4));
        feed(&h, &dad_solicit(PEER, V6));
        h.poll(t0);
        let sent = wire.take();
        let reply = arp_reply(MAC, V4, PEER, Ipv4Addr::UNSPECIFIED);
        assert!(sent.contains(&reply), "ARP reply to the prober");
        assert!(sent.contains(&defend_advert(MAC, V6)), "advertisement");
        assert_eq!(h.addr_flags(IpAddr::V4(V4)), 0, "kept");
        // Someone announcing our address: defended with an announcement.
        feed(&h, &gratuitous_arp(PEER, V4));
        h.poll(t0);
        assert!(wire.take().iter().any(|f| is_garp(f, V4)), "defended");
        assert_eq!(h.addr_flags(IpAddr::V4(V4)), 0, "kept");
    }

    /// Issue 12 item 11: a flood of ARP claiming our address costs at most
    /// one defence per DEFEND_INTERVAL (arp_dad_duplicated), the address is
    /// given up on the second conflict within it (RFC 5227 2.4 (b)), and
    /// the log says so at most once per interval.
    #[test]
    fn conflict_floods_are_not_amplified() {
        let (h, wire, t0) = holder();
        let logged = || lock(&h.state).conflicts_logged;
        let mut garps = 0;
        for i in 0..30_000u32 {
            // 30 s of a flood, a frame per millisecond.
            let t = t0 + Duration::from_millis(u64::from(i));
            feed(&h, &gratuitous_arp(PEER, V4));
            h.poll(t);
            garps += wire.take().iter().filter(|f| is_garp(f, V4)).count();
        }
        assert_eq!(garps, 1, "one defence");
        assert_eq!(h.addr_flags(IpAddr::V4(V4)), in_iff::DUPLICATED);
        // Defended, defence failed, then "duplicate address" at 10 s and
        // 20 s after the last line.
        assert_eq!(logged(), 4, "log lines in 30 s");
    }

    #[test]
    fn arp_and_neighbour_queries_get_answers() {
        let (h, wire, t0) = holder();
        let peer6 = Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 2);
        feed(&h, &arp_request(PEER, PEER4, V4));
        feed(&h, &neighbor_solicit(PEER, peer6, V6));
        h.poll(t0);
        let sent = wire.take();
        let arp_reply = sent.iter().any(|f| {
            let Ok(eth) = EthernetFrame::new_checked(f) else {
                return false;
            };
            let Ok(arp) = ArpPacket::new_checked(eth.payload()) else {
                return false;
            };
            matches!(ArpRepr::parse(&arp), Ok(ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: EthernetAddress(MAC),
                source_protocol_addr: s,
                target_hardware_addr: EthernetAddress(PEER),
                ..
            }) if s == V4)
        });
        assert!(arp_reply, "ARP reply");
        let advert = sent.iter().any(|f| {
            let Ok(eth) = EthernetFrame::new_checked(f) else {
                return false;
            };
            let Ok(p) = Ipv6Packet::new_checked(eth.payload()) else {
                return false;
            };
            let Ok(icmp) = Icmpv6Packet::new_checked(p.payload()) else {
                return false;
            };
            let caps = ChecksumCapabilities::default();
            eth.dst_addr().0 == PEER
                && matches!(
                    Icmpv6Repr::parse(&p.src_addr(), &p.dst_addr(), &icmp, &caps),
                    Ok(Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert { target_addr, .. }))
                        if target_addr == V6
                )
        });
        assert!(advert, "neighbour advertisement");
    }

    #[test]
    fn an_echo_request_gets_a_reply() {
        let (h, wire, t0) = holder();
        feed(&h, &echo_request(PEER, PEER4, V4, 7));
        h.poll(t0);
        let replies: Vec<_> = wire
            .take()
            .iter()
            .filter_map(|f| echo_reply_seq(f))
            .collect();
        assert_eq!(replies, vec![(PEER, PEER4, 7)]);
    }

    #[test]
    fn echo_floods_are_limited() {
        let (h, wire, t0) = holder();
        let n = ECHO_RATE as usize + 100;
        for seq in 0..n {
            feed(&h, &echo_request(PEER, PEER4, V4, seq as u16));
            if seq % 500 == 0 {
                h.poll(t0);
            }
        }
        h.poll(t0);
        let answered = wire.take().iter().filter_map(|f| echo_reply_seq(f)).count();
        assert_eq!(
            answered, ECHO_RATE as usize,
            "a second's worth at one instant"
        );
        assert_eq!(h.port.counters.iqdrops.load(Relaxed), 100);
        // A second later the bucket is full again.
        feed(&h, &echo_request(PEER, PEER4, V4, 1));
        h.poll(t0 + Duration::from_secs(1));
        assert_eq!(
            wire.take().iter().filter_map(|f| echo_reply_seq(f)).count(),
            1
        );
    }

    #[test]
    fn neighbours_age_out() {
        let (h, _wire, t0) = holder();
        feed(&h, &echo_request(PEER, PEER4, V4, 1));
        h.poll(t0);
        let known = |h: &Host| lock(&h.state).neighbors.contains_key(&IpAddr::V4(PEER4));
        assert!(known(&h));
        h.poll(t0 + NEIGHBOR_LIFE - Duration::from_millis(1));
        assert!(known(&h));
        h.poll(t0 + NEIGHBOR_LIFE);
        assert!(!known(&h), "forgotten after {NEIGHBOR_LIFE:?}");
    }

    #[test]
    fn memory_is_bounded_whatever_arrives() {
        let (h, wire, t0) = holder();
        // 100k queries from distinct neighbours, each primed into smoltcp
        // with a frame of its own.
        for i in 0..100_000u32 {
            let b = i.to_be_bytes();
            let mac = [2, 1, b[0], b[1], b[2], b[3]];
            if i % 2 == 0 {
                feed(
                    &h,
                    &arp_request(mac, Ipv4Addr::new(10, 0, 0, 2 + (i % 250) as u8), V4),
                );
            } else {
                let src = Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, (i >> 16) as u16, i as u16);
                feed(&h, &neighbor_solicit(mac, src, V6));
            }
            if i % 1000 == 999 {
                h.poll(t0);
                wire.take();
            }
        }
        h.poll(t0);
        let q = lock(&h.input);
        assert!(q.free.len() <= POOL, "pool {}", q.free.len());
        drop(q);
        let st = lock(&h.state);
        assert!(st.neighbors.len() <= MAX_NEIGHBORS);
        assert!(st.dev.rx.is_empty() && st.dev.done.is_empty());
        drop(st);
        // Without a poll, the input queue stops at its bound.
        let before = h.port.counters.iqdrops.load(Relaxed);
        for _ in 0..RX_QUEUE + 10 {
            feed(&h, &arp_request(PEER, PEER4, V4));
        }
        assert_eq!(lock(&h.input).frames.len(), RX_QUEUE);
        assert_eq!(h.port.counters.iqdrops.load(Relaxed) - before, 10);
        // Big frames stop at the byte bound first.
        h.poll(t0);
        for _ in 0..100 {
            feed(&h, &vec![0xff; 64 << 10]);
        }
        assert!(lock(&h.input).bytes <= RX_BYTES);
        h.poll(t0);
        assert!(lock(&h.input).free.iter().all(|b| b.capacity() <= POOL_BUF));
    }
}
