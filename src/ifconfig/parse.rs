//! The command line, as NetBSD's parse.c reads it: getopt flags choose a
//! start node; then the interface, an optional `create`/`destroy`, an
//! optional family and a sequence of commands, each matched against keyword
//! tables whose rows carry their action (adding a keyword is adding a row).
//! The argument grammar is a set of `nom` parsers over the argument list
//! ([`Args`]); single words (addresses, numbers, MACs) are `nom` parsers
//! over `&str`.

use crate::ioctl::{VxlanReq, ifcap, iff, in6_iff};
use nom::branch::alt;
use nom::bytes::complete::{tag_no_case, take_while, take_while_m_n, take_while1};
use nom::character::complete::{char, digit1, multispace0, one_of};
use nom::combinator::{
    all_consuming, cut, eof, map, map_opt, map_res, opt, recognize, rest, value, verify,
};
use nom::multi::separated_list1;
use nom::sequence::{preceded, terminated};
use nom::{IResult, Parser};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest interface name piface_match accepts (IFNAMSIZ).
const IFNAMSIZ: usize = 16;
/// The buffer pstr_match copies string arguments into.
const PSTR_MAX: usize = 128;

/// Address families, with NetBSD's numbers (they appear in error messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Inet,
    Inet6,
    Link,
    AppleTalk,
}

impl Family {
    /// In the order ifconfig registers them (the `af` keyword table).
    const TABLE: [(&'static str, Family); 4] = [
        ("inet", Family::Inet),
        ("inet6", Family::Inet6),
        ("link", Family::Link),
        ("atalk", Family::AppleTalk),
    ];

    pub fn af(self) -> i32 {
        match self {
            Family::Inet => 2,
            Family::AppleTalk => 16,
            Family::Link => 18,
            Family::Inet6 => 24,
        }
    }

    fn lookup(word: &str) -> Option<Family> {
        Family::TABLE
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, f)| *f)
    }
}

/// An address as a command line gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    Inet(Ipv4Addr),
    /// With the `%scope` suffix, if any.
    Inet6(Ipv6Addr, Option<String>),
    /// Any number of octets; the kernel judges the length.
    Link(Vec<u8>),
    AppleTalk {
        net: u16,
        node: u8,
    },
}

/// An interface by name or by index (`ifconfig 2`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfName {
    Name(String),
    Index(u32),
}

impl IfName {
    fn parse(arg: &str) -> Option<IfName> {
        if arg.is_empty() || arg.len() > IFNAMSIZ {
            return None;
        }
        if arg.bytes().all(|b| b.is_ascii_digit()) {
            return arg.parse().ok().map(IfName::Index);
        }
        Some(IfName::Name(arg.to_string()))
    }
}

impl std::fmt::Display for IfName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IfName::Name(n) => f.write_str(n),
            IfName::Index(i) => write!(f, "{i}"),
        }
    }
}

/// One command of a configuring command line, in the order given. Values
/// are kept as typed (i64 for integers) so that range errors happen where
/// NetBSD has them: in the kernel, or while committing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// SIOCIFCREATE
    Create,
    /// SIOCIFDESTROY
    Destroy,
    /// setifflags: a positive value sets the IFF_ bit, a negative one clears it.
    IfFlag(i64),
    /// setifcaps: likewise for IFCAP_ bits.
    IfCap(i64),
    Mtu(i64),
    /// ifnet's own: bytes queued for the peer at most (tap).
    TxQueue(i64),
    Metric(i64),
    LinkStr(String),
    UnsetLinkStr,
    Descr(String),
    UnsetDescr,
    Media(String),
    MediaOpt(String),
    UnMediaOpt(String),
    MediaInst(i64),
    MediaMode(String),
    /// The first positional address, with the `/len` it carried.
    Address {
        addr: Addr,
        prefixlen: Option<i64>,
    },
    /// The second positional address: netmask on broadcast interfaces,
    /// else the point-to-point destination.
    DstOrMask(Addr),
    /// `broadcast ADDR` or the third positional address.
    Broadcast(Addr),
    Netmask(Addr),
    Prefixlen(i64),
    /// `alias` (true), `-alias` and `delete` (false).
    Alias(bool),
    /// IN6_IFF_ bits, signed as IfFlag.
    Ia6Flag(i64),
    Pltime(i64),
    Vltime(i64),
    Eui64,
    /// `link ADDR active`
    Active,
    Trailers,
    /// A vxlan keyword's request (see `super::vxlan`).
    Vxlan(VxlanReq),
}

/// The global flags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opts {
    /// -A (deprecated, warns)
    pub deprecated_a: bool,
    /// -b: only broadcast interfaces.
    pub broadcast_only: bool,
    /// -d: only interfaces that are down.
    pub down_only: bool,
    /// -u: only interfaces that are up.
    pub up_only: bool,
    /// -s: skip interfaces whose link is down.
    pub skip_down_link: bool,
    /// -h: human-readable byte counts.
    pub human: bool,
    /// -l: names only.
    pub list: bool,
    /// -L: address lifetimes.
    pub lifetimes: bool,
    /// -m: supported media.
    pub media_list: bool,
    /// -N: resolve addresses to names.
    pub resolve: bool,
    /// -v: link state and counters.
    pub verbose: bool,
    /// -z: counters, then zero them.
    pub zero: bool,
    /// -w secs / -W secs
    pub wait: Option<u32>,
    pub wait_detached: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub ifname: IfName,
    pub family: Option<Family>,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `-a [af]`, `-l`, or no arguments at all.
    All {
        family: Option<Family>,
    },
    /// `ifconfig IF [af]`
    Status {
        ifname: IfName,
        family: Option<Family>,
    },
    /// `-s IF`
    Carrier {
        ifname: IfName,
    },
    /// `-C`
    Cloners,
    /// `-w secs [-W secs]`
    WaitDad,
    Configure(Config),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    pub opts: Opts,
    pub command: Command,
}

/// Why a command line was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Print `ifconfig: WARNING` (if any), then the usage text; exit 1.
    Usage(Option<String>),
    /// Print `ifconfig: MESSAGE`; exit 1, no usage.
    Fatal(String),
}

fn usage() -> ParseError {
    ParseError::Usage(None)
}

/// Where the grammar starts, as the getopt flags select it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// interface [create|destroy] [af] [commands]
    Iface,
    /// [af]
    OptFamilyOnly,
    /// interface [af]
    IfaceOptFamilyOnly,
    /// interface
    IfaceOnly,
    /// nothing
    NoCmds,
    CloneTerm,
    WaitDad,
}

/// Parse a command line (without the program name).
pub fn parse(args: &[String]) -> Result<Invocation, ParseError> {
    let mut opts = Opts::default();
    let (mut all, mut cloners) = (false, false);
    let mut start = if args.is_empty() {
        Start::OptFamilyOnly
    } else {
        Start::Iface
    };
    let mut i = 0;
    // getopt(3) with "AabCdhlNsuvW:w:z" plus L and m: stops at the first
    // non-option, "--" ends the options.
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a.len() == 1 {
            break;
        }
        let chars: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            j += 1;
            match c {
                'w' | 'W' => {
                    let val = if j < chars.len() {
                        let v: String = chars[j..].iter().collect();
                        j = chars.len();
                        v
                    } else if i + 1 < args.len() {
                        i += 1;
                        args[i].clone()
                    } else {
                        return Err(ParseError::Usage(Some(format!(
                            "option requires an argument -- {c}"
                        ))));
                    };
                    let secs = strtoi(&val, 0, i32::MAX as i64)
                        .ok_or_else(|| ParseError::Fatal(format!("{val}: not a number")))?;
                    if c == 'w' {
                        opts.wait = Some(secs as u32);
                        start = Start::WaitDad;
                    } else {
                        opts.wait_detached = Some(secs as u32);
                    }
                }
                'A' => opts.deprecated_a = true,
                'a' => {
                    all = true;
                    start = Start::OptFamilyOnly;
                }
                'b' => opts.broadcast_only = true,
                'C' => {
                    cloners = true;
                    start = Start::CloneTerm;
                }
                'd' => opts.down_only = true,
                'h' => opts.human = true,
                'l' => {
                    opts.list = true;
                    start = Start::NoCmds;
                }
                'N' => opts.resolve = true,
                's' => {
                    opts.skip_down_link = true;
                    if start != Start::NoCmds && start != Start::OptFamilyOnly {
                        start = Start::IfaceOnly;
                    }
                }
                'u' => opts.up_only = true,
                'v' => opts.verbose = true,
                'z' | 'L' | 'm' => {
                    match c {
                        'z' => opts.zero = true,
                        'L' => opts.lifetimes = true,
                        _ => opts.media_list = true,
                    }
                    if start != Start::OptFamilyOnly {
                        start = Start::IfaceOptFamilyOnly;
                    }
                }
                _ => {
                    return Err(ParseError::Usage(Some(format!("unknown option -- {c}"))));
                }
            }
        }
        i += 1;
    }
    let rest = &args[i..];

    // -l, -C and -w exclude each other and the status-printing flags.
    let (l, w) = (opts.list, opts.wait.is_some());
    if (l || cloners || w) && (all || opts.media_list || opts.verbose || opts.zero) {
        return Err(usage());
    }
    if (l || cloners || w) && opts.lifetimes {
        return Err(usage());
    }
    if (l as u8 + cloners as u8 + w as u8) > 1 {
        return Err(usage());
    }

    let grammar = match start {
        Start::Iface => iface_start,
        Start::OptFamilyOnly => opt_family_only,
        Start::IfaceOptFamilyOnly => iface_opt_family_only,
        Start::IfaceOnly => iface_only,
        Start::NoCmds => no_cmds,
        Start::CloneTerm => clone_term,
        Start::WaitDad => wait_dad,
    };
    let command = match all_consuming(grammar).parse(Args(rest)) {
        Ok((_, command)) => command,
        Err(nom::Err::Error(ArgError(e)) | nom::Err::Failure(ArgError(e))) => return Err(e),
        Err(nom::Err::Incomplete(_)) => return Err(usage()),
    };
    Ok(Invocation { opts, command })
}

/// Keys a step leaves in the match environment; keywords look at them to
/// refuse a second `alias`, order media keywords, and pick which
/// positional address a bare address is (parse.c k_act/k_deact).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Address = 1,
    DstOrMask = 2,
    Broadcast = 4,
    Alias = 8,
    Media = 16,
    MediaOpt = 32,
    UnMediaOpt = 64,
    MediaInst = 128,
    MediaMode = 256,
    AnyMedia = 512,
}

#[derive(Clone, Copy, Default)]
struct Seen(u32);

impl Seen {
    fn has(self, k: Key) -> bool {
        self.0 & k as u32 != 0
    }

    fn note(&mut self, step: &Step) {
        let keys: &[Key] = match step {
            Step::Address { .. } => &[Key::Address],
            Step::DstOrMask(_) | Step::Netmask(_) => &[Key::DstOrMask],
            Step::Broadcast(_) => &[Key::Broadcast],
            Step::Alias(_) => &[Key::Alias],
            Step::Media(_) => &[Key::Media, Key::AnyMedia],
            Step::MediaOpt(_) => &[Key::MediaOpt, Key::AnyMedia],
            Step::UnMediaOpt(_) => &[Key::UnMediaOpt, Key::AnyMedia],
            Step::MediaInst(_) => &[Key::MediaInst, Key::AnyMedia],
            Step::MediaMode(_) => &[Key::MediaMode, Key::AnyMedia],
            _ => &[],
        };
        for k in keys {
            self.0 |= *k as u32;
        }
    }
}

/// What a keyword takes and makes.
pub(super) enum Then {
    /// No argument: the step, told whether the word was negated.
    Word(fn(bool) -> Step),
    /// One argument, parsed in the family of the command line.
    Arg(fn(Option<Family>, &str) -> Result<Step, ParseError>),
    /// Two arguments.
    Arg2(fn(&str, &str) -> Result<Step, ParseError>),
}

/// A row of a keyword table (parse.c `struct kwinst`).
pub(super) struct Kw {
    word: &'static str,
    /// `-word` is accepted too.
    neg: bool,
    /// A key that must have been seen before (k_act).
    needs: Option<Key>,
    /// Keys that must not have been seen (k_deact, k_altdeact).
    forbids: &'static [Key],
    then: Then,
}

pub(super) const fn kw(word: &'static str, neg: bool, then: Then) -> Kw {
    Kw {
        word,
        neg,
        needs: None,
        forbids: &[],
        then,
    }
}

/// Negate a signed flag word when the keyword was given as `-word`.
fn signed(v: i64, neg: bool) -> i64 {
    if neg { -v } else { v }
}

macro_rules! flag_rows {
    ($variant:ident: $($word:literal => $val:expr),* $(,)?) => {
        [$(kw($word, true, Then::Word(|neg| Step::$variant(signed($val, neg))))),*]
    };
}

/// setifflags keywords (IFKW rows: `-word` undoes `word`).
static IFFLAGS: [Kw; 8] = [
    kw("up", false, Then::Word(|_| Step::IfFlag(iff::UP as i64))),
    kw(
        "down",
        false,
        Then::Word(|_| Step::IfFlag(-(iff::UP as i64))),
    ),
    kw(
        "arp",
        true,
        Then::Word(|neg| Step::IfFlag(signed(-(iff::NOARP as i64), neg))),
    ),
    kw(
        "debug",
        true,
        Then::Word(|neg| Step::IfFlag(signed(iff::DEBUG as i64, neg))),
    ),
    kw(
        "unnumbered",
        true,
        Then::Word(|neg| Step::IfFlag(signed(iff::UNNUMBERED as i64, neg))),
    ),
    kw(
        "link0",
        true,
        Then::Word(|neg| Step::IfFlag(signed(iff::LINK0 as i64, neg))),
    ),
    kw(
        "link1",
        true,
        Then::Word(|neg| Step::IfFlag(signed(iff::LINK1 as i64, neg))),
    ),
    kw(
        "link2",
        true,
        Then::Word(|neg| Step::IfFlag(signed(iff::LINK2 as i64, neg))),
    ),
];

const CSUM_IP4: i64 = (ifcap::IP4CSUM_TX | ifcap::IP4CSUM_RX) as i64;
const CSUM_TCP4: i64 = (ifcap::TCP4CSUM_TX | ifcap::TCP4CSUM_RX) as i64;
const CSUM_UDP4: i64 = (ifcap::UDP4CSUM_TX | ifcap::UDP4CSUM_RX) as i64;
const CSUM_TCP6: i64 = (ifcap::TCP6CSUM_TX | ifcap::TCP6CSUM_RX) as i64;
const CSUM_UDP6: i64 = (ifcap::UDP6CSUM_TX | ifcap::UDP6CSUM_RX) as i64;

/// Offload capability keywords.
static IFCAPS: [Kw; 17] = flag_rows![IfCap:
    "ip4csum-tx" => ifcap::IP4CSUM_TX as i64,
    "ip4csum-rx" => ifcap::IP4CSUM_RX as i64,
    "tcp4csum-tx" => ifcap::TCP4CSUM_TX as i64,
    "tcp4csum-rx" => ifcap::TCP4CSUM_RX as i64,
    "udp4csum-tx" => ifcap::UDP4CSUM_TX as i64,
    "udp4csum-rx" => ifcap::UDP4CSUM_RX as i64,
    "tcp6csum-tx" => ifcap::TCP6CSUM_TX as i64,
    "tcp6csum-rx" => ifcap::TCP6CSUM_RX as i64,
    "udp6csum-tx" => ifcap::UDP6CSUM_TX as i64,
    "udp6csum-rx" => ifcap::UDP6CSUM_RX as i64,
    "ip4csum" => CSUM_IP4,
    "tcp4csum" => CSUM_TCP4,
    "udp4csum" => CSUM_UDP4,
    "tcp6csum" => CSUM_TCP6,
    "udp6csum" => CSUM_UDP6,
    "tso4" => ifcap::TSO4 as i64,
    "tso6" => ifcap::TSO6 as i64,
];

/// inet6 address flags.
static IA6FLAGS: [Kw; 3] = flag_rows![Ia6Flag:
    "anycast" => in6_iff::ANYCAST as i64,
    "tentative" => in6_iff::TENTATIVE as i64,
    "deprecated" => in6_iff::DEPRECATED as i64,
];

const ALIAS_ONCE: &[Key] = &[Key::Alias];

/// Everything else: address modifiers, link parameters, inet6 lifetimes.
static MISC: [Kw; 19] = [
    Kw {
        forbids: ALIAS_ONCE,
        ..kw("alias", true, Then::Word(|neg| Step::Alias(!neg)))
    },
    Kw {
        forbids: ALIAS_ONCE,
        ..kw("delete", false, Then::Word(|_| Step::Alias(false)))
    },
    kw(
        "broadcast",
        false,
        Then::Arg(|af, a| Ok(Step::Broadcast(address(af, a)?))),
    ),
    kw(
        "netmask",
        false,
        Then::Arg(|af, a| Ok(Step::Netmask(address(af, a)?))),
    ),
    kw(
        "prefixlen",
        false,
        Then::Arg(|_, a| Ok(Step::Prefixlen(integer(a)?))),
    ),
    kw("mtu", false, Then::Arg(|_, a| Ok(Step::Mtu(integer(a)?)))),
    kw(
        "txqueue",
        false,
        Then::Arg(|_, a| Ok(Step::TxQueue(integer(a)?))),
    ),
    kw(
        "metric",
        false,
        Then::Arg(|_, a| Ok(Step::Metric(integer(a)?))),
    ),
    kw("trailers", true, Then::Word(|_| Step::Trailers)),
    kw(
        "linkstr",
        false,
        Then::Arg(|_, a| Ok(Step::LinkStr(string(a, true)?))),
    ),
    kw("-linkstr", false, Then::Word(|_| Step::UnsetLinkStr)),
    kw(
        "descr",
        false,
        Then::Arg(|_, a| Ok(Step::Descr(string(a, false)?))),
    ),
    kw(
        "description",
        false,
        Then::Arg(|_, a| Ok(Step::Descr(string(a, false)?))),
    ),
    kw("-descr", false, Then::Word(|_| Step::UnsetDescr)),
    kw("-description", false, Then::Word(|_| Step::UnsetDescr)),
    kw(
        "pltime",
        false,
        Then::Arg(|_, a| Ok(Step::Pltime(integer(a)?))),
    ),
    kw(
        "vltime",
        false,
        Then::Arg(|_, a| Ok(Step::Vltime(integer(a)?))),
    ),
    kw("eui64", false, Then::Word(|_| Step::Eui64)),
    kw("active", false, Then::Word(|_| Step::Active)),
];

/// Media keywords; their order is constrained as media.c does.
static MEDIA: [Kw; 6] = [
    Kw {
        needs: Some(Key::Media),
        forbids: &[Key::MediaInst],
        ..kw(
            "instance",
            false,
            Then::Arg(|_, a| Ok(Step::MediaInst(media_instance(a)?))),
        )
    },
    Kw {
        needs: Some(Key::Media),
        forbids: &[Key::MediaInst],
        ..kw(
            "inst",
            false,
            Then::Arg(|_, a| Ok(Step::MediaInst(media_instance(a)?))),
        )
    },
    Kw {
        forbids: &[Key::Media, Key::AnyMedia],
        ..kw(
            "media",
            false,
            Then::Arg(|_, a| Ok(Step::Media(string(a, false)?))),
        )
    },
    Kw {
        forbids: &[Key::MediaOpt],
        ..kw(
            "mediaopt",
            false,
            Then::Arg(|_, a| Ok(Step::MediaOpt(string(a, false)?))),
        )
    },
    Kw {
        forbids: &[Key::UnMediaOpt, Key::Media],
        ..kw(
            "-mediaopt",
            false,
            Then::Arg(|_, a| Ok(Step::UnMediaOpt(string(a, false)?))),
        )
    },
    Kw {
        forbids: &[Key::MediaMode],
        ..kw(
            "mode",
            false,
            Then::Arg(|_, a| Ok(Step::MediaMode(string(a, false)?))),
        )
    },
];

/// The tables command_root tries, first match wins; then those that the
/// files of features register (`inventory::submit!`), as the features of
/// NetBSD's ifconfig register themselves: a feature is one file.
static TABLES: [&[Kw]; 5] = [&IA6FLAGS, &MEDIA, &IFFLAGS, &IFCAPS, &MISC];

/// A feature's keyword table (its words are found in no other table).
pub(super) struct Keywords(pub(super) &'static [Kw]);

inventory::collect!(Keywords);

fn all_keywords() -> impl Iterator<Item = &'static Kw> {
    TABLES
        .iter()
        .copied()
        .chain(inventory::iter::<Keywords>.into_iter().map(|k| k.0))
        .flat_map(|t| t.iter())
}

/// The arguments after the options, as nom input: one item per argument.
#[derive(Clone, Copy, Debug)]
pub struct Args<'a>(&'a [String]);

type ArgIter<'a> = std::iter::Map<std::slice::Iter<'a, String>, fn(&'a String) -> &'a str>;

impl<'a> nom::Input for Args<'a> {
    type Item = &'a str;
    type Iter = ArgIter<'a>;
    type IterIndices = std::iter::Enumerate<ArgIter<'a>>;

    fn input_len(&self) -> usize {
        self.0.len()
    }

    fn take(&self, index: usize) -> Self {
        Args(&self.0[..index])
    }

    fn take_from(&self, index: usize) -> Self {
        Args(&self.0[index..])
    }

    fn take_split(&self, index: usize) -> (Self, Self) {
        let (prefix, suffix) = self.0.split_at(index);
        (Args(suffix), Args(prefix))
    }

    fn position<P: Fn(Self::Item) -> bool>(&self, predicate: P) -> Option<usize> {
        self.0.iter().position(|a| predicate(a))
    }

    fn iter_elements(&self) -> Self::Iter {
        self.0
            .iter()
            .map(String::as_str as fn(&'a String) -> &'a str)
    }

    fn iter_indices(&self) -> Self::IterIndices {
        self.iter_elements().enumerate()
    }

    fn slice_index(&self, count: usize) -> Result<usize, nom::Needed> {
        if count <= self.0.len() {
            Ok(count)
        } else {
            Err(nom::Needed::new(count - self.0.len()))
        }
    }
}

/// A grammar error says how ifconfig reports it. `Error` lets `alt` try
/// the next branch; `Failure` (a keyword whose argument is bad, a fatal
/// prefix length) ends the parse.
#[derive(Debug)]
struct ArgError(ParseError);

impl<'a> nom::error::ParseError<Args<'a>> for ArgError {
    fn from_error_kind(_: Args<'a>, _: nom::error::ErrorKind) -> Self {
        ArgError(usage())
    }

    fn append(_: Args<'a>, _: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, T> = IResult<Args<'a>, T, ArgError>;

fn fail<T>(e: ParseError) -> Result<T, nom::Err<ArgError>> {
    Err(nom::Err::Failure(ArgError(e)))
}

fn backtrack<T>() -> Result<T, nom::Err<ArgError>> {
    Err(nom::Err::Error(ArgError(usage())))
}

/// Any one argument.
fn arg(i: Args<'_>) -> PResult<'_, &str> {
    match i.0.split_first() {
        Some((a, rest)) => Ok((Args(rest), a.as_str())),
        None => backtrack(),
    }
}

/// The argument `w`.
fn word<'a>(w: &'static str) -> impl Parser<Args<'a>, Output = &'a str, Error = ArgError> {
    verify(arg, move |a: &str| a == w)
}

fn family(i: Args<'_>) -> PResult<'_, Family> {
    map_opt(arg, Family::lookup).parse(i)
}

fn ifname(i: Args<'_>) -> PResult<'_, IfName> {
    map_opt(arg, IfName::parse).parse(i)
}

fn end(i: Args<'_>) -> PResult<'_, ()> {
    value((), eof).parse(i)
}

/// `-a`: [af]
fn opt_family_only(i: Args<'_>) -> PResult<'_, Command> {
    map(terminated(opt(family), end), |family| Command::All {
        family,
    })
    .parse(i)
}

/// `-L`, `-m`, `-z`: interface [af]
fn iface_opt_family_only(i: Args<'_>) -> PResult<'_, Command> {
    map((ifname, opt(family), end), |(ifname, family, _)| {
        Command::Status { ifname, family }
    })
    .parse(i)
}

/// `-s`: interface
fn iface_only(i: Args<'_>) -> PResult<'_, Command> {
    map(terminated(ifname, end), |ifname| Command::Carrier {
        ifname,
    })
    .parse(i)
}

/// `-l`: nothing more.
fn no_cmds(i: Args<'_>) -> PResult<'_, Command> {
    value(Command::All { family: None }, end).parse(i)
}

fn clone_term(i: Args<'_>) -> PResult<'_, Command> {
    value(Command::Cloners, end).parse(i)
}

fn wait_dad(i: Args<'_>) -> PResult<'_, Command> {
    value(Command::WaitDad, end).parse(i)
}

/// interface [destroy | create [af] [commands] | [af] [commands]]
fn iface_start(i: Args<'_>) -> PResult<'_, Command> {
    let (i, ifname) = ifname(i)?;
    let configure = |family, steps| {
        Command::Configure(Config {
            ifname: ifname.clone(),
            family,
            steps,
        })
    };
    alt((
        map((word("destroy"), end), |_| {
            configure(None, vec![Step::Destroy])
        }),
        map(
            preceded(word("create"), opt(family)).flat_map(|f| commands(f, vec![Step::Create])),
            |(f, s)| configure(f, s),
        ),
        map((opt(family), end), |(family, _)| Command::Status {
            ifname: ifname.clone(),
            family,
        }),
        map(
            opt(family).flat_map(|f| commands(f, Vec::new())),
            |(f, s)| configure(f, s),
        ),
    ))
    .parse(i)
}

/// The command loop (parse.c command_root): keywords, and up to three
/// positional addresses, to the end of the arguments. What was seen so
/// far decides what may come next.
fn commands<'a>(
    family: Option<Family>,
    first: Vec<Step>,
) -> impl Parser<Args<'a>, Output = (Option<Family>, Vec<Step>), Error = ArgError> {
    move |mut i: Args<'a>| {
        let mut seen = Seen::default();
        let mut steps = first.clone();
        while !i.0.is_empty() {
            let (rest, step) = match alt((keyword(seen, family), positional(seen, family))).parse(i)
            {
                Ok(r) => r,
                Err(nom::Err::Error(e)) => return Err(nom::Err::Failure(e)),
                Err(e) => return Err(e),
            };
            seen.note(&step);
            steps.push(step);
            i = rest;
        }
        Ok((i, (family, steps)))
    }
}

/// A keyword of the tables, first match wins, with its argument.
fn keyword<'a>(
    seen: Seen,
    family: Option<Family>,
) -> impl Parser<Args<'a>, Output = Step, Error = ArgError> {
    move |i: Args<'a>| {
        let (i, w) = arg(i)?;
        let found = all_keywords().find_map(|k| {
            if k.word == w {
                Some((k, false))
            } else if k.neg && w.strip_prefix('-') == Some(k.word) {
                Some((k, true))
            } else {
                None
            }
        });
        let Some((k, neg)) = found else {
            return backtrack();
        };
        if k.needs.is_some_and(|n| !seen.has(n)) || k.forbids.iter().any(|f| seen.has(*f)) {
            return fail(usage());
        }
        match k.then {
            Then::Word(f) => Ok((i, f(neg))),
            Then::Arg(f) => {
                let (i, a) = cut(arg).parse(i)?;
                f(family, a).map(|s| (i, s)).or_else(fail)
            }
            Then::Arg2(f) => {
                let (i, (a, b)) = cut((arg, arg)).parse(i)?;
                f(a, b).map(|s| (i, s)).or_else(fail)
            }
        }
    }
}

/// A bare address: the local one, then destination-or-netmask, then the
/// broadcast address.
fn positional<'a>(
    seen: Seen,
    family: Option<Family>,
) -> impl Parser<Args<'a>, Output = Step, Error = ArgError> {
    move |i: Args<'a>| {
        let (i, w) = arg(i)?;
        let step = if !seen.has(Key::Address) {
            address_prefix(family, w).map(|(addr, prefixlen)| Step::Address { addr, prefixlen })
        } else if !seen.has(Key::DstOrMask) {
            address(family, w).map(Step::DstOrMask)
        } else if !seen.has(Key::Broadcast) {
            address(family, w).map(Step::Broadcast)
        } else {
            Err(usage())
        };
        step.map(|s| (i, s)).or_else(fail)
    }
}

/// A positional first address: may carry `/len`, checked against the
/// family as paddr_match does (a bad length is fatal, not a usage error).
fn address_prefix(family: Option<Family>, arg: &str) -> Result<(Addr, Option<i64>), ParseError> {
    let inetish = matches!(family, None | Some(Family::Inet) | Some(Family::Inet6));
    let (host, plen) = match arg.rfind('/') {
        Some(p) if inetish => (&arg[..p], Some(&arg[p + 1..])),
        _ => (arg, None),
    };
    let addr = address(family, host)?;
    let Some(plen) = plen else {
        return Ok((addr, None));
    };
    let len = strtol(plen).ok_or_else(usage)?;
    if !(0..255).contains(&len) {
        return Err(usage());
    }
    let (af, bits) = match addr {
        Addr::Inet6(..) => (Family::Inet6.af(), 128),
        _ => (Family::Inet.af(), 32),
    };
    if len > bits {
        return Err(ParseError::Fatal(format!(
            "paddr_match: prefixlen_to_mask({af}, {len}): Invalid argument"
        )));
    }
    Ok((addr, Some(len)))
}

/// An address of the command line's family (inet when none was given).
fn address(family: Option<Family>, arg: &str) -> Result<Addr, ParseError> {
    let addr = match family.unwrap_or(Family::Inet) {
        Family::Inet => inet_aton(arg).map(Addr::Inet),
        Family::Inet6 => inet6(arg),
        Family::Link => link_addr(arg).map(Addr::Link),
        Family::AppleTalk => atalk(arg),
    };
    addr.ok_or_else(usage)
}

/// A string argument as pstr_match takes it: at most 128 bytes, and for
/// hex-capable ones `0x…` is decoded.
fn string(arg: &str, hexok: bool) -> Result<String, ParseError> {
    if hexok && (arg.starts_with("0x") || arg.starts_with("0X")) {
        let hex = &arg[2..];
        let ok = hex.len().is_multiple_of(2) && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(ParseError::Usage(Some("bad hexadecimal digits".into())));
        }
        if hex.len() / 2 > PSTR_MAX {
            return Err(ParseError::Usage(Some(
                "hexadecimal digits too long".into(),
            )));
        }
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
            .collect();
        return Ok(String::from_utf8_lossy(&bytes).into_owned());
    }
    if arg.len() > PSTR_MAX {
        return Err(ParseError::Usage(Some("strings too long".into())));
    }
    Ok(arg.to_string())
}

fn integer(arg: &str) -> Result<i64, ParseError> {
    strtol(arg).ok_or_else(usage)
}

/// Media instances are 0..=IFM_INST_MAX.
fn media_instance(arg: &str) -> Result<i64, ParseError> {
    integer(arg).and_then(|v| {
        if (0..=15).contains(&v) {
            Ok(v)
        } else {
            Err(usage())
        }
    })
}

/// strtoimax(3) with a check for trailing garbage, as pinteger_match uses
/// it: leading blanks and a sign are fine, an empty string is 0.
pub fn strtol(s: &str) -> Option<i64> {
    if s.is_empty() {
        return Some(0);
    }
    let num = (multispace0, opt(one_of("+-")), digit1);
    let r: IResult<&str, _> = all_consuming(num).parse(s);
    let (_, (_, sign, digits)) = r.ok()?;
    let v: i64 = digits.parse().ok()?;
    Some(if sign == Some('-') { -v } else { v })
}

/// strtoi(3) in [min, max] with nothing after the number.
fn strtoi(s: &str, min: i64, max: i64) -> Option<i64> {
    let num = (multispace0, opt(one_of("+-")), digit1);
    let r: IResult<&str, _> = all_consuming(num).parse(s);
    let (_, (_, sign, digits)) = r.ok()?;
    let v: i64 = digits.parse().ok()?;
    let v = if sign == Some('-') { -v } else { v };
    (min..=max).contains(&v).then_some(v)
}

/// One part of an inet_aton address: hex, octal or decimal.
fn aton_part(s: &str) -> IResult<&str, u64> {
    alt((
        map_res(
            preceded(
                tag_no_case("0x"),
                take_while(|c: char| c.is_ascii_hexdigit()),
            ),
            |h: &str| {
                if h.is_empty() {
                    Ok(0)
                } else {
                    u64::from_str_radix(h, 16)
                }
            },
        ),
        map_res(
            recognize((char('0'), take_while(|c: char| ('0'..='7').contains(&c)))),
            |o: &str| u64::from_str_radix(o, 8),
        ),
        map_res(digit1, |d: &str| d.parse::<u64>()),
    ))
    .parse(s)
}

/// inet_aton(3): `a.b.c.d`, `a.b.c`, `a.b`, `a`, each part hex, octal or
/// decimal; the last part fills the remaining bytes.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    // Like inet_aton, stop quietly at white space.
    let end = alt((eof, recognize((one_of(" \t\n\r\x0b\x0c"), rest))));
    let r: IResult<&str, _> = (separated_list1(char('.'), aton_part), end).parse(s);
    let (_, (parts, _)) = r.ok()?;
    let max_last = match parts.len() {
        1 => 0xffff_ffff,
        2 => 0xff_ffff,
        3 => 0xffff,
        4 => 0xff,
        _ => return None,
    };
    let (last, head) = parts.split_last()?;
    if *last > max_last || head.iter().any(|p| *p > 0xff) {
        return None;
    }
    let mut v: u64 = 0;
    for (i, p) in head.iter().enumerate() {
        v |= p << (24 - 8 * i);
    }
    Some(Ipv4Addr::from((v | last) as u32))
}

/// `addr[%scope]`, numeric only.
fn inet6(s: &str) -> Option<Addr> {
    let body = take_while1(|c: char| c.is_ascii_hexdigit() || c == ':' || c == '.');
    let scope = opt(preceded(char('%'), take_while1(|c: char| c != '%')));
    let r: IResult<&str, _> = all_consuming((body, scope)).parse(s);
    let (_, (addr, scope)) = r.ok()?;
    let addr: Ipv6Addr = addr.parse().ok()?;
    Some(Addr::Inet6(addr, scope.map(str::to_string)))
}

/// A link address: octets of one or two hex digits separated by colons.
pub fn link_addr(s: &str) -> Option<Vec<u8>> {
    let octet = map_res(
        take_while_m_n(1, 2, |c: char| c.is_ascii_hexdigit()),
        |h: &str| u8::from_str_radix(h, 16),
    );
    let r: IResult<&str, Vec<u8>> = all_consuming(separated_list1(char(':'), octet)).parse(s);
    r.ok().map(|(_, v)| v)
}

/// An AppleTalk `net.node`.
fn atalk(s: &str) -> Option<Addr> {
    let num = || map_res(digit1, |d: &str| d.parse::<u32>());
    let r: IResult<&str, _> = all_consuming((num(), char('.'), num())).parse(s);
    let (_, (net, _, node)) = r.ok()?;
    let ok = (1..=0xffff).contains(&net) && (1..=0xfe).contains(&node);
    ok.then_some(Addr::AppleTalk {
        net: net as u16,
        node: node as u8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    fn p(line: &str) -> Result<Invocation, ParseError> {
        parse(&argv(line))
    }

    fn cfg(line: &str) -> (Option<Family>, Vec<Step>) {
        match p(line) {
            Ok(Invocation {
                command: Command::Configure(c),
                ..
            }) => (c.family, c.steps),
            r => panic!("{line}: {r:?}"),
        }
    }

    fn v4(s: &str) -> Addr {
        Addr::Inet(s.parse().unwrap())
    }

    fn v6(s: &str) -> Addr {
        Addr::Inet6(s.parse().unwrap(), None)
    }

    fn at(addr: Addr) -> Step {
        Step::Address {
            addr,
            prefixlen: None,
        }
    }

    const UP: i64 = iff::UP as i64;
    const INET: Option<Family> = Some(Family::Inet);
    const INET6: Option<Family> = Some(Family::Inet6);

    /// Every command line of NetBSD's own test scripts (spec), as steps.
    #[test]
    fn netbsd_test_lines() {
        let mac = Addr::Link(vec![0xb2, 0xa0, 0x75, 0, 0, 1]);
        let table: Vec<(&str, Option<Family>, Vec<Step>)> = vec![
            ("shmif0 create", None, vec![Step::Create]),
            (
                "shmif0 linkstr bus1",
                None,
                vec![Step::LinkStr("bus1".into())],
            ),
            (
                "shmif0 inet 10.0.0.1 netmask 0xffffff00",
                INET,
                vec![at(v4("10.0.0.1")), Step::Netmask(v4("255.255.255.0"))],
            ),
            ("shmif0 inet6 fc00::1", INET6, vec![at(v6("fc00::1"))]),
            ("shmif0 up", None, vec![Step::IfFlag(UP)]),
            ("shmif0 down", None, vec![Step::IfFlag(-UP)]),
            ("shmif0 destroy", None, vec![Step::Destroy]),
            (
                "bridge0 create up",
                None,
                vec![Step::Create, Step::IfFlag(UP)],
            ),
            (
                "shmif0 inet 192.168.0.3/24 alias",
                INET,
                vec![
                    Step::Address {
                        addr: v4("192.168.0.3"),
                        prefixlen: Some(24),
                    },
                    Step::Alias(true),
                ],
            ),
            (
                "shmif0 inet 192.168.1.1/24 -alias",
                INET,
                vec![
                    Step::Address {
                        addr: v4("192.168.1.1"),
                        prefixlen: Some(24),
                    },
                    Step::Alias(false),
                ],
            ),
            (
                "shmif0 inet 192.168.1.1 delete",
                INET,
                vec![at(v4("192.168.1.1")), Step::Alias(false)],
            ),
            (
                "shmif0 inet 172.16.0.1 netmask 255.255.255.0 alias",
                INET,
                vec![
                    at(v4("172.16.0.1")),
                    Step::Netmask(v4("255.255.255.0")),
                    Step::Alias(true),
                ],
            ),
            (
                "shmif0 inet6 fc00::1 prefixlen 70",
                INET6,
                vec![at(v6("fc00::1")), Step::Prefixlen(70)],
            ),
            (
                "shmif0 inet6 fc00::2 anycast",
                INET6,
                vec![at(v6("fc00::2")), Step::Ia6Flag(in6_iff::ANYCAST as i64)],
            ),
            (
                "shmif0 link b2:a0:75:00:00:01 active",
                Some(Family::Link),
                vec![at(mac.clone()), Step::Active],
            ),
            (
                "shmif0 link b2:a0:75:0:0:1 delete",
                Some(Family::Link),
                vec![at(mac), Step::Alias(false)],
            ),
            ("shmif0 metric 10", None, vec![Step::Metric(10)]),
        ];
        for (line, family, steps) in table {
            assert_eq!(cfg(line), (family, steps), "{line}");
        }
        let status = p("shmif0").unwrap().command;
        let want = Command::Status {
            ifname: IfName::Name("shmif0".into()),
            family: None,
        };
        assert_eq!(status, want);
    }

    #[test]
    fn keywords_and_negations() {
        let table: Vec<(&str, Vec<Step>)> = vec![
            (
                "lo0 -arp arp",
                vec![
                    Step::IfFlag(iff::NOARP as i64),
                    Step::IfFlag(-(iff::NOARP as i64)),
                ],
            ),
            (
                "lo0 debug -debug",
                vec![
                    Step::IfFlag(iff::DEBUG as i64),
                    Step::IfFlag(-(iff::DEBUG as i64)),
                ],
            ),
            (
                "lo0 link0 -link1 link2",
                vec![
                    Step::IfFlag(iff::LINK0 as i64),
                    Step::IfFlag(-(iff::LINK1 as i64)),
                    Step::IfFlag(iff::LINK2 as i64),
                ],
            ),
            (
                "lo0 ip4csum -tcp6csum-rx tso6",
                vec![
                    Step::IfCap(CSUM_IP4),
                    Step::IfCap(-(ifcap::TCP6CSUM_RX as i64)),
                    Step::IfCap(ifcap::TSO6 as i64),
                ],
            ),
            (
                "lo0 mtu 1500 metric -1",
                vec![Step::Mtu(1500), Step::Metric(-1)],
            ),
            (
                "lo0 linkstr 0x6275 -linkstr",
                vec![Step::LinkStr("bu".into()), Step::UnsetLinkStr],
            ),
            (
                "lo0 description hello -descr descr x -description",
                vec![
                    Step::Descr("hello".into()),
                    Step::UnsetDescr,
                    Step::Descr("x".into()),
                    Step::UnsetDescr,
                ],
            ),
            (
                "lo0 media auto mediaopt fdx instance 1",
                vec![
                    Step::Media("auto".into()),
                    Step::MediaOpt("fdx".into()),
                    Step::MediaInst(1),
                ],
            ),
            ("lo0 -mediaopt fdx", vec![Step::UnMediaOpt("fdx".into())]),
            (
                "lo0 inet6 fc00::1 -anycast tentative -tentative deprecated pltime 10 vltime 20 eui64",
                vec![
                    at(v6("fc00::1")),
                    Step::Ia6Flag(-(in6_iff::ANYCAST as i64)),
                    Step::Ia6Flag(in6_iff::TENTATIVE as i64),
                    Step::Ia6Flag(-(in6_iff::TENTATIVE as i64)),
                    Step::Ia6Flag(in6_iff::DEPRECATED as i64),
                    Step::Pltime(10),
                    Step::Vltime(20),
                    Step::Eui64,
                ],
            ),
            (
                "lo0 10.0.0.1 10.0.0.2 10.0.0.255",
                vec![
                    at(v4("10.0.0.1")),
                    Step::DstOrMask(v4("10.0.0.2")),
                    Step::Broadcast(v4("10.0.0.255")),
                ],
            ),
            (
                "lo0 10.0.0.1 netmask 255.0.0.0 10.255.255.255",
                vec![
                    at(v4("10.0.0.1")),
                    Step::Netmask(v4("255.0.0.0")),
                    Step::Broadcast(v4("10.255.255.255")),
                ],
            ),
            (
                "lo0 up 10 broadcast 1.2",
                vec![
                    Step::IfFlag(UP),
                    at(v4("0.0.0.10")),
                    Step::Broadcast(v4("1.0.0.2")),
                ],
            ),
            ("lo0 delete", vec![Step::Alias(false)]),
            (
                "lo0 trailers -trailers",
                vec![Step::Trailers, Step::Trailers],
            ),
            (
                "lo0 create inet6 fc00::1",
                vec![Step::Create, at(v6("fc00::1"))],
            ),
        ];
        for (line, steps) in table {
            assert_eq!(cfg(line).1, steps, "{line}");
        }
    }

    #[test]
    fn global_flags() {
        let inv = p("-a -b -d -u -s -h -v -m -L -z -N inet6").unwrap();
        assert_eq!(inv.command, Command::All { family: INET6 });
        let o = inv.opts;
        assert!(o.broadcast_only && o.down_only && o.up_only && o.skip_down_link);
        assert!(o.human && o.verbose && o.media_list && o.lifetimes && o.zero && o.resolve);
        assert_eq!(p("").unwrap().command, Command::All { family: None });
        let l = p("-l -bdsu").unwrap();
        assert!(l.opts.list && l.opts.up_only);
        assert_eq!(l.command, Command::All { family: None });
        assert_eq!(p("-C").unwrap().command, Command::Cloners);
        let w = p("-w 5 -W2").unwrap();
        assert_eq!(
            (w.command, w.opts.wait, w.opts.wait_detached),
            (Command::WaitDad, Some(5), Some(2))
        );
        let lo0 = || IfName::Name("lo0".into());
        assert_eq!(
            p("-s lo0").unwrap().command,
            Command::Carrier { ifname: lo0() }
        );
        assert_eq!(
            p("-L lo0 inet6").unwrap().command,
            Command::Status {
                ifname: lo0(),
                family: INET6
            }
        );
        assert_eq!(
            p("-v lo0 up").unwrap().command,
            Command::Configure(Config {
                ifname: lo0(),
                family: None,
                steps: vec![Step::IfFlag(UP)],
            })
        );
        assert_eq!(
            p("2 inet").unwrap().command,
            Command::Status {
                ifname: IfName::Index(2),
                family: INET
            }
        );
        assert!(p("-A lo0").unwrap().opts.deprecated_a);
        assert_eq!(
            p("-- lo0").unwrap().command,
            Command::Status {
                ifname: lo0(),
                family: None
            }
        );
    }

    #[test]
    fn refused() {
        let usage = Err(ParseError::Usage(None));
        for line in [
            "-l -a",
            "-l lo0",
            "-C -l",
            "-C lo0",
            "-w 1 -a",
            "-l -L",
            "-C -v",
            "-w 1 -C",
            "-a lo0",
            "-a inet inet6",
            "-s",
            "-s lo0 up",
            "-L lo0 up",
            "-z",
            "lo0 bogus",
            "lo0 mtu",
            "lo0 mtu 15x",
            "lo0 alias alias",
            "lo0 -alias delete",
            "lo0 1.2.3.4 1.2.3.5 1.2.3.6 1.2.3.7",
            "lo0 destroy up",
            "lo0 instance 1",
            "lo0 media auto media none",
            "lo0 media auto -mediaopt fdx",
            "lo0 -up",
            "lo0 10.0.0.1/-1",
            "lo0 10.0.0.1/255",
            "lo0 10.0.0.1/2x",
            "lo0 inet6 10.0.0.1",
            "lo0 fc00::1",
            "lo0 link 1:2:3:4:5:6:",
            "lo0 inet6 fc00::1 netmask 255.0.0.0/8",
            "abcdefghijklmnopq",
            "lo0 create create",
            "lo0 inet inet",
            "lo0 -descr x y",
        ] {
            assert_eq!(p(line), usage, "{line}");
        }
        let warned = |m: &str| Err(ParseError::Usage(Some(m.into())));
        assert_eq!(p("-x"), warned("unknown option -- x"));
        assert_eq!(p("-w"), warned("option requires an argument -- w"));
        assert_eq!(
            p(&format!("lo0 linkstr {}", "x".repeat(129))),
            warned("strings too long")
        );
        assert_eq!(p("lo0 linkstr 0xzz"), warned("bad hexadecimal digits"));
        let fatal = |m: &str| Err(ParseError::Fatal(m.into()));
        assert_eq!(p("-w x"), fatal("x: not a number"));
        assert_eq!(p("-w -1"), fatal("-1: not a number"));
        assert_eq!(
            p("foo0 10.0.0.1/33"),
            fatal("paddr_match: prefixlen_to_mask(2, 33): Invalid argument")
        );
        assert_eq!(
            p("foo0 inet6 fc00::1/200"),
            fatal("paddr_match: prefixlen_to_mask(24, 200): Invalid argument")
        );
    }

    #[test]
    fn words() {
        assert_eq!(inet_aton("10.0.0.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(
            inet_aton("0xffffff00"),
            Some(Ipv4Addr::new(255, 255, 255, 0))
        );
        assert_eq!(inet_aton("127.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(inet_aton("10.1.258"), Some(Ipv4Addr::new(10, 1, 1, 2)));
        assert_eq!(inet_aton("010.0.0.1"), Some(Ipv4Addr::new(8, 0, 0, 1)));
        assert_eq!(inet_aton("1.2.3.4 junk"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        for bad in [
            "",
            "1.2.3.4.5",
            "256.0.0.1",
            "1..2",
            "09",
            "x",
            "1.2.3.4x",
            "4294967296",
        ] {
            assert_eq!(inet_aton(bad), None, "{bad}");
        }
        assert_eq!(link_addr("0:a:bc"), Some(vec![0, 0xa, 0xbc]));
        assert_eq!(link_addr("abc"), None);
        assert_eq!(link_addr(":1"), None);
        assert_eq!(strtol(""), Some(0));
        assert_eq!(strtol(" -12"), Some(-12));
        assert_eq!(strtol("12 "), None);
        assert_eq!(strtol("99999999999999999999"), None);
        assert_eq!(
            inet6("fe80::1%lo0"),
            Some(Addr::Inet6("fe80::1".parse().unwrap(), Some("lo0".into())))
        );
        assert_eq!(inet6("fe80::1%"), None);
    }

    mod fuzz {
        use super::parse;
        use proptest::prelude::*;

        const WORDS: &[&str] = &[
            "-a",
            "-l",
            "-C",
            "-w",
            "-s",
            "-L",
            "lo0",
            "inet",
            "inet6",
            "link",
            "create",
            "destroy",
            "alias",
            "-alias",
            "delete",
            "netmask",
            "broadcast",
            "prefixlen",
            "mtu",
            "media",
            "mediaopt",
            "instance",
            "10.0.0.1/24",
            "fc00::1/64",
            "b2:a0:75:00:00:01",
            "up",
            "linkstr",
            "-W",
        ];

        proptest! {
            /// No command line makes the parser panic.
            #[test]
            fn never_panics(args in prop::collection::vec(
                prop_oneof![
                    "[-a-zA-Z0-9:./%]{0,12}",
                    prop::sample::select(WORDS).prop_map(str::to_string),
                ],
                0..8,
            )) {
                let _ = parse(&args);
            }
        }
    }
}
