//! Until the reactor: one thread that polls the IP presence of every
//! interface of a kernel. Each host registers as a [`Handler`]; the thread
//! keeps every host's next deadline and sleeps until the earliest, or until
//! a host asks to be polled ([`Registration::wake`]). The API is the
//! reactor's (`register`, `wake`, `Handler::poll`), so hosts move to it by
//! swapping this type.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::Instant;

/// Something polled with the time passed in; returns when it next wants
/// to be polled (`None`: only when woken).
pub trait Handler: Send + Sync + 'static {
    fn poll(&self, now: Instant) -> Option<Instant>;
}

struct Entry {
    handler: Arc<dyn Handler>,
    deadline: Option<Instant>,
    woken: bool,
}

#[derive(Default)]
struct Table {
    entries: HashMap<u64, Entry>,
    next_id: u64,
    /// The handler being polled right now, without the lock.
    busy: Option<u64>,
    stop: bool,
}

struct Shared {
    table: Mutex<Table>,
    /// Signals the thread: a wake, a new handler, or stop.
    work: Condvar,
    /// Signals a deregistration waiting for a poll to end.
    idle: Condvar,
    thread: OnceLock<ThreadId>,
}

fn lock(s: &Shared) -> MutexGuard<'_, Table> {
    s.table.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The polling thread of a kernel's hosts.
pub struct Driver {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Driver {
    /// Start the thread. Call it from the daemon's main thread, so that
    /// the thread runs with the daemon's credentials.
    pub fn start() -> std::io::Result<Driver> {
        let shared = Arc::new(Shared {
            table: Mutex::new(Table::default()),
            work: Condvar::new(),
            idle: Condvar::new(),
            thread: OnceLock::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ifnet-inet".into())
            .spawn(move || run(&s))?;
        let _ = shared.thread.set(thread.thread().id());
        Ok(Driver {
            shared,
            thread: Some(thread),
        })
    }

    /// Poll `h` from now on, first as soon as possible.
    pub fn register(&self, h: Arc<dyn Handler>) -> std::io::Result<Registration> {
        let mut t = lock(&self.shared);
        let id = t.next_id;
        t.next_id += 1;
        t.entries.insert(
            id,
            Entry {
                handler: h,
                deadline: None,
                woken: true,
            },
        );
        drop(t);
        self.shared.work.notify_one();
        Ok(Registration {
            id,
            shared: self.shared.clone(),
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.work.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A handler's place in the driver; dropping it stops the polls, and
/// returns once a poll in progress has ended.
pub struct Registration {
    id: u64,
    shared: Arc<Shared>,
}

impl Registration {
    /// Ask for a poll as soon as possible.
    pub fn wake(&self) {
        let mut t = lock(&self.shared);
        if let Some(e) = t.entries.get_mut(&self.id)
            && !e.woken
        {
            e.woken = true;
            drop(t);
            self.shared.work.notify_one();
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut t = lock(&self.shared);
        t.entries.remove(&self.id);
        // On the driver's own thread the poll in progress is this one's caller.
        if self.shared.thread.get() == Some(&std::thread::current().id()) {
            return;
        }
        while t.busy == Some(self.id) {
            t = self
                .shared
                .idle
                .wait(t)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

fn run(s: &Shared) {
    let mut due: Vec<u64> = Vec::new();
    let mut t = lock(s);
    loop {
        if t.stop {
            return;
        }
        let now = Instant::now();
        // Every handler due now gets one poll before any gets a second.
        for (&id, e) in t.entries.iter_mut() {
            if e.woken || e.deadline.is_some_and(|d| d <= now) {
                e.woken = false;
                e.deadline = None;
                due.push(id);
            }
        }
        if due.is_empty() {
            let next = t.entries.values().filter_map(|e| e.deadline).min();
            t = match next {
                Some(d) => {
                    let wait = d.saturating_duration_since(now);
                    s.work
                        .wait_timeout(t, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => s.work.wait(t).unwrap_or_else(PoisonError::into_inner),
            };
            continue;
        }
        for id in due.drain(..) {
            // Not held between polls: once deregistered, it is let go.
            let Some(h) = t.entries.get(&id).map(|e| e.handler.clone()) else {
                continue;
            };
            t.busy = Some(id);
            drop(t);
            let next = h.poll(now);
            drop(h);
            t = lock(s);
            t.busy = None;
            if let Some(e) = t.entries.get_mut(&id) {
                e.deadline = next;
            }
            s.idle.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    use std::sync::mpsc::{SyncSender, sync_channel};
    use std::time::Duration;

    struct Counter {
        polls: AtomicU32,
        told: Mutex<SyncSender<u32>>,
        every: Option<Duration>,
    }

    impl Handler for Counter {
        fn poll(&self, now: Instant) -> Option<Instant> {
            let n = self.polls.fetch_add(1, Relaxed) + 1;
            let _ = self.told.lock().unwrap().try_send(n);
            self.every.map(|d| now + d)
        }
    }

    fn counter(every: Option<Duration>) -> (Arc<Counter>, std::sync::mpsc::Receiver<u32>) {
        let (tx, rx) = sync_channel(64);
        let c = Arc::new(Counter {
            polls: AtomicU32::new(0),
            told: Mutex::new(tx),
            every,
        });
        (c, rx)
    }

    #[test]
    fn polls_at_registration_on_wake_and_at_deadlines() {
        let d = Driver::start().unwrap();
        let (idle, idle_rx) = counter(None);
        let (ticking, tick_rx) = counter(Some(Duration::from_millis(1)));
        let r1 = d.register(idle.clone()).unwrap();
        let _r2 = d.register(ticking.clone()).unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(idle_rx.recv_timeout(t), Ok(1), "polled once registered");
        for n in 1..=3 {
            assert_eq!(tick_rx.recv_timeout(t), Ok(n), "polled at its deadline");
        }
        r1.wake();
        assert_eq!(idle_rx.recv_timeout(t), Ok(2), "polled when woken");
        drop(r1);
        assert_eq!(Arc::strong_count(&idle), 1, "the driver let go of it");
    }
}
