//! The UDP source port of an encapsulated frame: a hash of the inner
//! flow (RFC 7348, section 5), so that routers spreading traffic over
//! equal-cost paths by the outer 5-tuple keep one flow on one path and
//! spread many. The flow is the inner IP addresses, protocol and ports
//! when the frame carries IPv4 or IPv6 (ports only of a first fragment
//! or an unfragmented packet), else its MAC addresses and EtherType.

use crate::frame::Frame;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;

/// FNV-1a over the pieces: cheap, and good enough to spread flows.
fn fnv(pieces: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for p in pieces {
        for b in *p {
            h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
    }
    h
}

fn has_ports(proto: u8) -> bool {
    matches!(proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP)
}

/// The hash of `frame`'s flow.
pub fn flow_hash(frame: &Frame) -> u32 {
    let p = frame.payload();
    match frame.ethertype() {
        ETHERTYPE_IPV4 if p.len() >= 20 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let proto = p[9];
            let first = u16::from_be_bytes([p[6], p[7]]) & 0x1fff == 0;
            let ports = match p.get(ihl..ihl + 4) {
                Some(ports) if first && ihl >= 20 && has_ports(proto) => ports,
                _ => &[],
            };
            fnv(&[&p[12..20], &[proto], ports])
        }
        ETHERTYPE_IPV6 if p.len() >= 40 => {
            let proto = p[6];
            let ports = match p.get(40..44) {
                Some(ports) if has_ports(proto) => ports,
                _ => &[],
            };
            fnv(&[&p[8..40], &[proto], ports])
        }
        t => fnv(&[&frame.dst(), &frame.src(), &t.to_be_bytes()]),
    }
}

/// The source port of `frame` within `min..=max`.
pub fn source_port(frame: &Frame, min: u16, max: u16) -> u16 {
    let span = u32::from(max.saturating_sub(min)) + 1;
    min + (flow_hash(frame) % span) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp4(sport: u16) -> Vec<u8> {
        let mut f = [[2; 6], [4; 6]].concat();
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip.extend_from_slice(&sport.to_be_bytes());
        ip.extend_from_slice(&[0x13, 0x89]);
        ip.extend_from_slice(&[0; 16]);
        f.extend_from_slice(&ip);
        f
    }

    #[test]
    fn one_flow_one_port_many_flows_many_ports() {
        let a = tcp4(1000);
        let b = tcp4(1000);
        let fa = Frame::new(&a).unwrap();
        let fb = Frame::new(&b).unwrap();
        assert_eq!(
            source_port(&fa, 32768, 65535),
            source_port(&fb, 32768, 65535)
        );
        let ports: std::collections::HashSet<u16> = (0..64)
            .map(|s| {
                let b = tcp4(2000 + s);
                source_port(&Frame::new(&b).unwrap(), 32768, 65535)
            })
            .collect();
        assert!(ports.len() > 32, "{}", ports.len());
        assert!(ports.iter().all(|p| *p >= 32768));
    }

    #[test]
    fn bounds() {
        let b = tcp4(7);
        let f = Frame::new(&b).unwrap();
        assert_eq!(source_port(&f, 4789, 4789), 4789);
        assert!((1..=2).contains(&source_port(&f, 1, 2)));
        assert!(source_port(&f, 65535, 65535) == 65535);
        // A runt IP header falls back to the MACs.
        let runt = [[2; 6], [4; 6]]
            .concat()
            .into_iter()
            .chain([8, 0, 0x45])
            .collect::<Vec<_>>();
        source_port(&Frame::new(&runt).unwrap(), 1, 65535);
    }
}
