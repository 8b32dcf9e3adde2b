//! Error numbers as the virtual kernel returns them, printed with NetBSD's
//! strerror(3) wording so that the tools' messages match NetBSD's byte for byte.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An errno value (Linux numbering, since that is what the host gives us).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($($name:ident = $val:ident, $msg:literal;)*) => {
        impl Errno {
            $(pub const $name: Errno = Errno(libc::$val);)*

            /// NetBSD's text for this error.
            pub fn desc(self) -> String {
                match self.0 {
                    $(libc::$val => $msg.to_string(),)*
                    n => std::io::Error::from_raw_os_error(n).to_string(),
                }
            }
        }
    };
}

errnos! {
    EPERM = EPERM, "Operation not permitted";
    ENOENT = ENOENT, "No such file or directory";
    EIO = EIO, "Input/output error";
    ESRCH = ESRCH, "No such process";
    ENXIO = ENXIO, "Device not configured";
    E2BIG = E2BIG, "Argument list too long";
    ENOEXEC = ENOEXEC, "Exec format error";
    EBADF = EBADF, "Bad file descriptor";
    ENOMEM = ENOMEM, "Cannot allocate memory";
    EACCES = EACCES, "Permission denied";
    EBUSY = EBUSY, "Device busy";
    EEXIST = EEXIST, "File exists";
    ENODEV = ENODEV, "Operation not supported by device";
    ENOTDIR = ENOTDIR, "Not a directory";
    EISDIR = EISDIR, "Is a directory";
    EINVAL = EINVAL, "Invalid argument";
    ENOTTY = ENOTTY, "Inappropriate ioctl for device";
    EFBIG = EFBIG, "File too large";
    ENOSPC = ENOSPC, "No space left on device";
    EROFS = EROFS, "Read-only file system";
    ERANGE = ERANGE, "Result too large";
    EAGAIN = EAGAIN, "Resource temporarily unavailable";
    EAFNOSUPPORT = EAFNOSUPPORT, "Address family not supported by protocol family";
    EADDRINUSE = EADDRINUSE, "Address already in use";
    EADDRNOTAVAIL = EADDRNOTAVAIL, "Can't assign requested address";
    ENETDOWN = ENETDOWN, "Network is down";
    ENETUNREACH = ENETUNREACH, "Network is unreachable";
    EHOSTDOWN = EHOSTDOWN, "Host is down";
    EHOSTUNREACH = EHOSTUNREACH, "No route to host";
    ENOBUFS = ENOBUFS, "No buffer space available";
    ENAMETOOLONG = ENAMETOOLONG, "File name too long";
    EOPNOTSUPP = EOPNOTSUPP, "Operation not supported";
    EPROTO = EPROTO, "Protocol error";
    ETIMEDOUT = ETIMEDOUT, "Operation timed out";
    ECONNREFUSED = ECONNREFUSED, "Connection refused";
    ELOOP = ELOOP, "Too many levels of symbolic links";
    EMSGSIZE = EMSGSIZE, "Message too long";
}

impl Errno {
    /// The errno carried by an I/O error, EIO when it has none.
    pub fn from_io(e: &std::io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Errno {
        Errno::from_io(&e)
    }
}

impl From<nix::errno::Errno> for Errno {
    fn from(e: nix::errno::Errno) -> Errno {
        Errno(e as i32)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.desc())
    }
}

impl std::error::Error for Errno {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netbsd_wording() {
        assert_eq!(Errno::ENXIO.to_string(), "Device not configured");
        assert_eq!(Errno::EBUSY.to_string(), "Device busy");
        assert_eq!(
            Errno::EADDRNOTAVAIL.to_string(),
            "Can't assign requested address"
        );
        assert_eq!(
            Errno::EAFNOSUPPORT.to_string(),
            "Address family not supported by protocol family"
        );
    }
}
