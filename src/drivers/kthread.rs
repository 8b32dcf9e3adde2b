//! What driver threads had in common; the threads themselves are now the
//! reactor's ([`crate::reactor`]).

/// Random bytes for generated MAC addresses (NetBSD's cprng_fast32).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let mut got = 0;
    while got < N {
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), N - got, 0) };
        if n <= 0 {
            // No entropy source: time-based bytes are enough to avoid
            // hard-coding an address (NetBSD's tap used the uptime).
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            for (i, x) in b.iter_mut().enumerate().skip(got) {
                *x = (t >> ((i % 8) * 8)) as u8;
            }
            break;
        }
        got += n as usize;
    }
    b
}
