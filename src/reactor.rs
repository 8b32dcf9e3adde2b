//! The data plane's threads: a small fixed pool of reactors, each an epoll
//! loop with one timerfd and one eventfd, owning a set of sources (a host
//! TAP, a tap control socket, a shmif bus's wakeups). No thread per
//! interface: 1,000 interfaces cost 1,000 epoll entries, not threads.
//!
//! A source is a [`Handler`], polled on its thread when its descriptor is
//! readable (level-triggered: a handler that leaves work behind is polled
//! again on the next turn), when its deadline passes, or after
//! [`Registration::wake`]. Sources of one group (a bridge and its members;
//! the interfaces in no bridge, which the kernel routes between, see
//! [`ROUTE_GROUP`]) share a thread: a write to one member's host TAP
//! queues the host's answer on the other, which the same thread reads on
//! its next turn, without a cross-CPU wakeup. Groups are spread over the
//! threads, so two bridges use two CPUs.
//!
//! Threads are made by [`Reactor::new`], from whoever makes the kernel (the
//! daemon's main thread), so they run with the daemon's credentials.
//!
//! Before it sleeps, a thread that has just worked may spin a little
//! (polling its epoll without a timeout, yielding the CPU between looks):
//! the answer to what it just sent — a ping reply from a peer on a bus —
//! then costs no wakeup. The spin adapts: it is on only while events
//! come within [`SPIN_MAX`] of the thread running out of work, so an idle
//! daemon, woken only by its timers, never spins. Off on one CPU, by
//! default on two for a thread that reads a shmif bus (see [`spin_max`]),
//! and with `IFNET_SPIN_US=0`.
//!
//! A thread that has sources with a [`NapWord`] (a futex word in memory
//! shared with other processes: a shmif bus's ifnet peers bump it and
//! wake it), and no descriptor that cannot wait (see
//! [`Registration::tolerate_naps`]), naps instead of spinning: it sleeps
//! on those words with `futex_waitv` for as long as the adaptive spin
//! would have spun (up to [`nap_max`], off by default: measured, naps
//! lost frames on a busy bus and shortened no round trip). A peer's
//! frame then wakes the thread that reads it directly, and the thread
//! holds no CPU meanwhile. The nap is one sleep, not slices: a
//! thread woken every few microseconds takes the CPU from the peer it
//! waits for, as a spin does (measured: slices of 20 us made round trips
//! over a bus slower). A nap never replaces the epoll sleep, so nothing
//! relies on a futex wakeup alone.

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

/// The group of the interfaces that are no bridge's members: the kernel
/// routes between them, so they share a thread as a bridge's members do.
/// A forwarded packet's answer (the echo reply, the TCP ACK) is then
/// queued on the interface it left by when the write returns, and the
/// thread that forwarded it reads it on its next turn: no wakeup of
/// another thread per hop. (Interface indexes are 32 bits: no clash.)
pub const ROUTE_GROUP: u64 = 1 << 32;

/// The reactor group of an interface in bridge `bridge` (its index), or
/// of one in none.
pub fn io_group(bridge: Option<u32>) -> u64 {
    bridge.map_or(ROUTE_GROUP, u64::from)
}

/// Something a reactor thread polls.
pub trait Handler: Send + Sync + 'static {
    /// Called on the owning reactor thread when the registered fd is
    /// readable (or writable, when asked for), when the handler's deadline
    /// has passed, or after [`Registration::wake`]. Do the work; return the
    /// next instant it wants to be polled without an event (a timer), if any.
    fn poll(&self, now: Instant) -> Option<Instant>;
}

/// The longest a thread spins before sleeping (`IFNET_SPIN_US` sets it).
pub const SPIN_MAX: Duration = Duration::from_micros(200);

/// How long a thread naps on its sources' futex words before it sleeps
/// in epoll when napping is asked for (`IFNET_NAP_US`); see [`nap_max`].
pub const NAP_MAX: Duration = Duration::from_micros(200);

/// A word another process bumps whenever its source has news, then, if
/// [`NapWord::waiters`] is not 0, sets that to 0 and wakes the word with
/// FUTEX_WAKE: a thread that naps adds one to `waiters` (and never takes
/// it back) before it reads `word` and sleeps on it.
pub trait NapWord: Send + Sync + 'static {
    fn word(&self) -> &AtomicU32;
    fn waiters(&self) -> &AtomicU32;
}

/// How long threads nap at most: `IFNET_NAP_US` (at most 10 ms), by
/// default 0: off. Measured on two CPUs (`bench/shmif.sh`'s paced driver
/// rows, `bench/ping.sh`), naps of [`NAP_MAX`] lost more frames on a busy
/// bus (64 B at 1.5 Mpps: 0.03-0.8 % against 0-0.19 %; 1514 B at 10
/// Gbit/s: 2-10 % against 0.6-2.7 %) and shortened no round trip.
pub fn nap_max() -> Duration {
    static NAP: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *NAP.get_or_init(|| {
        std::env::var("IFNET_NAP_US")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Duration::ZERO, |us| {
                Duration::from_micros(us).min(Duration::from_millis(10))
            })
    })
}

/// `struct futex_waitv`.
#[repr(C)]
#[derive(Clone, Copy)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

const FUTEX2_SIZE_U32: u32 = 0x02;
const FUTEX2_PRIVATE: u32 = 128;
/// Most words one `futex_waitv` takes.
const WAITV_MAX: usize = 128;

/// `futex_waitv` is missing (before Linux 5.16): no naps.
static NO_WAITV: AtomicBool = AtomicBool::new(false);

/// Sleep until one of `v`'s words differs from its value, a wake, or
/// `until`.
fn futex_waitv(v: &[FutexWaitv], until: Instant) {
    let d = until.saturating_duration_since(Instant::now());
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime into a local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let ns = ts.tv_nsec as u64 + u64::from(d.subsec_nanos());
    ts.tv_sec += d.as_secs() as libc::time_t + (ns / 1_000_000_000) as libc::time_t;
    ts.tv_nsec = (ns % 1_000_000_000) as libc::c_long;
    // SAFETY: `v` is a valid array of futex_waitv naming live, aligned
    // words; `ts` outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            v.as_ptr(),
            v.len() as libc::c_uint,
            0,
            &ts as *const libc::timespec,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        NO_WAITV.store(true, Relaxed);
    }
}

/// How long a thread spins at most: [`SPIN_MAX`], but on two CPUs none
/// for a thread that reads a shmif bus (`bus`); `IFNET_SPIN_US` sets it
/// for every thread (at most 10 ms), but never on one CPU. On two CPUs
/// the peer a bus reader waits for (another daemon on the bus) needs the
/// CPU a spinning thread holds: measured on a busy two-core machine,
/// spinning made round trips over a bus slower. The peers of the other
/// threads are the host's stack, which answers inside our write, and
/// processes that sleep while they wait (measured: vxlan round trips
/// 15-20 % shorter, throughput unchanged).
pub fn spin_max(bus: bool) -> Duration {
    static SPIN: std::sync::OnceLock<[Duration; 2]> = std::sync::OnceLock::new();
    SPIN.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let set = std::env::var("IFNET_SPIN_US").ok();
        [false, true].map(|bus| spin_for(cpus, set.as_deref(), bus))
    })[usize::from(bus)]
}

fn spin_for(cpus: usize, set: Option<&str>, bus: bool) -> Duration {
    match set.and_then(|v| v.trim().parse::<u64>().ok()) {
        _ if cpus < 2 => Duration::ZERO,
        Some(us) => Duration::from_micros(us).min(Duration::from_millis(10)),
        None if cpus < 3 && bus => Duration::ZERO,
        None => SPIN_MAX,
    }
}

/// The adaptive spin of one thread: on (at the maximum) after an event
/// came soon after the thread ran out of work, halved after each one that
/// came later and after each spin that found nothing, so a few turn it
/// off.
#[derive(Clone, Copy, Debug)]
struct Spin {
    max: Duration,
    now: Duration,
}

impl Spin {
    fn new(max: Duration) -> Spin {
        Spin {
            max,
            now: Duration::ZERO,
        }
    }

    /// An event (not a timer) came `gap` after the thread ran out of work.
    fn event_after(&mut self, gap: Duration) {
        if gap <= self.max {
            self.now = self.max;
        } else {
            self.missed();
        }
    }

    /// A spin found nothing (a timer's wakeup, say, followed by silence).
    fn missed(&mut self) {
        self.now /= 2;
        if self.now < Duration::from_micros(2) {
            self.now = Duration::ZERO;
        }
    }
}

/// Work a source leaves for the end of its thread's turn, after every
/// source has been polled: output batched across them (one system call
/// for the frames of a whole wakeup, not one a frame).
pub trait Deferred: Send + Sync {
    fn run(&self);
}

thread_local! {
    /// What this reactor thread runs at the end of its turn.
    static DEFERRED: std::cell::RefCell<Vec<Arc<dyn Deferred>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Have `d` run at the end of this reactor thread's turn, before it
/// sleeps; `false` (nothing queued) off a reactor thread, where the
/// caller does the work at once. The caller queues each piece of work
/// once (say, the first frame of a batch).
pub fn defer(d: Arc<dyn Deferred>) -> bool {
    if !on_reactor() {
        return false;
    }
    DEFERRED.with(|q| q.borrow_mut().push(d));
    true
}

/// Run the deferred work, including what it defers in turn.
fn run_deferred() {
    loop {
        let work = DEFERRED.with(|q| std::mem::take(&mut *q.borrow_mut()));
        if work.is_empty() {
            return;
        }
        for d in work {
            d.run();
        }
    }
}

const WAKE_KEY: u64 = 0;
const TIMER_KEY: u64 = 1;
const FIRST_KEY: u64 = 2;

thread_local! {
    static ON_REACTOR: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The address of this reactor thread's `Worker` (0: not one).
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// When the poll under way on this reactor thread began.
    static POLL_TIME: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// The time, to a poll's length: on a reactor thread, when the poll under
/// way began (no clock read per frame: a routing thread spent 2 % of its
/// time reading the clock for each packet's neighbour lookup); elsewhere,
/// now. For timeouts of a second or more, not for timing.
pub fn coarse_now() -> Instant {
    POLL_TIME.with(|t| t.get()).unwrap_or_else(Instant::now)
}

/// Whether the caller is a reactor thread: the data plane, which must
/// never wait (a driver drops a frame rather than wait for its medium).
pub fn on_reactor() -> bool {
    ON_REACTOR.with(|c| c.get())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler ends the daemon (panic policy); the data under
    // these locks stays consistent either way.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Source {
    key: u64,
    handler: Arc<dyn Handler>,
    fd: Option<RawFd>,
    /// Held while `poll` runs: what deregistration waits for.
    running: Mutex<()>,
    dead: AtomicBool,
    /// On the ready list, not yet polled: further wakes are free.
    woken: AtomicBool,
    /// Its descriptor's events may wait for the end of a nap.
    tolerant: AtomicBool,
}

/// A source and the futex word it is woken through.
type Nap = (Arc<Source>, Arc<dyn NapWord>);

/// One reactor thread's shared part.
struct Worker {
    epoll: Epoll,
    timer: OwnedFd,
    wake: EventFd,
    sources: Mutex<HashMap<u64, Arc<Source>>>,
    ready: Mutex<Vec<Arc<Source>>>,
    /// In (or about to enter) epoll_wait: a wake must write the eventfd.
    sleeping: AtomicBool,
    stop: AtomicBool,
    thread: Mutex<Option<ThreadId>>,
    /// Registrations placed here, for placement.
    load: AtomicUsize,
    /// Sources with a futex word to nap on, and a count of changes to it.
    naps: Mutex<Vec<Nap>>,
    naps_gen: AtomicU64,
    /// Napping (or about to): a wake must bump and wake `nap_word`.
    napping: AtomicBool,
    nap_word: AtomicU32,
    /// Sources with a descriptor whose events must not wait for a nap.
    strict: AtomicUsize,
    /// The longest nap (0: none).
    nap: Duration,
}

impl Worker {
    fn new(nap: Duration) -> io::Result<Worker> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        // SAFETY: plain syscall; the descriptor is checked and owned at once.
        let t = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if t < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `t` is a fresh descriptor nobody else owns.
        let timer = unsafe { OwnedFd::from_raw_fd(t) };
        let wake =
            EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        epoll.add(&timer, EpollEvent::new(EpollFlags::EPOLLIN, TIMER_KEY))?;
        epoll.add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKE_KEY))?;
        Ok(Worker {
            epoll,
            timer,
            wake,
            sources: Mutex::new(HashMap::new()),
            ready: Mutex::new(Vec::new()),
            sleeping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
            load: AtomicUsize::new(0),
            naps: Mutex::new(Vec::new()),
            naps_gen: AtomicU64::new(0),
            napping: AtomicBool::new(false),
            nap_word: AtomicU32::new(0),
            strict: AtomicUsize::new(0),
            nap,
        })
    }

    fn is_current(&self) -> bool {
        *lock(&self.thread) == Some(std::thread::current().id())
    }

    fn kick(&self) {
        if self.sleeping.load(SeqCst) {
            // Only fails when the counter would overflow: it is nonzero then.
            let _ = self.wake.write(1);
        } else if self.napping.load(SeqCst) {
            self.nap_word.fetch_add(1, SeqCst);
            // SAFETY: a valid, aligned word of ours.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.nap_word.as_ptr(),
                    libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                    1,
                    std::ptr::null::<libc::timespec>(),
                );
            }
        }
    }

    /// Put `s` on the ready list (from this thread: no kick).
    fn make_ready(&self, s: &Arc<Source>) {
        if !s.woken.swap(true, SeqCst) {
            lock(&self.ready).push(s.clone());
        }
    }

    /// The sources to nap on, refreshed in `words` when they changed.
    fn nap_words(&self, words: &mut (u64, Vec<Nap>)) {
        let g = self.naps_gen.load(SeqCst);
        if g != words.0 {
            let naps = lock(&self.naps);
            words.1.clone_from(&naps);
            words.0 = self.naps_gen.load(SeqCst);
        }
    }

    /// Like [`Worker::spin`], sleeping instead: on the futex words of
    /// `words` (and our own, which [`Worker::kick`] wakes) until one moves
    /// or `until`. A source whose word moved is put on the ready list.
    fn nap(
        &self,
        words: &[Nap],
        v: &mut Vec<FutexWaitv>,
        events: &mut [EpollEvent],
        until: Instant,
    ) -> nix::Result<usize> {
        loop {
            let n = self.epoll.wait(events, EpollTimeout::ZERO)?;
            if n > 0 || !lock(&self.ready).is_empty() || self.stop.load(Relaxed) {
                return Ok(n);
            }
            let now = Instant::now();
            if now >= until {
                return Ok(0);
            }
            // Counted first, then the values: a writer that bumps a word
            // after we read it sees us counted, and wakes us.
            self.napping.store(true, SeqCst);
            for (_, w) in words {
                w.waiters().fetch_add(1, SeqCst);
            }
            v.clear();
            v.push(FutexWaitv {
                val: u64::from(self.nap_word.load(SeqCst)),
                uaddr: self.nap_word.as_ptr() as u64,
                flags: FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
                reserved: 0,
            });
            v.extend(words.iter().map(|(_, w)| FutexWaitv {
                val: u64::from(w.word().load(SeqCst)),
                uaddr: w.word().as_ptr() as u64,
                flags: FUTEX2_SIZE_U32,
                reserved: 0,
            }));
            if lock(&self.ready).is_empty() && !self.stop.load(SeqCst) {
                futex_waitv(v, until);
            }
            self.napping.store(false, SeqCst);
            let mut moved = false;
            for ((s, w), seen) in words.iter().zip(&v[1..]) {
                if u64::from(w.word().load(SeqCst)) != seen.val {
                    self.make_ready(s);
                    moved = true;
                }
            }
            if moved || NO_WAITV.load(Relaxed) || Instant::now() >= until {
                return Ok(0);
            }
        }
    }

    /// Arm the timer for `at` (relative, from now), or disarm it.
    fn arm(&self, at: Option<Instant>) {
        let it_value = match at {
            None => libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            Some(at) => {
                // Zero would disarm: at least a nanosecond.
                let d = at
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_nanos(1));
                libc::timespec {
                    tv_sec: d.as_secs() as libc::time_t,
                    tv_nsec: d.subsec_nanos() as libc::c_long,
                }
            }
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value,
        };
        // SAFETY: a valid timerfd and a valid itimerspec on the stack.
        unsafe { libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    }

    /// Look for events without sleeping until `until`, giving the CPU to
    /// whoever else wants it between looks (on a busy machine that is
    /// often the peer we wait for).
    fn spin(&self, events: &mut [EpollEvent], until: Instant) -> nix::Result<usize> {
        loop {
            let n = self.epoll.wait(events, EpollTimeout::ZERO)?;
            if n > 0 || !lock(&self.ready).is_empty() || self.stop.load(Relaxed) {
                return Ok(n);
            }
            if Instant::now() >= until {
                return Ok(0);
            }
            std::thread::yield_now();
        }
    }

    fn run(&self) {
        let mut events = vec![EpollEvent::empty(); 64];
        // Deadlines: a heap with lazy deletion, checked against `due`.
        let mut heap: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
        let mut due: Deadlines = HashMap::new();
        let mut armed: Option<Instant> = None;
        let mut batch: Vec<Arc<Source>> = Vec::new();
        let mut spin = Spin::new(spin_max(false));
        let mut nap = Spin::new(self.nap);
        let mut words = (0u64, Vec::new());
        let mut waitv = Vec::new();
        while !self.stop.load(SeqCst) {
            while let Some(Reverse((t, k))) = heap.peek().copied() {
                if due
                    .get(&k)
                    .is_some_and(|(d, s)| *d == t && !s.dead.load(Relaxed))
                {
                    break;
                }
                heap.pop();
            }
            let next = heap.peek().map(|Reverse((t, _))| *t);
            // Already due (a handler with more work): no timer round trip.
            let due_now = next.is_some_and(|t| t <= Instant::now());
            if next != armed && !due_now {
                self.arm(next);
                armed = next;
            }
            self.nap_words(&mut words);
            spin.max = spin_max(!words.1.is_empty());
            spin.now = spin.now.min(spin.max);
            let napping = !nap.max.is_zero()
                && !words.1.is_empty()
                && self.strict.load(Relaxed) == 0
                && words.1.len() < WAITV_MAX
                && !NO_WAITV.load(Relaxed);
            let spin = if napping { &mut nap } else { &mut spin };
            if spin.max.is_zero() {
                // No spin: sleep at once, nothing measured.
                self.sleeping.store(true, SeqCst);
                let timeout = if due_now || !lock(&self.ready).is_empty() {
                    EpollTimeout::ZERO
                } else {
                    EpollTimeout::NONE
                };
                let n = self.epoll.wait(&mut events, timeout);
                self.sleeping.store(false, SeqCst);
                if !self.turn(n, &events, &mut armed, &mut heap, &mut due, &mut batch) {
                    return;
                }
                continue;
            }
            let busy = due_now || !lock(&self.ready).is_empty();
            let idle_since = Instant::now();
            // Spin first, no later than the next deadline.
            let mut n = if busy || spin.now.is_zero() {
                Ok(0)
            } else {
                let until = next.map_or(idle_since + spin.now, |t| t.min(idle_since + spin.now));
                let n = if napping {
                    self.nap(&words.1, &mut waitv, &mut events, until)
                } else {
                    self.spin(&mut events, until)
                };
                if matches!(n, Ok(0)) && lock(&self.ready).is_empty() {
                    spin.missed();
                }
                n
            };
            if matches!(n, Ok(0)) {
                self.sleeping.store(true, SeqCst);
                let timeout = if busy || !lock(&self.ready).is_empty() {
                    EpollTimeout::ZERO
                } else {
                    EpollTimeout::NONE
                };
                n = self.epoll.wait(&mut events, timeout);
                self.sleeping.store(false, SeqCst);
            }
            if !busy
                && let Ok(k) = n
                && (events[..k].iter().any(|e| e.data() != TIMER_KEY)
                    || !lock(&self.ready).is_empty())
            {
                spin.event_after(idle_since.elapsed());
            }
            if !self.turn(n, &events, &mut armed, &mut heap, &mut due, &mut batch) {
                return;
            }
        }
    }

    /// The work of one turn after the wait: the events, the woken
    /// sources, the deadlines passed. `false`: the epoll failed.
    fn turn(
        &self,
        n: nix::Result<usize>,
        events: &[EpollEvent],
        armed: &mut Option<Instant>,
        heap: &mut BinaryHeap<Reverse<(Instant, u64)>>,
        due: &mut Deadlines,
        batch: &mut Vec<Arc<Source>>,
    ) -> bool {
        let n = match n {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => {
                crate::log::warn(&format!("reactor: epoll_wait: {e}"));
                return false;
            }
        };
        for ev in &events[..n] {
            match ev.data() {
                WAKE_KEY => {
                    let _ = self.wake.read();
                }
                TIMER_KEY => {
                    let mut b = [0u8; 8];
                    let _ = nix::unistd::read(&self.timer, &mut b);
                    *armed = None;
                }
                k => {
                    let s = lock(&self.sources).get(&k).cloned();
                    if let Some(s) = s {
                        poll(&s, heap, due);
                    }
                }
            }
        }
        std::mem::swap(batch, &mut lock(&self.ready));
        for s in batch.drain(..) {
            s.woken.store(false, SeqCst);
            poll(&s, heap, due);
        }
        let now = Instant::now();
        while let Some(Reverse((t, k))) = heap.peek().copied() {
            if t > now {
                break;
            }
            heap.pop();
            let s = match due.get(&k) {
                Some((d, s)) if *d == t => s.clone(),
                _ => continue,
            };
            due.remove(&k);
            poll(&s, heap, due);
        }
        run_deferred();
        true
    }
}

type Deadlines = HashMap<u64, (Instant, Arc<Source>)>;

/// Poll a source and note the deadline it asks for.
fn poll(s: &Arc<Source>, heap: &mut BinaryHeap<Reverse<(Instant, u64)>>, due: &mut Deadlines) {
    if let Some(next) = poll_source(s) {
        due.insert(s.key, (next, s.clone()));
        heap.push(Reverse((next, s.key)));
    } else {
        due.remove(&s.key);
    }
}

/// Poll one source unless it was deregistered; `None` then.
fn poll_source(s: &Source) -> Option<Instant> {
    if s.dead.load(SeqCst) {
        return None;
    }
    let _running = lock(&s.running);
    if s.dead.load(SeqCst) {
        return None;
    }
    let now = Instant::now();
    POLL_TIME.with(|t| t.set(Some(now)));
    let next = s.handler.poll(now);
    POLL_TIME.with(|t| t.set(None));
    next
}

/// The pool of reactor threads of one kernel.
pub struct Reactor {
    workers: Vec<Arc<Worker>>,
    joins: Mutex<Vec<JoinHandle<()>>>,
    /// Group → (thread, registrations in it).
    groups: Mutex<HashMap<u64, (usize, usize)>>,
    next_key: AtomicU64,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reactor({} threads)", self.workers.len())
    }
}

/// Threads of a reactor made with `Reactor::new(0)`: one per CPU, or
/// `IFNET_REACTOR_THREADS`.
pub fn default_threads() -> usize {
    std::env::var("IFNET_REACTOR_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl Reactor {
    /// Start `threads` reactor threads (0: [`default_threads`]) that nap
    /// as [`nap_max`] says.
    pub fn new(threads: usize) -> io::Result<Arc<Reactor>> {
        Reactor::with_nap(threads, nap_max())
    }

    /// [`Reactor::new`] with naps of up to `nap` (0: none).
    pub fn with_nap(threads: usize, nap: Duration) -> io::Result<Arc<Reactor>> {
        let n = if threads == 0 {
            default_threads()
        } else {
            threads
        };
        let workers = (0..n)
            .map(|_| Worker::new(nap).map(Arc::new))
            .collect::<io::Result<Vec<_>>>()?;
        let r = Arc::new(Reactor {
            workers,
            joins: Mutex::new(Vec::new()),
            groups: Mutex::new(HashMap::new()),
            next_key: AtomicU64::new(FIRST_KEY),
        });
        for (i, w) in r.workers.iter().enumerate() {
            let w2 = w.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            let h = std::thread::Builder::new()
                .name(format!("reactor-{i}"))
                .spawn(move || {
                    *lock(&w2.thread) = Some(std::thread::current().id());
                    ON_REACTOR.with(|c| c.set(true));
                    WORKER.with(|c| c.set(Arc::as_ptr(&w2) as usize));
                    let _ = tx.send(());
                    w2.run()
                })?;
            // Known before any registration, so drops from it never wait.
            let _ = rx.recv();
            lock(&r.joins).push(h);
        }
        Ok(r)
    }

    /// How many threads the pool has.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    fn least_loaded(&self) -> usize {
        (0..self.workers.len())
            .min_by_key(|&i| self.workers[i].load.load(Relaxed))
            .unwrap_or(0)
    }

    /// Attach a handler (with an fd to watch, or none for a pure
    /// timer/wakeup source) to the least loaded thread. The fd must stay
    /// open until the registration is dropped.
    pub fn register(
        self: &Arc<Self>,
        fd: Option<BorrowedFd<'_>>,
        h: Arc<dyn Handler>,
    ) -> io::Result<Registration> {
        self.add(self.least_loaded(), None, fd, h)
    }

    /// `register` on the thread of `group` (e.g. the ifindex of a bridge
    /// for its members, of the interface itself otherwise): sources of one
    /// group share a thread; a new group goes to the least loaded one.
    pub fn register_in(
        self: &Arc<Self>,
        group: u64,
        fd: Option<BorrowedFd<'_>>,
        h: Arc<dyn Handler>,
    ) -> io::Result<Registration> {
        let worker = {
            let mut g = lock(&self.groups);
            let least = self.least_loaded();
            let e = g.entry(group).or_insert((least, 0));
            e.1 += 1;
            e.0
        };
        let r = self.add(worker, Some(group), fd, h);
        if r.is_err() {
            self.leave(group);
        }
        r
    }

    /// `register` on thread `worker` (modulo the pool size).
    pub fn register_on(
        self: &Arc<Self>,
        worker: usize,
        fd: Option<BorrowedFd<'_>>,
        h: Arc<dyn Handler>,
    ) -> io::Result<Registration> {
        self.add(worker % self.workers.len(), None, fd, h)
    }

    fn leave(&self, group: u64) {
        let mut g = lock(&self.groups);
        if let Some(e) = g.get_mut(&group) {
            e.1 -= 1;
            if e.1 == 0 {
                g.remove(&group);
            }
        }
    }

    fn add(
        self: &Arc<Self>,
        worker: usize,
        group: Option<u64>,
        fd: Option<BorrowedFd<'_>>,
        h: Arc<dyn Handler>,
    ) -> io::Result<Registration> {
        let w = self.workers[worker].clone();
        let key = self.next_key.fetch_add(1, Relaxed);
        let src = Arc::new(Source {
            key,
            handler: h,
            fd: fd.map(|f| f.as_raw_fd()),
            running: Mutex::new(()),
            dead: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            tolerant: AtomicBool::new(false),
        });
        lock(&w.sources).insert(key, src.clone());
        if let Some(fd) = fd
            && let Err(e) = w.epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, key))
        {
            lock(&w.sources).remove(&key);
            return Err(e.into());
        }
        w.load.fetch_add(1, Relaxed);
        if fd.is_some() {
            w.strict.fetch_add(1, SeqCst);
        }
        Ok(Registration {
            reactor: self.clone(),
            worker,
            group,
            source: src,
        })
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        for w in &self.workers {
            w.stop.store(true, SeqCst);
            let _ = w.wake.write(1);
        }
        for h in lock(&self.joins).drain(..) {
            // The last reference may go on a reactor thread itself.
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

/// A handler attached to a reactor thread; dropping it deregisters.
pub struct Registration {
    reactor: Arc<Reactor>,
    worker: usize,
    group: Option<u64>,
    source: Arc<Source>,
}

impl Registration {
    /// Have `poll` called soon on the owning thread (from any thread,
    /// cheap, coalesced).
    pub fn wake(&self) {
        let s = &self.source;
        if s.woken.swap(true, SeqCst) {
            return;
        }
        let w = &self.reactor.workers[self.worker];
        lock(&w.ready).push(s.clone());
        w.kick();
    }

    /// Whether the caller is the thread that polls it.
    pub fn is_current(&self) -> bool {
        let w = Arc::as_ptr(&self.reactor.workers[self.worker]) as usize;
        WORKER.with(|c| c.get()) == w
    }

    /// The index of the thread polling it.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Let the thread nap (see [`NapWord`]) although this source has a
    /// descriptor: its events may wait until a nap ends (at most
    /// [`nap_max`]). By default a thread with a descriptor that has not
    /// said so never naps.
    pub fn tolerate_naps(&self) {
        if self.source.fd.is_some() && !self.source.tolerant.swap(true, SeqCst) {
            self.reactor.workers[self.worker]
                .strict
                .fetch_sub(1, SeqCst);
        }
    }

    /// Nap on `word` (see [`NapWord`]): when another process moves it
    /// while the thread naps, the source is polled. None: no more.
    pub fn set_nap(&self, word: Option<Arc<dyn NapWord>>) {
        let w = &self.reactor.workers[self.worker];
        let mut naps = lock(&w.naps);
        naps.retain(|(s, _)| !Arc::ptr_eq(s, &self.source));
        if let Some(word) = word {
            naps.push((self.source.clone(), word));
        }
        w.naps_gen.fetch_add(1, SeqCst);
    }

    /// Also poll when the fd is writable (a socket with output queued), or
    /// stop doing so.
    pub fn set_writable(&self, on: bool) -> io::Result<()> {
        let Some(fd) = self.source.fd else {
            return Ok(());
        };
        let mut flags = EpollFlags::EPOLLIN;
        if on {
            flags |= EpollFlags::EPOLLOUT;
        }
        // SAFETY: the owner keeps the fd open while registered.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut ev = EpollEvent::new(flags, self.source.key);
        self.reactor.workers[self.worker]
            .epoll
            .modify(fd, &mut ev)
            .map_err(io::Error::from)
    }
}

impl Drop for Registration {
    /// Returns once `poll` is not running and will never run again, unless
    /// called from the owning thread (inside a poll), which never waits.
    fn drop(&mut self) {
        let s = &self.source;
        let w = &self.reactor.workers[self.worker];
        s.dead.store(true, SeqCst);
        if let Some(fd) = s.fd {
            // SAFETY: the owner keeps the fd open while registered.
            let _ = w.epoll.delete(unsafe { BorrowedFd::borrow_raw(fd) });
        }
        lock(&w.sources).remove(&s.key);
        if s.fd.is_some() && !s.tolerant.swap(true, SeqCst) {
            w.strict.fetch_sub(1, SeqCst);
        }
        {
            let mut naps = lock(&w.naps);
            let len = naps.len();
            naps.retain(|(n, _)| !Arc::ptr_eq(n, s));
            if naps.len() != len {
                w.naps_gen.fetch_add(1, SeqCst);
            }
        }
        w.load.fetch_sub(1, Relaxed);
        if let Some(g) = self.group {
            self.reactor.leave(g);
        }
        if !w.is_current() {
            drop(lock(&s.running));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::sync::mpsc::{Sender, channel};

    struct Count(AtomicU32, Mutex<Sender<u32>>, Option<Duration>);
    impl Handler for Count {
        fn poll(&self, now: Instant) -> Option<Instant> {
            let n = self.0.fetch_add(1, SeqCst) + 1;
            let _ = lock(&self.1).send(n);
            self.2.filter(|_| n < 5).map(|d| now + d)
        }
    }

    #[test]
    fn wakes_and_timers() {
        let r = Reactor::new(2).unwrap();
        assert_eq!(r.threads(), 2);
        let (tx, rx) = channel();
        let h = Arc::new(Count(
            AtomicU32::new(0),
            Mutex::new(tx),
            Some(Duration::from_millis(1)),
        ));
        let reg = r.register(None, h.clone()).unwrap();
        reg.wake();
        // The first poll asks for four more, by timer.
        for i in 1..=5 {
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(i));
        }
        drop(reg);
        assert!(rx.recv_timeout(Duration::from_millis(20)).is_err());
    }

    /// Sends whether `coarse_now` is the time its poll was given.
    struct PollTime(Mutex<Sender<bool>>);
    impl Handler for PollTime {
        fn poll(&self, now: Instant) -> Option<Instant> {
            std::thread::sleep(Duration::from_millis(2));
            let _ = lock(&self.0).send(coarse_now() == now);
            None
        }
    }

    #[test]
    fn coarse_now_is_the_polls_time_on_a_reactor_thread() {
        let r = Reactor::new(1).unwrap();
        let (tx, rx) = channel();
        let reg = r
            .register(None, Arc::new(PollTime(Mutex::new(tx))))
            .unwrap();
        reg.wake();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(true));
        // Elsewhere it reads the clock.
        let t = Instant::now();
        assert!(coarse_now() >= t);
    }

    #[test]
    fn readable_fd_is_polled_and_groups_share_a_thread() {
        let r = Reactor::new(2).unwrap();
        let ev = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK).unwrap();
        let (tx, rx) = channel();
        let h = Arc::new(Count(AtomicU32::new(0), Mutex::new(tx), None));
        let a = r.register_in(7, Some(ev.as_fd()), h.clone()).unwrap();
        let (tx2, _rx2) = channel();
        let b = r
            .register_in(
                7,
                None,
                Arc::new(Count(AtomicU32::new(0), Mutex::new(tx2), None)),
            )
            .unwrap();
        assert_eq!(a.worker(), b.worker());
        let (tx3, _rx3) = channel();
        let c = r
            .register_in(
                8,
                None,
                Arc::new(Count(AtomicU32::new(0), Mutex::new(tx3), None)),
            )
            .unwrap();
        assert_ne!(a.worker(), c.worker());
        ev.write(1).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(1));
        // Level-triggered: polled until read. After the drop, never again.
        let _ = ev.read();
        drop(a);
        while rx.try_recv().is_ok() {}
        ev.write(1).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(20)).is_err());
    }

    /// Interfaces in no bridge (the ones the kernel routes between) share
    /// one group, whatever their indexes; a bridge's members its own.
    #[test]
    fn unbridged_interfaces_share_the_routing_group() {
        assert_eq!(io_group(None), ROUTE_GROUP);
        assert_eq!(io_group(Some(3)), 3);
        assert!(u64::from(u32::MAX) < ROUTE_GROUP);
        let r = Reactor::new(2).unwrap();
        let reg = |group: u64| {
            let (tx, _) = channel();
            let h = Arc::new(Count(AtomicU32::new(0), Mutex::new(tx), None));
            r.register_in(group, None, h).unwrap()
        };
        let (virt0, bridge, virt1) = (
            reg(io_group(None)),
            reg(io_group(Some(5))),
            reg(io_group(None)),
        );
        assert_eq!(virt0.worker(), virt1.worker());
        assert_ne!(virt0.worker(), bridge.worker());
    }

    /// The spin turns on when events follow work closely, and off after a
    /// few that come late (an idle daemon's timers never turn it on).
    #[test]
    fn spin_adapts() {
        let max = Duration::from_micros(200);
        let mut s = Spin::new(max);
        assert!(s.now.is_zero());
        s.event_after(Duration::from_millis(10));
        assert!(s.now.is_zero());
        s.event_after(Duration::from_micros(50));
        assert_eq!(s.now, max);
        let mut late = 0;
        while !s.now.is_zero() {
            s.event_after(Duration::from_millis(10));
            late += 1;
        }
        assert!((2..=8).contains(&late), "{late} late events");
        s.event_after(Duration::ZERO);
        let mut missed = 0;
        while !s.now.is_zero() {
            s.missed();
            missed += 1;
        }
        assert!((2..=8).contains(&missed), "{missed} missed spins");
        assert!(Spin::new(Duration::ZERO).now.is_zero());
        assert_eq!(spin_for(1, Some("200"), false), Duration::ZERO);
        assert_eq!(spin_for(1, None, false), Duration::ZERO);
        assert_eq!(spin_for(2, None, true), Duration::ZERO);
        assert_eq!(spin_for(2, None, false), SPIN_MAX);
        assert_eq!(spin_for(2, Some("50"), true), Duration::from_micros(50));
        assert_eq!(spin_for(8, None, true), SPIN_MAX);
        assert_eq!(spin_for(8, Some("0"), false), Duration::ZERO);
        assert_eq!(spin_for(8, Some("x"), true), SPIN_MAX);
    }

    /// Work deferred by a poll runs on the same thread once the turn's
    /// polls are done; off a reactor thread nothing is deferred.
    struct Later(Mutex<Sender<&'static str>>);
    impl Deferred for Later {
        fn run(&self) {
            let _ = lock(&self.0).send("deferred");
        }
    }
    struct Defers(Arc<Later>, Mutex<Sender<&'static str>>);
    impl Handler for Defers {
        fn poll(&self, _now: Instant) -> Option<Instant> {
            assert!(defer(self.0.clone()));
            let _ = lock(&self.1).send("polled");
            None
        }
    }

    #[test]
    fn deferred_work_runs_after_the_polls() {
        let r = Reactor::new(1).unwrap();
        let (tx, rx) = channel();
        let later = Arc::new(Later(Mutex::new(tx.clone())));
        assert!(!defer(later.clone()));
        let reg = r
            .register(None, Arc::new(Defers(later, Mutex::new(tx))))
            .unwrap();
        reg.wake();
        let got: Vec<_> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        assert_eq!(got, ["polled", "deferred"]);
        assert!(rx.recv_timeout(Duration::from_millis(20)).is_err());
    }

    /// A word as another process would have it: bumped, then woken when
    /// someone counted itself.
    struct Word(AtomicU32, AtomicU32);
    impl NapWord for Word {
        fn word(&self) -> &AtomicU32 {
            &self.0
        }
        fn waiters(&self) -> &AtomicU32 {
            &self.1
        }
    }
    impl Word {
        fn bump(&self) {
            self.0.fetch_add(1, SeqCst);
            if self.1.swap(0, SeqCst) != 0 {
                // SAFETY: a valid, aligned word.
                unsafe {
                    libc::syscall(
                        libc::SYS_futex,
                        self.0.as_ptr(),
                        libc::FUTEX_WAKE,
                        i32::MAX,
                        std::ptr::null::<libc::timespec>(),
                    )
                };
            }
        }
    }

    /// A thread that has just worked naps on its sources' words: a bump
    /// of the word alone (no wake, no descriptor) gets the source polled
    /// while it naps. A descriptor that does not tolerate naps stops them.
    #[test]
    fn naps_on_futex_words() {
        let r = Reactor::with_nap(1, NAP_MAX).unwrap();
        let (tx, rx) = channel();
        let h = Arc::new(Count(AtomicU32::new(0), Mutex::new(tx), None));
        let reg = r.register(None, h.clone()).unwrap();
        let word = Arc::new(Word(AtomicU32::new(0), AtomicU32::new(0)));
        reg.set_nap(Some(word.clone()));
        // Events in quick succession turn the nap on; then a bump soon
        // after a poll is seen through the word.
        // Whether one of `tries` bumps got the source polled.
        let by_word = |word: &Word, tries: u32| {
            for _ in 0..tries {
                for _ in 0..2 {
                    reg.wake();
                    rx.recv_timeout(Duration::from_secs(5)).unwrap();
                }
                std::thread::sleep(Duration::from_micros(20));
                word.bump();
                if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                    return true;
                }
            }
            false
        };
        assert!(by_word(&word, 200), "never polled through the word");
        // A strict descriptor on the thread: no naps, the word is not seen.
        let ev = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK).unwrap();
        let (tx2, _rx2) = channel();
        let strict = r
            .register_on(
                0,
                Some(ev.as_fd()),
                Arc::new(Count(AtomicU32::new(0), Mutex::new(tx2), None)),
            )
            .unwrap();
        assert!(!by_word(&word, 20), "napped with a strict descriptor");
        strict.tolerate_naps();
        assert!(by_word(&word, 200), "a tolerant descriptor stopped naps");
        drop(strict);
        reg.set_nap(None);
        assert!(!by_word(&word, 20), "napped on a word taken away");
    }

    /// Dropping its own registration inside poll must not wait for itself.
    struct SelfDrop(Mutex<Option<Registration>>, Mutex<Sender<()>>);
    impl Handler for SelfDrop {
        fn poll(&self, _now: Instant) -> Option<Instant> {
            drop(lock(&self.0).take());
            let _ = lock(&self.1).send(());
            None
        }
    }

    #[test]
    fn drop_inside_poll() {
        let r = Reactor::new(1).unwrap();
        let (tx, rx) = channel();
        let h = Arc::new(SelfDrop(Mutex::new(None), Mutex::new(tx)));
        let reg = r.register(None, h.clone()).unwrap();
        let mut slot = lock(&h.0);
        slot.insert(reg).wake();
        drop(slot);
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
    }
}
