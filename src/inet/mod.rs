//! The IP presence of an interface: what makes `ifconfig shmif0 inet
//! 10.0.0.2/24` a host on its segment. A smoltcp interface per ifnet
//! answers ARP, neighbor solicitations and echo requests for the addresses
//! that passed duplicate address detection; this module runs DAD (smoltcp
//! has none), defends held addresses, rate-limits echo floods, and sends
//! the echo requests of the ping tool.

mod frames;

use frames::{arp_reply, arp_request, neighbor_advert, neighbor_solicit};
pub use frames::{dad_solicit, defend_advert, gratuitous_arp};

use crate::frame::Frame;
use crate::ioctl::{Errno, Mac, in_iff, in6_iff};
use crate::log;
use crate::port::{Port, Stack};
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
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a new address stays TENTATIVE, and how many probes go out.
const DAD_TIME: Duration = Duration::from_millis(1000);
const DAD_PROBES: u8 = 2;
/// Frames waiting for the stack; beyond this they are dropped (iqdrops).
const RX_QUEUE: usize = 1024;
/// Echo requests answered per second at most (burst of one second).
const ECHO_RATE: f64 = 20_000.0;
/// smoltcp holds this many addresses per interface (its build feature).
const MAX_ADDRS: usize = 8;
/// Neighbours remembered to refill smoltcp's cache (as its build feature:
/// a busy segment, 32 hosts with v4 and v6, fits several times over).
const MAX_NEIGHBORS: usize = 256;
/// How often a neighbour that keeps talking is put back into smoltcp's
/// cache, whose entries live 60 s.
const REPRIME: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dad {
    Tentative {
        until: Instant,
        next_probe: Instant,
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
}

/// An address the stack should hold, as the kernel hands it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostAddr {
    pub ip: IpAddr,
    pub prefix: u8,
    /// Skip DAD (IN6_IFF_NODAD, anycast, or an interface that is not up).
    pub nodad: bool,
}

/// The answer to one echo request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoReply {
    pub from: IpAddr,
    /// ICMP message length (header and data), as ping prints it.
    pub bytes: u32,
    pub ttl: u8,
    pub rtt_us: u64,
}

struct Pending {
    sent: Instant,
    tx: SyncSender<EchoReply>,
}

enum Cmd {
    Echo {
        dst: IpAddr,
        ident: u16,
        seq: u16,
        len: usize,
    },
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Vec<u8>>,
    free: Vec<Vec<u8>>,
    cmds: Vec<Cmd>,
    stop: bool,
}

struct Shared {
    port: Arc<Port>,
    queue: Mutex<Queue>,
    wake: Condvar,
    mac: Mutex<Mac>,
    addrs: Mutex<Vec<Addr>>,
    /// Bumped when `addrs` or `mac` change, so the thread re-reads them.
    generation: AtomicU64,
    pending: Mutex<HashMap<(u16, u16), Pending>>,
    /// Who was seen where: smoltcp forgets its neighbour cache whenever
    /// the address list changes, and would drop the replies it owes while
    /// it resolves again; these refill it.
    neighbors: Mutex<HashMap<IpAddr, (Mac, Instant)>>,
    /// Neighbours learned from the frame being sniffed, new or moved.
    fresh: Mutex<Vec<(IpAddr, Mac)>>,
    echo_bucket: Mutex<(f64, Instant)>,
}

/// One interface's IP presence: a thread running a smoltcp interface.
pub struct Host {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Host {
    pub fn start(port: Arc<Port>, mac: Mac) -> Result<Host, Errno> {
        let shared = Arc::new(Shared {
            port: port.clone(),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            mac: Mutex::new(mac),
            addrs: Mutex::new(Vec::new()),
            generation: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            neighbors: Mutex::new(HashMap::new()),
            fresh: Mutex::new(Vec::new()),
            echo_bucket: Mutex::new((ECHO_RATE, Instant::now())),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("inet-{}", port.name))
            .spawn(move || run(s))
            .map_err(|_| Errno::ENOMEM)?;
        port.set_stack(Some(shared.clone()));
        Ok(Host {
            shared,
            thread: Some(thread),
        })
    }

    /// Set the addresses the host holds. New ones start duplicate address
    /// detection; ones that stay keep their state.
    pub fn configure(&self, mac: Mac, want: &[HostAddr]) {
        let now = Instant::now();
        let mut addrs = self.shared.addrs.lock().unwrap();
        let mut next = Vec::with_capacity(want.len());
        for w in want {
            let kept = addrs.iter().find(|a| a.ip == w.ip).map(|a| a.dad);
            let dad = kept.unwrap_or(if w.nodad {
                Dad::Ok
            } else {
                Dad::Tentative {
                    until: now + DAD_TIME,
                    next_probe: now,
                    probes_left: DAD_PROBES,
                }
            });
            next.push(Addr {
                ip: w.ip,
                prefix: w.prefix,
                dad,
            });
        }
        *addrs = next;
        *self.shared.mac.lock().unwrap() = mac;
        drop(addrs);
        self.shared.generation.fetch_add(1, Relaxed);
        self.shared.wake.notify_one();
    }

    /// The TENTATIVE/DUPLICATED bits of an address, in the flag space of
    /// its family, for ifconfig's status.
    pub fn addr_flags(&self, ip: IpAddr) -> u32 {
        let addrs = self.shared.addrs.lock().unwrap();
        let Some(a) = addrs.iter().find(|a| a.ip == ip) else {
            return 0;
        };
        match (a.dad, ip) {
            (Dad::Tentative { .. }, IpAddr::V4(_)) => in_iff::TENTATIVE,
            (Dad::Duplicated, IpAddr::V4(_)) => in_iff::DUPLICATED,
            (Dad::Tentative { .. }, IpAddr::V6(_)) => in6_iff::TENTATIVE,
            (Dad::Duplicated, IpAddr::V6(_)) => in6_iff::DUPLICATED,
            (Dad::Ok, _) => 0,
        }
    }

    /// A handle to send echo requests without holding the kernel's lock.
    pub fn pinger(&self) -> Pinger {
        Pinger(self.shared.clone())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.shared.port.set_stack(None);
        self.shared.queue.lock().unwrap().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends echo requests through a host and waits for the replies.
#[derive(Clone)]
pub struct Pinger(Arc<Shared>);

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
        self.0.pending.lock().unwrap().insert(
            (ident, seq),
            Pending {
                sent: Instant::now(),
                tx,
            },
        );
        {
            let mut q = self.0.queue.lock().unwrap();
            q.cmds.push(Cmd::Echo {
                dst,
                ident,
                seq,
                len,
            });
        }
        self.0.wake.notify_one();
        let r = rx.recv_timeout(timeout).map_err(|_| Errno::ETIMEDOUT);
        self.0.pending.lock().unwrap().remove(&(ident, seq));
        r
    }
}

impl Stack for Shared {
    fn input(&self, frame: &Frame) {
        let mut q = self.queue.lock().unwrap();
        if q.frames.len() >= RX_QUEUE {
            self.port.counters.iqdrops.fetch_add(1, Relaxed);
            return;
        }
        let mut buf = q.free.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame.bytes());
        q.frames.push_back(buf);
        drop(q);
        self.wake.notify_one();
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

fn smol_now(epoch: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(epoch.elapsed().as_micros() as i64)
}

/// The host thread: feed frames through the sniffer into smoltcp, run DAD
/// timers and echo commands, and sleep until the next thing to do.
fn run(s: Arc<Shared>) {
    let epoch = Instant::now();
    let mut dev = IfDevice {
        rx: VecDeque::new(),
        done: Vec::new(),
        port: s.port.clone(),
        txbuf: Vec::with_capacity(1514),
        mtu: 1514,
    };
    let mac = *s.mac.lock().unwrap();
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    config.random_seed = u64::from_ne_bytes(rand_bytes());
    let mut iface = Interface::new(config, &mut dev, smol_now(epoch));
    let mut sockets = SocketSet::new(Vec::new());
    let mut echo_sockets: HashMap<u16, (SocketHandle, Instant)> = HashMap::new();
    let mut seen_generation = 0;
    let mut batch = VecDeque::new();
    let mut cmds = Vec::new();
    loop {
        {
            let mut q = s.queue.lock().unwrap();
            q.free.append(&mut dev.done);
            if q.stop {
                return;
            }
            std::mem::swap(&mut batch, &mut q.frames);
            std::mem::swap(&mut cmds, &mut q.cmds);
        }
        let generation = s.generation.load(Relaxed);
        if generation != seen_generation {
            seen_generation = generation;
            let mac = *s.mac.lock().unwrap();
            if iface.hardware_addr() != HardwareAddress::Ethernet(EthernetAddress(mac)) {
                iface.set_hardware_addr(HardwareAddress::Ethernet(EthernetAddress(mac)));
            }
            sync_addrs(&s, &mut iface, &mut dev.rx);
        }
        let mut out = Vec::new();
        let mac = *s.mac.lock().unwrap();
        for frame in batch.drain(..) {
            let pass = sniff(&s, &frame, &mut out);
            // A neighbour seen for the first time (or moved) goes into
            // smoltcp's cache before its frame, so that the reply smoltcp
            // owes it is not dropped while it would resolve the address.
            for (ip, nmac) in s.fresh.lock().unwrap().drain(..) {
                dev.rx.extend(primer(&iface, mac, ip, nmac));
            }
            if pass {
                dev.rx.push_back(frame);
            } else {
                dev.done.push(frame);
            }
        }
        if run_dad(&s, &mut out) {
            sync_addrs(&s, &mut iface, &mut dev.rx);
        }
        for f in out.iter().filter_map(|f| Frame::new(f)) {
            let _ = s.port.output(&f);
        }
        for cmd in cmds.drain(..) {
            match cmd {
                Cmd::Echo {
                    dst,
                    ident,
                    seq,
                    len,
                } => {
                    // smoltcp paces all its address resolution together
                    // (one query a second); resolve this destination now.
                    if !s.neighbors.lock().unwrap().contains_key(&dst)
                        && let Some(q) = solicit(&iface, *s.mac.lock().unwrap(), dst)
                        && let Some(q) = Frame::new(&q)
                    {
                        let _ = s.port.output(&q);
                    }
                    send_echo(
                        &mut iface,
                        &mut sockets,
                        &mut echo_sockets,
                        dst,
                        ident,
                        seq,
                        len,
                    );
                }
            }
        }
        let now = smol_now(epoch);
        iface.poll(now, &mut dev, &mut sockets);
        // Replies were matched by the sniffer; empty the sockets' queues and
        // close the ones nobody used for a while.
        echo_sockets.retain(|_, (h, last)| {
            let sock = sockets.get_mut::<icmp::Socket>(*h);
            while sock.recv().is_ok() {}
            let keep = last.elapsed() < Duration::from_secs(30);
            if !keep {
                sockets.remove(*h);
            }
            keep
        });
        let mut wait = iface
            .poll_delay(smol_now(epoch), &sockets)
            .map_or(Duration::from_millis(200), |d| {
                Duration::from_micros(d.total_micros())
            })
            .min(Duration::from_millis(200));
        if let Some(t) = next_dad_timer(&s) {
            wait = wait.min(t.saturating_duration_since(Instant::now()));
        }
        let q = s.queue.lock().unwrap();
        if q.frames.is_empty() && q.cmds.is_empty() && !q.stop && dev.rx.is_empty() {
            let _ = s.wake.wait_timeout(q, wait);
        }
    }
}

fn rand_bytes() -> [u8; 8] {
    let mut b = [0u8; 8];
    let _ = getrandom(&mut b);
    b
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// Give smoltcp the addresses that passed DAD, and refill the neighbour
/// cache it flushes when they change.
fn sync_addrs(s: &Shared, iface: &mut Interface, rx: &mut VecDeque<Vec<u8>>) {
    let addrs = s.addrs.lock().unwrap();
    let ok: Vec<IpCidr> = addrs
        .iter()
        .filter(|a| a.dad == Dad::Ok)
        .map(|a| IpCidr::new(IpAddress::from(a.ip), a.prefix))
        .collect();
    if ok.len() > MAX_ADDRS {
        log::warn(&format!(
            "{}: only the first {MAX_ADDRS} addresses answer",
            s.port.name
        ));
    }
    let ok: Vec<IpCidr> = ok.into_iter().take(MAX_ADDRS).collect();
    if iface.ip_addrs() == ok.as_slice() {
        return;
    }
    iface.update_ip_addrs(|v| {
        v.clear();
        for c in &ok {
            let _ = v.push(*c);
        }
    });
    let mac = *s.mac.lock().unwrap();
    for (&ip, &(nmac, _)) in s.neighbors.lock().unwrap().iter() {
        if let Some(f) = primer(iface, mac, ip, nmac) {
            rx.push_front(f);
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

/// Remember that `ip` is at `mac` (a unicast neighbour, not one of ours).
fn learn(s: &Shared, ip: IpAddr, mac: [u8; 6]) {
    if mac[0] & 1 != 0 || ip.is_unspecified() || ip.is_multicast() || dad_state(s, ip).is_some() {
        return;
    }
    let mut n = s.neighbors.lock().unwrap();
    if n.len() >= MAX_NEIGHBORS
        && !n.contains_key(&ip)
        && let Some(oldest) = n.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k)
    {
        n.remove(&oldest);
    }
    // New, moved, or primed long enough ago that smoltcp's own entry
    // (60 s) may have expired.
    let now = Instant::now();
    let stale = |&(m, at): &(Mac, Instant)| m != mac || now.duration_since(at) >= REPRIME;
    if n.get(&ip).is_none_or(stale) {
        n.insert(ip, (mac, now));
        s.fresh.lock().unwrap().push((ip, mac));
    }
}

/// Send the due DAD probes; true when an address changed state.
fn run_dad(s: &Shared, out: &mut Vec<Vec<u8>>) -> bool {
    let now = Instant::now();
    let mac = *s.mac.lock().unwrap();
    let mut changed = false;
    for a in s.addrs.lock().unwrap().iter_mut() {
        let Dad::Tentative {
            until,
            next_probe,
            probes_left,
        } = a.dad
        else {
            continue;
        };
        if probes_left > 0 && next_probe <= now {
            out.push(match a.ip {
                IpAddr::V4(ip) => gratuitous_arp(mac, ip),
                IpAddr::V6(ip) => dad_solicit(mac, ip),
            });
            a.dad = Dad::Tentative {
                until,
                next_probe: now + DAD_TIME / u32::from(DAD_PROBES),
                probes_left: probes_left - 1,
            };
        } else if until <= now {
            a.dad = Dad::Ok;
            changed = true;
        }
    }
    changed
}

fn next_dad_timer(s: &Shared) -> Option<Instant> {
    s.addrs
        .lock()
        .unwrap()
        .iter()
        .filter_map(|a| match a.dad {
            Dad::Tentative {
                until,
                next_probe,
                probes_left,
            } => Some(if probes_left > 0 {
                next_probe.min(until)
            } else {
                until
            }),
            _ => None,
        })
        .min()
}

fn mark_duplicated(s: &Shared, ip: IpAddr, from: &[u8]) {
    let mut addrs = s.addrs.lock().unwrap();
    if let Some(a) = addrs.iter_mut().find(|a| a.ip == ip)
        && matches!(a.dad, Dad::Tentative { .. })
    {
        a.dad = Dad::Duplicated;
        log::warn(&format!(
            "{}: DAD detected duplicate address {ip} from {}",
            s.port.name,
            fmt_mac(from)
        ));
    }
}

fn fmt_mac(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn dad_state(s: &Shared, ip: IpAddr) -> Option<Dad> {
    s.addrs
        .lock()
        .unwrap()
        .iter()
        .find(|a| a.ip == ip)
        .map(|a| a.dad)
}

/// Look at a received frame before smoltcp does: duplicate detection and
/// defence, echo reply matching, echo flood limiting. Returns whether
/// smoltcp should see it.
fn sniff(s: &Shared, frame: &[u8], out: &mut Vec<Vec<u8>>) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    let mac = *s.mac.lock().unwrap();
    if eth.src_addr().0 == mac {
        return false; // our own frame came back: nothing to learn from it
    }
    match eth.ethertype() {
        EthernetProtocol::Arp => sniff_arp(s, eth.payload(), mac, out),
        EthernetProtocol::Ipv4 => sniff_ipv4(s, eth.payload(), eth.src_addr().0),
        EthernetProtocol::Ipv6 => sniff_ipv6(s, eth.payload(), mac, eth.src_addr().0, out),
        _ => false,
    }
}

fn sniff_arp(s: &Shared, payload: &[u8], mac: Mac, out: &mut Vec<Vec<u8>>) -> bool {
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
    // Someone else uses one of our addresses.
    if let Some(state) = dad_state(s, IpAddr::V4(spa)) {
        match state {
            Dad::Tentative { .. } => mark_duplicated(s, IpAddr::V4(spa), &sha.0),
            Dad::Ok => {
                log::warn(&format!(
                    "{}: {spa} is also used by {}",
                    s.port.name,
                    fmt_mac(&sha.0)
                ));
                out.push(gratuitous_arp(mac, spa));
            }
            Dad::Duplicated => {}
        }
        return false;
    }
    // Like NetBSD (and Linux), learn only from ARP aimed at us, not from
    // other hosts' announcements and queries.
    if dad_state(s, IpAddr::V4(tpa)) == Some(Dad::Ok) {
        learn(s, IpAddr::V4(spa), sha.0);
    }
    // An RFC 5227 probe (sender 0.0.0.0) for an address we hold or probe.
    if spa == Ipv4Addr::UNSPECIFIED {
        match dad_state(s, IpAddr::V4(tpa)) {
            Some(Dad::Tentative { .. }) => mark_duplicated(s, IpAddr::V4(tpa), &sha.0),
            Some(Dad::Ok) => out.push(gratuitous_arp(mac, tpa)),
            _ => {}
        }
        return false;
    }
    true
}

/// Take a token for answering an echo request.
fn echo_allowed(s: &Shared) -> bool {
    let mut b = s.echo_bucket.lock().unwrap();
    let now = Instant::now();
    b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * ECHO_RATE).min(ECHO_RATE);
    b.1 = now;
    if b.0 >= 1.0 {
        b.0 -= 1.0;
        true
    } else {
        s.port.counters.iqdrops.fetch_add(1, Relaxed);
        false
    }
}

fn complete_echo(s: &Shared, ident: u16, seq: u16, from: IpAddr, bytes: usize, ttl: u8) {
    if let Some(p) = s.pending.lock().unwrap().remove(&(ident, seq)) {
        let rtt_us = p.sent.elapsed().as_micros() as u64;
        let _ = p.tx.try_send(EchoReply {
            from,
            bytes: bytes as u32,
            ttl,
            rtt_us,
        });
    }
}

fn sniff_ipv4(s: &Shared, payload: &[u8], src_mac: Mac) -> bool {
    let Ok(ip) = Ipv4Packet::new_checked(payload) else {
        return false;
    };
    if !ip.verify_checksum() {
        return false;
    }
    learn(s, IpAddr::V4(ip.src_addr()), src_mac);
    if ip.next_header() != IpProtocol::Icmp {
        return true;
    }
    let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
        return false;
    };
    match icmp.msg_type() {
        Icmpv4Message::EchoReply => {
            let from = IpAddr::V4(ip.src_addr());
            complete_echo(
                s,
                icmp.echo_ident(),
                icmp.echo_seq_no(),
                from,
                ip.payload().len(),
                ip.hop_limit(),
            );
            true
        }
        Icmpv4Message::EchoRequest => echo_allowed(s),
        _ => true,
    }
}

fn sniff_ipv6(s: &Shared, payload: &[u8], mac: Mac, src: Mac, out: &mut Vec<Vec<u8>>) -> bool {
    let Ok(ip) = Ipv6Packet::new_checked(payload) else {
        return false;
    };
    learn(s, IpAddr::V6(ip.src_addr()), src);
    if ip.next_header() != IpProtocol::Icmpv6 {
        return true;
    }
    let Ok(icmp) = Icmpv6Packet::new_checked(ip.payload()) else {
        return false;
    };
    match icmp.msg_type() {
        Icmpv6Message::EchoReply => {
            let from = IpAddr::V6(ip.src_addr());
            complete_echo(
                s,
                icmp.echo_ident(),
                icmp.echo_seq_no(),
                from,
                ip.payload().len(),
                ip.hop_limit(),
            );
            true
        }
        Icmpv6Message::EchoRequest => echo_allowed(s),
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
                    let state = dad_state(s, IpAddr::V6(target_addr));
                    if ip.src_addr().is_unspecified() {
                        match state {
                            Some(Dad::Tentative { .. }) => {
                                mark_duplicated(s, IpAddr::V6(target_addr), &src)
                            }
                            Some(Dad::Ok) => out.push(defend_advert(mac, target_addr)),
                            _ => {}
                        }
                        return false;
                    }
                    // Never answer for an address still under DAD.
                    !matches!(state, Some(Dad::Tentative { .. } | Dad::Duplicated))
                }
                NdiscRepr::NeighborAdvert { target_addr, .. } => {
                    match dad_state(s, IpAddr::V6(target_addr)) {
                        Some(Dad::Tentative { .. }) => {
                            mark_duplicated(s, IpAddr::V6(target_addr), &src);
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

fn send_echo(
    iface: &mut Interface,
    sockets: &mut SocketSet<'static>,
    echo_sockets: &mut HashMap<u16, (SocketHandle, Instant)>,
    dst: IpAddr,
    ident: u16,
    seq: u16,
    len: usize,
) {
    let entry = echo_sockets.entry(ident).or_insert_with(|| {
        let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 16], vec![0; 16 * 1600]);
        let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 16], vec![0; 16 * 1600]);
        let mut sock = icmp::Socket::new(rx, tx);
        let _ = sock.bind(icmp::Endpoint::Ident(ident));
        (sockets.add(sock), Instant::now())
    });
    entry.1 = Instant::now();
    let sock = sockets.get_mut::<icmp::Socket>(entry.0);
    let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let caps = ChecksumCapabilities::default();
    match dst {
        IpAddr::V4(d) => {
            let repr = Icmpv4Repr::EchoRequest {
                ident,
                seq_no: seq,
                data: &data,
            };
            if let Ok(buf) = sock.send(repr.buffer_len(), IpAddress::Ipv4(d)) {
                repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
            }
        }
        IpAddr::V6(d) => {
            let src: Ipv6Addr = iface.get_source_address_ipv6(&d);
            let repr = Icmpv6Repr::EchoRequest {
                ident,
                seq_no: seq,
                data: &data,
            };
            if let Ok(buf) = sock.send(repr.buffer_len(), IpAddress::Ipv6(d)) {
                repr.emit(&src, &d, &mut Icmpv6Packet::new_unchecked(buf), &caps);
            }
        }
    }
}
