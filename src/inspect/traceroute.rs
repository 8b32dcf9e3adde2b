//! traceroute(8) from inside the kernel, by ICMP echo requests of growing
//! TTL (NetBSD's `traceroute -I`): each hop answers with a time exceeded,
//! the destination with its echo reply. NetBSD's output: a header, then
//! per hop its address and a round trip per probe, `*` for none, and
//! `!H`, `!N`, `!F`… for an unreachable.

use super::{getopt, usage};
use crate::ioctl::{Errno, Ioctl, Reply, Request};
use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

pub const USAGE: &str = "\
usage: traceroute [-6DIn] [-f first_ttl] [-m max_ttl] [-q nqueries] [-s src_addr] [-w waittime] host
";

struct Opts {
    n: bool,
    first: u8,
    max: u8,
    queries: u32,
    src: Option<IpAddr>,
    wait: Duration,
}

/// The data bytes of a probe: with its headers, NetBSD's 40-byte packet.
const DATA: u16 = 12;

pub fn main_with(
    args: &[String],
    ctl: &mut dyn Ioctl,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let Ok((opts, rest)) = getopt(args, "6DInf:m:q:s:w:") else {
        return usage(err, USAGE);
    };
    let [host] = rest.as_slice() else {
        return usage(err, USAGE);
    };
    let mut o = Opts {
        n: false,
        first: 1,
        max: 64,
        queries: 3,
        src: None,
        wait: Duration::from_secs(5),
    };
    let bad = |err: &mut dyn Write, what: &str, v: &str| {
        let _ = writeln!(err, "traceroute: {what} `{v}'");
        1
    };
    for (c, v) in opts {
        let v = v.unwrap_or_default();
        match c {
            'n' => o.n = true,
            '6' | 'D' | 'I' => {}
            'f' => match v.parse() {
                Ok(f) if f > 0 => o.first = f,
                _ => return bad(err, "invalid first ttl", &v),
            },
            'm' => match v.parse() {
                Ok(m) if m > 0 => o.max = m,
                _ => return bad(err, "invalid max ttl", &v),
            },
            'q' => match v.parse() {
                Ok(q) if (1..=100).contains(&q) => o.queries = q,
                _ => return bad(err, "invalid nqueries", &v),
            },
            's' => match v.parse() {
                Ok(a) => o.src = Some(a),
                Err(_) => return bad(err, "unknown host", &v),
            },
            'w' => match v.parse::<u64>() {
                Ok(w) if w > 0 => o.wait = Duration::from_secs(w),
                _ => return bad(err, "invalid wait time", &v),
            },
            _ => return usage(err, USAGE),
        }
    }
    if o.first > o.max {
        let _ = writeln!(
            err,
            "traceroute: first ttl ({}) may not be greater than max ttl ({})",
            o.first, o.max
        );
        return 1;
    }
    let Ok(dst) = host.parse::<IpAddr>() else {
        let _ = writeln!(err, "traceroute: unknown host {host}");
        return 1;
    };
    let hdr = if dst.is_ipv4() { 28 } else { 48 };
    let _ = writeln!(
        out,
        "traceroute to {host} ({dst}), {} hops max, {} byte packets",
        o.max,
        hdr + DATA
    );
    let ident = (std::process::id() & 0xffff) as u16;
    let mut seq: u16 = 0;
    for ttl in o.first..=o.max {
        let mut line = format!("{ttl:2}");
        let mut last: Option<IpAddr> = None;
        let mut done = false;
        for _ in 0..o.queries {
            seq = seq.wrapping_add(1);
            let req = Request::EchoFrom {
                dst,
                src: o.src,
                ttl,
                ident,
                seq,
                len: DATA,
                timeout_ms: o.wait.as_millis() as u32,
                opts: Vec::new(),
            };
            let started = std::time::Instant::now();
            let (from, mark) = match ctl.ioctl(req) {
                Ok(Reply::Echo { from, .. }) => {
                    done = true;
                    (from, "")
                }
                Ok(Reply::EchoError { from, error, .. }) => {
                    let mark = unreachable_mark(dst.is_ipv6(), error.typ, error.code);
                    done |= !mark.is_empty();
                    (from, mark)
                }
                Err(Errno::ETIMEDOUT) | Ok(_) => {
                    line += " *";
                    continue;
                }
                Err(e) => {
                    let _ = writeln!(err, "traceroute: sendto: {e}");
                    return 1;
                }
            };
            if last != Some(from) {
                line += &if o.n {
                    format!("  {from}")
                } else {
                    format!("  {from} ({from})")
                };
                last = Some(from);
            }
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            line += &format!("  {ms:.3} ms");
            if !mark.is_empty() {
                line += &format!(" {mark}");
            }
        }
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        if done {
            return 0;
        }
    }
    0
}

/// The mark after a round trip for an unreachable (traceroute.c); none
/// for a time exceeded.
fn unreachable_mark(v6: bool, typ: u8, code: u8) -> &'static str {
    match (v6, typ, code) {
        (false, 3, 0) => "!N",
        (false, 3, 1) => "!H",
        (false, 3, 2) => "!P",
        (false, 3, 3) => "",
        (false, 3, 4) => "!F",
        (false, 3, 5) => "!S",
        (false, 3, _) => "!X",
        (true, 1, 0) => "!N",
        (true, 1, 1) => "!P",
        (true, 1, 2) => "!S",
        (true, 1, 3) => "!A",
        (true, 1, _) => "!X",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks() {
        assert_eq!(unreachable_mark(false, 11, 0), "");
        assert_eq!(unreachable_mark(false, 3, 1), "!H");
        assert_eq!(unreachable_mark(false, 3, 4), "!F");
        assert_eq!(unreachable_mark(true, 3, 0), "");
        assert_eq!(unreachable_mark(true, 1, 3), "!A");
    }
}
