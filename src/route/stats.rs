//! The forwarding path's counters, named as NetBSD's `ipstat`, `icmpstat`,
//! `ip6stat` and `icmp6stat` fields (netstat -s prints them).

use crate::ioctl::ProtoStats;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// `ipstat` fields ifnet counts, in netstat -s order.
pub const IP: [&str; 18] = [
    "total",
    "badsum",
    "toosmall",
    "tooshort",
    "badhlen",
    "badlen",
    "badoptions",
    "badvers",
    "delivered",
    "forward",
    "cantforward",
    "redirectsent",
    "odropped",
    "noroute",
    "fragmented",
    "ofragments",
    "cantfrag",
    "badaddr",
];
pub const IP_TOTAL: usize = 0;
pub const IP_BADSUM: usize = 1;
pub const IP_TOOSMALL: usize = 2;
pub const IP_TOOSHORT: usize = 3;
pub const IP_BADHLEN: usize = 4;
pub const IP_BADLEN: usize = 5;
pub const IP_BADOPTIONS: usize = 6;
pub const IP_BADVERS: usize = 7;
pub const IP_DELIVERED: usize = 8;
pub const IP_FORWARD: usize = 9;
pub const IP_CANTFORWARD: usize = 10;
pub const IP_REDIRECTSENT: usize = 11;
pub const IP_ODROPPED: usize = 12;
pub const IP_NOROUTE: usize = 13;
pub const IP_FRAGMENTED: usize = 14;
pub const IP_OFRAGMENTS: usize = 15;
pub const IP_CANTFRAG: usize = 16;
pub const IP_BADADDR: usize = 17;

/// `icmpstat`: calls to icmp_error, errors not sent, and the output
/// histogram by type (0..=18).
pub const ICMP: [&str; 3] = ["error", "oldicmp", "toofreq"];
pub const ICMP_ERROR: usize = 0;
pub const ICMP_OLDICMP: usize = 1;
pub const ICMP_TOOFREQ: usize = 2;

/// `ip6stat` fields ifnet counts.
pub const IP6: [&str; 12] = [
    "total",
    "toosmall",
    "tooshort",
    "badoptions",
    "badvers",
    "delivered",
    "forward",
    "cantforward",
    "redirectsent",
    "odropped",
    "noroute",
    "badscope",
];
pub const IP6_TOTAL: usize = 0;
pub const IP6_TOOSMALL: usize = 1;
pub const IP6_TOOSHORT: usize = 2;
pub const IP6_BADOPTIONS: usize = 3;
pub const IP6_BADVERS: usize = 4;
pub const IP6_DELIVERED: usize = 5;
pub const IP6_FORWARD: usize = 6;
pub const IP6_CANTFORWARD: usize = 7;
pub const IP6_REDIRECTSENT: usize = 8;
pub const IP6_ODROPPED: usize = 9;
pub const IP6_NOROUTE: usize = 10;
pub const IP6_BADSCOPE: usize = 11;

/// `icmp6stat`.
pub const ICMP6: [&str; 3] = ["error", "canterror", "toofreq"];

pub struct Stats {
    pub ip: [AtomicU64; IP.len()],
    pub icmp: [AtomicU64; ICMP.len()],
    pub icmp_out: [AtomicU64; 19],
    pub ip6: [AtomicU64; IP6.len()],
    pub icmp6: [AtomicU64; ICMP6.len()],
    pub icmp6_out: [AtomicU64; 256],
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            ip: Default::default(),
            icmp: Default::default(),
            icmp_out: Default::default(),
            ip6: Default::default(),
            icmp6: Default::default(),
            icmp6_out: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

fn pairs(names: &[&str], v: &[AtomicU64], prefix: &str) -> Vec<(String, u64)> {
    names
        .iter()
        .zip(v)
        .map(|(n, c)| (format!("{prefix}{n}"), c.load(Relaxed)))
        .collect()
}

impl Stats {
    pub fn ip(&self, i: usize) {
        self.ip[i].fetch_add(1, Relaxed);
    }

    pub fn ip6(&self, i: usize) {
        self.ip6[i].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> ProtoStats {
        let mut icmp = pairs(&ICMP, &self.icmp, "icps_");
        for (t, c) in self.icmp_out.iter().enumerate() {
            icmp.push((format!("icps_outhist{t}"), c.load(Relaxed)));
        }
        let mut icmp6 = pairs(&ICMP6, &self.icmp6, "icp6s_");
        for (t, c) in self.icmp6_out.iter().enumerate() {
            let v = c.load(Relaxed);
            if v != 0 {
                icmp6.push((format!("icp6s_outhist{t}"), v));
            }
        }
        ProtoStats {
            ip: pairs(&IP, &self.ip, "ips_"),
            icmp,
            ip6: pairs(&IP6, &self.ip6, "ip6s_"),
            icmp6,
        }
    }
}
