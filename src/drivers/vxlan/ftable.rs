//! The forwarding table: inner MAC → the VTEP behind it, learnt from the
//! outer source address of what arrives (FreeBSD's vxlan ftable). Entries
//! age out after `timeout` seconds without a frame; the table holds at most
//! `max` entries, and a full table learns nothing new until entries age
//! out or are flushed. The time is an argument: tests drive it.

use crate::ioctl::Mac;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// FreeBSD's defaults: 2000 entries, 20 minutes, at most a day.
pub const FTABLE_MAX: u32 = 2000;
pub const FTABLE_TIMEOUT: u32 = 20 * 60;
pub const FTABLE_MAX_TIMEOUT: u32 = 24 * 60 * 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    addr: IpAddr,
    /// `None`: static, never ages.
    expire: Option<Instant>,
}

#[derive(Debug)]
pub struct Ftable {
    map: HashMap<Mac, Entry>,
    pub max: u32,
    pub timeout: u32,
    /// No entry expires before this (a lower bound: refreshes move
    /// entries later): a full table is swept only once it has passed, not
    /// on every new address of a flood.
    earliest: Option<Instant>,
}

impl Default for Ftable {
    fn default() -> Ftable {
        Ftable {
            map: HashMap::new(),
            max: FTABLE_MAX,
            timeout: FTABLE_TIMEOUT,
            earliest: None,
        }
    }
}

impl Ftable {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The VTEP behind `mac`, if known and not expired.
    pub fn lookup(&self, mac: &Mac, now: Instant) -> Option<IpAddr> {
        let e = self.map.get(mac)?;
        e.expire.is_none_or(|t| t > now).then_some(e.addr)
    }

    /// `mac` was seen behind `addr`: refresh or add it. Group source
    /// addresses are never learnt.
    pub fn learn(&mut self, mac: Mac, addr: IpAddr, now: Instant) {
        if crate::port::is_multicast(&mac) || mac == [0; 6] {
            return;
        }
        let expire = Some(now + Duration::from_secs(self.timeout.into()));
        if let Some(e) = self.map.get_mut(&mac) {
            if e.expire.is_some() {
                *e = Entry { addr, expire };
            }
            return;
        }
        if self.map.len() >= self.max as usize {
            if self.earliest.is_some_and(|t| t <= now) {
                self.expire(now);
            }
            if self.map.len() >= self.max as usize {
                return;
            }
        }
        self.map.insert(mac, Entry { addr, expire });
        self.earliest = self.earliest.min(expire).or(expire);
    }

    /// Drop the expired entries; the next instant one expires.
    pub fn expire(&mut self, now: Instant) -> Option<Instant> {
        self.map.retain(|_, e| e.expire.is_none_or(|t| t > now));
        self.earliest = self.map.values().filter_map(|e| e.expire).min();
        self.earliest
    }

    /// Forget the learnt entries, or every entry.
    pub fn flush(&mut self, all: bool) {
        self.map.retain(|_, e| !all && e.expire.is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn learns_moves_and_ages() {
        let t0 = Instant::now();
        let mut f = Ftable {
            timeout: 10,
            ..Ftable::default()
        };
        f.learn([2, 0, 0, 0, 0, 1], A, t0);
        assert_eq!(f.lookup(&[2, 0, 0, 0, 0, 1], t0), Some(A));
        f.learn([2, 0, 0, 0, 0, 1], B, t0 + Duration::from_secs(5));
        assert_eq!(f.lookup(&[2, 0, 0, 0, 0, 1], t0), Some(B));
        let late = t0 + Duration::from_secs(16);
        assert_eq!(f.lookup(&[2, 0, 0, 0, 0, 1], late), None);
        assert_eq!(f.expire(late), None);
        assert!(f.is_empty());
    }

    #[test]
    fn bounded_and_no_groups() {
        let t0 = Instant::now();
        let mut f = Ftable {
            max: 2,
            ..Ftable::default()
        };
        f.learn([0xff; 6], A, t0);
        f.learn([0x01, 0, 0x5e, 0, 0, 1], A, t0);
        assert!(f.is_empty());
        for i in 1..=3 {
            f.learn([2, 0, 0, 0, 0, i], A, t0);
        }
        assert_eq!(f.len(), 2);
        assert_eq!(f.lookup(&[2, 0, 0, 0, 0, 3], t0), None);
        // Once the first entries expire, a new one is learnt.
        let late = t0 + Duration::from_secs(f.timeout.into()) + Duration::from_secs(1);
        f.learn([2, 0, 0, 0, 0, 4], B, late);
        assert_eq!(f.lookup(&[2, 0, 0, 0, 0, 4], late), Some(B));
        assert_eq!(f.len(), 1);
        f.flush(false);
        assert!(f.is_empty());
    }

    /// A full table with nothing expired is not swept for each new address
    /// of a flood: the sweep waits for the earliest expiry.
    #[test]
    fn a_full_table_sweeps_once_its_earliest_entry_is_due() {
        let t0 = Instant::now();
        let mut f = Ftable {
            max: 2,
            timeout: 10,
            ..Ftable::default()
        };
        f.learn([2, 0, 0, 0, 0, 1], A, t0);
        f.learn([2, 0, 0, 0, 0, 2], A, t0 + Duration::from_secs(5));
        assert_eq!(f.earliest, Some(t0 + Duration::from_secs(10)));
        // Full, nothing due: refused without a sweep.
        f.learn([2, 0, 0, 0, 0, 3], A, t0 + Duration::from_secs(9));
        assert_eq!(f.len(), 2);
        assert_eq!(f.earliest, Some(t0 + Duration::from_secs(10)));
        // The first is due: swept, the new one in.
        let t = t0 + Duration::from_secs(11);
        f.learn([2, 0, 0, 0, 0, 3], B, t);
        assert_eq!(f.lookup(&[2, 0, 0, 0, 0, 3], t), Some(B));
        assert_eq!(f.lookup(&[2, 0, 0, 0, 0, 1], t), None);
        assert_eq!(f.earliest, Some(t0 + Duration::from_secs(15)));
    }
}
