//! vxlan's data plane, one per running interface: datagrams of its VNI
//! from the shared socket ([`super::vtep`]) are checked
//! ([`super::header::Packet`]), their inner source learnt and their inner
//! frame handed to the port; frames from the port get the VXLAN header in
//! front and go to the VTEP the forwarding table names, or to the default
//! destination: the remote or the group.
//!
//! Frames are not sent one system call each: the datagrams of a whole
//! reactor turn (the frames one read of a host TAP brought, the segments
//! of a TCP super-frame) are copied into a batch that one sendmmsg sends
//! when the turn's polls are done ([`crate::reactor::defer`]), or at once
//! when it is full or the sender is no reactor thread.
//!
//! A UDP socket sends from the port it is bound to; RFC 7348 wants the
//! source port to follow the inner flow ([`super::flow`]). So frames leave
//! through a raw IPPROTO_UDP socket (the kernel makes the IP header, we
//! write the UDP one), which needs CAP_NET_RAW; without it they leave
//! from the bound socket, all from the local port. The raw socket reads
//! nothing: a filter drops every copy of the host's UDP it would get.

use super::flow;
use super::ftable::Ftable;
use super::gso::{self, FlowSockets, Sent};
use super::header::{HEADER_LEN, Packet, Repr};
use super::params::{Params, bind_addr, drop_all_input, multicast_out};
use super::vtep::{Member, Registry, Vtep, setsockopt, unicast_ttl};
use crate::drivers::gro::Gro;
use crate::frame::Frame;
use crate::ioctl::Errno;
use crate::offload::OffloadCaps;
use crate::port::{Port, Transmit};
use crate::reactor::Reactor;
use nix::sys::socket::{SockaddrLike, SockaddrStorage};
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Datagrams waiting for one sendmmsg: those of a reactor turn (see
/// [`crate::reactor::defer`]), or of one frame off a reactor thread.
#[derive(Default)]
struct TxBatch {
    /// The datagrams one after the other: UDP header (raw socket only),
    /// VXLAN header, inner frame.
    data: Vec<u8>,
    msgs: Vec<Msg>,
    /// Queued for the end of the reactor turn.
    deferred: bool,
}

/// One datagram of a batch.
struct Msg {
    /// Where it is in the batch's data, and its length.
    off: usize,
    len: usize,
    /// Its destination, and the address the socket sends it to (a raw
    /// socket's has no port).
    dst: SocketAddr,
    to: SockaddrStorage,
    /// Its source port (the bound port without a raw socket).
    sport: u16,
}

/// A batch is sent at once when it holds this many datagrams or bytes.
const TX_BATCH: usize = 64;
const TX_BATCH_BYTES: usize = 256 * 1024;

/// Scratch for building the sendmmsg headers of a batch.
#[derive(Default)]
struct TxScratch {
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

thread_local! {
    static TX: RefCell<TxScratch> = RefCell::new(TxScratch::default());
}

/// The UDP header of a raw send; checksum 0: none over IPv4 (RFC 7348
/// asks for that), the kernel's over IPv6 (IPV6_CHECKSUM).
fn udp_header(sport: u16, dport: u16, payload: usize) -> Result<[u8; 8], Errno> {
    let len = u16::try_from(8 + payload).map_err(|_| Errno::EMSGSIZE)?;
    let [s0, s1] = sport.to_be_bytes();
    let [d0, d1] = dport.to_be_bytes();
    let [l0, l1] = len.to_be_bytes();
    Ok([s0, s1, d0, d1, l0, l1, 0, 0])
}

/// One running vxlan's data plane.
pub struct VxlanIo {
    /// The socket it receives on (and sends on, without `raw`).
    vtep: Arc<Vtep>,
    /// Sends with a source port per flow, when we may have one.
    raw: Option<OwnedFd>,
    p: Params,
    ftable: Arc<Mutex<Ftable>>,
    /// The interface MTU: inner frames longer than it (and its Ethernet
    /// header, and a VLAN tag) are dropped.
    mtu: AtomicU32,
    port: Weak<Port>,
    /// Coalesces the TCP segments of a batch (used by the reading thread).
    gro: Mutex<Gro>,
    /// Datagrams to send.
    tx: Mutex<TxBatch>,
    /// Itself, to queue its batch for the end of a reactor turn.
    me: Weak<VxlanIo>,
    /// The sockets of flows that send super-frames (with `raw`).
    flows: FlowSockets,
    /// The bound socket refused a super-frame (without `raw`).
    no_gso: AtomicBool,
}

/// The raw IPPROTO_UDP socket frames leave through, or why not.
fn open_raw(p: &Params) -> Result<OwnedFd, Errno> {
    let v6 = p.remote.is_ipv6();
    let af = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain socket(2); the descriptor is checked and owned at once.
    let fd: RawFd = unsafe {
        libc::socket(
            af,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_UDP,
        )
    };
    if fd < 0 {
        return Err(Errno::from_io(&std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    drop_all_input(&fd)?;
    let ttl = unicast_ttl(p.ttl);
    if v6 {
        // The kernel fills in the UDP checksum (at offset 6), which IPv6
        // requires.
        let off: i32 = 6;
        setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_CHECKSUM, &off)?;
        setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &ttl)?;
    } else {
        setsockopt(&fd, libc::IPPROTO_IP, libc::IP_TTL, &ttl)?;
    }
    if p.remote.ip().is_multicast() {
        multicast_out(&fd, p)?;
    }
    if !p.local.ip().is_unspecified() {
        let a = nix::sys::socket::SockaddrStorage::from(SocketAddr::new(p.local.ip(), 0));
        nix::sys::socket::bind(fd.as_raw_fd(), &a)?;
    }
    Ok(fd)
}

/// What became of one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decap {
    /// Not ours or not a frame: dropped and counted as an input error.
    Dropped,
    Delivered,
}

impl VxlanIo {
    /// Start: the shared socket of its local address and port (opened
    /// if none is), the group joined, the raw socket, read on the thread
    /// of `group`.
    pub fn open(
        p: Params,
        ftable: Arc<Mutex<Ftable>>,
        mtu: u32,
        port: &Arc<Port>,
        sockets: &Registry,
        reactor: &Arc<Reactor>,
        group: u64,
    ) -> Result<Arc<VxlanIo>, Errno> {
        let vtep = sockets.get(bind_addr(&p), p.ttl)?;
        let raw = open_raw(&p)
            .inspect_err(|e| {
                crate::log::warn(&format!(
                    "{}: no raw socket ({e}): every datagram leaves from port {}",
                    port.name,
                    p.local.port()
                ))
            })
            .ok();
        if raw.is_none() && p.remote.ip().is_multicast() {
            multicast_out(&vtep.sock, &p)?;
        }
        let g = p.remote.ip().is_multicast().then_some(p.remote.ip());
        if let Some(g) = g {
            vtep.join(g, p.local.ip(), p.dev_index)?;
        }
        let io = Arc::new_cyclic(|me| VxlanIo {
            vtep: vtep.clone(),
            raw,
            p,
            ftable,
            mtu: AtomicU32::new(mtu),
            port: Arc::downgrade(port),
            gro: Mutex::new(Gro::default()),
            tx: Mutex::new(TxBatch::default()),
            me: me.clone(),
            flows: FlowSockets::default(),
            no_gso: AtomicBool::new(false),
        });
        if let Err(e) = vtep.add(io.clone(), reactor, group) {
            io.leave();
            return Err(e);
        }
        Ok(io)
    }

    fn leave(&self) {
        if self.p.remote.ip().is_multicast() {
            self.vtep
                .leave(self.p.remote.ip(), self.p.local.ip(), self.p.dev_index);
        }
    }

    /// Stop: no read for it is under way on return.
    pub fn close(&self) {
        self.vtep.remove(self.p.vni);
        self.leave();
    }

    /// Read on the thread of `group` from now on (if it owns the socket).
    pub fn move_to(&self, reactor: &Arc<Reactor>, group: u64) {
        self.vtep.move_to(self.p.vni, reactor, group);
    }

    pub fn vni(&self) -> u32 {
        self.p.vni
    }

    pub fn input_error(&self) {
        if let Some(port) = self.port.upgrade() {
            port.input_error();
        }
    }

    /// Sweep its forwarding table.
    pub fn expire(&self, now: Instant) {
        lock(&self.ftable).expire(now);
    }

    pub fn set_mtu(&self, mtu: u32) {
        self.mtu.store(mtu, Relaxed);
    }

    /// Check one datagram from `from` and hand its inner frame on
    /// (`vxlan_input`): the decapsulation path, also run by the fuzzer.
    pub fn decap(&self, from: IpAddr, dgram: &[u8], now: Instant) -> Decap {
        let Some(port) = self.port.upgrade() else {
            return Decap::Dropped;
        };
        decapsulate(
            &port,
            &self.ftable,
            &mut lock(&self.gro),
            (self.p.vni, self.p.learn, self.mtu.load(Relaxed)),
            from,
            dgram,
            now,
        )
    }

    /// The batch is over: hand on the super-frame being built.
    pub fn flush(&self) {
        if let Some(port) = self.port.upgrade() {
            lock(&self.gro).flush(&mut |f| port.input(f));
        }
    }

    /// Where a frame goes: the VTEP behind its destination, or the
    /// default destination for groups and unknown ones.
    fn destination(&self, frame: &Frame, now: Instant) -> SocketAddr {
        if !frame.is_multicast()
            && let Some(ip) = lock(&self.ftable).lookup(&frame.dst(), now)
        {
            return SocketAddr::new(ip, self.p.remote.port());
        }
        self.p.remote
    }

    /// Queue `frame` (a TCP super-frame, or a frame with its checksum left
    /// to do, cut into finished segments here: one flow, one destination,
    /// one source port) for the batch, sent at the end of the reactor
    /// turn, or now when full or off a reactor thread.
    fn send(&self, frame: &Frame) -> Result<(), Errno> {
        let dst = self.destination(frame, Instant::now());
        if dst.ip().is_unspecified() {
            return Err(Errno(libc::ENETUNREACH));
        }
        let vxh = Repr { vni: self.p.vni }.emit();
        if frame.offload().is_gso() {
            match self.send_gso(frame, dst, &vxh) {
                Sent::Done(r) => return r,
                Sent::Uneven | Sent::Refused => {}
            }
        }
        let raw = self.raw.is_some();
        // A raw socket's port is the protocol, or 0.
        let to = SockaddrStorage::from(if raw {
            SocketAddr::new(dst.ip(), 0)
        } else {
            dst
        });
        let mut sport = (!raw).then_some(self.p.local.port());
        let (full, defer) = {
            let mut b = lock(&self.tx);
            let mut push = |seg: &Frame| -> Result<(), Errno> {
                let off = b.data.len();
                let sp = *sport.get_or_insert_with(|| {
                    flow::source_port(seg, self.p.port_min, self.p.port_max)
                });
                if raw {
                    let udp = udp_header(sp, dst.port(), vxh.len() + seg.len())?;
                    b.data.extend_from_slice(&udp);
                }
                b.data.extend_from_slice(&vxh);
                b.data.extend_from_slice(seg.bytes());
                let len = b.data.len() - off;
                b.msgs.push(Msg {
                    off,
                    len,
                    dst,
                    to,
                    sport: sp,
                });
                Ok(())
            };
            let mut r = Ok(());
            if frame.offload().is_none() {
                r = push(frame);
            } else {
                frame
                    .finish(OffloadCaps::NONE, |seg| {
                        if r.is_ok() {
                            r = push(seg);
                        }
                    })
                    .map_err(|_| Errno::EINVAL)?;
            }
            r?;
            let full = b.msgs.len() >= TX_BATCH || b.data.len() >= TX_BATCH_BYTES;
            let defer = !full && !b.deferred;
            if defer {
                b.deferred = true;
            }
            (full, defer)
        };
        if defer
            && let Some(me) = self.me.upgrade()
            && crate::reactor::defer(me)
        {
            return Ok(());
        }
        if full || defer {
            self.flush_tx();
        }
        Ok(())
    }

    /// A TCP super-frame in sends of many segments ([`gso`]), from the
    /// socket of its flow's source port, or the bound socket without a
    /// raw one.
    fn send_gso(&self, frame: &Frame, dst: SocketAddr, vxh: &[u8]) -> Sent {
        let sport = flow::source_port(frame, self.p.port_min, self.p.port_max);
        let flow_sock;
        let fd = match &self.raw {
            None if self.no_gso.load(Relaxed) => return Sent::Refused,
            None => self.vtep.sock.as_raw_fd(),
            Some(_) => match self.flows.get(&self.p, sport) {
                Some(s) => {
                    flow_sock = s;
                    flow_sock.as_raw_fd()
                }
                None => return Sent::Refused,
            },
        };
        // What is queued leaves first: a flow's datagrams stay in order.
        self.flush_tx();
        let sent = gso::send(fd, dst, |push| {
            frame
                .finish(OffloadCaps::NONE, |seg| push(&[vxh, seg.bytes()]))
                .map_err(|_| Errno::EINVAL)
        });
        if let Sent::Refused = sent {
            match self.raw {
                None => self.no_gso.store(true, Relaxed),
                Some(_) => self.flows.refuse(sport),
            }
        }
        sent
    }

    /// Send the batch: runs of datagrams of one flow and size (the
    /// datagrams of a stream of small packets) in one send each with
    /// segmentation offload, the others with one sendmmsg (more when the
    /// socket takes part). Datagrams the socket refuses are lost as a full
    /// queue loses them: their frames, counted as sent when queued, move
    /// to the output errors.
    fn flush_tx(&self) {
        let mut b = lock(&self.tx);
        b.deferred = false;
        let hl = self.udp_header_len();
        // Frames lost: packets, bytes.
        let (mut lost, mut start, mut i) = ((0u64, 0u64), 0, 0);
        let add = |lost: &mut (u64, u64), (p, b): (u64, u64)| {
            lost.0 += p;
            lost.1 += b;
        };
        while i < b.msgs.len() {
            let end = gso::run(&b.msgs[i..], |m| (m.dst, m.sport, m.len - hl)) + i;
            let m = &b.msgs[i];
            let sock = match &self.raw {
                _ if end - i < 2 => None,
                Some(_) => self.flows.get(&self.p, m.sport),
                None => None,
            };
            let fd = match (&sock, &self.raw) {
                (Some(s), _) => Some(s.as_raw_fd()),
                (None, None) if end - i >= 2 && !self.no_gso.load(Relaxed) => {
                    Some(self.vtep.sock.as_raw_fd())
                }
                _ => None,
            };
            let Some(fd) = fd else {
                i = end;
                continue;
            };
            // What came before leaves first.
            add(&mut lost, self.send_mmsg(&b, start..i));
            let pieces: Vec<std::io::IoSlice> = b.msgs[i..end]
                .iter()
                .map(|m| std::io::IoSlice::new(&b.data[m.off + hl..m.off + m.len]))
                .collect();
            match gso::send_pieces(fd, m.dst, m.len - hl, &pieces) {
                Sent::Done(Ok(())) => {}
                Sent::Done(Err(_)) => self.lose(&mut lost, &b.msgs[i..end]),
                Sent::Uneven | Sent::Refused => {
                    match self.raw {
                        Some(_) => self.flows.refuse(m.sport),
                        None => self.no_gso.store(true, Relaxed),
                    }
                    // With the others, one datagram each.
                    start = i;
                    i = end;
                    continue;
                }
            }
            (start, i) = (end, end);
        }
        add(&mut lost, self.send_mmsg(&b, start..b.msgs.len()));
        b.data.clear();
        b.msgs.clear();
        drop(b);
        if lost.0 > 0
            && let Some(port) = self.port.upgrade()
        {
            let c = &port.counters;
            c.oerrors.fetch_add(lost.0, Relaxed);
            c.opackets
                .fetch_sub(lost.0.min(c.opackets.load(Relaxed)), Relaxed);
            c.obytes
                .fetch_sub(lost.1.min(c.obytes.load(Relaxed)), Relaxed);
        }
    }

    /// Our UDP header's length in front of each queued datagram: there for
    /// a raw socket only.
    fn udp_header_len(&self) -> usize {
        if self.raw.is_some() { 8 } else { 0 }
    }

    /// Count datagrams `msgs` lost: their frames' packets and bytes.
    fn lose(&self, lost: &mut (u64, u64), msgs: &[Msg]) {
        let hl = self.udp_header_len();
        for m in msgs {
            lost.0 += 1;
            lost.1 += (m.len - hl - HEADER_LEN) as u64;
        }
    }

    /// Send datagrams `range` of the batch with sendmmsg; the frames lost
    /// (packets, bytes).
    fn send_mmsg(&self, b: &TxBatch, range: std::ops::Range<usize>) -> (u64, u64) {
        let msgs = &b.msgs[range];
        if msgs.is_empty() {
            return (0, 0);
        }
        let fd = match &self.raw {
            Some(raw) => raw.as_raw_fd(),
            None => self.vtep.sock.as_raw_fd(),
        };
        TX.with(|tx| {
            let t = &mut *tx.borrow_mut();
            t.iovs.clear();
            t.hdrs.clear();
            for m in msgs {
                t.iovs.push(libc::iovec {
                    iov_base: b.data[m.off..].as_ptr().cast_mut().cast(),
                    iov_len: m.len,
                });
            }
            for (iov, m) in t.iovs.iter_mut().zip(msgs) {
                // SAFETY: msghdr is plain old data; the fields set below
                // are the ones sendmmsg reads.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = m.to.as_ptr().cast_mut().cast();
                h.msg_hdr.msg_namelen = m.to.len();
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                t.hdrs.push(h);
            }
            let mut lost = (0, 0);
            let mut sent = 0;
            while sent < t.hdrs.len() {
                // SAFETY: every header points into `b` and `t`, which
                // outlive the call; the count is what is left.
                let n = unsafe {
                    libc::sendmmsg(
                        fd,
                        t.hdrs[sent..].as_mut_ptr(),
                        (t.hdrs.len() - sent) as u32,
                        libc::MSG_DONTWAIT,
                    )
                };
                if n > 0 {
                    sent += n as usize;
                    continue;
                }
                // The first datagram left failed. A full socket buffer
                // takes the rest too; any other error (no route to one
                // remote) is that datagram's alone.
                let e = std::io::Error::last_os_error().raw_os_error();
                if n < 0 && e == Some(libc::EINTR) {
                    continue;
                }
                let gone = if n == 0 || e == Some(libc::EAGAIN) {
                    &msgs[sent..]
                } else {
                    &msgs[sent..sent + 1]
                };
                self.lose(&mut lost, gone);
                sent += gone.len();
            }
            lost
        })
    }
}

impl crate::reactor::Deferred for VxlanIo {
    fn run(&self) {
        self.flush_tx();
    }
}

impl Member for VxlanIo {
    fn vni(&self) -> u32 {
        VxlanIo::vni(self)
    }

    fn input(&self, from: IpAddr, dgram: &[u8], now: Instant) {
        self.decap(from, dgram, now);
    }

    fn input_error(&self) {
        VxlanIo::input_error(self)
    }

    fn flush(&self) {
        VxlanIo::flush(self)
    }

    fn expire(&self, now: Instant) {
        VxlanIo::expire(self, now)
    }
}

/// The decapsulation of one datagram, as a function of its inputs: the
/// port, its forwarding table and coalescer, and (VNI, learning, MTU).
/// Frames go through `gro`: call its `flush` at the end of a batch.
pub fn decapsulate(
    port: &Arc<Port>,
    ftable: &Mutex<Ftable>,
    gro: &mut Gro,
    (vni, learn, mtu): (u32, bool, u32),
    from: IpAddr,
    dgram: &[u8],
    now: Instant,
) -> Decap {
    let Ok(pkt) = Packet::new_checked(dgram) else {
        port.input_error();
        return Decap::Dropped;
    };
    // An Ethernet header and a VLAN tag beyond the MTU.
    let too_long = pkt.payload().len() > mtu as usize + 18;
    let Some(frame) = Frame::new(pkt.payload()).filter(|_| !too_long) else {
        port.input_error();
        return Decap::Dropped;
    };
    if Repr::parse(&pkt).vni != vni {
        port.input_error();
        return Decap::Dropped;
    }
    if learn {
        lock(ftable).learn(frame.src(), from, now);
    }
    gro.push(&frame, &mut |f| port.input(f));
    Decap::Delivered
}

pub struct VxlanTx(pub Arc<VxlanIo>);

impl Transmit for VxlanTx {
    /// A TCP super-frame is cut into segments here rather than by the
    /// port, so that its segments leave with one system call, with the
    /// other frames of the reactor turn.
    fn transmit(&self, frame: &Frame) -> Result<(), Errno> {
        self.0.send(frame)
    }

    fn offloads(&self) -> OffloadCaps {
        OffloadCaps::CSUM
            .union(OffloadCaps::TSO4)
            .union(OffloadCaps::TSO6)
    }
}
