//! The UDP socket of a tunnel endpoint: bound to a local address and port
//! in the daemon's network namespace, and shared by every running vxlan
//! that uses that address and port, told apart by their VNI (FreeBSD's
//! vxlan_socket): `vxlan0` with VNI 42 and `vxlan1` with VNI 43 both
//! listen on 4789. One reactor source per socket reads it in batches
//! (recvmmsg) and hands each datagram to the interface of its VNI. With
//! UDP_GRO on, a read may hold a run of datagrams of one flow and size
//! (the segments another ifnetd sent in one send): they are split again.
//! Datagrams no interface can be told from (shorter than a VXLAN header,
//! a VNI nobody serves) count as input errors of the socket's first
//! interface.

use crate::ioctl::Errno;
use crate::reactor::{Handler, Reactor, Registration};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

/// Datagrams read per system call, and per turn of the reactor.
const RX_BATCH: usize = 32;
/// Largest datagram read: a run of datagrams the kernel joined (UDP_GRO:
/// at most 64 KiB), or one larger than a jumbo frame, which is dropped
/// as too long. Larger ones are cut (MSG_TRUNC) and dropped.
const RX_BUF: usize = 65536;
/// The socket option that has the kernel join datagrams of one flow and
/// size into one read, with their size in a control message (linux/udp.h).
const UDP_GRO: i32 = 104;
/// The socket's receive buffer (the kernel doubles it for bookkeeping).
const RCVBUF: i32 = 4 << 20;
/// How often expired forwarding entries are swept (FreeBSD: 5 minutes).
const PRUNE: Duration = Duration::from_secs(300);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn setsockopt<T>(
    sock: &impl AsRawFd,
    level: i32,
    name: i32,
    v: &T,
) -> Result<(), Errno> {
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

pub(super) fn mreqn(
    group: std::net::Ipv4Addr,
    local: std::net::Ipv4Addr,
    index: u32,
) -> libc::ip_mreqn {
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

/// Receive buffers of one reactor thread: no allocation per datagram.
struct RxBatch {
    bufs: Vec<Box<[u8]>>,
    names: Vec<libc::sockaddr_storage>,
    /// Room for each read's control messages (the UDP_GRO size).
    ctrl: Vec<[u64; 4]>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl RxBatch {
    fn new() -> RxBatch {
        RxBatch {
            bufs: (0..RX_BATCH)
                .map(|_| vec![0u8; RX_BUF].into_boxed_slice())
                .collect(),
            ctrl: vec![[0; 4]; RX_BATCH],
            // SAFETY: sockaddr_storage is plain old data; all zeroes is a
            // valid value.
            names: vec![unsafe { std::mem::zeroed() }; RX_BATCH],
            iovs: Vec::with_capacity(RX_BATCH),
            hdrs: Vec::with_capacity(RX_BATCH),
        }
    }
}

thread_local! {
    static RX: RefCell<Option<Box<RxBatch>>> = const { RefCell::new(None) };
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

/// The TTL (hop limit) a unicast socket is given for `ttl`: 0 (which
/// FreeBSD accepts, and Linux cannot send: RFC 1122 forbids it) is the
/// system's default, as Linux's vxlan reads a TTL of 0.
pub(super) fn unicast_ttl(ttl: u32) -> i32 {
    if ttl == 0 { -1 } else { ttl as i32 }
}

/// The size of the datagrams the kernel joined into this read, if it did.
fn gro_size(h: &libc::msghdr) -> Option<usize> {
    // SAFETY: the header's control buffer holds what recvmmsg wrote, of
    // the length it set; the CMSG macros stay within it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>());
                return usize::try_from(size).ok().filter(|&s| s > 0);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// A non-blocking UDP socket of IPv6 (taking IPv6 only) or IPv4.
pub(super) fn udp_socket(v6: bool) -> Result<std::os::fd::OwnedFd, Errno> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType};
    let af = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = nix::sys::socket::socket(
        af,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    if v6 {
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::Ipv6V6Only, &true)?;
    }
    Ok(fd)
}

/// A non-blocking UDP socket bound to `bind`; an IPv6 one takes IPv6
/// only, so that the IPv4 and IPv6 wildcards of one port are two sockets.
/// With `share`, it may bind beside other sockets of ours on the same
/// port (a specific address beside the wildcard: each datagram goes to
/// the most specific), which allow it (SO_REUSEADDR, which both must
/// have: see [`Registry::get`]).
fn bind_socket(bind: SocketAddr, share: bool) -> Result<UdpSocket, Errno> {
    use nix::sys::socket::SockaddrStorage;
    let fd = udp_socket(bind.is_ipv6())?;
    if share {
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReuseAddr, &true)?;
    }
    nix::sys::socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(bind))?;
    Ok(UdpSocket::from(fd))
}

/// The sockets of one kernel, by the address they are bound to.
#[derive(Default)]
pub struct Registry(Mutex<HashMap<SocketAddr, Weak<Vtep>>>);

impl Registry {
    /// The socket bound to `bind`, opened (with `ttl`) when none is.
    pub fn get(&self, bind: SocketAddr, ttl: u32) -> Result<Arc<Vtep>, Errno> {
        let mut m = lock(&self.0);
        if let Some(v) = m.get(&bind).and_then(Weak::upgrade) {
            return Ok(v);
        }
        // FreeBSD shares a socket by its exact address only, and with
        // net.link.vxlan.reuse_port=1 lets a specific address and the
        // wildcard of one port be bound both: so do we, always. Only
        // sockets with a neighbour on their port allow sharing it, so
        // that another program still finds a lone one's port in use.
        m.retain(|_, w| w.strong_count() > 0);
        let neighbours: Vec<Arc<Vtep>> = m
            .iter()
            .filter(|(a, _)| a.port() == bind.port() && a.is_ipv6() == bind.is_ipv6())
            .filter_map(|(_, w)| w.upgrade())
            .collect();
        for v in &neighbours {
            nix::sys::socket::setsockopt(&v.sock, nix::sys::socket::sockopt::ReuseAddr, &true)?;
        }
        let sock = bind_socket(bind, !neighbours.is_empty())?;
        let ttl = unicast_ttl(ttl);
        match bind {
            SocketAddr::V4(_) => setsockopt(&sock, libc::IPPROTO_IP, libc::IP_TTL, &ttl)?,
            SocketAddr::V6(_) => {
                setsockopt(&sock, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &ttl)?
            }
        }
        let on: i32 = 1;
        let _ = setsockopt(&sock, libc::SOL_UDP, UDP_GRO, &on);
        // Room for the bursts a TCP sender makes between two reads (the
        // default, about a hundred datagrams, drops some): beyond
        // net.core.rmem_max where we may (CAP_NET_ADMIN), up to it else.
        let rcvbuf: i32 = RCVBUF;
        if setsockopt(&sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &rcvbuf).is_err() {
            let _ = setsockopt(&sock, libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf);
        }
        let v = Arc::new(Vtep {
            sock,
            members: RwLock::new(Vec::new()),
            groups: Mutex::new(HashMap::new()),
            reg: Mutex::new(None),
            prune: Mutex::new(None),
        });
        m.insert(bind, Arc::downgrade(&v));
        Ok(v)
    }
}

/// What a VTEP hands its datagrams to: one running vxlan.
pub trait Member: Send + Sync {
    fn vni(&self) -> u32;
    /// One datagram from `from`.
    fn input(&self, from: IpAddr, dgram: &[u8], now: Instant);
    /// A datagram that could not be read whole.
    fn input_error(&self);
    /// The batch of datagrams is over.
    fn flush(&self);
    /// Time passed: age what it learned.
    fn expire(&self, now: Instant);
}

/// A bound UDP socket and the running vxlans it serves.
pub struct Vtep {
    pub(super) sock: UdpSocket,
    /// The first is the socket's owner: its reactor group reads it.
    members: RwLock<Vec<Arc<dyn Member>>>,
    /// Groups joined, on an interface, by how many members.
    groups: Mutex<HashMap<(IpAddr, u32), usize>>,
    /// Its reactor source while it has members.
    reg: Mutex<Option<Registration>>,
    /// When expired forwarding entries are swept next.
    prune: Mutex<Option<Instant>>,
}

impl Vtep {
    /// Join `group` on interface `dev` (from `local`), once per socket.
    pub fn join(&self, group: IpAddr, local: IpAddr, dev: u32) -> Result<(), Errno> {
        let mut g = lock(&self.groups);
        if let Some(n) = g.get_mut(&(group, dev)) {
            *n += 1;
            return Ok(());
        }
        match (group, local) {
            (IpAddr::V4(g4), IpAddr::V4(l4)) => {
                let mreq = mreqn(g4, l4, dev);
                setsockopt(&self.sock, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreq)?
            }
            (IpAddr::V6(g6), _) => self
                .sock
                .join_multicast_v6(&g6, dev)
                .map_err(|e| Errno::from_io(&e))?,
            _ => return Err(Errno::EINVAL),
        }
        g.insert((group, dev), 1);
        Ok(())
    }

    /// Leave what `join` joined, when its last member goes.
    pub fn leave(&self, group: IpAddr, local: IpAddr, dev: u32) {
        let mut g = lock(&self.groups);
        let Some(n) = g.get_mut(&(group, dev)) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        g.remove(&(group, dev));
        let _ = match (group, local) {
            (IpAddr::V4(g4), IpAddr::V4(l4)) => {
                let mreq = mreqn(g4, l4, dev);
                setsockopt(
                    &self.sock,
                    libc::IPPROTO_IP,
                    libc::IP_DROP_MEMBERSHIP,
                    &mreq,
                )
            }
            (IpAddr::V6(g6), _) => self
                .sock
                .leave_multicast_v6(&g6, dev)
                .map_err(|e| Errno::from_io(&e)),
            _ => Ok(()),
        };
    }

    /// Serve `m` (EEXIST: its VNI is served already); the first member
    /// starts the reading, on the thread of `group`.
    pub fn add(
        self: &Arc<Self>,
        m: Arc<dyn Member>,
        reactor: &Arc<Reactor>,
        group: u64,
    ) -> Result<(), Errno> {
        let first = {
            let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
            if members.iter().any(|x| x.vni() == m.vni()) {
                return Err(Errno::EEXIST);
            }
            members.push(m);
            members.len() == 1
        };
        if first && let Err(e) = self.register(reactor, group) {
            self.remove(u32::MAX);
            return Err(e);
        }
        Ok(())
    }

    fn register(self: &Arc<Self>, reactor: &Arc<Reactor>, group: u64) -> Result<(), Errno> {
        let old = lock(&self.reg).take();
        drop(old);
        let reg = reactor
            .register_in(group, Some(self.sock.as_fd()), self.clone())
            .map_err(|e| Errno::from_io(&e))?;
        *lock(&self.reg) = Some(reg);
        Ok(())
    }

    /// Stop serving `vni` (`u32::MAX`: the member just added, which could
    /// not start); the last member stops the reading. No read is under
    /// way on return.
    pub fn remove(&self, vni: u32) {
        let empty = {
            let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
            if vni == u32::MAX {
                members.pop();
            } else {
                members.retain(|x| x.vni() != vni);
            }
            members.is_empty()
        };
        if empty {
            // Outside the lock: dropping waits for a poll that may hold it.
            let reg = lock(&self.reg).take();
            drop(reg);
        }
    }

    /// Its owner `vni` moved to the thread of `group`: the socket goes too.
    pub fn move_to(self: &Arc<Self>, vni: u32, reactor: &Arc<Reactor>, group: u64) {
        let owner = self
            .members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .first()
            .is_some_and(|m| m.vni() == vni);
        if owner && let Err(e) = self.register(reactor, group) {
            crate::log::warn(&format!("vxlan: socket {:?}: {e}", self.sock.local_addr()));
        }
    }

    /// One recvmmsg, each datagram to the member of its VNI.
    fn read_batch(&self, b: &mut RxBatch, now: Instant) {
        b.iovs.clear();
        b.hdrs.clear();
        for buf in b.bufs.iter_mut() {
            b.iovs.push(libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: RX_BUF,
            });
        }
        let slots = b.iovs.iter_mut().zip(b.names.iter_mut());
        for ((iov, name), ctrl) in slots.zip(b.ctrl.iter_mut()) {
            // SAFETY: mmsghdr is plain old data; the fields set below are
            // the ones recvmmsg reads.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = ctrl.as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = std::mem::size_of_val(ctrl);
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
            return;
        }
        let members = self.members.read().unwrap_or_else(|e| e.into_inner());
        let Some(owner) = members.first() else {
            return;
        };
        for i in 0..n as usize {
            let h = &b.hdrs[i];
            let d = &b.bufs[i][..(h.msg_len as usize).min(RX_BUF)];
            let vni = d
                .get(4..7)
                .map(|v| u32::from_be_bytes([0, v[0], v[1], v[2]]));
            // Unknown: the owner counts it (its VNI check fails).
            let m = vni
                .and_then(|v| members.iter().find(|m| m.vni() == v))
                .unwrap_or(owner);
            match sockaddr_of(&b.names[i]) {
                Some(from) if h.msg_hdr.msg_flags & libc::MSG_TRUNC == 0 => {
                    // Datagrams the kernel joined: each on its own.
                    match gro_size(&h.msg_hdr) {
                        Some(size) if size < d.len() => {
                            for dgram in d.chunks(size) {
                                m.input(from, dgram, now);
                            }
                        }
                        _ => m.input(from, d, now),
                    }
                }
                _ => m.input_error(),
            }
        }
        for m in members.iter() {
            m.flush();
        }
    }
}

impl Handler for Vtep {
    fn poll(&self, now: Instant) -> Option<Instant> {
        RX.with(|rx| {
            let mut rx = rx.borrow_mut();
            let b = rx.get_or_insert_with(|| Box::new(RxBatch::new()));
            // A full batch leaves the socket readable: the reactor polls
            // again on its next turn, after the other sources.
            self.read_batch(b, now);
        });
        // The sweep keeps its own time: a deadline that moved with every
        // read would cost the reactor a timer change per wakeup.
        let mut next = lock(&self.prune);
        match *next {
            Some(t) if t > now => {}
            Some(_) => {
                for m in self
                    .members
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                {
                    m.expire(now);
                }
                *next = Some(now + PRUNE);
            }
            None => *next = Some(now + PRUNE),
        }
        *next
    }
}
