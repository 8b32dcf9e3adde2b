//! What reading a host TAP costs the reader, per frame, two ways:
//!
//! - `read`: one read(2) per frame after a poll(2), as virt reads;
//! - `uring`: io_uring's multishot read (Linux 6.7+) into a ring of
//!   provided buffers, which hands over many frames per system call.
//!
//! The question it answers: would batching the reads into few system
//! calls make virt's receive path cheaper? It opens a TAP with virt's
//! flags (`IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`), floods it with 64-byte
//! UDP datagrams from two child processes (the host stack sends them to a
//! static neighbour on the TAP), and reads for SECS seconds. It prints the
//! reader's CPU time per frame (user and system), the frames it read per
//! second and per system call. Run it as root in a network namespace of
//! its own: `bench/tunread.sh` does, for both ways in turn.
//!
//! Usage: tunread read|uring SECS
use io_uring::{IoUring, cqueue, opcode, types};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

const TAP: &str = "tunrd0";
const PEER: &str = "10.99.0.2";
/// The largest frame virt reads: a 64 KiB super-frame behind its header.
const BUF: usize = 65536 + 128;
/// Provided buffers (a power of two).
const NBUF: u16 = 64;
const GROUP: u16 = 7;

/// This thread's CPU time, user and system.
fn cpu() -> Duration {
    // SAFETY: rusage is plain old data, filled by the call.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) };
    let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
    t(r.ru_utime) + t(r.ru_stime)
}

fn open_tap() -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("open /dev/net/tun");
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(TAP.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = 0x0002 | 0x1000 | 0x4000; // TAP, NO_PI, VNET_HDR
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    // SAFETY: TUNSETIFF reads an ifreq.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF, &ifr) };
    assert_eq!(r, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
    // SAFETY: plain fcntl on our descriptor.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    f
}

fn sh(cmd: &str) {
    let ok = Command::new("sh").arg("-c").arg(cmd).status();
    assert!(ok.is_ok_and(|s| s.success()), "{cmd} failed");
}

/// The flood: 64-byte datagrams to the neighbour behind the TAP.
fn send(secs: f64) {
    let s = UdpSocket::bind("0.0.0.0:0").expect("socket");
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let buf = [0u8; 64];
    while Instant::now() < end {
        for _ in 0..1000 {
            let _ = s.send_to(&buf, (PEER, 9));
        }
    }
}

struct Count {
    frames: u64,
    calls: u64,
}

fn by_read(fd: i32, end: Instant) -> Count {
    let mut buf = vec![0u8; BUF];
    let mut c = Count {
        frames: 0,
        calls: 0,
    };
    while Instant::now() < end {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on the stack.
        unsafe { libc::poll(&mut p, 1, 100) };
        c.calls += 1;
        for _ in 0..64 {
            // SAFETY: reads into our buffer, within its length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), BUF) };
            c.calls += 1;
            if n <= 0 {
                break;
            }
            c.frames += 1;
        }
    }
    c
}

fn by_uring(fd: i32, end: Instant) -> Count {
    let mut ring: IoUring = IoUring::builder()
        .setup_coop_taskrun()
        .build(256)
        .expect("io_uring");
    let pool = vec![0u8; BUF * usize::from(NBUF)];
    // The buffer ring: page-aligned entries, the tail in the first one.
    let layout = std::alloc::Layout::from_size_align(16 * usize::from(NBUF), 4096).unwrap();
    // SAFETY: a non-zero layout; freed never (the process ends).
    let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
    // SAFETY: the ring and the pool outlive the io_uring.
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(entries as u64, NBUF, GROUP, 0)
            .expect("register_buf_ring")
    };
    // SAFETY: the tail is the ring's first entry's reserved field.
    let tail_word = unsafe { &*types::BufRingEntry::tail(entries).cast::<AtomicU16>() };
    let mut tail = 0u16;
    let give = |tail: &mut u16, bid: u16| {
        // SAFETY: the slot is within the ring; the kernel took it back.
        let e = unsafe { &mut *entries.add(usize::from(*tail & (NBUF - 1))) };
        e.set_addr(pool[usize::from(bid) * BUF..].as_ptr() as u64);
        e.set_len(BUF as u32);
        e.set_bid(bid);
        *tail = tail.wrapping_add(1);
    };
    for bid in 0..NBUF {
        give(&mut tail, bid);
    }
    tail_word.store(tail, Ordering::Release);
    let read = opcode::ReadMulti::new(types::Fd(fd), 0, GROUP).build();
    let mut armed = false;
    let mut c = Count {
        frames: 0,
        calls: 0,
    };
    while Instant::now() < end {
        if !armed {
            // SAFETY: the entry refers to nothing but the buffer group.
            unsafe { ring.submission().push(&read).expect("sq full") };
            armed = true;
        }
        ring.submit_and_wait(1).expect("io_uring_enter");
        c.calls += 1;
        for cqe in ring.completion() {
            // Out of buffers (-ENOBUFS) or done: arm it again.
            armed &= cqueue::more(cqe.flags());
            if cqe.result() > 0 {
                c.frames += 1;
            }
            if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
                give(&mut tail, bid);
            }
        }
        tail_word.store(tail, Ordering::Release);
    }
    c
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    if mode == "send" {
        return send(secs);
    }
    if !matches!(mode, "read" | "uring") {
        eprintln!("usage: tunread read|uring SECS");
        std::process::exit(2);
    }
    let tap = open_tap();
    sh(&format!(
        "ip link set {TAP} up && ip addr add 10.99.0.1/24 dev {TAP} && \
         ip neigh replace {PEER} lladdr 02:00:00:00:00:02 dev {TAP}"
    ));
    let fd = tap.as_raw_fd();
    // Two senders: more than the reader can take, so that it reads in
    // full batches, as virt's thread does under load.
    let mut flood: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["send", &(secs + 2.0).to_string()])
                .stdout(Stdio::null())
                .spawn()
                .expect("sender")
        })
        .collect();
    // Start the clock at the flood's first frame.
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd on the stack.
    unsafe { libc::poll(&mut p, 1, 5000) };
    let (c0, t0) = (cpu(), Instant::now());
    let end = t0 + Duration::from_secs_f64(secs);
    let c = match mode {
        "read" => by_read(fd, end),
        _ => by_uring(fd, end),
    };
    let (cpu, el) = ((cpu() - c0).as_secs_f64(), t0.elapsed().as_secs_f64());
    for f in &mut flood {
        let _ = f.kill();
        let _ = f.wait();
    }
    println!(
        "{mode} frames {} kpps {:.1} cpu {:.2} ns_per_frame {:.0} frames_per_call {:.1}",
        c.frames,
        c.frames as f64 / el / 1e3,
        cpu / el,
        cpu * 1e9 / c.frames.max(1) as f64,
        c.frames as f64 / c.calls.max(1) as f64,
    );
}
