//! What a service manager gives the daemon and expects of it, as systemd
//! does it: a listening socket passed at start (`LISTEN_FDS`,
//! `LISTEN_PID`, sd_listen_fds(3)) and a readiness message
//! (`READY=1` to `NOTIFY_SOCKET`, sd_notify(3)).

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener};

/// The first descriptor passed (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: RawFd = 3;

/// The listening socket passed to this process, if one was: `LISTEN_PID`
/// must be our pid. Only the first one is used; it is marked
/// close-on-exec so that commands we run do not hold it.
///
/// # Safety
/// Call before any other thread runs (it removes the variables from the
/// environment) and at most once (it takes ownership of descriptor 3).
pub unsafe fn listen_fds() -> Option<UnixListener> {
    let pid = std::env::var("LISTEN_PID").ok()?;
    let n = std::env::var("LISTEN_FDS").ok()?;
    // SAFETY: single-threaded, as the caller promises.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if pid.parse::<u32>().ok()? != std::process::id() || n.parse::<u32>().ok()? < 1 {
        return None;
    }
    let fd = LISTEN_FDS_START;
    // A descriptor that is not a listening Unix stream socket is not ours
    // to take.
    let is_unix_stream = {
        use nix::sys::socket::{AddressFamily, SockaddrLike, SockaddrStorage, getsockname};
        let ty = nix::sys::socket::getsockopt(
            // SAFETY: fd 3 is open for the lifetime of this borrow.
            &unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            nix::sys::socket::sockopt::SockType,
        );
        let fam = getsockname::<SockaddrStorage>(fd)
            .ok()
            .and_then(|a| a.family());
        matches!(ty, Ok(nix::sys::socket::SockType::Stream)) && fam == Some(AddressFamily::Unix)
    };
    if !is_unix_stream {
        return None;
    }
    // SAFETY: fd 3 is open and from now on owned by the listener alone.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        Some(UnixListener::from_raw_fd(fd))
    }
}

/// sd_notify(3): send `msg` (`READY=1`, `STOPPING=1`) to the service
/// manager when `NOTIFY_SOCKET` names one; nothing otherwise.
pub fn notify(msg: &str) -> std::io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(msg.as_bytes(), &addr)?;
    } else {
        sock.send_to(msg.as_bytes(), std::path::Path::new(&path))?;
    }
    Ok(())
}
