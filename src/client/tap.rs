//! The client side of a tap(4) control device: what a program such as a VM
//! runs to attach to `tapN`, or to the cloning socket `tap`, and learn
//! which interface it is on.

use crate::ioctl::{Errno, Ioctl, Reply, Request};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Connect to a tap's control device (`tapN`, or the cloning socket
/// `tap`) from a socket with an address of its own (Linux autobind: a
/// unique abstract name), so that [`gifname`] can tell which tap it is on.
pub fn connect(path: &Path) -> Result<UnixStream, Errno> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, bind, socket};
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(fd.as_raw_fd(), &UnixAddr::new_unnamed())?;
    nix::sys::socket::connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(UnixStream::from(fd))
}

/// TAPGIFNAME: the name of the tap that `conn` (made by [`connect`]) is
/// attached to — how a client of the cloning socket learns which tapN it
/// got. The daemon attaches a connection a moment after connect(2)
/// returns, so an ENXIO is retried for up to a second. A socket without
/// an address of its own cannot be told apart: EINVAL.
pub fn gifname(k: &mut impl Ioctl, conn: &UnixStream) -> Result<String, Errno> {
    use std::os::linux::net::SocketAddrExt;
    let local = conn.local_addr()?;
    let peer = local.as_abstract_name().ok_or(Errno::EINVAL)?.to_vec();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match k.ioctl(Request::TapGIfName { peer: peer.clone() }) {
            Ok(Reply::IfName(name)) => return Ok(name),
            Err(Errno::ENXIO) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok(_) => return Err(Errno::EPROTO),
            Err(e) => return Err(e),
        }
    }
}
