//! The bridge address cache (`bridge_rtnode`s): which member a MAC address
//! was last seen on. Pure logic over a clock reading in whole seconds, as
//! NetBSD keeps it against `time_uptime`.

use crate::ioctl::{Errno, Mac};
use std::collections::HashMap;

/// `IFBAF_STATIC`: pinned by `brconfig static`, never aged nor moved.
pub const IFBAF_STATIC: u32 = 0x1;

/// NetBSD's defaults (`BRIDGE_RTABLE_MAX`, `BRIDGE_RTABLE_TIMEOUT`).
pub const BRIDGE_RTABLE_MAX: u32 = 100;
pub const BRIDGE_RTABLE_TIMEOUT: u32 = 1200;

/// How often expired entries are swept out. NetBSD's callout runs every
/// 5 minutes; ours piggybacks on traffic and requests, so it can be short.
/// Expired entries are ignored before the sweep anyway.
pub const BRIDGE_RTABLE_PRUNE_PERIOD: u64 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rtnode {
    /// Interface index of the member the address is behind.
    pub ifindex: u32,
    /// Uptime second at which a dynamic entry dies; 0: never.
    pub expire: u64,
    pub flags: u32,
    /// Insertion order, for listing newest first as NetBSD's list does.
    seq: u64,
}

impl Rtnode {
    fn is_static(&self) -> bool {
        self.flags & IFBAF_STATIC != 0
    }

    fn expired(&self, now: u64) -> bool {
        !self.is_static() && self.expire != 0 && now >= self.expire
    }
}

/// One entry as `BRDGRTS` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtEntry {
    pub mac: Mac,
    pub ifindex: u32,
    /// Seconds left; 0 for static and never-expiring entries.
    pub expire: u64,
    pub flags: u32,
}

pub struct Rtable {
    nodes: HashMap<Mac, Rtnode>,
    /// `sc_brtmax`
    pub max: u32,
    /// `sc_brttimeout`; 0 means entries never expire (brconfig(8)).
    pub timeout: u32,
    seq: u64,
    next_sweep: u64,
    /// When `age` last ran. Expiry has one-second resolution, so a second
    /// run within the same second finds nothing: a full cache under a
    /// flood of new addresses scans once a second, not once a frame.
    aged_at: Option<u64>,
    /// During a spanning tree topology change, dynamic entries live at
    /// most this many seconds (802.1D fast aging: the forward delay).
    fast_age: Option<u32>,
}

impl Default for Rtable {
    fn default() -> Self {
        Rtable {
            nodes: HashMap::new(),
            max: BRIDGE_RTABLE_MAX,
            timeout: BRIDGE_RTABLE_TIMEOUT,
            seq: 0,
            next_sweep: 0,
            aged_at: None,
            fast_age: None,
        }
    }
}

impl Rtable {
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn expiry(&self, now: u64) -> u64 {
        match (self.timeout, self.fast_age) {
            (0, None) => 0,
            (0, Some(f)) => now + u64::from(f),
            (t, f) => now + u64::from(f.map_or(t, |f| f.min(t))),
        }
    }

    /// Start (`Some(seconds)`) or end fast aging: when it starts, no
    /// dynamic entry outlives `seconds` from now.
    pub fn set_fast_age(&mut self, fast: Option<u32>, now: u64) {
        if fast == self.fast_age {
            return;
        }
        self.fast_age = fast;
        if let Some(f) = fast {
            let limit = now + u64::from(f);
            for n in self.nodes.values_mut().filter(|n| !n.is_static()) {
                if n.expire == 0 || n.expire > limit {
                    n.expire = limit;
                }
            }
        }
    }

    /// Forget the dynamic entries of a member (a spanning tree port that
    /// stopped forwarding).
    pub fn flush_member(&mut self, ifindex: u32) {
        self.nodes
            .retain(|_, n| n.ifindex != ifindex || n.is_static());
    }

    fn insert(&mut self, mac: Mac, ifindex: u32, expire: u64, flags: u32) {
        self.seq += 1;
        self.nodes.insert(
            mac,
            Rtnode {
                ifindex,
                expire,
                flags,
                seq: self.seq,
            },
        );
    }

    /// Sweep if the prune period has passed (`bridge_timer`).
    pub fn maybe_sweep(&mut self, now: u64) {
        if now >= self.next_sweep {
            self.age(now);
            self.next_sweep = now + BRIDGE_RTABLE_PRUNE_PERIOD;
        }
    }

    /// Drop expired dynamic entries (`bridge_rtage`).
    pub fn age(&mut self, now: u64) {
        self.nodes.retain(|_, n| !n.expired(now));
        self.aged_at = Some(now);
    }

    /// Make room in a full cache by aging, at most once a second.
    fn full(&mut self, now: u64) -> bool {
        if self.nodes.len() >= self.max as usize && self.aged_at != Some(now) {
            self.age(now);
        }
        self.nodes.len() >= self.max as usize
    }

    /// Learn `src` on member `ifindex` (`bridge_rtupdate`, dynamic): a
    /// static entry stays pinned; a full cache learns nothing.
    pub fn learn(&mut self, src: &Mac, ifindex: u32, now: u64) {
        self.maybe_sweep(now);
        let expire = self.expiry(now);
        if let Some(n) = self.nodes.get_mut(src) {
            if !n.is_static() {
                n.ifindex = ifindex;
                n.expire = expire;
            }
            return;
        }
        if self.full(now) {
            return;
        }
        self.insert(*src, ifindex, expire, 0);
    }

    /// Add or repin a static entry (`BRDGSADDR`).
    pub fn add_static(&mut self, mac: &Mac, ifindex: u32, now: u64) -> Result<(), Errno> {
        if let Some(n) = self.nodes.get_mut(mac) {
            n.ifindex = ifindex;
            n.flags = IFBAF_STATIC;
            n.expire = 0;
            return Ok(());
        }
        if self.full(now) {
            return Err(Errno::ENOSPC);
        }
        self.insert(*mac, ifindex, 0, IFBAF_STATIC);
        Ok(())
    }

    /// Where `dst` lives (`bridge_rtlookup`); expired entries don't count.
    pub fn lookup(&self, dst: &Mac, now: u64) -> Option<u32> {
        self.nodes
            .get(dst)
            .filter(|n| !n.expired(now))
            .map(|n| n.ifindex)
    }

    /// `BRDGDADDR`
    pub fn delete(&mut self, mac: &Mac, now: u64) -> Result<(), Errno> {
        match self.nodes.remove(mac) {
            Some(n) if !n.expired(now) => Ok(()),
            _ => Err(Errno::ENOENT),
        }
    }

    /// `BRDGFLUSH`: dynamic entries, or everything.
    pub fn flush(&mut self, all: bool) {
        self.nodes.retain(|_, n| !all && n.is_static());
    }

    /// Forget every entry of a member leaving the bridge (`bridge_rtdelete`).
    pub fn delete_member(&mut self, ifindex: u32) {
        self.nodes.retain(|_, n| n.ifindex != ifindex);
    }

    /// New cache size (`BRDGSCACHE`): trim at once (`bridge_rttrim`), aged
    /// entries first, then dynamic ones newest first.
    pub fn set_max(&mut self, max: u32, now: u64) {
        self.max = max;
        if self.nodes.len() <= max as usize {
            return;
        }
        self.age(now);
        let mut dynamic: Vec<(u64, Mac)> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.is_static())
            .map(|(m, n)| (n.seq, *m))
            .collect();
        dynamic.sort_unstable_by_key(|d| std::cmp::Reverse(d.0));
        for (_, mac) in dynamic {
            if self.nodes.len() <= max as usize {
                break;
            }
            self.nodes.remove(&mac);
        }
    }

    /// The live entries, newest first (`BRDGRTS`).
    pub fn list(&self, now: u64) -> Vec<RtEntry> {
        let mut v: Vec<(u64, RtEntry)> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.expired(now))
            .map(|(mac, n)| {
                let expire = if n.is_static() {
                    0
                } else {
                    n.expire.saturating_sub(now)
                };
                (
                    n.seq,
                    RtEntry {
                        mac: *mac,
                        ifindex: n.ifindex,
                        expire,
                        flags: n.flags,
                    },
                )
            })
            .collect();
        v.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        v.into_iter().map(|(_, e)| e).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = [2, 0, 0, 0, 0, 0xa];
    const B: Mac = [2, 0, 0, 0, 0, 0xb];
    const C: Mac = [2, 0, 0, 0, 0, 0xc];

    fn macs(t: &Rtable, now: u64) -> Vec<(Mac, u32, u64, u32)> {
        t.list(now)
            .iter()
            .map(|e| (e.mac, e.ifindex, e.expire, e.flags))
            .collect()
    }

    #[test]
    fn learn_move_and_list_newest_first() {
        let mut t = Rtable::default();
        t.learn(&A, 2, 100);
        t.learn(&B, 3, 103);
        assert_eq!(macs(&t, 103), vec![(B, 3, 1200, 0), (A, 2, 1197, 0)]);
        // A moves to port 3; its place in the list does not change.
        t.learn(&A, 3, 104);
        assert_eq!(macs(&t, 104), vec![(B, 3, 1199, 0), (A, 3, 1200, 0)]);
        assert_eq!(t.lookup(&A, 104), Some(3));
    }

    #[test]
    fn fast_aging_during_a_topology_change() {
        let mut t = Rtable::default();
        t.learn(&A, 2, 100);
        t.add_static(&B, 2, 100).unwrap();
        t.set_fast_age(Some(4), 110);
        // Cut down to the forward delay from now; new entries get it too.
        t.learn(&C, 3, 111);
        assert_eq!(
            macs(&t, 111),
            vec![(C, 3, 4, 0), (B, 2, 0, IFBAF_STATIC), (A, 2, 3, 0)]
        );
        assert_eq!(t.lookup(&A, 114), None);
        t.set_fast_age(None, 115);
        t.learn(&C, 3, 115);
        assert_eq!(t.lookup(&C, 115 + 1199), Some(3));
        // A port that stops forwarding forgets what it learned, not statics.
        t.flush_member(2);
        t.flush_member(3);
        assert_eq!(macs(&t, 116), vec![(B, 2, 0, IFBAF_STATIC)]);
    }

    #[test]
    fn full_cache_learns_nothing() {
        let mut t = Rtable::default();
        t.set_max(1, 0);
        t.learn(&A, 2, 0);
        t.learn(&B, 2, 0);
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(&B, 0), None);
        assert_eq!(t.add_static(&C, 2, 0), Err(Errno::ENOSPC));
        // An existing entry can still become static.
        assert_eq!(t.add_static(&A, 3, 0), Ok(()));
    }

    #[test]
    fn expiry_before_and_at_sweep() {
        let mut t = Rtable {
            timeout: 5,
            ..Default::default()
        };
        t.learn(&A, 2, 10);
        assert_eq!(t.lookup(&A, 14), Some(2));
        assert_eq!(t.lookup(&A, 15), None);
        assert!(t.list(15).is_empty());
        assert_eq!(t.len(), 1);
        t.maybe_sweep(30);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn full_cache_ages_before_refusing() {
        let mut t = Rtable {
            timeout: 5,
            ..Default::default()
        };
        t.set_max(1, 0);
        t.learn(&A, 2, 0);
        t.learn(&B, 2, 6);
        assert_eq!(t.lookup(&B, 6), Some(2));
    }

    #[test]
    fn zero_timeout_never_expires() {
        let mut t = Rtable {
            timeout: 0,
            ..Default::default()
        };
        t.learn(&A, 2, 0);
        assert_eq!(t.lookup(&A, 1 << 40), Some(2));
        assert_eq!(macs(&t, 1 << 40), vec![(A, 2, 0, 0)]);
    }

    #[test]
    fn statics_pinned_and_survive_flush() {
        let mut t = Rtable::default();
        t.add_static(&A, 2, 0).unwrap();
        t.learn(&A, 3, 0);
        t.learn(&B, 3, 0);
        assert_eq!(t.lookup(&A, 1 << 30), Some(2));
        t.flush(false);
        assert_eq!(macs(&t, 5), vec![(A, 2, 0, IFBAF_STATIC)]);
        t.flush(true);
        assert!(t.is_empty());
    }

    #[test]
    fn trim_drops_dynamic_newest_first() {
        let mut t = Rtable::default();
        t.learn(&A, 2, 0);
        t.add_static(&B, 2, 0).unwrap();
        t.learn(&C, 2, 0);
        t.set_max(2, 0);
        assert_eq!(
            t.list(0).iter().map(|e| e.mac).collect::<Vec<_>>(),
            vec![B, A]
        );
        t.set_max(0, 0);
        assert_eq!(t.list(0).iter().map(|e| e.mac).collect::<Vec<_>>(), vec![B]);
    }

    #[test]
    fn delete_and_member_removal() {
        let mut t = Rtable::default();
        t.learn(&A, 2, 0);
        t.add_static(&B, 2, 0).unwrap();
        t.learn(&C, 3, 0);
        assert_eq!(t.delete(&C, 0), Ok(()));
        assert_eq!(t.delete(&C, 0), Err(Errno::ENOENT));
        t.delete_member(2);
        assert!(t.is_empty());
    }
}
