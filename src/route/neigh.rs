//! Next-hop resolution for the forwarding path: the link addresses of the
//! neighbours packets are forwarded to, learned from ARP and neighbour
//! advertisements, and a bounded queue of packets per neighbour being
//! resolved (NetBSD's la_hold; nd_mmaxtries solicitations a second apart,
//! then the held packets get a host unreachable).

use crate::ioctl::Mac;
use crate::offload::Offload;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Solicitations before a neighbour is given up (nd_mmaxtries).
const MAX_TRIES: u8 = 3;
/// Between solicitations (nd_retrans).
const RETRANS: Duration = Duration::from_secs(1);
/// A resolved entry lives this long (arpt_keep, 20 minutes).
const KEEP: Duration = Duration::from_secs(1200);
/// Packets held per neighbour being resolved, and neighbours at most.
const HOLD: usize = 16;
const MAX_ENTRIES: usize = 4096;
/// Bytes held for all neighbours together: a flood towards addresses
/// that never answer holds this much at most.
const MAX_HELD_BYTES: usize = 4 << 20;

/// A packet waiting for its next hop: the frame as it arrived, and the
/// interface it arrived on (for the error if resolution fails).
#[derive(Debug)]
pub struct Held {
    pub from: u32,
    pub bytes: Vec<u8>,
    pub off: Offload,
    /// The host's own: sent as it is, its TTL kept.
    pub local: bool,
}

enum Entry {
    Known {
        mac: Mac,
        at: Instant,
    },
    Waiting {
        tries: u8,
        next: Instant,
        held: VecDeque<Held>,
    },
}

#[derive(Default)]
pub struct Neighbors {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<(u32, IpAddr), Entry>,
    /// The bytes of every held packet.
    held_bytes: usize,
}

/// What the timer found due.
#[derive(Default)]
pub struct Due {
    /// Solicit these again: (interface, neighbour).
    pub resend: Vec<(u32, IpAddr)>,
    /// Given up: their held packets, for the unreachables.
    pub failed: Vec<Held>,
    pub next: Option<Instant>,
}

impl Neighbors {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The link address of `ip` on interface `ifindex`, if resolved.
    pub fn lookup(&self, ifindex: u32, ip: IpAddr, now: Instant) -> Option<Mac> {
        match self.inner().map.get(&(ifindex, ip)) {
            Some(Entry::Known { mac, at }) if now.saturating_duration_since(*at) < KEEP => {
                Some(*mac)
            }
            _ => None,
        }
    }

    /// Hold a packet for `ip`; true when a solicitation should go now (a
    /// new resolution). A full queue drops the oldest (as la_hold keeps
    /// the newest); false with `h` back when no entry can be made.
    pub fn hold(&self, ifindex: u32, ip: IpAddr, h: Held, now: Instant) -> Result<bool, Held> {
        let mut g = self.inner();
        let inner = &mut *g;
        if inner.held_bytes + h.bytes.len() > MAX_HELD_BYTES {
            return Err(h);
        }
        let full = inner.map.len() >= MAX_ENTRIES;
        let size = h.bytes.len();
        let new = match inner.map.get_mut(&(ifindex, ip)) {
            Some(Entry::Waiting { held, .. }) => {
                if held.len() >= HOLD
                    && let Some(old) = held.pop_front()
                {
                    inner.held_bytes -= old.bytes.len();
                }
                held.push_back(h);
                false
            }
            None if full => return Err(h),
            _ => {
                let mut held = VecDeque::new();
                held.push_back(h);
                let waiting = Entry::Waiting {
                    tries: 1,
                    next: now + RETRANS,
                    held,
                };
                inner.map.insert((ifindex, ip), waiting);
                true
            }
        };
        inner.held_bytes += size;
        Ok(new)
    }

    /// `ip` is at `mac` on `ifindex`. Returns the packets that waited for
    /// it. A new neighbour is remembered only if `create` (it talked to
    /// us) or if we were resolving it.
    pub fn learn(
        &self,
        ifindex: u32,
        ip: IpAddr,
        mac: Mac,
        create: bool,
        now: Instant,
    ) -> VecDeque<Held> {
        let mut g = self.inner();
        let inner = &mut *g;
        let known = Entry::Known { mac, at: now };
        match inner.map.get_mut(&(ifindex, ip)) {
            Some(e) => match std::mem::replace(e, known) {
                Entry::Waiting { held, .. } => {
                    inner.held_bytes -= held.iter().map(|h| h.bytes.len()).sum::<usize>();
                    held
                }
                Entry::Known { .. } => VecDeque::new(),
            },
            None => {
                if create && inner.map.len() < MAX_ENTRIES {
                    inner.map.insert((ifindex, ip), known);
                }
                VecDeque::new()
            }
        }
    }

    /// Solicitations due again, resolutions given up, expired entries
    /// gone; and when to look again.
    pub fn due(&self, now: Instant) -> Due {
        let mut d = Due::default();
        let mut g = self.inner();
        let inner = &mut *g;
        let held_bytes = &mut inner.held_bytes;
        inner.map.retain(|&(ifindex, ip), e| match e {
            Entry::Known { at, .. } => now.saturating_duration_since(*at) < KEEP,
            Entry::Waiting { tries, next, held } => {
                if *next > now {
                    d.next = Some(d.next.map_or(*next, |n: Instant| n.min(*next)));
                    return true;
                }
                if *tries >= MAX_TRIES {
                    *held_bytes -= held.iter().map(|h| h.bytes.len()).sum::<usize>();
                    d.failed.extend(held.drain(..));
                    return false;
                }
                *tries += 1;
                *next = now + RETRANS;
                d.next = Some(d.next.map_or(*next, |n: Instant| n.min(*next)));
                d.resend.push((ifindex, ip));
                true
            }
        });
        d
    }

    /// The resolved entries: interface, neighbour, link address, time
    /// left (for arp -a and ndp -a).
    pub fn entries(&self, now: Instant) -> Vec<(u32, IpAddr, Mac, Duration)> {
        let g = self.inner();
        let mut v = Vec::new();
        for (&(ifindex, ip), e) in &g.map {
            if let Entry::Known { mac, at } = e {
                let left = KEEP.saturating_sub(now.saturating_duration_since(*at));
                if !left.is_zero() {
                    v.push((ifindex, ip, *mac, left));
                }
            }
        }
        v
    }

    /// Drop the resolved entries `which` picks (arp -d, ndp -c); the
    /// ones dropped. A resolution under way stays.
    pub fn forget(&self, which: &dyn Fn(u32, IpAddr) -> bool) -> Vec<(u32, IpAddr, Mac)> {
        let mut gone = Vec::new();
        self.inner().map.retain(|&(ifindex, ip), e| match e {
            Entry::Known { mac, .. } if which(ifindex, ip) => {
                gone.push((ifindex, ip, *mac));
                false
            }
            _ => true,
        });
        gone
    }

    pub fn forget_interface(&self, ifindex: u32) {
        let mut g = self.inner();
        let inner = &mut *g;
        let held_bytes = &mut inner.held_bytes;
        inner.map.retain(|&(i, _), e| {
            if i != ifindex {
                return true;
            }
            if let Entry::Waiting { held, .. } = e {
                *held_bytes -= held.iter().map(|h| h.bytes.len()).sum::<usize>();
            }
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held() -> Held {
        Held {
            from: 1,
            bytes: vec![0; 20],
            off: Offload::NONE,
            local: false,
        }
    }

    #[test]
    fn resolution_holds_then_releases() {
        let n = Neighbors::default();
        let t0 = Instant::now();
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(n.hold(2, ip, held(), t0).ok(), Some(true));
        for _ in 0..HOLD + 3 {
            assert_eq!(n.hold(2, ip, held(), t0).ok(), Some(false));
        }
        assert!(n.lookup(2, ip, t0).is_none());
        let out = n.learn(2, ip, [2, 0, 0, 0, 0, 1], false, t0);
        assert_eq!(out.len(), HOLD);
        assert_eq!(n.lookup(2, ip, t0), Some([2, 0, 0, 0, 0, 1]));
        assert!(n.lookup(2, ip, t0 + KEEP).is_none());
        let e = n.entries(t0 + RETRANS);
        assert_eq!(e, vec![(2, ip, [2, 0, 0, 0, 0, 1], KEEP - RETRANS)]);
        assert!(n.forget(&|i, _| i == 1).is_empty());
        assert_eq!(n.forget(&|i, _| i == 2).len(), 1);
        assert!(n.entries(t0).is_empty());
    }

    #[test]
    fn held_bytes_are_bounded() {
        let n = Neighbors::default();
        let t0 = Instant::now();
        let big = || Held {
            from: 1,
            bytes: vec![0; 64 << 10],
            off: Offload::NONE,
            local: false,
        };
        let mut taken = 0;
        for i in 0..200u32 {
            let ip = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
            if n.hold(1, ip, big(), t0).is_ok() {
                taken += 1;
            }
        }
        assert_eq!(taken, MAX_HELD_BYTES / (64 << 10));
        // Resolving one frees its bytes for others.
        n.learn(1, IpAddr::from([10, 0, 0, 0]), [2; 6], false, t0);
        assert!(n.hold(1, IpAddr::from([10, 9, 0, 0]), big(), t0).is_ok());
        n.forget_interface(1);
        assert_eq!(n.inner().held_bytes, 0);
    }

    #[test]
    fn resolution_gives_up_after_its_tries() {
        let n = Neighbors::default();
        let t0 = Instant::now();
        let ip: IpAddr = "10.0.0.3".parse().unwrap();
        n.hold(1, ip, held(), t0).unwrap();
        let mut t = t0;
        let mut resent = 0;
        loop {
            t += RETRANS;
            let d = n.due(t);
            resent += d.resend.len();
            if !d.failed.is_empty() {
                assert_eq!(d.failed.len(), 1);
                break;
            }
        }
        assert_eq!(resent, usize::from(MAX_TRIES) - 1);
        // Not learned from unsolicited traffic unless asked to.
        n.learn(1, ip, [2; 6], false, t);
        assert!(n.lookup(1, ip, t).is_none());
    }
}
