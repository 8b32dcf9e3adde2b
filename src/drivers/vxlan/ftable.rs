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
}

impl Default for Ftable {
    fn default() -> Ftable {
        Ftable {
            map: HashMap::new(),
            max: FTABLE_MAX,
            timeout: FTABLE_TIMEOUT,
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
            self.expire(now);
            if self.map.len() >= self.max as usize {
                return;
            }
        }
        self.map.insert(mac, Entry { addr, expire });
    }

    /// Drop the expired entries; the next instant one expires.
    pub fn expire(&mut self, now: Instant) -> Option<Instant> {
        self.map.retain(|_, e| e.expire.is_none_or(|t| t > now));
        self.map.values().filter_map(|e| e.expire).min()
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
        f.flush(false);
        assert!(f.is_empty());
    }
}
