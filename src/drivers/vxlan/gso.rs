//! UDP segmentation offload for TCP super-frames: their segments, each
//! behind its VXLAN header, leave in one sendmsg with a UDP_SEGMENT size,
//! and the kernel (or the NIC) cuts the datagram: one trip through the IP
//! output path for up to 64 segments instead of one each.
//!
//! A UDP socket sends from the port it is bound to, and a flow's datagrams
//! come from the flow's source port ([`super::flow`]): so each flow that
//! sends super-frames gets a UDP socket bound to its port (on the local
//! address), made when first needed, up to [`FLOW_SOCKETS`] of them. Like
//! the raw socket, such a socket reads nothing. A port another program
//! holds, a route whose device cannot take the offload, or more flows than
//! sockets: the super-frame leaves as before, a datagram per segment.
//! Without a raw socket every datagram comes from the local port, and so
//! do these, through the bound socket.
//!
//! The kernel computes the outer UDP checksum of segmented datagrams, over
//! IPv4 too, where other datagrams carry none (RFC 7348 lets a receiver
//! check it or not).

use super::params::{Params, bind_addr, drop_all_input, multicast_out};
use super::vtep::{setsockopt, udp_socket, unicast_ttl};
use crate::ioctl::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

/// The most flows with a socket of their own, per interface.
pub const FLOW_SOCKETS: usize = 64;
/// The most segments in one send (the kernel's UDP_MAX_SEGMENTS), and the
/// most bytes: an IP datagram's length is 16 bits.
const MAX_SEGS: usize = 64;
const MAX_BYTES: usize = 65535 - 60 - 8;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A UDP socket bound to `sport` on the local address, sending as the raw
/// socket does (TTL, group options) and reading nothing.
fn open_flow(p: &Params, sport: u16) -> Result<OwnedFd, Errno> {
    let v6 = p.remote.is_ipv6();
    let fd = udp_socket(v6)?;
    drop_all_input(&fd)?;
    let ttl = unicast_ttl(p.ttl);
    if v6 {
        setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &ttl)?;
    } else {
        setsockopt(&fd, libc::IPPROTO_IP, libc::IP_TTL, &ttl)?;
    }
    if p.remote.ip().is_multicast() {
        multicast_out(&fd, p)?;
    }
    let a = SockaddrStorage::from(SocketAddr::new(bind_addr(p).ip(), sport));
    nix::sys::socket::bind(fd.as_raw_fd(), &a)?;
    Ok(fd)
}

/// The flows' sockets of one interface; `None`: that port cannot be used.
#[derive(Default)]
pub struct FlowSockets(Mutex<HashMap<u16, Option<Arc<OwnedFd>>>>);

impl FlowSockets {
    /// The socket of source port `sport`, made if there is room.
    pub fn get(&self, p: &Params, sport: u16) -> Option<Arc<OwnedFd>> {
        let mut m = lock(&self.0);
        if let Some(s) = m.get(&sport) {
            return s.clone();
        }
        if m.len() >= FLOW_SOCKETS {
            return None;
        }
        let s = open_flow(p, sport).ok().map(Arc::new);
        m.insert(sport, s.clone());
        s
    }

    /// Give up on `sport`'s socket: its sends go the other way.
    pub fn refuse(&self, sport: u16) {
        lock(&self.0).insert(sport, None);
    }
}

thread_local! {
    /// The datagrams of one super-frame, one after the other, and their
    /// lengths.
    static GSO: RefCell<(Vec<u8>, Vec<usize>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// What became of a super-frame offered for segmentation offload.
pub enum Sent {
    /// Sent (or lost in part, as a full queue loses datagrams).
    Done(Result<(), Errno>),
    /// Not sent, its segments being uneven: it goes a datagram per segment.
    Uneven,
    /// Not sent, the socket or the route refusing: that socket takes none.
    Refused,
}

/// Send the datagrams `fill` writes (calling `push` with each datagram's
/// pieces) to `dst` through `fd`, in sends of equal-sized segments. They
/// must be equal but for the last, which may be shorter.
pub fn send(
    fd: RawFd,
    dst: SocketAddr,
    fill: impl FnOnce(&mut dyn FnMut(&[&[u8]])) -> Result<(), Errno>,
) -> Sent {
    GSO.with(|g| {
        let (data, lens) = &mut *g.borrow_mut();
        data.clear();
        lens.clear();
        let filled = fill(&mut |pieces| {
            let start = data.len();
            for p in pieces {
                data.extend_from_slice(p);
            }
            lens.push(data.len() - start);
        });
        if let Err(e) = filled {
            return Sent::Done(Err(e));
        }
        let Some((&last, rest)) = lens.split_last() else {
            return Sent::Done(Ok(()));
        };
        let size = rest.first().copied().unwrap_or(last);
        if rest.iter().any(|&l| l != size) || last > size || size > MAX_BYTES {
            return Sent::Uneven;
        }
        let per = (MAX_BYTES / size).clamp(1, MAX_SEGS);
        for (i, chunk) in data.chunks(per * size).enumerate() {
            match send_pieces(fd, dst, size, &[IoSlice::new(chunk)]) {
                Sent::Done(Ok(())) => {}
                r if i == 0 => return r,
                _ => break,
            }
        }
        Sent::Done(Ok(()))
    })
}

/// How many of `msgs` from the first form a run that can leave in one
/// send: `key` (destination, source port, payload length) the same, but
/// for a shorter last one, within the bounds of one send.
pub fn run<T>(msgs: &[T], key: impl Fn(&T) -> (SocketAddr, u16, usize)) -> usize {
    let Some(first) = msgs.first() else {
        return 0;
    };
    let (dst, sport, size) = key(first);
    let mut bytes = size;
    let mut n = 1;
    for m in &msgs[1..] {
        let (d, p, len) = key(m);
        if n == MAX_SEGS || d != dst || p != sport || len > size || bytes + len > MAX_BYTES {
            break;
        }
        bytes += len;
        n += 1;
        if len < size {
            break;
        }
    }
    n
}

/// One send of `pieces`, datagrams of `size` bytes (the last may be
/// shorter) to `dst`, with segmentation offload when there are several.
pub fn send_pieces(fd: RawFd, dst: SocketAddr, size: usize, pieces: &[IoSlice]) -> Sent {
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let addr = SockaddrStorage::from(dst);
    let gso = size as u16;
    let cmsg = [ControlMessage::UdpGsoSegments(&gso)];
    let cmsgs: &[ControlMessage] = if total > size { &cmsg } else { &[] };
    let r = nix::sys::socket::sendmsg(fd, pieces, cmsgs, MsgFlags::MSG_DONTWAIT, Some(&addr));
    match r {
        Ok(_) => Sent::Done(Ok(())),
        // No checksum offload on the way, a segment over the path's MTU,
        // a kernel without UDP_SEGMENT.
        Err(
            nix::errno::Errno::EIO
            | nix::errno::Errno::EINVAL
            | nix::errno::Errno::ENOPROTOOPT
            | nix::errno::Errno::EOPNOTSUPP,
        ) => Sent::Refused,
        Err(e) => Sent::Done(Err(Errno::from(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_one_flow_and_size() {
        let a: SocketAddr = "10.0.0.1:4789".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:4789".parse().unwrap();
        let key = |m: &(SocketAddr, u16, usize)| *m;
        let m = |d, p, l| (d, p, l);
        // Same flow and size, a shorter last one ends the run.
        let msgs = [m(a, 1, 100), m(a, 1, 100), m(a, 1, 60), m(a, 1, 100)];
        assert_eq!(run(&msgs, key), 3);
        // Another port, destination or a longer one ends it before.
        assert_eq!(run(&[m(a, 1, 100), m(a, 2, 100)], key), 1);
        assert_eq!(run(&[m(a, 1, 100), m(b, 1, 100)], key), 1);
        assert_eq!(run(&[m(a, 1, 100), m(a, 1, 101)], key), 1);
        assert_eq!(run::<(SocketAddr, u16, usize)>(&[], key), 0);
        // At most 64 segments, and 64 KiB.
        assert_eq!(run(&[m(a, 1, 10); 100], key), MAX_SEGS);
        assert_eq!(run(&[m(a, 1, 9000); 10], key), MAX_BYTES / 9000);
    }
}
