//! shmifdump against NetBSD's own test data and real tcpdump, bad bus
//! files, and following a live bus.

use crate::shmif_util;

use ifnet::drivers::shmif::bus::{self, Bus, BusReader, Format, HEADER_LEN, Recv};
use shmif_util::*;
use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_shmifdump");

fn shmifdump(args: &[&str]) -> Output {
    Command::new(EXE).args(args).output().unwrap()
}

fn data(name: &str) -> std::path::PathBuf {
    testdata().join(name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// tcpdump, or None where it is missing and that is allowed (not in CI).
fn tcpdump() -> Option<&'static str> {
    let ok = Command::new("tcpdump")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!crate::common::in_ci(), "tcpdump is required in CI");
        eprintln!("tcpdump not installed: skipped");
        return None;
    }
    Some("tcpdump")
}

#[test]
fn netbsd_pkthdrs() {
    let o = shmifdump(&[data("shmbus").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        std::fs::read_to_string(data("d_pkthdrs.out")).unwrap()
    );
    assert!(o.stderr.is_empty());
}

#[test]
fn netbsd_header_only_and_count() {
    let want = std::fs::read_to_string(data("d_pkthdrs.out")).unwrap();
    let lines: Vec<&str> = want.lines().collect();
    let o = shmifdump(&["-h", data("shmbus").to_str().unwrap()]);
    assert!(o.status.success());
    assert_eq!(text(&o.stdout), format!("{}\n", lines[0]));
    let o = shmifdump(&["-c", "3", data("shmbus").to_str().unwrap()]);
    assert_eq!(text(&o.stdout), format!("{}\n", lines[..4].join("\n")));
}

#[test]
fn netbsd_pcap_through_tcpdump() {
    let Some(td) = tcpdump() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("p.pcap");
    let o = shmifdump(&[
        "-p",
        pcap.to_str().unwrap(),
        data("shmbus").to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_eq!(
        text(&o.stdout),
        std::fs::read_to_string(data("d_pkthdrs.out")).unwrap()
    );
    let t = Command::new(td)
        .args(["-n", "-r"])
        .arg(&pcap)
        .env("TZ", "Etc/GMT-1")
        .output()
        .unwrap();
    assert!(t.status.success(), "{}", text(&t.stderr));
    assert_eq!(
        text(&t.stdout),
        std::fs::read_to_string(data("d_pcap.out")).unwrap()
    );
    // `-p -`: the same capture on stdout, the text on stderr.
    let o = shmifdump(&["-p", "-", data("shmbus").to_str().unwrap()]);
    assert!(o.status.success());
    assert_eq!(o.stdout, std::fs::read(&pcap).unwrap());
    assert_eq!(
        text(&o.stderr),
        std::fs::read_to_string(data("d_pkthdrs.out")).unwrap()
    );
    // And the idiom: shmifdump -p - bus | tcpdump -r -
    let mut dump = Command::new(EXE)
        .args(["-p", "-", data("shmbus").to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Command::new(td)
        .args(["-n", "-r", "-"])
        .env("TZ", "Etc/GMT-1")
        .stdin(dump.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(dump.wait().unwrap().success());
    assert_eq!(
        text(&t.stdout),
        std::fs::read_to_string(data("d_pcap.out")).unwrap()
    );
    // Nanosecond stamps, for tools that take them.
    let o = shmifdump(&["--nano", "-p", "-", data("shmbus").to_str().unwrap()]);
    assert_eq!(&o.stdout[0..4], &0xa1b2_3c4du32.to_ne_bytes());
    assert_eq!(
        u32::from_ne_bytes(o.stdout[28..32].try_into().unwrap()),
        280_004_000
    );
}

fn put32(img: &mut [u8], off: usize, v: u32) {
    img[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

/// NetBSD's bus as a host of the other byte order would have written it.
fn swapped_shmbus() -> Vec<u8> {
    let mut img = std::fs::read(data("shmbus")).unwrap();
    let h = bus::BusHeaderRepr::parse(img[..32].try_into().unwrap(), false);
    let fmt = Format {
        hdr_len: 12,
        swap: false,
    };
    let size = (img.len() - HEADER_LEN) as u32;
    // Swap every frame header on the walk from first to last.
    let mut off = h.first;
    loop {
        let next = bus::next_pkt_off(&img[HEADER_LEN..], fmt, off);
        for k in 0..3u32 {
            let mut b = [0u8; 4];
            let o = |i: u32| HEADER_LEN + ((off + k * 4 + i) % size) as usize;
            for i in 0..4 {
                b[i as usize] = img[o(i)];
            }
            b.reverse();
            for i in 0..4 {
                img[o(i)] = b[i as usize];
            }
        }
        if off == h.last {
            break;
        }
        off = next;
    }
    for f in [0..4, 4..8, 16..20, 20..24, 24..28] {
        img[f].reverse();
    }
    img[8..16].reverse();
    img
}

#[test]
fn byte_swapped_bus() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("swapped");
    std::fs::write(&p, swapped_shmbus()).unwrap();
    let o = shmifdump(&["-p", "-", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        std::fs::read_to_string(data("d_pkthdrs.out")).unwrap()
    );
    let native = shmifdump(&["-p", "-", data("shmbus").to_str().unwrap()]);
    assert_eq!(o.stdout, native.stdout);
}

fn expect_error(img: &[u8], want: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bus");
    std::fs::write(&p, img).unwrap();
    let o = shmifdump(&[p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr).replace(p.to_str().unwrap(), "BUS");
    assert!(
        err.ends_with(&format!("{want}\n")),
        "got {err:?}, want {want:?}"
    );
}

#[test]
fn bad_buses() {
    let good = std::fs::read(data("shmbus")).unwrap();
    expect_error(&[], "shmifdump: BUS not a shmif bus: truncated to 0 bytes");
    expect_error(
        &good[..20],
        "shmifdump: BUS not a shmif bus: truncated to 20 bytes",
    );
    expect_error(
        &good[..1000],
        "shmifdump: BUS not a shmif bus: truncated to 1000 bytes",
    );
    let mut img = good.clone();
    put32(&mut img, 0, 0x1234_5678);
    expect_error(
        &img,
        "shmifdump: BUS not a shmif bus: bad magic 0x12345678 != 0xca11d054",
    );
    put32(&mut img, 0, 0);
    expect_error(
        &img,
        "shmifdump: BUS not a shmif bus: bad magic 0 != 0xca11d054",
    );
    let mut img = good.clone();
    put32(&mut img, 4, 0);
    expect_error(&img, "shmifdump: Unhandled bus version 0, program 3");
    put32(&mut img, 4, 7);
    expect_error(&img, "shmifdump: Unhandled bus version 7, program 3");
    let mut img = good.clone();
    put32(&mut img, 16, 0xffff_0000);
    expect_error(
        &img,
        "shmifdump: BUS: corrupt bus: firstoff 0xffff0000 or lastoff 0x5d7a outside the ring of 0x7fe0 bytes",
    );
    let mut img = good.clone();
    put32(&mut img, 20, 0x7fe0);
    expect_error(
        &img,
        "shmifdump: BUS: corrupt bus: firstoff 0x5fbc or lastoff 0x7fe0 outside the ring of 0x7fe0 bytes",
    );
    // A frame length past the ring, at the first frame.
    let mut img = good.clone();
    put32(&mut img, HEADER_LEN + 0x5fbc, 0x10_0000);
    expect_error(
        &img,
        "shmifdump: BUS: corrupt bus: frame at 0x5fbc has length 0x100000",
    );
    // A file that is not there.
    let o = shmifdump(&["/nonexistent/bus"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "shmifdump: /nonexistent/bus: No such file or directory\n"
    );
}

#[test]
fn usage_and_full_disk() {
    for args in [&[][..], &["a", "b"][..], &["-x", "a"][..], &["-p"][..]] {
        let o = shmifdump(args);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(
            text(&o.stderr),
            "Usage: shmifdump [-fh] [-c count] [--nano] [-p pcapfile] buspath\n"
        );
    }
    let o = shmifdump(&["-p", "/dev/full", data("shmbus").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).ends_with("shmifdump: /dev/full: No space left on device\n"));
}

/// Records of a pcap stream: (sec, usec, frame).
fn pcap_records(b: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
    let mut v = Vec::new();
    let mut off = 24;
    let u = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap());
    while off + 16 <= b.len() {
        let len = u(off + 8) as usize;
        if off + 16 + len > b.len() {
            break;
        }
        v.push((u(off), u(off + 4), b[off + 16..off + 16 + len].to_vec()));
        off += 16 + len;
    }
    v
}

#[test]
fn follow_captures_what_a_reader_captures() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus");
    let bus = Bus::attach(&path).unwrap();
    // A fresh bus: version 0 until the first wakeup; -f still starts.
    let (writers, n) = (3u8, 2000u32);
    let total = u64::from(writers) * u64::from(n);
    let mut dump = Command::new(EXE)
        .args([
            "-f",
            "-c",
            &total.to_string(),
            "-p",
            "-",
            path.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = dump.stderr.take().unwrap();
    let mut first = [0u8; 200];
    let k = err.read(&mut first).unwrap();
    let head = text(&first[..k]);
    assert!(
        head.starts_with(
            "bus version 0, lock: 0, generation: 0, firstoff: 0xfffe0, lastoff: 0x0000"
        ),
        "{head}"
    );
    let errs = std::thread::spawn(move || {
        let mut rest = String::new();
        err.read_to_string(&mut rest).unwrap();
        rest
    });
    let mut out = dump.stdout.take().unwrap();
    let pcap = std::thread::spawn(move || {
        let mut v = Vec::new();
        out.read_to_end(&mut v).unwrap();
        v
    });
    let mut reader = BusReader::at_end(&bus);
    let path2 = path.clone();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let p = path2.clone();
            std::thread::spawn(move || {
                let bus = Bus::attach(&p).unwrap();
                for seq in 0..n {
                    bus.send(
                        &frame([0xff; 6], [2; 6], w, b'F', seq, size_of(seq, w)),
                        100 + u64::from(w),
                    )
                    .unwrap();
                    bus.wakeup().unwrap();
                    if seq % 20 == 0 {
                        // Load, but a reader can keep up: the ring holds
                        // some 40 ms of it.
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            })
        })
        .collect();
    let mut mine = Vec::new();
    let mut buf = vec![0u8; 1514];
    let t = Instant::now();
    while (mine.len() as u64) < total && t.elapsed() < Duration::from_secs(30) {
        match reader.recv(&bus, &mut buf, |_| true) {
            Recv::Frame { hdr, .. } => {
                mine.push((hdr.sec, hdr.usec, buf[..hdr.len as usize].to_vec()))
            }
            Recv::Empty => std::thread::sleep(Duration::from_micros(200)),
            r => panic!("{r:?}"),
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        reader.laps, 0,
        "the test's own reader was lapped: machine too busy"
    );
    let st = dump.wait().unwrap();
    let rest = errs.join().unwrap();
    assert!(st.success(), "{rest}");
    assert!(!rest.contains("lapped"), "{rest}");
    let caught = pcap_records(&pcap.join().unwrap());
    assert_eq!(caught.len() as u64, total);
    for f in &caught {
        parse(&f.2);
    }
    assert!(caught == mine, "shmifdump -f and the reader disagree");
    // The text lines were numbered 0.. after the header.
    assert!(
        rest.lines()
            .last()
            .unwrap()
            .starts_with(&format!("packet {}, ", total - 1))
    );
}

#[test]
fn follow_reports_laps_and_ends_quietly_on_sigpipe() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus");
    let bus = Bus::attach(&path).unwrap();
    bus.send(&frame([0xff; 6], [2; 6], 1, b'P', 0, 60), 1)
        .unwrap();
    bus.wakeup().unwrap();
    let mut dump = Command::new(EXE)
        .args(["-f", "-p", "-", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = dump.stdout.take().unwrap();
    let mut err = dump.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        let mut e = String::new();
        err.read_to_string(&mut e).unwrap();
        e
    });
    let mut b = [0u8; 64];
    out.read_exact(&mut b).unwrap(); // it is running
    // Nobody reads the pipe: shmifdump blocks, the writer laps it.
    for seq in 0..20_000 {
        bus.send(&frame([0xff; 6], [2; 6], 1, b'P', seq, size_of(seq, 1)), 1)
            .unwrap();
        if seq % 64 == 0 {
            bus.wakeup().unwrap();
        }
    }
    bus.wakeup().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let mut chunk = [0u8; 65536];
        // Read for a while, then close the pipe under it.
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(1500) {
            use std::os::fd::AsFd;
            let mut fds = [nix::poll::PollFd::new(
                out.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            if nix::poll::poll(&mut fds, 300u16).unwrap_or(0) == 0 {
                break; // drained: shmifdump is idle
            }
            match out.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(k) => v.extend_from_slice(&chunk[..k]),
            }
            if v.len() > 4 << 20 {
                break;
            }
        }
        drop(out);
        v
    });
    std::thread::sleep(Duration::from_millis(500));
    let got = reader.join().unwrap();
    // More traffic hits the closed pipe: SIGPIPE/EPIPE ends it quietly.
    for seq in 0..100 {
        bus.send(&frame([0xff; 6], [2; 6], 1, b'Q', seq, 1000), 1)
            .unwrap();
        bus.wakeup().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    let st = loop {
        if let Some(st) = dump.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "shmifdump did not end"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let e = errs.join().unwrap();
    assert!(st.success(), "{st:?} {e}");
    assert!(e.contains("lapped by the writers"), "{e}");
    assert!(!e.contains("Broken pipe") && !e.contains("panicked"), "{e}");
    assert!(got.len() > 24);
}

#[test]
fn follow_stops_on_sigint_with_a_complete_capture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus");
    let bus = Bus::attach(&path).unwrap();
    let cap = dir.path().join("c.pcap");
    let mut dump = Command::new(EXE)
        .args(["-f", "-p", cap.to_str().unwrap(), path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = dump.stdout.take().unwrap();
    let mut b = [0u8; 10];
    out.read_exact(&mut b).unwrap();
    for seq in 0..10 {
        bus.send(&frame([0xff; 6], [2; 6], 1, b'S', seq, 100), 1)
            .unwrap();
    }
    bus.wakeup().unwrap();
    // At once: what is on the bus when the signal comes is drained first.
    // SAFETY: plain kill(2) of our child.
    unsafe { libc::kill(dump.id() as i32, libc::SIGINT) };
    assert!(dump.wait().unwrap().success());
    let recs = pcap_records(&std::fs::read(&cap).unwrap());
    assert_eq!(recs.len(), 10);
    let mut text = String::new();
    out.read_to_string(&mut text).unwrap();
    // The rest of the header line, then a line per frame.
    assert_eq!(text.lines().count(), 1 + 10, "{text}");
    let _ = std::io::stderr().flush();
}

#[test]
fn follow_reports_a_bus_truncated_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus");
    let bus = Bus::attach(&path).unwrap();
    bus.send(&frame([0xff; 6], [2; 6], 1, b'T', 0, 60), 1)
        .unwrap();
    bus.wakeup().unwrap();
    drop(bus);
    let mut dump = Command::new(EXE)
        .args(["-f", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = dump.stdout.take().unwrap();
    let mut b = [0u8; 10];
    out.read_exact(&mut b).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // Truncation raises IN_MODIFY: shmifdump wakes and finds the file short.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100)
        .unwrap();
    let o = dump.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(
        e.ends_with("not a shmif bus: truncated to 100 bytes\n"),
        "{e}"
    );
}

#[test]
fn dump_of_our_own_wrapped_v3_bus() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus");
    let bus = Bus::attach(&path).unwrap();
    let n = 3000u32; // about three rings of frames
    for seq in 0..n {
        bus.send(&frame([0xff; 6], [2; 6], 1, b'D', seq, size_of(seq, 1)), 1)
            .unwrap();
    }
    bus.wakeup().unwrap();
    let h = bus.header();
    assert!(h.generation >= 2);
    let o = shmifdump(&["-p", "-", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let recs = pcap_records(&o.stdout);
    // An unbroken run of intact frames (some split across the ring's end)
    // from the oldest on the bus to the newest.
    let seqs: Vec<u32> = recs.iter().map(|r| parse(&r.2).2).collect();
    assert_eq!(*seqs.last().unwrap(), n - 1);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(seqs.len() > 500);
    let t = text(&o.stderr);
    let mut lines = t.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!(
            "bus version 3, lock: 0, generation: {}, firstoff: 0x{:04x}, lastoff: 0x{:04x}",
            h.generation, h.first, h.last
        )
    );
    assert_eq!(lines.count(), recs.len());
}
