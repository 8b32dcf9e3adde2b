//! What driver threads had in common; the threads themselves are now the
//! reactor's ([`crate::reactor`]).

/// Random bytes from the kernel's generator (NetBSD's cprng), for
/// generated MAC addresses and the IP presence. No generator is an error:
/// a fixed or guessable fallback would repeat across interfaces and hosts.
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    let mut got = 0;
    while got < N {
        // SAFETY: writes at most the remaining N - got bytes of b.
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), N - got, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        got += n as usize;
    }
    Ok(b)
}
