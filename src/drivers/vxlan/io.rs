//! vxlan's data plane: a host UDP socket in the daemon's network namespace,
//! a reactor source while the interface runs. Datagrams are read in
//! batches (recvmmsg), checked ([`super::header::Packet`]), their inner
//! source learnt and their inner frame handed to the port; frames from the
//! port get the VXLAN header in front (sendmsg with pieces, no copy)
//! and go to the VTEP the forwarding table names, or to the default
//! destination: the remote or the group.
//!
//! A UDP socket sends from the port it is bound to; RFC 7348 wants the
//! source port to follow the inner flow ([`super::flow`]). So frames leave
//! through a raw IPPROTO_UDP socket (the kernel makes the IP header, we
//! write the UDP one), which needs CAP_NET_RAW; without it they leave
//! from the bound socket, all from the local port. The raw socket reads
//! nothing: a filter drops every copy of the host's UDP it would get.

use super::flow;
use super::ftable::Ftable;
use super::header::{self, Packet, Repr};
use crate::frame::Frame;
use crate::ioctl::Errno;
use crate::offload::OffloadCaps;
use crate::port::{Port, Transmit};
use crate::reactor::{Handler, Reactor, Registration};
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Datagrams read per system call, and per turn of the reactor.
const RX_BATCH: usize = 32;
/// Largest datagram read: a jumbo inner frame and the VXLAN header.
/// Larger ones are cut (MSG_TRUNC) and dropped.
const RX_BUF: usize = 9216 + header::HEADER_LEN;
/// How often expired forwarding entries are swept (FreeBSD: 5 minutes).
const PRUNE: Duration = Duration::from_secs(300);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Receive buffers of one reactor thread: no allocation per datagram.
struct RxBatch {
    bufs: Vec<[u8; RX_BUF]>,
    names: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl RxBatch {
    fn new() -> RxBatch {
        RxBatch {
            bufs: vec![[0u8; RX_BUF]; RX_BATCH],
            // SAFETY: sockaddr_storage and mmsghdr are plain old data; all
            // zeroes is a valid value of each.
            names: vec![unsafe { std::mem::zeroed() }; RX_BATCH],
            iovs: Vec::with_capacity(RX_BATCH),
            hdrs: Vec::with_capacity(RX_BATCH),
        }
    }
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
    static RX: RefCell<Option<Box<RxBatch>>> = const { RefCell::new(None) };
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

/// One running vxlan's socket.
pub struct VxlanIo {
    sock: UdpSocket,
    /// Sends with a source port per flow, when we may have one.
    raw: Option<OwnedFd>,
    p: Params,
    ftable: Arc<Mutex<Ftable>>,
    /// The interface MTU: inner frames longer than it (and its Ethernet
    /// header, and a VLAN tag) are dropped.
    mtu: AtomicU32,
    port: Weak<Port>,
    reg: Mutex<Option<Registration>>,
}

fn setsockopt<T>(sock: &impl AsRawFd, level: i32, name: i32, v: &T) -> Result<(), Errno> {
    // SAFETY: `v` points to a live T of the size given.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(Errno::from_io(&std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The socket of a VTEP: bound to the local port (on the local address in
/// unicast mode; on the wildcard in multicast mode, where datagrams to the
/// group must reach it too), with the TTL, and the group joined.
fn open_socket(p: &Params) -> Result<UdpSocket, Errno> {
    let io = |e: std::io::Error| Errno::from_io(&e);
    let group = p.remote.ip().is_multicast();
    let any: IpAddr = match p.remote.ip() {
        IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let bind_ip = if group || p.local.ip().is_unspecified() {
        any
    } else {
        p.local.ip()
    };
    let sock = UdpSocket::bind(SocketAddr::new(bind_ip, p.local.port())).map_err(io)?;
    sock.set_nonblocking(true).map_err(io)?;
    let ttl = p.ttl as i32;
    match p.remote.ip() {
        IpAddr::V4(g) => {
            setsockopt(&sock, libc::IPPROTO_IP, libc::IP_TTL, &ttl)?;
            if group {
                let local = match p.local.ip() {
                    IpAddr::V4(a) => a,
                    IpAddr::V6(_) => return Err(Errno::EINVAL),
                };
                let mreq = mreqn(g, local, p.dev_index);
                setsockopt(&sock, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreq)?;
                multicast_out(&sock, p)?;
            }
        }
        IpAddr::V6(g) => {
            setsockopt(&sock, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &ttl)?;
            if group {
                sock.join_multicast_v6(&g, p.dev_index).map_err(io)?;
                multicast_out(&sock, p)?;
            }
        }
    }
    Ok(sock)
}

fn mreqn(group: std::net::Ipv4Addr, local: std::net::Ipv4Addr, index: u32) -> libc::ip_mreqn {
    libc::ip_mreqn {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from(group).to_be(),
        },
        imr_address: libc::in_addr {
            s_addr: u32::from(local).to_be(),
        },
        imr_ifindex: index as i32,
    }
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
    let ttl = p.ttl as i32;
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

fn sockaddr_of(ss: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in,
            // which it is large and aligned enough for.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::from(
                u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
            ))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, a sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let a = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            // A v4-mapped source of a dual-stack socket is the v4 peer.
            Some(a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4))
        }
        _ => None,
    }
}

/// What became of one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decap {
    /// Not ours or not a frame: dropped and counted as an input error.
    Dropped,
    Delivered,
}

impl VxlanIo {
    pub fn open(
        p: Params,
        ftable: Arc<Mutex<Ftable>>,
        mtu: u32,
        port: &Arc<Port>,
    ) -> Result<Arc<VxlanIo>, Errno> {
        let sock = open_socket(&p)?;
        let raw = open_raw(&p)
            .inspect_err(|e| {
                crate::log::warn(&format!(
                    "{}: no raw socket ({e}): every datagram leaves from port {}",
                    port.name,
                    p.local.port()
                ))
            })
            .ok();
        Ok(Arc::new(VxlanIo {
            sock,
            raw,
            p,
            ftable,
            mtu: AtomicU32::new(mtu),
            port: Arc::downgrade(port),
            reg: Mutex::new(None),
        }))
    }

    pub fn set_mtu(&self, mtu: u32) {
        self.mtu.store(mtu, Relaxed);
    }

    /// Read the socket on the thread of `group` from now on.
    pub fn start(self: &Arc<Self>, reactor: &Arc<Reactor>, group: u64) -> Result<(), Errno> {
        self.stop();
        let reg = reactor
            .register_in(group, Some(self.sock.as_fd()), self.clone())
            .map_err(|e| Errno::from_io(&e))?;
        *lock(&self.reg) = Some(reg);
        Ok(())
    }

    /// Stop reading; no read is under way on return.
    pub fn stop(&self) {
        let reg = lock(&self.reg).take();
        drop(reg);
    }

    /// Check one datagram from `from` and hand its inner frame on
    /// (`vxlan_input`): the decapsulation path, also run by the fuzzer.
    pub fn decap(&self, port: &Arc<Port>, from: IpAddr, dgram: &[u8], now: Instant) -> Decap {
        decapsulate(
            port,
            &self.ftable,
            self.p.vni,
            self.p.learn,
            self.mtu.load(Relaxed),
            from,
            dgram,
            now,
        )
    }

    /// One recvmmsg; false when the socket has no more.
    fn read_batch(&self, port: &Arc<Port>, b: &mut RxBatch, now: Instant) -> bool {
        b.iovs.clear();
        b.hdrs.clear();
        for buf in b.bufs.iter_mut() {
            b.iovs.push(libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: RX_BUF,
            });
        }
        for (iov, name) in b.iovs.iter_mut().zip(b.names.iter_mut()) {
            // SAFETY: msghdr is plain old data; the fields set below are
            // the ones recvmmsg reads.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            b.hdrs.push(h);
        }
        // SAFETY: every header points into `b`'s buffers, which outlive
        // the call; the count is the vector's length.
        let n = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                b.hdrs.as_mut_ptr(),
                b.hdrs.len() as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            return false;
        }
        let n = n as usize;
        for i in 0..n {
            let h = &b.hdrs[i];
            let len = (h.msg_len as usize).min(RX_BUF);
            let cut = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            match sockaddr_of(&b.names[i]) {
                Some(from) if !cut => {
                    self.decap(port, from, &b.bufs[i][..len], now);
                }
                _ => port.input_error(),
            }
        }
        n == RX_BATCH
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
                None => (self.sock.as_raw_fd(), dst),
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
            return nix::sys::socket::sendmsg(self.sock.as_raw_fd(), &iov, &[], flags, Some(&addr))
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

/// The decapsulation of one datagram, as a function of its inputs.
#[allow(clippy::too_many_arguments)]
pub fn decapsulate(
    port: &Arc<Port>,
    ftable: &Mutex<Ftable>,
    vni: u32,
    learn: bool,
    mtu: u32,
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
    port.input(&frame);
    Decap::Delivered
}

impl Handler for VxlanIo {
    fn poll(&self, now: Instant) -> Option<Instant> {
        let port = self.port.upgrade()?;
        RX.with(|rx| {
            let mut rx = rx.borrow_mut();
            let b = rx.get_or_insert_with(|| Box::new(RxBatch::new()));
            // A full batch leaves the socket readable: the reactor polls
            // again on its next turn, after the other sources.
            self.read_batch(&port, b, now);
        });
        lock(&self.ftable).expire(now);
        Some(now + PRUNE)
    }
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
