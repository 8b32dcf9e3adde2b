//! vxlan's data plane, one per running interface: datagrams of its VNI
//! from the shared socket ([`super::vtep`]) are checked
//! ([`super::header::Packet`]), their inner source learnt and their inner
//! frame handed to the port; frames from the port get the VXLAN header in
//! front (sendmsg with pieces, no copy) and go to the VTEP the forwarding
//! table names, or to the default destination: the remote or the group.
//!
//! A UDP socket sends from the port it is bound to; RFC 7348 wants the
//! source port to follow the inner flow ([`super::flow`]). So frames leave
//! through a raw IPPROTO_UDP socket (the kernel makes the IP header, we
//! write the UDP one), which needs CAP_NET_RAW; without it they leave
//! from the bound socket, all from the local port. The raw socket reads
//! nothing: a filter drops every copy of the host's UDP it would get.

use super::flow;
use super::ftable::Ftable;
use super::gro::Gro;
use super::header::{Packet, Repr};
use super::vtep::{Member, Registry, Vtep, mreqn, setsockopt, unicast_ttl};
use crate::frame::Frame;
use crate::ioctl::Errno;
use crate::offload::OffloadCaps;
use crate::port::{Port, Transmit};
use crate::reactor::Reactor;
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The segments of one super-frame, sent with one sendmmsg.
#[derive(Default)]
struct TxBatch {
    data: Vec<u8>,
    /// (offset in `data`, length) of each segment.
    segs: Vec<(usize, usize)>,
    udp: Vec<[u8; 8]>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

thread_local! {
    static TX: RefCell<TxBatch> = RefCell::new(TxBatch::default());
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

/// What the data plane needs of the configuration, fixed while running.
#[derive(Clone, Debug)]
pub struct Params {
    pub vni: u32,
    pub local: SocketAddr,
    /// Unicast remote or multicast group.
    pub remote: SocketAddr,
    /// The interface the group is joined on.
    pub dev_index: u32,
    pub ttl: u32,
    pub learn: bool,
    /// Source ports of the flows.
    pub port_min: u16,
    pub port_max: u16,
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
}

/// How a socket sends to a group: on `vxlandev`, with the TTL, and not
/// back to us (our own datagrams to the group are not news).
fn multicast_out(sock: &impl AsRawFd, p: &Params) -> Result<(), Errno> {
    let ttl = p.ttl as i32;
    let off: i32 = 0;
    match (p.remote.ip(), p.local.ip()) {
        (IpAddr::V4(g), IpAddr::V4(local)) => {
            let mreq = mreqn(g, local, p.dev_index);
            setsockopt(sock, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreq)?;
            setsockopt(sock, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, &ttl)?;
            setsockopt(sock, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, &off)
        }
        (IpAddr::V6(_), _) => {
            let idx = p.dev_index as i32;
            setsockopt(sock, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &idx)?;
            setsockopt(sock, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &ttl)?;
            setsockopt(sock, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &off)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// Where the socket is bound: the local port, on the local address in
/// unicast mode, on the wildcard in multicast mode (datagrams to the group
/// must reach it too) or without a local address.
fn bind_addr(p: &Params) -> SocketAddr {
    let any: IpAddr = match p.remote.ip() {
        IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let ip = if p.remote.ip().is_multicast() || p.local.ip().is_unspecified() {
        any
    } else {
        p.local.ip()
    };
    SocketAddr::new(ip, p.local.port())
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
    // Read nothing: `ret #0` drops every datagram before it is queued.
    let drop_all = [libc::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: drop_all.as_ptr().cast_mut(),
    };
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
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
        let io = Arc::new(VxlanIo {
            vtep: vtep.clone(),
            raw,
            p,
            ftable,
            mtu: AtomicU32::new(mtu),
            port: Arc::downgrade(port),
            gro: Mutex::new(Gro::default()),
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

    /// A TCP super-frame (or a frame with its checksum left to do): cut
    /// into finished segments here, all sent with one sendmmsg. They are
    /// one flow: one destination, one source port.
    fn send_segments(&self, frame: &Frame) -> Result<(), Errno> {
        let dst = self.destination(frame, Instant::now());
        if dst.ip().is_unspecified() {
            return Err(Errno(libc::ENETUNREACH));
        }
        let vxh = Repr { vni: self.p.vni }.emit();
        TX.with(|tx| {
            let b = &mut *tx.borrow_mut();
            b.data.clear();
            b.segs.clear();
            let mut sport = 0;
            let (data, segs) = (&mut b.data, &mut b.segs);
            frame
                .finish(OffloadCaps::NONE, |seg| {
                    if segs.is_empty() {
                        sport = flow::source_port(seg, self.p.port_min, self.p.port_max);
                    }
                    segs.push((data.len(), seg.len()));
                    data.extend_from_slice(seg.bytes());
                })
                .map_err(|_| Errno::EINVAL)?;
            b.udp.clear();
            for &(_, len) in b.segs.iter() {
                b.udp.push(udp_header(sport, dst.port(), vxh.len() + len)?);
            }
            let per = if self.raw.is_some() { 3 } else { 2 };
            b.iovs.clear();
            for (i, &(off, len)) in b.segs.iter().enumerate() {
                if self.raw.is_some() {
                    b.iovs.push(libc::iovec {
                        iov_base: b.udp[i].as_ptr().cast_mut().cast(),
                        iov_len: 8,
                    });
                }
                b.iovs.push(libc::iovec {
                    iov_base: vxh.as_ptr().cast_mut().cast(),
                    iov_len: vxh.len(),
                });
                b.iovs.push(libc::iovec {
                    iov_base: b.data[off..].as_ptr().cast_mut().cast(),
                    iov_len: len,
                });
            }
            let (fd, to) = match &self.raw {
                Some(raw) => (raw.as_raw_fd(), SocketAddr::new(dst.ip(), 0)),
                None => (self.vtep.sock.as_raw_fd(), dst),
            };
            let addr = nix::sys::socket::SockaddrStorage::from(to);
            b.hdrs.clear();
            for chunk in b.iovs.chunks_mut(per) {
                // SAFETY: msghdr is plain old data; the fields set below
                // are the ones sendmmsg reads.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = nix::sys::socket::SockaddrLike::as_ptr(&addr)
                    .cast_mut()
                    .cast();
                h.msg_hdr.msg_namelen = nix::sys::socket::SockaddrLike::len(&addr);
                h.msg_hdr.msg_iov = chunk.as_mut_ptr();
                h.msg_hdr.msg_iovlen = per;
                b.hdrs.push(h);
            }
            let mut sent = 0;
            while sent < b.hdrs.len() {
                // SAFETY: every header points into `b`, `vxh` and `addr`,
                // which outlive the call; the count is what is left.
                let n = unsafe {
                    libc::sendmmsg(
                        fd,
                        b.hdrs[sent..].as_mut_ptr(),
                        (b.hdrs.len() - sent) as u32,
                        libc::MSG_DONTWAIT,
                    )
                };
                if n <= 0 {
                    // Some went: the frame counts as sent, the rest is
                    // lost as a full queue loses it.
                    let e = Errno::from_io(&std::io::Error::last_os_error());
                    return if sent > 0 { Ok(()) } else { Err(e) };
                }
                sent += n as usize;
            }
            Ok(())
        })
    }

    fn send(&self, frame: &Frame) -> Result<(), Errno> {
        if !frame.offload().is_none() {
            return self.send_segments(frame);
        }
        let dst = self.destination(frame, Instant::now());
        if dst.ip().is_unspecified() {
            return Err(Errno(libc::ENETUNREACH));
        }
        let hdr = Repr { vni: self.p.vni }.emit();
        let flags = nix::sys::socket::MsgFlags::MSG_DONTWAIT;
        let Some(raw) = &self.raw else {
            let iov = [
                std::io::IoSlice::new(&hdr),
                std::io::IoSlice::new(frame.bytes()),
            ];
            let addr = nix::sys::socket::SockaddrStorage::from(dst);
            return nix::sys::socket::sendmsg(
                self.vtep.sock.as_raw_fd(),
                &iov,
                &[],
                flags,
                Some(&addr),
            )
            .map(|_| ())
            .map_err(Errno::from);
        };
        let sport = flow::source_port(frame, self.p.port_min, self.p.port_max);
        let udp = udp_header(sport, dst.port(), hdr.len() + frame.len())?;
        let iov = [
            std::io::IoSlice::new(&udp),
            std::io::IoSlice::new(&hdr),
            std::io::IoSlice::new(frame.bytes()),
        ];
        // A raw socket's port is the protocol, or 0.
        let addr = nix::sys::socket::SockaddrStorage::from(SocketAddr::new(dst.ip(), 0));
        nix::sys::socket::sendmsg(raw.as_raw_fd(), &iov, &[], flags, Some(&addr))
            .map(|_| ())
            .map_err(Errno::from)
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
    /// port, so that its segments leave with one system call.
    fn transmit(&self, frame: &Frame) -> Result<(), Errno> {
        self.0.send(frame)
    }

    fn offloads(&self) -> OffloadCaps {
        OffloadCaps::CSUM
            .union(OffloadCaps::TSO4)
            .union(OffloadCaps::TSO6)
    }
}
