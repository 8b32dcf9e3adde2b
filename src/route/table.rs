//! The forwarding table: routes of both families in one list per family,
//! longest prefix first, so that the first match is the longest-prefix
//! match (rtalloc1's answer). Rebuilt whole on each change, read without
//! a lock by the forwarding path (it holds an `Arc` of the table).

use crate::ioctl::rtf;
use std::net::IpAddr;

/// One route, ready for lookups: the key and mask as one integer (an IPv4
/// address in the low 32 bits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub net: u128,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    /// The interface it leaves by; 0 for a reject or blackhole route
    /// that names none.
    pub ifindex: u32,
    /// `RTF_*`.
    pub flags: u32,
    /// The path MTU metric, 0 for the interface's.
    pub mtu: u32,
}

/// An address as a key, with its family's length in bits.
pub fn key(a: IpAddr) -> (u128, u8) {
    match a {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

/// The mask of `prefix` bits in a family of `bits`.
pub fn mask(prefix: u8, bits: u8) -> u128 {
    let prefix = prefix.min(bits);
    if prefix == 0 {
        return 0;
    }
    let all = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    all & !all.checked_shr(u32::from(prefix)).unwrap_or(0)
}

#[derive(Clone, Debug, Default)]
pub struct Fib {
    v4: Vec<Route>,
    v6: Vec<Route>,
}

impl Fib {
    /// Add a route unless one with its key and mask is there: the first
    /// added wins (a static route shadowing a connected one is refused
    /// before it gets here).
    pub fn insert(&mut self, r: Route, v6: bool) {
        let v = if v6 { &mut self.v6 } else { &mut self.v4 };
        if v.iter().any(|x| x.net == r.net && x.prefix == r.prefix) {
            return;
        }
        // Longest prefix first; among equals, the order they came in.
        let at = v.partition_point(|x| x.prefix >= r.prefix);
        v.insert(at, r);
    }

    /// The longest-prefix match for `dst`.
    pub fn lookup(&self, dst: IpAddr) -> Option<&Route> {
        let (k, bits) = key(dst);
        let v = if bits == 32 { &self.v4 } else { &self.v6 };
        v.iter().find(|r| k & mask(r.prefix, bits) == r.net)
    }

    /// The route with exactly this key and mask.
    pub fn exact(&self, dst: IpAddr, prefix: u8) -> Option<&Route> {
        let (k, bits) = key(dst);
        let v = if bits == 32 { &self.v4 } else { &self.v6 };
        let net = k & mask(prefix, bits);
        v.iter().find(|r| r.net == net && r.prefix == prefix)
    }

    /// Every route of one family, longest prefix first.
    pub fn routes(&self, v6: bool) -> &[Route] {
        if v6 { &self.v6 } else { &self.v4 }
    }
}

impl Route {
    /// Whether packets to this route's destination are ours.
    pub fn is_local(&self) -> bool {
        self.flags & (rtf::LOCAL | rtf::BROADCAST) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(net: &str, prefix: u8, ifindex: u32) -> (Route, bool) {
        let a: IpAddr = net.parse().unwrap();
        let (k, bits) = key(a);
        (
            Route {
                net: k & mask(prefix, bits),
                prefix,
                gateway: None,
                ifindex,
                flags: rtf::UP,
                mtu: 0,
            },
            a.is_ipv6(),
        )
    }

    #[test]
    fn masks() {
        assert_eq!(mask(0, 32), 0);
        assert_eq!(mask(24, 32), 0xffff_ff00);
        assert_eq!(mask(32, 32), 0xffff_ffff);
        assert_eq!(mask(40, 32), 0xffff_ffff);
        assert_eq!(mask(1, 128), 1 << 127);
        assert_eq!(mask(128, 128), u128::MAX);
    }

    #[test]
    fn longest_prefix_wins() {
        let mut f = Fib::default();
        for (net, p, i) in [
            ("0.0.0.0", 0, 1),
            ("10.0.0.0", 8, 2),
            ("10.2.0.0", 24, 3),
            ("10.2.0.7", 32, 4),
            ("::", 0, 5),
            ("2001:db8::", 32, 6),
        ] {
            let (route, v6) = r(net, p, i);
            f.insert(route, v6);
        }
        let at = |f: &Fib, d: &str| f.lookup(d.parse().unwrap()).map(|r| r.ifindex);
        assert_eq!(at(&f, "10.2.0.7"), Some(4));
        assert_eq!(at(&f, "10.2.0.8"), Some(3));
        assert_eq!(at(&f, "10.3.0.1"), Some(2));
        assert_eq!(at(&f, "192.0.2.1"), Some(1));
        assert_eq!(at(&f, "2001:db8::1"), Some(6));
        assert_eq!(at(&f, "2001:db9::1"), Some(5));
        // The same key and mask twice: the first stays.
        let (dup, _) = r("10.2.0.0", 24, 9);
        f.insert(dup, false);
        assert_eq!(at(&f, "10.2.0.8"), Some(3));
        assert!(f.exact("10.2.0.0".parse().unwrap(), 24).is_some());
        assert!(f.exact("10.2.0.0".parse().unwrap(), 23).is_none());
    }

    #[test]
    fn no_default_no_match() {
        let mut f = Fib::default();
        let (route, v6) = r("10.1.0.0", 24, 1);
        f.insert(route, v6);
        assert!(f.lookup("10.2.0.1".parse().unwrap()).is_none());
        assert!(f.lookup("::1".parse().unwrap()).is_none());
    }
}
