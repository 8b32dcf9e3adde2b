//! shmifdump: dump a shmif bus (a superset of NetBSD's shmif_dumpbus).
#![deny(clippy::undocumented_unsafe_blocks)]

use ifnet::shmifdump::{self as dump, DumpError, Dumper};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::exit;
use std::sync::atomic::{AtomicBool, Ordering};

const USAGE: &str = "Usage: shmifdump [-fh] [-c count] [--nano] [-p pcapfile] buspath";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

struct Opts {
    header_only: bool,
    follow: bool,
    nano: bool,
    count: Option<u64>,
    pcap: Option<String>,
    bus: String,
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    exit(1)
}

fn die(msg: &dyn std::fmt::Display) -> ! {
    eprintln!("shmifdump: {msg}");
    exit(1)
}

/// getopt-style: `-hf`, `-p FILE`, `-pFILE`, `-c N`, `--nano`, `--`.
fn parse_args(args: Vec<String>) -> Opts {
    let mut o = Opts {
        header_only: false,
        follow: false,
        nano: false,
        count: None,
        pcap: None,
        bus: String::new(),
    };
    let mut operands = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--" {
            operands.extend(it.by_ref());
            break;
        }
        match a.as_str() {
            "--nano" => o.nano = true,
            "--micro" => o.nano = false,
            "--follow" => o.follow = true,
            "--help" => {
                println!("{USAGE}");
                exit(0)
            }
            _ if a.starts_with("--") => usage(),
            _ if a.starts_with('-') && a.len() > 1 => {
                let flags = &a[1..];
                for (i, c) in flags.char_indices() {
                    match c {
                        'h' => o.header_only = true,
                        'f' => o.follow = true,
                        'p' | 'c' => {
                            let rest = &flags[i + 1..];
                            let v = if rest.is_empty() {
                                it.next().unwrap_or_else(|| usage())
                            } else {
                                rest.to_string()
                            };
                            if c == 'p' {
                                o.pcap = Some(v);
                            } else {
                                match v.parse::<u64>() {
                                    Ok(n) if n > 0 => o.count = Some(n),
                                    _ => die(&format!("invalid count: {v}")),
                                }
                            }
                            break;
                        }
                        _ => usage(),
                    }
                }
            }
            _ => operands.push(a),
        }
    }
    if operands.len() != 1 {
        usage();
    }
    o.bus = operands.pop().unwrap();
    o
}

fn run(o: &Opts) -> Result<(), DumpError> {
    let stdout = std::io::stdout().lock();
    let stderr = std::io::stderr();
    // With the capture on stdout, the text goes to stderr.
    let (text, text_name, pcap): (Box<dyn Write>, &str, _) = match o.pcap.as_deref() {
        None => (
            Box::new(BufWriter::with_capacity(1 << 16, stdout)),
            "stdout",
            None,
        ),
        Some("-") => {
            let w: Box<dyn Write> = Box::new(BufWriter::with_capacity(1 << 16, stdout));
            (
                Box::new(BufWriter::new(stderr)),
                "stderr",
                Some((w, "stdout", o.nano)),
            )
        }
        Some(path) => {
            let f =
                std::fs::File::create(path).map_err(|e| DumpError::Write(path.to_string(), e))?;
            let w: Box<dyn Write> = Box::new(BufWriter::with_capacity(1 << 16, f));
            (
                Box::new(BufWriter::with_capacity(1 << 16, stdout)),
                "stdout",
                Some((w, path, o.nano)),
            )
        }
    };
    let mut out = Dumper::new(text, text_name, pcap)?;
    out.limit = o.count;
    let path = Path::new(&o.bus);
    if o.follow && !o.header_only {
        let stats = dump::follow(path, &mut out, &STOP, |r| {
            eprintln!(
                "shmifdump: lapped by the writers ({} times): about {} bytes of frames lost",
                r.laps, r.lost_bytes
            );
        });
        out.flush()?;
        let stats = stats?;
        if stats.laps > 0 {
            eprintln!(
                "shmifdump: {} frames, lapped {} times, about {} bytes of frames lost",
                out.printed, stats.laps, stats.lost_bytes
            );
        }
        Ok(())
    } else {
        let r = dump::dump_file(path, o.header_only, &mut out);
        // What was printed before an error still goes out.
        let f = out.flush();
        r.and(f)
    }
}

fn main() {
    let o = parse_args(std::env::args().skip(1).collect());
    if o.follow {
        // SIGINT/SIGTERM end the follow loop cleanly, flushing the capture.
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
            libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        }
    }
    match run(&o) {
        Ok(()) => {}
        // The reader of our pipe (tcpdump, head) is gone: end quietly.
        Err(e) if e.is_broken_pipe() => exit(0),
        Err(e) => die(&e),
    }
}
