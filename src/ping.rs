//! `ifping`: ping(8) from inside a virtual kernel, as NetBSD's rump.ping
//! pings from inside a rump kernel. Each echo request is an `Echo` request
//! to the daemon named by IFNET_SERVER; the kernel's IP presence sends it
//! and matches the reply.

use crate::ioctl::{Errno, IcmpError, Ioctl, Reply, Request, Response};
use std::fmt::Write as _;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const USAGE: &str = "usage: ifping [-6nqRv] [-c count] [-g gateway] [-h hoplimit] [-I srcaddr] [-i wait] [-S sourceaddr] [-s packetsize] [-T ttl] [-w deadline] [-W waittime] host[%scope]\n";

const IPOPT_EOL: u8 = 0;
const IPOPT_NOP: u8 = 1;
const IPOPT_RR: u8 = 7;
const IPOPT_LSRR: u8 = 131;
const MAX_IPOPTLEN: usize = 40;

/// Set by SIGINT: stop sending and print the summary, as ping does.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub count: Option<u64>,
    pub interval: Duration,
    pub size: u16,
    pub deadline: Option<Duration>,
    /// -W: how long to wait for the last reply; by default as NetBSD's
    /// ping, max(2 × the longest round trip, 10 × the interval).
    pub wait: Option<Duration>,
    pub quiet: bool,
    /// -v: ICMP errors with the request they quote.
    pub verbose: bool,
    pub dst: IpAddr,
    pub scope: Option<String>,
    pub host: String,
    /// -I, -S: the source address (one of the kernel's).
    pub src: Option<IpAddr>,
    /// -T, -h: the TTL or hop limit; 0 for the default.
    pub ttl: u8,
    /// -R: record route.
    pub record_route: bool,
    /// -g: loose source route through this gateway.
    pub gateway: Option<IpAddr>,
}

impl Options {
    /// ping.c's optspace: a loose source route to the destination (sent
    /// to the gateway) and a record route with the room left, 9 slots
    /// alone.
    pub fn ip_options(&self) -> Vec<u8> {
        let mut o = Vec::new();
        if self.gateway.is_some()
            && let IpAddr::V4(d) = self.dst
        {
            o.extend_from_slice(&[IPOPT_LSRR, 7, 4]);
            o.extend_from_slice(&d.octets());
            o.push(IPOPT_NOP);
        }
        if self.record_route {
            let room = (MAX_IPOPTLEN - 1 - o.len()) as u8;
            o.extend_from_slice(&[IPOPT_RR, room, 4]);
            o.resize(MAX_IPOPTLEN, IPOPT_EOL);
        }
        o
    }
}

/// What pr_pack remembers between replies: the last route recorded, and
/// which missing options it said so about already.
#[derive(Default)]
struct Pong {
    old_rr: Option<Vec<u8>>,
    no_rr: bool,
    no_srr: bool,
}

fn opt_at(o: &[u8], i: usize) -> u8 {
    o.get(i).copied().unwrap_or(0)
}

/// pr_pack's display of a reply's IP options after its line, byte by
/// byte as ping.c walks them: a record route as "RR:" and its addresses
/// (or "(same route)"), a source route and NOPs silently.
fn pr_options(line: &mut String, opts: &[u8], pong: &mut Pong) {
    let mut left = opts.len() as i64;
    let mut cp = 0usize;
    while left > 0 && cp < opts.len() {
        match opts[cp] {
            IPOPT_EOL => left = 0,
            IPOPT_LSRR => {
                left -= 2;
                let j = i64::from(opt_at(opts, cp + 1)) - 4;
                cp += 2;
                if j <= 0 {
                    continue;
                }
                let j = (j + 3) / 4 * 4;
                left -= j;
                cp += j as usize;
            }
            IPOPT_RR => {
                let j = opt_at(opts, cp + 1);
                let i = i64::from(opt_at(opts, cp + 2).min(j)) - 4;
                cp += 2;
                left -= 2;
                if i <= 0 {
                    continue;
                }
                let rec = opts.get(cp..cp + i as usize).unwrap_or(&[]).to_vec();
                if pong.old_rr.as_ref() == Some(&rec) {
                    line.push_str("\t(same route)");
                    let j = (i + 3) / 4 * 4;
                    left -= j;
                    cp += j as usize;
                } else {
                    pong.old_rr = Some(rec);
                    line.push_str("\nRR: ");
                    let mut i = i;
                    loop {
                        let a = std::net::Ipv4Addr::new(
                            opt_at(opts, cp + 1),
                            opt_at(opts, cp + 2),
                            opt_at(opts, cp + 3),
                            opt_at(opts, cp + 4),
                        );
                        line.push_str(&format!("\t{a}"));
                        cp += 4;
                        left -= 4;
                        i -= 4;
                        if i <= 0 {
                            break;
                        }
                        line.push('\n');
                    }
                }
            }
            IPOPT_NOP => {}
            o => line.push_str(&format!("\nunknown option 0x{o:x}")),
        }
        left -= 1;
        cp += 1;
    }
}

/// The notes ping.c makes when a reply lacks an option the request had.
fn pr_missing(line: &mut String, o: &Options, opts: &[u8], pong: &mut Pong) {
    let has = |t: u8| {
        let mut i = 0;
        while i < opts.len() && opts[i] != IPOPT_EOL {
            if opts[i] == t {
                return true;
            }
            i += if opts[i] == IPOPT_NOP {
                1
            } else {
                usize::from(opt_at(opts, i + 1)).max(1)
            };
        }
        false
    };
    if o.record_route && !has(IPOPT_RR) && !std::mem::replace(&mut pong.no_rr, true) {
        line.push_str("\nremote host does not support record route");
    }
    if o.gateway.is_some() && !has(IPOPT_LSRR) && !std::mem::replace(&mut pong.no_srr, true) {
        line.push_str("\nremote host does not support source route");
    }
}

/// An ICMP error about one of our requests as ping prints it after
/// "N bytes from X: " (pr_icmph, then pr_retip): for IPv4 the request's
/// sequence number follows, and with -v the request's IP header with its
/// options as hex (pr_iph); for IPv6 (ping6's texts) -v adds the
/// request's header lines. The quoted header's fields are printed in
/// network byte order (NetBSD's ping prints the raw words, swapped on a
/// little-endian host).
pub fn icmp_error_text(v6: bool, verbose: bool, seq: u16, e: &IcmpError) -> String {
    if v6 {
        icmp6_error_text(verbose, e)
    } else {
        icmp4_error_text(verbose, seq, e)
    }
}

fn icmp4_error_text(verbose: bool, seq: u16, e: &IcmpError) -> String {
    let code = e.code;
    let mut t = match (e.typ, code) {
        (3, 4) => format!("frag needed and DF set.  Next MTU={}", e.info & 0xffff),
        (3, _) => match UNREACH4.get(usize::from(code)) {
            Some(s) => s.to_string(),
            None => format!("Bad Destination Unreachable Code: {code}"),
        },
        (4, _) => "Source Quench".into(),
        (11, 0) => "Time To Live exceeded".into(),
        (11, 1) => "Frag reassembly time exceeded".into(),
        (11, _) => format!("Time exceeded, Bad Code: {code}"),
        (12, _) => format!("Parameter problem: pointer = 0x{:02x}", e.info >> 24),
        (typ, _) => return format!("Bad ICMP type: {typ}"),
    };
    let q = &e.quote;
    let hl = usize::from(q.first().map_or(0, |b| b & 0xf));
    if verbose && q.len() >= 20 {
        let w = |i: usize| u16::from_be_bytes([q[i], q[i + 1]]);
        let _ = write!(
            t,
            "\n Vr HL TOS  Len   ID Flg  off TTL Pro  cks      Src\t     Dst\n  {:1x}  {:1x}  {:02x} {:04x} {:04x}   {:1x} {:04x}  {:02x}  {:02x} {:04x} {:>15}  {} ",
            q[0] >> 4,
            hl,
            q[1],
            w(2),
            w(4),
            w(6) >> 13,
            w(6) & 0x1fff,
            q[8],
            q[9],
            w(10),
            Ipv4Addr::new(q[12], q[13], q[14], q[15]),
            Ipv4Addr::new(q[16], q[17], q[18], q[19]),
        );
        for b in q.iter().take(hl * 4).skip(20) {
            let _ = write!(t, "{b:02x}");
        }
    }
    if verbose {
        // The quoted echo request's identifier, after its IP header.
        let id = q
            .get(hl * 4 + 4..hl * 4 + 6)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        let _ = write!(t, "\n  ID={id} icmp_seq={seq}");
    } else {
        let _ = write!(t, " for icmp_seq={seq}");
    }
    t
}

/// ICMP destination unreachable, by code (pr_icmph).
const UNREACH4: [&str; 16] = [
    "Destination Net Unreachable",
    "Destination Host Unreachable",
    "Destination Protocol Unreachable",
    "Destination Port Unreachable",
    "frag needed and DF set",
    "Source Route Failed",
    "Unreachable unknown net",
    "Unreachable unknown host",
    "Unreachable host isolated",
    "Net prohibited access",
    "Host prohibited access",
    "Bad TOS for net",
    "Bad TOS for host",
    "Communication prohibited",
    "Host precedence violation",
    "Precedence cutoff",
];

fn icmp6_error_text(verbose: bool, e: &IcmpError) -> String {
    let code = e.code;
    let mut t = match (e.typ, code) {
        (1, 0) => "No Route to Destination".into(),
        (1, 1) => "Destination Administratively Unreachable".into(),
        (1, 2) => "Destination Unreachable Beyond Scope".into(),
        (1, 3) => "Destination Host Unreachable".into(),
        (1, 4) => "Destination Port Unreachable".into(),
        (1, _) => format!("Destination Unreachable, Bad Code: {code}"),
        (2, _) => format!("Packet too big mtu = {}", e.info),
        (3, 0) => "Time to live exceeded".into(),
        (3, 1) => "Frag reassembly time exceeded".into(),
        (3, _) => format!("Time exceeded, Bad Code: {code}"),
        (4, _) => {
            let what = match code {
                0 => "Erroneous Header".into(),
                1 => "Unknown Nextheader".into(),
                2 => "Unrecognized Option".into(),
                _ => format!("Bad code({code})"),
            };
            format!("Parameter problem: {what} pointer = 0x{:02x}", e.info)
        }
        (typ, _) => return format!("Bad ICMP type: {typ}"),
    };
    let q = &e.quote;
    if verbose && q.len() >= 48 {
        let flow = u32::from_be_bytes([0, q[1] & 0xf, q[2], q[3]]);
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&q[8..24]).unwrap_or_default());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&q[24..40]).unwrap_or_default());
        let _ = write!(
            t,
            "\nVr TC  Flow Plen Nxt Hlim\n {:1x} {:02x} {:05x} {:04x}  {:02x}   {:02x}\n{src}->{dst}\nICMP6: type = {}, code = {}",
            q[0] >> 4,
            (q[0] << 4) | (q[1] >> 4),
            flow,
            u16::from_be_bytes([q[4], q[5]]),
            q[6],
            q[7],
            q[40],
            q[41],
        );
    }
    t
}

fn seconds(s: &str) -> Option<Duration> {
    let v: f64 = s.parse().ok()?;
    (0.0..1e9).contains(&v).then(|| Duration::from_secs_f64(v))
}

/// Parse the command line, getopt(3) style. `Err` holds the message (or
/// the usage text) for stderr.
pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        count: None,
        interval: Duration::from_secs(1),
        size: 56,
        deadline: None,
        wait: None,
        quiet: false,
        verbose: false,
        dst: IpAddr::from([0, 0, 0, 0]),
        scope: None,
        host: String::new(),
        src: None,
        ttl: 0,
        record_route: false,
        gateway: None,
    };
    let mut want_v6 = false;
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') && args[i].len() > 1 {
        if args[i] == "--" {
            i += 1;
            break;
        }
        let flags: Vec<char> = args[i][1..].chars().collect();
        let mut j = 0;
        while j < flags.len() {
            let c = flags[j];
            j += 1;
            match c {
                '6' => want_v6 = true,
                'n' => {}
                'q' => o.quiet = true,
                'R' => o.record_route = true,
                'v' => o.verbose = true,
                'c' | 'g' | 'h' | 'I' | 'i' | 'S' | 's' | 'T' | 'w' | 'W' => {
                    let rest: String = flags[j..].iter().collect();
                    let val = if !rest.is_empty() {
                        j = flags.len();
                        rest
                    } else {
                        i += 1;
                        args.get(i).cloned().ok_or_else(|| USAGE.to_string())?
                    };
                    let bad = |what: &str| format!("ifping: {what}: `{val}'\n");
                    match c {
                        'c' => {
                            o.count = Some(
                                val.parse()
                                    .ok()
                                    .filter(|n| *n > 0)
                                    .ok_or_else(|| bad("Bad/invalid number of packets"))?,
                            )
                        }
                        'i' => {
                            o.interval = seconds(&val)
                                .filter(|d| *d >= Duration::from_millis(1))
                                .ok_or_else(|| bad("Bad/invalid interval"))?
                        }
                        's' => {
                            o.size = val
                                .parse()
                                .ok()
                                .filter(|n| *n <= 1472)
                                .ok_or_else(|| bad("Bad/invalid packet size"))?
                        }
                        'h' | 'T' => {
                            o.ttl = val
                                .parse()
                                .ok()
                                .filter(|n| *n > 0)
                                .ok_or_else(|| bad("Bad/invalid ttl"))?
                        }
                        'I' | 'S' => {
                            o.src = Some(val.parse().map_err(|_| {
                                format!("ifping: Cannot resolve \"{val}\" (Unknown host)\n")
                            })?)
                        }
                        'g' => {
                            o.gateway = Some(resolve(&val, false).ok_or_else(|| {
                                format!("ifping: Cannot resolve \"{val}\" (Unknown host)\n")
                            })?)
                        }
                        'w' => {
                            o.deadline =
                                Some(seconds(&val).ok_or_else(|| bad("Bad/invalid deadline"))?)
                        }
                        _ => {
                            o.wait = Some(
                                seconds(&val)
                                    .filter(|d| !d.is_zero())
                                    .ok_or_else(|| bad("Bad/invalid waittime"))?,
                            )
                        }
                    }
                }
                _ => return Err(USAGE.to_string()),
            }
        }
        i += 1;
    }
    if args.len() != i + 1 {
        return Err(USAGE.to_string());
    }
    o.host = args[i].clone();
    let (addr, scope) = match o.host.split_once('%') {
        Some((a, s)) => (a, Some(s.to_string())),
        None => (o.host.as_str(), None),
    };
    o.dst = resolve(addr, want_v6)
        .ok_or_else(|| format!("ifping: Cannot resolve \"{}\" (Unknown host)\n", o.host))?;
    if want_v6 && o.dst.is_ipv4() {
        return Err(format!("ifping: {} is not an IPv6 address\n", o.host));
    }
    // A link-local destination means nothing without its link: ping6
    // fails to find a source for it (its "UDP connect").
    if let IpAddr::V6(d) = o.dst
        && (d.is_unicast_link_local() || d.is_multicast())
        && scope.is_none()
    {
        return Err(format!("ifping: UDP connect: {}\n", Errno::EHOSTUNREACH));
    }
    o.scope = scope;
    // Options are IPv4's (gethost's "only supported with IP").
    if o.gateway.is_some_and(|g| g.is_ipv6()) || (o.gateway.is_some() && o.dst.is_ipv6()) {
        return Err("ifping: -g only supported with IP\n".into());
    }
    if o.record_route && o.dst.is_ipv6() {
        return Err("ifping: -R only supported with IP\n".into());
    }
    Ok(o)
}

/// A numeric address, or a host name through getaddrinfo (/etc/hosts,
/// DNS): its first IPv4 address, as ping's gethostbyname, or with -6 its
/// first IPv6 one, as ping6; a name with only IPv6 addresses gives one.
fn resolve(host: &str, want_v6: bool) -> Option<IpAddr> {
    if let Ok(ip) = host.parse() {
        return Some(ip);
    }
    use std::net::ToSocketAddrs;
    let all: Vec<IpAddr> = (host, 0).to_socket_addrs().ok()?.map(|a| a.ip()).collect();
    let v4 = all.iter().find(|a| a.is_ipv4() && !want_v6);
    v4.or_else(|| all.iter().find(|a| a.is_ipv6())).copied()
}

struct Stats {
    sent: u64,
    received: u64,
    rtts: Vec<f64>,
}

/// Echo requests in flight at most, each waiting for its reply on a
/// connection of its own for up to this many intervals: as ping(8) takes
/// a reply whenever it comes, one later than the interval still counts.
const IN_FLIGHT: u32 = 16;

/// A connection to the kernel, for one request at a time.
pub type Conn = Box<dyn Ioctl + Send>;

/// What is printed and counted of the answers, as they come.
struct Report<'a> {
    o: &'a Options,
    v6: bool,
    st: Stats,
    pong: Pong,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl Report<'_> {
    fn take(&mut self, seq: u16, r: Response) {
        let (o, v6) = (self.o, self.v6);
        match r {
            Ok(Reply::Echo {
                from,
                bytes,
                ttl,
                rtt_us,
                opts: got,
            }) => {
                self.st.received += 1;
                let ms = rtt_us as f64 / 1000.0;
                self.st.rtts.push(ms);
                if !o.quiet {
                    let mut line = if v6 {
                        format!(
                            "{bytes} bytes from {from}, icmp_seq={seq} hlim={ttl} time={ms:.3} ms"
                        )
                    } else {
                        format!(
                            "{bytes} bytes from {from}: icmp_seq={seq} ttl={ttl} time={ms:.3} ms"
                        )
                    };
                    pr_missing(&mut line, o, &got, &mut self.pong);
                    pr_options(&mut line, &got, &mut self.pong);
                    let _ = writeln!(self.out, "{line}");
                }
            }
            Ok(Reply::EchoError { from, bytes, error }) => {
                if !o.quiet {
                    let what = icmp_error_text(v6, o.verbose, seq, &error);
                    let _ = writeln!(self.out, "{bytes} bytes from {from}: {what}");
                }
            }
            Ok(_) | Err(Errno::ETIMEDOUT) => {}
            Err(e) => {
                let _ = writeln!(self.err, "ifping: sendto: {e}");
            }
        }
        let _ = self.out.flush();
    }
}

/// Run ifping; returns the exit status (0: a reply came, 2: none, 1: error).
/// `connect` opens a connection to the kernel; up to [`IN_FLIGHT`] are
/// used at once.
pub fn main_with(
    args: &[String],
    connect: &dyn Fn() -> Conn,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let o = match parse(args) {
        Ok(o) => o,
        Err(msg) => {
            let _ = err.write_all(msg.as_bytes());
            return 1;
        }
    };
    let v6 = o.dst.is_ipv6();
    let _ = if v6 {
        writeln!(
            out,
            "PING6({}=40+8+{} bytes) --> {}",
            48 + u32::from(o.size),
            o.size,
            o.host
        )
    } else {
        writeln!(out, "PING {} ({}): {} data bytes", o.host, o.dst, o.size)
    };
    let ident = (std::process::id() & 0xffff) as u16;
    let start = Instant::now();
    let mut r = Report {
        o: &o,
        v6,
        st: Stats {
            sent: 0,
            received: 0,
            rtts: Vec::new(),
        },
        pong: Pong::default(),
        out,
        err,
    };
    let (done_tx, done) = mpsc::channel::<(u16, Response, Conn)>();
    let (mut idle, mut opened, mut in_flight) = (Vec::<Conn>::new(), 0, 0);
    let mut seq: u16 = 0;
    let opts = o.ip_options();
    // Until when the answers still out are waited for.
    let mut end = None;
    loop {
        if INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
        let last = o.count.is_some_and(|c| r.st.sent + 1 >= c);
        let sent_at = Instant::now();
        // Wait for a reply while IN_FLIGHT more go out; the last one as
        // ping.c doit(): "wait twice as long as the worst case seen, or 10
        // times as long as the maximum interpacket interval" (or -W).
        let mut timeout = if last {
            let worst = r.st.rtts.iter().cloned().fold(0.0, f64::max) / 1000.0;
            o.wait
                .unwrap_or_else(|| Duration::from_secs_f64(worst * 2.0).max(o.interval * 10))
        } else {
            o.interval * IN_FLIGHT
        };
        if let Some(d) = o.deadline {
            timeout = timeout.min(d.saturating_sub(start.elapsed()));
        }
        let timeout_ms = timeout.as_millis().max(1) as u32;
        let req = if o.src.is_some() || o.ttl != 0 || !opts.is_empty() {
            Request::EchoFrom {
                // -g: to the gateway, the destination in the option.
                dst: o.gateway.unwrap_or(o.dst),
                src: o.src,
                ttl: o.ttl,
                ident,
                seq,
                len: o.size,
                timeout_ms,
                opts: opts.clone(),
            }
        } else {
            Request::Echo {
                dst: o.dst,
                scope: o.scope.clone(),
                ident,
                seq,
                len: o.size,
                timeout_ms,
            }
        };
        // A connection: an idle one, a new one, or the next to come back.
        let mut conn = match idle.pop() {
            Some(c) => c,
            None if opened < IN_FLIGHT => {
                opened += 1;
                connect()
            }
            None => match done.recv() {
                Ok((s, answer, c)) => {
                    in_flight -= 1;
                    r.take(s, answer);
                    c
                }
                Err(_) => break,
            },
        };
        r.st.sent += 1;
        in_flight += 1;
        let tx = done_tx.clone();
        std::thread::spawn(move || {
            let answer = conn.ioctl(req);
            let _ = tx.send((seq, answer, conn));
        });
        if last {
            end = Some(sent_at + timeout);
            break;
        }
        if let Some(d) = o.deadline
            && start.elapsed() >= d
        {
            break;
        }
        seq = seq.wrapping_add(1);
        // The answers that come before the next send is due.
        let next = sent_at + o.interval;
        while let Some(left) = next.checked_duration_since(Instant::now())
            && !INTERRUPTED.load(Ordering::Relaxed)
        {
            if let Ok((s, answer, c)) = done.recv_timeout(left.min(Duration::from_millis(50))) {
                in_flight -= 1;
                r.take(s, answer);
                idle.push(c);
            }
        }
    }
    // The answers still out, until the last one's wait (or -w) is over.
    if let Some(d) = o.deadline {
        end = Some(end.map_or(start + d, |e| e.min(start + d)));
    }
    while in_flight > 0 && !INTERRUPTED.load(Ordering::Relaxed) {
        let Some(left) = end.and_then(|e| e.checked_duration_since(Instant::now())) else {
            break;
        };
        if let Ok((s, answer, _)) = done.recv_timeout(left.min(Duration::from_millis(50))) {
            in_flight -= 1;
            r.take(s, answer);
        }
    }
    summary(r.out, &o, v6, &r.st);
    if r.st.received > 0 { 0 } else { 2 }
}

fn summary(out: &mut dyn Write, o: &Options, v6: bool, st: &Stats) {
    let _ = if v6 {
        writeln!(out, "\n--- {} ping6 statistics ---", o.host)
    } else {
        writeln!(out, "\n----{} PING Statistics----", o.host)
    };
    let loss = if st.sent == 0 {
        0.0
    } else {
        100.0 * (st.sent - st.received) as f64 / st.sent as f64
    };
    let _ = writeln!(
        out,
        "{} packets transmitted, {} packets received, {loss:.1}% packet loss",
        st.sent, st.received
    );
    if !st.rtts.is_empty() {
        let n = st.rtts.len() as f64;
        let min = st.rtts.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = st.rtts.iter().cloned().fold(0.0, f64::max);
        let avg = st.rtts.iter().sum::<f64>() / n;
        let sd = (st.rtts.iter().map(|r| (r - avg).powi(2)).sum::<f64>() / n).sqrt();
        let label = if v6 { "std-dev" } else { "stddev" };
        let _ = writeln!(
            out,
            "round-trip min/avg/max/{label} = {min:.3}/{avg:.3}/{max:.3}/{sd:.3} ms"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    /// A kernel whose replies take `delay`, longer than the interval; it
    /// counts the connections opened and answers no sequence number
    /// at or past `silent_from`.
    struct Slow {
        delay: Duration,
        silent_from: u16,
    }

    impl Ioctl for Slow {
        fn ioctl(&mut self, req: Request) -> Response {
            let Request::Echo {
                dst,
                seq,
                timeout_ms,
                ..
            } = req
            else {
                return Err(Errno::EINVAL);
            };
            let wait = Duration::from_millis(timeout_ms.into());
            if seq >= self.silent_from || wait < self.delay {
                std::thread::sleep(wait);
                return Err(Errno::ETIMEDOUT);
            }
            std::thread::sleep(self.delay);
            Ok(Reply::Echo {
                from: dst,
                bytes: 64,
                ttl: 64,
                rtt_us: self.delay.as_micros() as u64,
                opts: Vec::new(),
            })
        }
    }

    fn ping_slow(cmd: &str, delay: Duration, silent_from: u16) -> (i32, String, usize) {
        let opened = std::sync::atomic::AtomicUsize::new(0);
        let connect = || -> Conn {
            opened.fetch_add(1, Ordering::SeqCst);
            Box::new(Slow { delay, silent_from })
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = main_with(&args(cmd), &connect, &mut out, &mut err);
        assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
        let out = String::from_utf8(out).unwrap();
        (code, out, opened.load(Ordering::SeqCst))
    }

    /// A reply later than the interval counts, as in ping(8): the next
    /// request goes out on time on another connection.
    #[test]
    fn icmp_errors_in_netbsds_words() {
        // A quoted echo request: IPv4 header without options, then the
        // ICMP header with ident 0x1234.
        let mut q4 = vec![
            0x45, 0, 0, 84, 0, 7, 0x40, 0, 1, 1, 0, 0, 10, 0, 0, 1, 10, 0, 9, 9,
        ];
        q4.extend_from_slice(&[8, 0, 0, 0, 0x12, 0x34, 0, 5]);
        let err = |typ, code, info, quote: &[u8]| IcmpError {
            typ,
            code,
            info,
            quote: quote.to_vec(),
        };
        let e = |typ, code, info| err(typ, code, info, &q4);
        for (typ, code, info, text) in [
            (3, 4, 1400, "frag needed and DF set.  Next MTU=1400"),
            (3, 1, 0, "Destination Host Unreachable"),
            (3, 16, 0, "Bad Destination Unreachable Code: 16"),
            (12, 0, 0x1400_0000, "Parameter problem: pointer = 0x14"),
        ] {
            let got = icmp_error_text(false, false, 5, &e(typ, code, info));
            assert_eq!(got, format!("{text} for icmp_seq=5"));
        }
        assert_eq!(
            icmp_error_text(false, true, 5, &e(11, 0, 0)),
            "Time To Live exceeded\n Vr HL TOS  Len   ID Flg  off TTL Pro  cks      Src\t     Dst\n  \
             4  5  00 0054 0007   2 0000  01  01 0000        10.0.0.1  10.0.9.9 \n  ID=4660 icmp_seq=5"
        );
        let e6 = |typ, code, info| err(typ, code, info, &[]);
        for (typ, code, info, text) in [
            (2, 0, 1280, "Packet too big mtu = 1280"),
            (
                4,
                2,
                42,
                "Parameter problem: Unrecognized Option pointer = 0x2a",
            ),
            (1, 9, 0, "Destination Unreachable, Bad Code: 9"),
        ] {
            assert_eq!(icmp_error_text(true, false, 5, &e6(typ, code, info)), text);
        }
    }

    #[test]
    fn late_replies_count() {
        let t = Instant::now();
        let (code, out, opened) = ping_slow("-c 8 -i 0.01 10.0.0.1", Duration::from_millis(35), 99);
        assert_eq!(code, 0);
        assert!(
            out.contains("8 packets transmitted, 8 packets received"),
            "{out}"
        );
        for seq in 0..8 {
            assert!(out.contains(&format!("icmp_seq={seq} ")), "{out}");
        }
        // Sent on time: not one interval per 35 ms reply.
        assert!(
            t.elapsed() < Duration::from_millis(8 * 35),
            "{:?}",
            t.elapsed()
        );
        assert!(
            (3..=IN_FLIGHT as usize).contains(&opened),
            "{opened} connections"
        );
    }

    /// Requests beyond what may be in flight wait for a connection; the
    /// unanswered ones are lost once the last one's wait is over.
    #[test]
    fn in_flight_is_bounded_and_silence_is_loss() {
        let (code, out, opened) = ping_slow("-c 40 -i 0.001 -W 0.05 10.0.0.1", Duration::ZERO, 30);
        assert_eq!(code, 0);
        assert!(
            out.contains("40 packets transmitted, 30 packets received"),
            "{out}"
        );
        assert!(opened <= IN_FLIGHT as usize, "{opened} connections");
        let (code, out, _) = ping_slow("-c 2 -i 0.01 -W 0.05 10.0.0.1", Duration::ZERO, 0);
        assert_eq!(code, 2);
        assert!(
            out.contains("2 packets transmitted, 0 packets received"),
            "{out}"
        );
    }

    #[test]
    fn options() {
        let o = parse(&args("-c 3 -q -i 0.2 -w5 10.0.0.2")).unwrap();
        assert_eq!(o.count, Some(3));
        assert!(o.quiet);
        assert_eq!(o.interval, Duration::from_millis(200));
        assert_eq!(o.deadline, Some(Duration::from_secs(5)));
        let o = parse(&args("-6 fe80::1%shmif0")).unwrap();
        assert_eq!(o.scope.as_deref(), Some("shmif0"));
        assert!(o.dst.is_ipv6());
        // Names through getaddrinfo: localhost is in every /etc/hosts.
        let o = parse(&args("localhost")).unwrap();
        assert_eq!(o.dst, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(o.host, "localhost");
        assert_eq!(
            parse(&args("-W 3 localhost")).unwrap().wait,
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn record_and_source_route_options() {
        let o = parse(&args("-R 10.0.2.3")).unwrap();
        assert!(o.record_route);
        let opts = o.ip_options();
        assert_eq!((opts.len(), &opts[..3]), (40, &[IPOPT_RR, 39, 4][..]));
        let o = parse(&args("-g 10.0.1.2 -R 10.0.2.3")).unwrap();
        assert_eq!(o.gateway, Some(IpAddr::from([10, 0, 1, 2])));
        let opts = o.ip_options();
        assert_eq!(
            opts[..11],
            [IPOPT_LSRR, 7, 4, 10, 0, 2, 3, IPOPT_NOP, IPOPT_RR, 31, 4]
        );
        assert_eq!(opts.len(), 40);
        assert!(parse(&args("-R -6 ::1")).is_err());
        assert!(parse(&args("-g ::1 10.0.0.1")).is_err());
    }

    #[test]
    fn record_route_display() {
        let mut pong = Pong::default();
        let mut rr = vec![IPOPT_NOP, IPOPT_RR, 39, 12, 10, 0, 2, 2, 10, 0, 2, 3];
        rr.resize(40, 0);
        let mut line = String::from("64 bytes");
        pr_options(&mut line, &rr, &mut pong);
        assert_eq!(line, "64 bytes\nRR: \t10.0.2.2\n\t10.0.2.3");
        let mut line = String::from("64 bytes");
        pr_options(&mut line, &rr, &mut pong);
        assert_eq!(line, "64 bytes\t(same route)");
        let o = parse(&args("-R 10.0.2.3")).unwrap();
        let mut line = String::new();
        pr_missing(&mut line, &o, &[], &mut pong);
        assert_eq!(line, "\nremote host does not support record route");
        line.clear();
        pr_missing(&mut line, &o, &[], &mut pong);
        assert_eq!(line, "");
    }

    #[test]
    fn bad_lines() {
        assert_eq!(parse(&args("")), Err(USAGE.to_string()));
        assert_eq!(parse(&args("-x 10.0.0.1")), Err(USAGE.to_string()));
        assert_eq!(parse(&args("-c")), Err(USAGE.to_string()));
        assert!(
            parse(&args("-c 0 10.0.0.1"))
                .unwrap_err()
                .contains("number of packets")
        );
        assert!(parse(&args("-6 10.0.0.1")).is_err());
        assert_eq!(
            parse(&args("host.invalid")),
            Err("ifping: Cannot resolve \"host.invalid\" (Unknown host)\n".into())
        );
        assert_eq!(
            parse(&args("fe80::1")),
            Err("ifping: UDP connect: No route to host\n".into())
        );
        assert!(parse(&args("10.0.0.1 extra")).is_err());
    }
}
