//! brconfig's grammar: the command table, and nom parsers for its typed
//! arguments, which take what NetBSD's `strtoul(3)` and `ether_aton(3)`
//! take.

use crate::ioctl::{Mac, ifbif};
use nom::branch::alt;
use nom::bytes::complete::{take_while, take_while1};
use nom::character::complete::{char, one_of};
use nom::combinator::{all_consuming, map, opt, peek, rest};
use nom::multi::count;
use nom::sequence::{preceded, terminated};
use nom::{IResult, Parser};

/// What a command does; its arguments follow it on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Add,
    Delete,
    /// Set or clear IFF_UP on the bridge.
    Up(bool),
    /// Set or clear an `IFBIF_*` flag of a member.
    MemberFlag(u32, bool),
    /// Flush all entries, or only the dynamic ones.
    Flush(bool),
    Static,
    DelAddr,
    Addr,
    MaxAddr,
    HelloTime,
    FwdDelay,
    MaxAge,
    Priority,
    IfPriority,
    IfPathCost,
    Timeout,
    Ipf(bool),
}

/// One row of the command table (`struct command`).
pub struct Command {
    pub keyword: &'static str,
    pub argc: usize,
    pub action: Action,
}

const fn cmd(keyword: &'static str, argc: usize, action: Action) -> Command {
    Command {
        keyword,
        argc,
        action,
    }
}

/// Every command, as NetBSD's `command_table` lists them.
pub const COMMANDS: &[Command] = &[
    cmd("add", 1, Action::Add),
    cmd("delete", 1, Action::Delete),
    cmd("up", 0, Action::Up(true)),
    cmd("down", 0, Action::Up(false)),
    cmd("discover", 1, Action::MemberFlag(ifbif::DISCOVER, true)),
    cmd("-discover", 1, Action::MemberFlag(ifbif::DISCOVER, false)),
    cmd("learn", 1, Action::MemberFlag(ifbif::LEARNING, true)),
    cmd("-learn", 1, Action::MemberFlag(ifbif::LEARNING, false)),
    cmd("flush", 0, Action::Flush(false)),
    cmd("flushall", 0, Action::Flush(true)),
    cmd("static", 2, Action::Static),
    cmd("deladdr", 1, Action::DelAddr),
    cmd("addr", 0, Action::Addr),
    cmd("maxaddr", 1, Action::MaxAddr),
    cmd("hellotime", 1, Action::HelloTime),
    cmd("fwddelay", 1, Action::FwdDelay),
    cmd("maxage", 1, Action::MaxAge),
    cmd("priority", 1, Action::Priority),
    cmd("ifpriority", 2, Action::IfPriority),
    cmd("ifpathcost", 2, Action::IfPathCost),
    cmd("timeout", 1, Action::Timeout),
    cmd("stp", 1, Action::MemberFlag(ifbif::STP, true)),
    cmd("-stp", 1, Action::MemberFlag(ifbif::STP, false)),
    cmd("ipf", 0, Action::Ipf(true)),
    cmd("-ipf", 0, Action::Ipf(false)),
    cmd("protect", 1, Action::MemberFlag(ifbif::PROTECTED, true)),
    cmd("-protect", 1, Action::MemberFlag(ifbif::PROTECTED, false)),
];

pub fn lookup(word: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.keyword == word)
}

/// `bridge<digit>…`, the names brconfig accepts (`is_bridge`).
pub fn is_bridge(name: &str) -> bool {
    name.strip_prefix("bridge")
        .is_some_and(|r| r.as_bytes().first().is_some_and(u8::is_ascii_digit))
}

fn is_space(c: char) -> bool {
    // isspace(3) in the C locale.
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Digits of `radix` accumulated into a u64; `None` on overflow (ERANGE).
fn digits(radix: u32) -> impl Fn(&str) -> IResult<&str, Option<u64>> {
    move |i| {
        map(
            take_while1(move |c: char| c.is_digit(radix)),
            move |d: &str| {
                d.chars().try_fold(0u64, |acc, c| {
                    acc.checked_mul(u64::from(radix))?
                        .checked_add(u64::from(c.to_digit(radix)?))
                })
            },
        )
        .parse(i)
    }
}

/// The magnitude part of `strtoul(s, &end, 0)`: `0x` hex, leading-0
/// octal, else decimal.
fn ul_magnitude(i: &str) -> IResult<&str, Option<u64>> {
    alt((
        preceded(
            (
                char('0'),
                one_of("xX"),
                peek(one_of("0123456789abcdefABCDEF")),
            ),
            digits(16),
        ),
        preceded(peek(char('0')), digits(8)),
        digits(10),
    ))
    .parse(i)
}

/// `get_val`: the whole word is a number in `strtoul(…, 0)` syntax
/// (leading blanks and a sign allowed; a minus negates modulo 2^64).
pub fn get_val(s: &str) -> Option<u64> {
    let sign = opt(one_of("+-"));
    let mut p = all_consuming((take_while(is_space), sign, ul_magnitude));
    let (_, (_, sign, mag)) = p.parse(s).ok()?;
    let v = mag?;
    Some(if sign == Some('-') {
        v.wrapping_neg()
    } else {
        v
    })
}

/// One `%x` conversion of scanf(3): blanks, a sign, an optional `0x`,
/// hex digits; wraps like the C conversion does into an unsigned int.
fn scanf_hex(i: &str) -> IResult<&str, u32> {
    let (i, (_, sign, _)) = (
        take_while(is_space),
        opt(one_of("+-")),
        opt(terminated(char('0'), one_of("xX"))),
    )
        .parse(i)?;
    // "0x" with no digits after it scans as 0, as in C.
    let (i, d) = take_while(|c: char| c.is_ascii_hexdigit()).parse(i)?;
    let v = d.chars().fold(0u32, |acc, c| {
        acc.wrapping_mul(16)
            .wrapping_add(c.to_digit(16).unwrap_or(0))
    });
    Ok((
        i,
        if sign == Some('-') {
            v.wrapping_neg()
        } else {
            v
        },
    ))
}

fn scanf_hex_nonempty(i: &str) -> IResult<&str, u32> {
    let (_, ok) = peek(opt((
        take_while(is_space),
        opt(one_of("+-")),
        take_while1(|c: char| c.is_ascii_hexdigit()),
    )))
    .parse(i)?;
    if ok.is_none() {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::HexDigit,
        )));
    }
    scanf_hex(i)
}

/// `ether_aton(3)` as NetBSD writes it: `sscanf(s, " %x:%x:%x:%x:%x:%x")`,
/// each part truncated to a byte, anything after the sixth ignored.
pub fn ether_aton(s: &str) -> Option<Mac> {
    let octet = |i| scanf_hex_nonempty(i);
    let mut p = (
        take_while(is_space),
        octet,
        count(preceded(char(':'), octet), 5),
        rest,
    );
    let (_, (_, first, others, _)) = p.parse(s).ok()?;
    let mut mac = [first as u8; 6];
    for (b, v) in mac[1..].iter_mut().zip(others) {
        *b = v as u8;
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtoul_syntax() {
        assert_eq!(get_val("100"), Some(100));
        assert_eq!(get_val("0x10"), Some(16));
        assert_eq!(get_val("0X1f"), Some(31));
        assert_eq!(get_val("010"), Some(8));
        assert_eq!(get_val("0"), Some(0));
        assert_eq!(get_val("  7"), Some(7));
        assert_eq!(get_val("+7"), Some(7));
        assert_eq!(get_val("-1"), Some(u64::MAX));
        assert_eq!(get_val(""), None);
        assert_eq!(get_val("7 "), None);
        assert_eq!(get_val("08"), None);
        assert_eq!(get_val("0x"), None);
        assert_eq!(get_val("0xg"), None);
        assert_eq!(get_val("abc"), None);
        assert_eq!(get_val("18446744073709551615"), Some(u64::MAX));
        assert_eq!(get_val("18446744073709551616"), None);
    }

    #[test]
    fn ether_aton_syntax() {
        assert_eq!(
            ether_aton("00:aa:aa:aa:aa:aa"),
            Some([0, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa])
        );
        assert_eq!(ether_aton("b2:A0:1:2:3:4"), Some([0xb2, 0xa0, 1, 2, 3, 4]));
        assert_eq!(ether_aton(" 1:2:3:4:5:6junk"), Some([1, 2, 3, 4, 5, 6]));
        assert_eq!(ether_aton("1:2:3:4:5:0x106"), Some([1, 2, 3, 4, 5, 6]));
        assert_eq!(ether_aton("1:2:3:4:5"), None);
        assert_eq!(ether_aton("XX"), None);
        assert_eq!(ether_aton(""), None);
        assert_eq!(ether_aton("1:2:3:4:5:"), None);
    }

    #[test]
    fn bridge_names() {
        assert!(is_bridge("bridge0"));
        assert!(is_bridge("bridge0x"));
        assert!(!is_bridge("bridge"));
        assert!(!is_bridge("foo0"));
        assert!(!is_bridge("bridgex"));
    }
}
