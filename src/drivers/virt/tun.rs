//! The Linux side of virt: a host TAP device through /dev/net/tun, opened
//! `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`: one Ethernet frame per read and
//! per write, each behind a `struct virtio_net_hdr` that carries the
//! offload work left on it (see `crate::offload`). With offloads on
//! (TUNSETOFFLOAD) the host hands us TCP super-frames of up to 64 KiB with
//! partial checksums, and takes them from us the same way.

use crate::ioctl::Errno;
use crate::log;
use crate::offload::{Offload, OffloadCaps, VNET_HDR_LEN};
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use std::ffi::c_int;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

const TUN_PATH: &str = "/dev/net/tun";

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_PERSIST: libc::c_short = 0x0800;
const IFF_VNET_HDR: libc::c_short = 0x4000;

/// TUNSETOFFLOAD flags: what the host may leave to us.
pub const TUN_F_CSUM: u32 = 0x01;
pub const TUN_F_TSO4: u32 = 0x02;
pub const TUN_F_TSO6: u32 = 0x04;
/// UDP segmentation (Linux 6.2+): asked for only to learn that the host
/// takes UDP super-datagrams from us (see `uso`).
const TUN_F_USO4: u32 = 0x20;
const TUN_F_USO6: u32 = 0x40;

nix::ioctl_write_ptr_bad!(
    tunsetiff,
    nix::request_code_write!(b'T', 202, std::mem::size_of::<c_int>()),
    libc::ifreq
);
nix::ioctl_read_bad!(
    tungetiff,
    nix::request_code_read!(b'T', 210, std::mem::size_of::<libc::c_uint>()),
    libc::ifreq
);
nix::ioctl_write_ptr!(tunsetcarrier, b'T', 226, c_int);
nix::ioctl_write_int_bad!(
    tunsetoffload,
    nix::request_code_write!(b'T', 208, std::mem::size_of::<libc::c_uint>())
);
nix::ioctl_read_bad!(siocgifflags, libc::SIOCGIFFLAGS, libc::ifreq);
nix::ioctl_read_bad!(siocgifmtu, libc::SIOCGIFMTU, libc::ifreq);
nix::ioctl_write_ptr_bad!(siocsifmtu, libc::SIOCSIFMTU, libc::ifreq);

/// A read: the offload header and the largest frame, a 64 KiB TCP
/// super-frame (NetBSD's libvirtif reads 9018 bytes, a VLAN-tagged jumbo).
pub const VIRTIF_RXBUF: usize = VNET_HDR_LEN + 65536 + 64;

/// Longest host interface name (IFNAMSIZ less the NUL).
pub const HOST_IFNAMSIZ: usize = 15;

/// Whether `name` can name a Linux network device.
pub fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= HOST_IFNAMSIZ
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(HOST_IFNAMSIZ))
    {
        *d = s as libc::c_char;
    }
    ifr
}

/// The result of a system call made with `libc::syscall`. virt reads and
/// writes its TAP that way, not through libc's read and writev: those are
/// thread cancellation points, which cost two calls around every frame's
/// system call (3 % of a routing thread's time under 64-byte UDP), and
/// ifnet cancels no thread.
fn raw(n: libc::c_long) -> Result<usize, Errno> {
    usize::try_from(n).map_err(|_| Errno(nix::errno::Errno::last_raw()))
}

/// An open host TAP. Closing it removes the device if we created it (it is
/// not persistent); a persistent device made by someone else stays.
pub struct HostTap {
    fd: OwnedFd,
    name: String,
    created: bool,
    /// The device went away underneath us (`ip link del`).
    dead: AtomicBool,
    /// The TUN_F_* offloads in force.
    offloads: AtomicU32,
    /// The host takes UDP super-datagrams, and checksum work is on.
    uso: AtomicBool,
}

impl HostTap {
    /// Attach to host TAP `name`, creating it when missing. `ifname` is
    /// only for messages.
    pub fn open(ifname: &str, name: &str) -> Result<HostTap, Errno> {
        let fd = open(
            TUN_PATH,
            OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            let why = match e {
                nix::errno::Errno::ENOENT | nix::errno::Errno::ENODEV => {
                    "missing (is the tun module loaded?)".to_string()
                }
                nix::errno::Errno::EACCES | nix::errno::Errno::EPERM => {
                    "permission denied (needs root or access to it)".to_string()
                }
                e => e.desc().to_string(),
            };
            log::warn(&format!("{ifname}: cannot open {TUN_PATH}: {why}"));
            match e {
                nix::errno::Errno::ENOENT | nix::errno::Errno::ENODEV => Errno::ENXIO,
                e => e.into(),
            }
        })?;
        let mut ifr = ifreq(name);
        ifr.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        // SAFETY: fd is /dev/net/tun and ifr a valid ifreq.
        unsafe { tunsetiff(fd.as_raw_fd(), &ifr) }.map_err(|e| {
            let why = match e {
                nix::errno::Errno::EPERM => {
                    "not permitted (creating a TAP needs CAP_NET_ADMIN; an existing one must \
                     belong to this user)"
                }
                nix::errno::Errno::EBUSY => "in use by another program",
                nix::errno::Errno::EINVAL => "exists and is not a TAP",
                _ => "",
            };
            log::warn(&format!(
                "{ifname}: cannot attach host TAP {name}: {} {why}",
                e.desc()
            ));
            Errno::from(e)
        })?;
        // A persistent device existed before us: TUNSETIFF never makes one.
        // SAFETY: as above; TUNGETIFF fills ifr.
        unsafe { tungetiff(fd.as_raw_fd(), &mut ifr) }?;
        // SAFETY: TUNGETIFF filled the flags member of the union.
        let created = unsafe { ifr.ifr_ifru.ifru_flags } & IFF_PERSIST == 0;
        log::info(&format!(
            "{ifname}: {} host TAP {name}",
            if created { "created" } else { "attached to" }
        ));
        Ok(HostTap {
            fd,
            name: name.to_string(),
            created,
            dead: AtomicBool::new(false),
            offloads: AtomicU32::new(0),
            uso: AtomicBool::new(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// We made the device, so closing removes it.
    pub fn created(&self) -> bool {
        self.created
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    pub fn set_dead(&self) {
        self.dead.store(true, Ordering::Relaxed);
    }

    /// Whether the device still exists: TUNGETIFF fails once it was deleted.
    pub fn alive(&self) -> bool {
        if self.is_dead() {
            return false;
        }
        let mut ifr = ifreq("");
        // SAFETY: fd is an attached tun descriptor; ifr a valid ifreq.
        if unsafe { tungetiff(self.fd.as_raw_fd(), &mut ifr) }.is_err() {
            self.set_dead();
            return false;
        }
        true
    }

    /// Tell the host whether we are there (TUNSETCARRIER, Linux 5.0+).
    pub fn set_carrier(&self, on: bool) {
        let v: c_int = on.into();
        // SAFETY: the argument is read as an int through the pointer.
        let _ = unsafe { tunsetcarrier(self.fd.as_raw_fd(), &v) };
    }

    /// Let the host leave the TUN_F_* work in `flags` to us (and take it
    /// from us): TCP segmentation needs checksum offload too.
    /// Whether the host can take UDP super-datagrams is learnt on the way:
    /// a kernel that accepts TUN_F_USO* parses them in what we write (we
    /// do not ask for them on reads).
    pub fn set_offloads(&self, flags: u32) -> Result<(), Errno> {
        let set = |f: u32| {
            // SAFETY: TUNSETOFFLOAD takes the flags by value.
            unsafe { tunsetoffload(self.fd.as_raw_fd(), f as c_int) }
        };
        let uso = flags & TUN_F_CSUM != 0 && set(flags | TUN_F_USO4 | TUN_F_USO6).is_ok();
        let r = set(flags);
        self.uso.store(uso && r.is_ok(), Ordering::Relaxed);
        r?;
        self.offloads.store(flags, Ordering::Relaxed);
        Ok(())
    }

    /// Whether UDP super-datagrams may be written (see `uso`).
    pub fn takes_uso(&self) -> bool {
        self.uso.load(Ordering::Relaxed)
    }

    /// The work a frame may be written with: the offloads in force.
    pub fn offloads(&self) -> OffloadCaps {
        let on = self.offloads.load(Ordering::Relaxed);
        [
            (TUN_F_CSUM, OffloadCaps::CSUM),
            (TUN_F_TSO4, OffloadCaps::TSO4),
            (TUN_F_TSO6, OffloadCaps::TSO6),
        ]
        .into_iter()
        .filter(|(f, _)| on & f != 0)
        .fold(OffloadCaps::NONE, |caps, (_, c)| caps.union(c))
    }

    /// Read one frame and the work left on it; `EAGAIN` when there is none.
    pub fn recv<'a>(&self, buf: &'a mut [u8]) -> Result<(Offload, &'a [u8]), Errno> {
        // SAFETY: read(2) into `buf`, within its length.
        let n = raw(unsafe {
            libc::syscall(
                libc::SYS_read,
                self.fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        })?;
        if n < VNET_HDR_LEN {
            return Err(Errno::EINVAL);
        }
        let (hdr, frame) = buf[..n].split_at(VNET_HDR_LEN);
        Ok((Offload::from_bytes(hdr.try_into().unwrap()), frame))
    }

    /// Write one frame with `off`'s work left to the host (`NONE`: a
    /// finished frame). Never blocks: the descriptor is non-blocking and a
    /// tun write hands the frame straight to the host stack.
    pub fn send(&self, frame: &[u8], off: &Offload) -> Result<(), Errno> {
        let hdr = off.to_bytes();
        let iov = [IoSlice::new(&hdr), IoSlice::new(frame)];
        // SAFETY: writev(2) of two IoSlices (laid out as iovecs).
        let n = unsafe {
            libc::syscall(
                libc::SYS_writev,
                self.fd.as_raw_fd(),
                iov.as_ptr(),
                iov.len(),
            )
        };
        match raw(n) {
            Ok(_) => Ok(()),
            Err(Errno(libc::EBADFD)) => {
                self.set_dead();
                Err(Errno::ENXIO)
            }
            Err(e) => Err(e),
        }
    }

    /// The device's flags and MTU as the daemon's network namespace sees
    /// them; `None` when it is not visible there (deleted, or moved to
    /// another namespace).
    pub fn host_status(&self) -> Option<(u32, u32)> {
        let s = inet_socket().ok()?;
        let mut ifr = ifreq(&self.name);
        // SAFETY: s is a socket, ifr names the device.
        unsafe { siocgifflags(s.as_raw_fd(), &mut ifr) }.ok()?;
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { ifr.ifr_ifru.ifru_flags } as u16 as u32;
        // SAFETY: as above; SIOCGIFMTU fills the mtu member.
        unsafe { siocgifmtu(s.as_raw_fd(), &mut ifr) }.ok()?;
        // SAFETY: SIOCGIFMTU filled the mtu member of the union.
        let mtu = unsafe { ifr.ifr_ifru.ifru_mtu } as u32;
        Some((flags, mtu))
    }

    /// Set the host device's MTU (root).
    pub fn set_host_mtu(&self, mtu: u32) -> Result<(), Errno> {
        let s = inet_socket()?;
        let mut ifr = ifreq(&self.name);
        ifr.ifr_ifru.ifru_mtu = mtu as c_int;
        // SAFETY: s is a socket, ifr a valid request.
        unsafe { siocsifmtu(s.as_raw_fd(), &ifr) }?;
        Ok(())
    }
}

impl AsFd for HostTap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn inet_socket() -> Result<OwnedFd, Errno> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    Ok(socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert!(valid_host_name("tap0"));
        assert!(valid_host_name("tun0"));
        assert!(valid_host_name("a23456789012345"));
        assert!(!valid_host_name("a234567890123456"));
        assert!(!valid_host_name(""));
        assert!(!valid_host_name("a/b"));
        assert!(!valid_host_name("a b"));
        assert!(!valid_host_name(".."));
    }
}
