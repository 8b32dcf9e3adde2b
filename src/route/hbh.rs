//! IPv6 hop-by-hop options, which every node on the path examines: what
//! a router does with them before it forwards a packet (NetBSD's
//! ip6_hopopts_input and ip6_unknown_opt, RFC 8200 4.2). A pure function
//! over the packet.

use super::stats::{IP6_BADOPTIONS, IP6_TOOSHORT, IP6_TOOSMALL};

/// The next-header value that names a hop-by-hop options header.
pub const IPPROTO_HOPOPTS: u8 = 0;
const PAD1: u8 = 0;
const PADN: u8 = 1;
const ROUTER_ALERT: u8 = 5;
const JUMBO: u8 = 0xc2;
/// ICMPv6 parameter problem and two of its codes.
pub const ICMP6_PARAM_PROB: u8 = 4;
const PARAMPROB_HEADER: u8 = 0;
const PARAMPROB_OPTION: u8 = 2;

/// Why a packet does not go on.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Dropped and counted under this `ip6stat` index.
    Drop(Option<usize>),
    /// Dropped, counted as bad options, answered with a parameter problem
    /// of `code` pointing at byte `pointer` of the packet.
    Problem { code: u8, pointer: u32 },
}

/// Check the hop-by-hop options of IPv6 packet `p` (its header, then
/// what follows), whose destination is unicast; `Ok` when it may go on.
pub fn check(p: &[u8]) -> Result<(), Refused> {
    if p.get(6) != Some(&IPPROTO_HOPOPTS) {
        return Ok(());
    }
    let plen = usize::from(u16::from_be_bytes([p[4], p[5]]));
    let Some(&len) = p.get(41) else {
        return Err(Refused::Drop(Some(IP6_TOOSHORT)));
    };
    let hbhlen = (usize::from(len) + 1) * 8;
    if hbhlen > plen || p.len() < 40 + hbhlen {
        return Err(Refused::Drop(Some(IP6_TOOSHORT)));
    }
    let mut at = 42;
    let end = 40 + hbhlen;
    let problem = |code, at: usize| {
        Err(Refused::Problem {
            code,
            pointer: at as u32,
        })
    };
    while at < end {
        let typ = p[at];
        if typ == PAD1 {
            at += 1;
            continue;
        }
        // Every other option has a length byte.
        if at + 2 > end {
            return Err(Refused::Drop(Some(IP6_TOOSMALL)));
        }
        let optlen = usize::from(p[at + 1]) + 2;
        match typ {
            PADN => {}
            ROUTER_ALERT | JUMBO => {
                let want = if typ == ROUTER_ALERT { 4 } else { 6 };
                if end - at < want {
                    return Err(Refused::Drop(Some(IP6_TOOSMALL)));
                }
                if optlen != want {
                    return problem(PARAMPROB_HEADER, at + 1);
                }
                // A jumbo payload comes only with a payload length of 0,
                // and is larger than any link here carries.
                if typ == JUMBO {
                    return problem(PARAMPROB_HEADER, at);
                }
            }
            // Unknown: the two high bits say what to do.
            _ => match typ >> 6 {
                0 => {}
                1 => return Err(Refused::Drop(None)),
                _ => return problem(PARAMPROB_OPTION, at),
            },
        }
        at += optlen;
    }
    Ok(())
}

/// The `ip6stat` a refusal counts under.
pub fn counted(r: &Refused) -> Option<usize> {
    match r {
        Refused::Drop(c) => *c,
        Refused::Problem { .. } => Some(IP6_BADOPTIONS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv6 packet whose hop-by-hop header holds `opts` (padded by the
    /// caller to a multiple of 8 less 2), then 8 bytes of UDP.
    fn packet(opts: &[u8]) -> Vec<u8> {
        assert_eq!((opts.len() + 2) % 8, 0);
        let mut p = vec![0x60, 0, 0, 0];
        let plen = 2 + opts.len() + 8;
        p.extend_from_slice(&(plen as u16).to_be_bytes());
        p.extend_from_slice(&[IPPROTO_HOPOPTS, 64]);
        p.extend_from_slice(&[0xfd; 32]);
        p.extend_from_slice(&[17, ((opts.len() + 2) / 8 - 1) as u8]);
        p.extend_from_slice(opts);
        p.extend_from_slice(&[0; 8]);
        p
    }

    #[test]
    fn padding_and_a_router_alert_pass() {
        assert_eq!(check(&packet(&[PAD1, PADN, 2, 0, 0, ROUTER_ALERT])), {
            // The router alert's length byte runs past the header.
            Err(Refused::Drop(Some(IP6_TOOSMALL)))
        });
        assert_eq!(check(&packet(&[ROUTER_ALERT, 2, 0, 0, PADN, 0])), Ok(()));
        assert_eq!(check(&packet(&[PADN, 4, 0, 0, 0, 0])), Ok(()));
        // No hop-by-hop header at all.
        let mut p = packet(&[PADN, 4, 0, 0, 0, 0]);
        p[6] = 17;
        assert_eq!(check(&p), Ok(()));
    }

    #[test]
    fn unknown_options_follow_their_high_bits() {
        let with = |t: u8| check(&packet(&[PADN, 0, t, 2, 0, 0]));
        assert_eq!(with(0x1e), Ok(()));
        assert_eq!(with(0x5e), Err(Refused::Drop(None)));
        let problem = Err(Refused::Problem {
            code: PARAMPROB_OPTION,
            pointer: 44,
        });
        assert_eq!(with(0x9e), problem);
        assert_eq!(with(0xde), problem);
    }

    #[test]
    fn bad_lengths() {
        // A router alert of the wrong length: the length byte is pointed at.
        assert_eq!(
            check(&packet(&[ROUTER_ALERT, 3, 0, 0, 0, 0])),
            Err(Refused::Problem {
                code: PARAMPROB_HEADER,
                pointer: 43
            })
        );
        // A jumbo payload with a payload length.
        assert_eq!(
            check(&packet(&[JUMBO, 4, 0, 1, 0, 0])),
            Err(Refused::Problem {
                code: PARAMPROB_HEADER,
                pointer: 42
            })
        );
        // A header longer than the payload, or cut short.
        let mut p = packet(&[PADN, 4, 0, 0, 0, 0]);
        p[41] = 3;
        assert_eq!(check(&p), Err(Refused::Drop(Some(IP6_TOOSHORT))));
        assert_eq!(check(&p[..41]), Err(Refused::Drop(Some(IP6_TOOSHORT))));
        assert_eq!(counted(&Refused::Drop(None)), None);
    }
}
