//! What a running vxlan's data plane needs of its configuration, and the
//! socket options that follow from it, for every socket it sends from
//! (the raw one, the bound VTEP, the flows' offload sockets).

use super::vtep::{mreqn, setsockopt};
use crate::ioctl::Errno;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

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

/// How a socket sends to a group: on `vxlandev`, with the TTL, and not
/// back to us (our own datagrams to the group are not news).
pub fn multicast_out(sock: &impl AsRawFd, p: &Params) -> Result<(), Errno> {
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
pub fn bind_addr(p: &Params) -> SocketAddr {
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

/// Read nothing: a filter (`ret #0`) drops every datagram before it is
/// queued.
pub fn drop_all_input(fd: &impl AsRawFd) -> Result<(), Errno> {
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
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}
