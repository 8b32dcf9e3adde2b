//! Surviving a bus file truncated under its mapping.
//!
//! Any process that may write the bus file can shrink it. Touching a page
//! of the mapping past the new end of file then raises SIGBUS, and no size
//! check beforehand closes that window. So the mappings are registered
//! here, and a SIGBUS handler puts an anonymous zero page over a faulting
//! page of a registered mapping: the access is retried and reads zeros (a
//! store goes to private memory), and the mapping is flagged
//! [`Registration::truncated`] for its owner to see and give up the bus.
//! A SIGBUS anywhere else goes to the handler that was there before us
//! (Rust's own, which ends in the default action): real faults still kill.
//!
//! The handler reads the registry with plain atomic loads: a fixed array of
//! slots, chained to further arrays when it fills up. Arrays are never
//! freed, so the handler can walk them at any time.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

const SLOTS: usize = 64;

/// One registered mapping: `start == 0` when free.
struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    truncated: AtomicBool,
}

struct Chunk {
    slots: [Slot; SLOTS],
    next: AtomicPtr<Chunk>,
}

impl Chunk {
    const fn new() -> Chunk {
        Chunk {
            slots: [const {
                Slot {
                    start: AtomicUsize::new(0),
                    len: AtomicUsize::new(0),
                    truncated: AtomicBool::new(false),
                }
            }; SLOTS],
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    fn next(&self) -> Option<&'static Chunk> {
        // SAFETY: a chunk, once linked, is leaked: it lives for ever.
        unsafe { self.next.load(Ordering::Acquire).as_ref() }
    }
}

static FIRST: Chunk = Chunk::new();
static INSTALL: Once = Once::new();
static PREV: OnceLock<libc::sigaction> = OnceLock::new();
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// A mapping's place in the registry, given up on drop (before the
/// mapping itself goes: drop this first).
pub struct Registration(&'static Slot);

impl Registration {
    /// Register `len` bytes mapped at `start`, installing the handler on
    /// first use.
    pub fn new(start: *const u8, len: usize) -> Registration {
        install();
        let mut chunk: &'static Chunk = &FIRST;
        loop {
            for s in &chunk.slots {
                // Claim by `len` (0 → len), then publish `start`: the
                // handler ignores a slot until `start` is set.
                if s.len
                    .compare_exchange(0, len.max(1), Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    s.truncated.store(false, Ordering::Relaxed);
                    s.start.store(start as usize, Ordering::Release);
                    return Registration(s);
                }
            }
            chunk = match chunk.next() {
                Some(c) => c,
                None => {
                    let new = Box::into_raw(Box::new(Chunk::new()));
                    match chunk.next.compare_exchange(
                        ptr::null_mut(),
                        new,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        // SAFETY: just leaked, never freed.
                        Ok(_) => unsafe { &*new },
                        Err(other) => {
                            // SAFETY: ours lost the race and was never
                            // shared; the winner's is leaked for ever.
                            unsafe {
                                drop(Box::from_raw(new));
                                &*other
                            }
                        }
                    }
                }
            };
        }
    }

    /// Whether a page of the mapping faulted past the end of the file
    /// (and now reads zeros).
    pub fn truncated(&self) -> bool {
        self.0.truncated.load(Ordering::Relaxed)
    }

    /// Mark the mapping as cut short (found by a size check).
    pub fn set_truncated(&self) {
        self.0.truncated.store(true, Ordering::Relaxed);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // `start` first, so that the handler never pairs it with another
        // mapping's `len`.
        self.0.start.store(0, Ordering::Release);
        self.0.len.store(0, Ordering::Release);
    }
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: a zeroed sigaction is valid; we fill in handler, mask
        // and flags, and keep the old action for faults that are not ours.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &sa, &mut old) == 0 {
                let _ = PREV.set(old);
            }
        }
    });
}

/// The registered slot holding `addr`, if any.
fn find(addr: usize) -> Option<&'static Slot> {
    let mut chunk: Option<&'static Chunk> = Some(&FIRST);
    while let Some(c) = chunk {
        for s in &c.slots {
            let start = s.start.load(Ordering::Acquire);
            if start == 0 || addr < start {
                continue;
            }
            let len = s.len.load(Ordering::Acquire);
            // Still the same registration after reading `len`.
            if addr - start < len && s.start.load(Ordering::Acquire) == start {
                return Some(s);
            }
        }
        chunk = c.next();
    }
    None
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    // Only atomics, mmap(2), sigaction(2) and raise(3) are used here, all
    // async-signal-safe (mmap is a bare system call on Linux).
    unsafe {
        let kernel_fault = (*info).si_code > 0;
        // Past the end of a file: not a hardware memory error, say.
        if (*info).si_code == libc::BUS_ADRERR {
            let addr = (*info).si_addr() as usize;
            if let Some(slot) = find(addr) {
                let page = PAGE.load(Ordering::Relaxed);
                let at = addr & !(page - 1);
                // Only the faulting page, which is surely in the mapping;
                // the next ones fault in their turn if they are gone too.
                let p = libc::mmap(
                    at as *mut libc::c_void,
                    page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                if p != libc::MAP_FAILED {
                    slot.truncated.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
        // Not ours: hand it to the previous handler (or the default
        // action). A fault retried raises it again; a sent signal is
        // raised again here.
        match PREV.get() {
            Some(old) => libc::sigaction(sig, old, ptr::null_mut()),
            None => {
                libc::signal(sig, libc::SIG_DFL);
                0
            }
        };
        if !kernel_fault {
            libc::raise(sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_chained() {
        // More registrations than one chunk holds, at fake addresses no
        // fault can come from.
        let base = usize::MAX / 2;
        let regs: Vec<_> = (0..SLOTS * 2 + 3)
            .map(|i| Registration::new((base + i * 0x10000) as *const u8, 0x1000))
            .collect();
        for (i, _) in regs.iter().enumerate() {
            let s = find(base + i * 0x10000 + 0xfff).expect("registered");
            assert_eq!(s.start.load(Ordering::Relaxed), base + i * 0x10000);
        }
        assert!(find(base + 0x1000).is_none());
        drop(regs);
        assert!(find(base).is_none());
    }
}
