//! tap's control device: framing both ways, exclusive open, the cloning
//! socket, drop-when-no-client, last-close-down, bad lengths, a client that
//! never reads, and QEMU as a client.

use crate::common;

use common::*;
use ifnet::Kernel;
use ifnet::client::Client;
use ifnet::cloner::KernelEnv;
use ifnet::generic;
use ifnet::ioctl::{Errno, IfStatus, InAliasReq, Ioctl, LinkState, Reply, Request, iff};
use ifnet::port::FrameReceiver;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn status(k: &mut impl Ioctl, name: &str) -> IfStatus {
    match k.ioctl(Request::GetIfConf {
        name: Some(name.into()),
    }) {
        Ok(Reply::IfConf(mut v)) => v.remove(0),
        r => panic!("{name}: {r:?}"),
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A kernel with a run directory, as the daemon has.
struct Env {
    _dir: tempfile::TempDir,
    run: PathBuf,
    k: Kernel,
}

impl Env {
    /// Frame-exact tests: no link-local address, so the interface sends
    /// no DAD probes of its own.
    fn new() -> Env {
        Env::with(true)
    }

    fn with(no_auto_linklocal: bool) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().to_path_buf();
        let k = generic::kernel(KernelEnv {
            run_dir: Some(run.clone()),
            no_auto_linklocal,
            ..KernelEnv::default()
        });
        Env { _dir: dir, run, k }
    }

    fn k(&self) -> &Kernel {
        &self.k
    }

    fn create(&self, name: &str) {
        self.k
            .ioctl(Request::IfCreate { name: name.into() })
            .unwrap();
    }

    fn status(&self, name: &str) -> IfStatus {
        status(&mut self.k(), name)
    }

    fn set_flags(&self, name: &str, set: u32, clear: u32) {
        let flags = (self.status(name).flags | set) & !clear;
        self.k
            .ioctl(Request::SetIfFlags {
                name: name.into(),
                flags,
            })
            .unwrap();
    }

    /// Connect to tapN's control device and wait until it is attached and
    /// (up on open) up.
    fn open(&self, name: &str) -> UnixStream {
        let path = self.status(name).linkstr.unwrap();
        assert_eq!(Path::new(&path), self.run.join(name));
        let c = UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        wait_for("attach and up", || {
            let s = self.status(name);
            s.media.unwrap().active == Some(true) && s.flags & iff::UP != 0
        });
        c
    }
}

/// A broadcast frame of `len` bytes.
fn frame(len: usize, fill: u8) -> Vec<u8> {
    let mut f = vec![fill; len];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    if len >= 14 {
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
    }
    f
}

fn write_frame(c: &mut UnixStream, f: &[u8]) {
    c.write_all(&(f.len() as u32).to_be_bytes()).unwrap();
    c.write_all(f).unwrap();
}

fn read_frame(c: &mut UnixStream) -> Vec<u8> {
    let mut h = [0u8; 4];
    c.read_exact(&mut h).unwrap();
    let mut f = vec![0; u32::from_be_bytes(h) as usize];
    c.read_exact(&mut f).unwrap();
    f
}

fn recv(rx: &FrameReceiver) -> Vec<u8> {
    rx.recv_timeout(Duration::from_secs(5)).expect("a frame")
}

/// The peer closed: read returns EOF.
fn assert_closed(c: &mut UnixStream) {
    let mut b = [0u8; 1];
    assert_eq!(c.read(&mut b).unwrap(), 0, "expected EOF");
}

#[test]
fn frames_both_ways_and_up_on_open() {
    let e = Env::new();
    e.create("tap0");
    let s = e.status("tap0");
    assert_eq!(s.flags, 0x8802);
    assert_eq!(s.mtu, 1500);
    assert_eq!(s.lladdr.unwrap()[..3], [0xf2, 0x0b, 0xa4]);
    assert_eq!(s.media.as_ref().unwrap().active, Some(false));
    let rx = e.k().listen("tap0").unwrap();

    let mut c = e.open("tap0");
    wait_for("up on open", || e.status("tap0").flags == 0x8843);
    assert_eq!(e.status("tap0").link_state, LinkState::Up);

    // Client → interface, several frames in one write.
    let mut burst = Vec::new();
    for (len, fill) in [(60, 1u8), (1514, 2), (14, 3)] {
        burst.extend_from_slice(&(len as u32).to_be_bytes());
        burst.extend_from_slice(&frame(len, fill));
    }
    c.write_all(&burst).unwrap();
    assert_eq!(recv(&rx), frame(60, 1));
    assert_eq!(recv(&rx), frame(1514, 2));
    assert_eq!(recv(&rx), frame(14, 3));

    // Interface → client.
    e.k().send("tap0", &frame(100, 4)).unwrap();
    e.k().send("tap0", &frame(1514, 5)).unwrap();
    assert_eq!(read_frame(&mut c), frame(100, 4));
    assert_eq!(read_frame(&mut c), frame(1514, 5));
    let d = e.status("tap0").data;
    assert_eq!((d.ipackets, d.opackets, d.ierrors, d.oerrors), (3, 2, 0, 0));
    assert_eq!(d.ibytes, 60 + 1514 + 14);
}

#[test]
fn exclusive_open() {
    let e = Env::new();
    e.create("tap0");
    let mut c = e.open("tap0");
    let mut second = UnixStream::connect(e.run.join("tap0")).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_closed(&mut second);
    // The first client still has it.
    wait_for("up", || e.status("tap0").flags & iff::UP != 0);
    e.k().send("tap0", &frame(60, 9)).unwrap();
    assert_eq!(read_frame(&mut c), frame(60, 9));
    // Once it is gone, the next one gets it.
    drop(c);
    wait_for("detach", || {
        e.status("tap0").media.unwrap().active == Some(false)
    });
    let _c = e.open("tap0");
}

#[test]
fn drop_when_no_client() {
    let e = Env::new();
    e.create("tap1");
    e.set_flags("tap1", iff::UP, 0);
    assert_eq!(e.status("tap1").flags, 0x8843);
    assert_eq!(e.k().send("tap1", &frame(60, 1)), Err(Errno::EHOSTDOWN));
    assert_eq!(e.k().send("tap1", &frame(60, 1)), Err(Errno::EHOSTDOWN));
    let d = e.status("tap1").data;
    assert_eq!((d.opackets, d.oerrors), (0, 2));
    // Nothing queued while closed reaches a later client.
    let mut c = e.open("tap1");
    e.k().send("tap1", &frame(61, 2)).unwrap();
    assert_eq!(read_frame(&mut c), frame(61, 2));
}

fn add_inet(e: &Env, name: &str, a: [u8; 4]) {
    let req = InAliasReq {
        addr: Ipv4Addr::from(a),
        mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        broadcast: None,
        dst: None,
        flags: 0,
    };
    e.k()
        .ioctl(Request::AifAddr {
            name: name.into(),
            req,
        })
        .unwrap();
}

#[test]
fn last_close_down_unless_link0() {
    let e = Env::with(false);
    e.create("tap0");
    let c = e.open("tap0");
    wait_for("up", || e.status("tap0").flags & iff::UP != 0);
    add_inet(&e, "tap0", [10, 0, 0, 1]);
    assert!(
        !e.status("tap0").inet6.is_empty(),
        "link-local attached on up"
    );
    drop(c);
    wait_for("down", || e.status("tap0").flags & iff::UP == 0);
    let s = e.status("tap0");
    assert_eq!(s.flags, 0x8802);
    assert!(s.inet.is_empty() && s.inet6.is_empty(), "{s:?}");
    assert_eq!(s.link_state, LinkState::Down);
    // The next open brings it up again, with a fresh link-local address.
    let c = e.open("tap0");
    wait_for("up", || e.status("tap0").flags & iff::UP != 0);
    assert_eq!(e.status("tap0").inet6.len(), 1);
    drop(c);
    wait_for("down", || e.status("tap0").flags & iff::UP == 0);

    // link0: the interface stays up with its addresses.
    e.create("tap1");
    e.set_flags("tap1", iff::LINK0, 0);
    let c = e.open("tap1");
    wait_for("up", || e.status("tap1").flags & iff::UP != 0);
    add_inet(&e, "tap1", [10, 0, 1, 1]);
    drop(c);
    wait_for("detach", || e.status("tap1").link_state == LinkState::Down);
    let s = e.status("tap1");
    assert_eq!(s.media.unwrap().active, Some(false));
    assert_eq!(s.flags, 0x8802 | iff::LINK0 | iff::UP | iff::RUNNING);
    assert_eq!(s.inet.len(), 1);
    assert_eq!(s.link_state, LinkState::Down);
}

/// As FreeBSD's: the cloning socket gives the lowest tap without a client
/// (tap1, which exists), and makes one only when none is free (tap0, the
/// lowest unused unit).
#[test]
fn cloning_socket() {
    let e = Env::new();
    e.create("tap1");
    let clone = e.run.join("tap");
    let mut a = UnixStream::connect(&clone).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    wait_for("tap1", || {
        e.k()
            .ioctl(Request::GetIfFlags {
                name: "tap1".into(),
            })
            .is_ok_and(|f| f == Reply::Flags(0x8843))
    });
    let mut b = UnixStream::connect(&clone).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    wait_for("tap0", || {
        e.k()
            .ioctl(Request::GetIfFlags {
                name: "tap0".into(),
            })
            .is_ok_and(|f| f == Reply::Flags(0x8843))
    });
    assert!(
        e.k()
            .ioctl(Request::GetIfFlags {
                name: "tap2".into()
            })
            .is_err()
    );
    e.k().send("tap1", &frame(60, 0xa)).unwrap();
    e.k().send("tap0", &frame(60, 0xb)).unwrap();
    assert_eq!(read_frame(&mut a), frame(60, 0xa));
    assert_eq!(read_frame(&mut b), frame(60, 0xb));
    // Its own socket is exclusive too.
    let mut third = UnixStream::connect(e.run.join("tap0")).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_closed(&mut third);
}

#[test]
fn bad_lengths_and_sizes() {
    let e = Env::new();
    e.create("tap0");
    let rx = e.k().listen("tap0").unwrap();
    let mut c = e.open("tap0");
    wait_for("up", || e.status("tap0").flags & iff::UP != 0);
    // Zero, runt and oversized frames: dropped and counted, the stream goes on.
    write_frame(&mut c, &[]);
    write_frame(&mut c, &frame(13, 1));
    write_frame(&mut c, &frame(1515, 2));
    write_frame(&mut c, &frame(60, 3));
    assert_eq!(recv(&rx), frame(60, 3));
    let d = e.status("tap0").data;
    assert_eq!((d.ierrors, d.ipackets), (3, 1));
    // A bigger MTU lets the big one through.
    e.k()
        .ioctl(Request::SetIfMtu {
            name: "tap0".into(),
            mtu: 9000,
        })
        .unwrap();
    write_frame(&mut c, &frame(9014, 4));
    assert_eq!(recv(&rx), frame(9014, 4));
    assert_eq!(
        e.k().ioctl(Request::SetIfMtu {
            name: "tap0".into(),
            mtu: 65522
        }),
        Err(Errno::EINVAL)
    );
    // A claimed 2 GiB frame: counted, and the client is disconnected.
    c.write_all(&0x8000_0000u32.to_be_bytes()).unwrap();
    assert_closed(&mut c);
    wait_for("down", || e.status("tap0").flags & iff::UP == 0);
    assert_eq!(e.status("tap0").data.ierrors, 4);

    // A partial frame, then disconnect.
    let mut c = e.open("tap0");
    c.write_all(&100u32.to_be_bytes()).unwrap();
    c.write_all(&[0; 50]).unwrap();
    drop(c);
    wait_for("down", || e.status("tap0").flags & iff::UP == 0);
    assert_eq!(e.status("tap0").data.ierrors, 5);
    // A partial header, then disconnect.
    let mut c = e.open("tap0");
    c.write_all(&[0, 0]).unwrap();
    drop(c);
    wait_for("down", || e.status("tap0").flags & iff::UP == 0);
    assert_eq!(e.status("tap0").data.ierrors, 6);
}

/// A client that never reads does not slow the sender: its queue fills,
/// then frames are dropped and counted.
#[test]
fn stalled_client_never_blocks_output() {
    let e = Env::new();
    e.create("tap0");
    let c = e.open("tap0");
    wait_for("up", || e.status("tap0").flags & iff::UP != 0);
    let f = frame(1514, 7);
    let start = Instant::now();
    let (mut ok, mut dropped) = (0u64, 0u64);
    for _ in 0..5000 {
        match e.k().send("tap0", &f) {
            Ok(()) => ok += 1,
            Err(err) => {
                assert_eq!(err, Errno(libc::ENOBUFS));
                dropped += 1;
            }
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(dropped > 0 && ok > 0, "ok {ok} dropped {dropped}");
    let d = e.status("tap0").data;
    assert_eq!((d.opackets, d.oerrors), (ok, dropped));
    drop(c);
}

/// In-process without a run directory the control sockets live in a
/// private temporary directory, removed with the kernel.
#[test]
fn in_process_private_dir() {
    let k = generic::kernel(KernelEnv::default());
    k.ioctl(Request::IfCreate {
        name: "tap3".into(),
    })
    .unwrap();
    let path = PathBuf::from(status(&mut &k, "tap3").linkstr.unwrap());
    assert!(path.ends_with("tap3"));
    let dir = path.parent().unwrap().to_path_buf();
    let c = UnixStream::connect(&path).unwrap();
    wait_for("up", || status(&mut &k, "tap3").flags & iff::UP != 0);
    drop(c);
    drop(k);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn destroy_closes_the_client_and_removes_the_socket() {
    let e = Env::new();
    e.create("tap0");
    let mut c = e.open("tap0");
    e.k()
        .ioctl(Request::IfDestroy {
            name: "tap0".into(),
        })
        .unwrap();
    assert_closed(&mut c);
    assert!(!e.run.join("tap0").exists());
}

/// The daemon serves tap sockets in its run directory (`SOCKET.d`) and
/// removes them, and the directory, when it stops.
#[test]
fn daemon_sockets() {
    let d = Daemon::start();
    let dir = d.run_dir();
    assert!(dir.join("tap").exists(), "cloning socket");
    let mut a = UnixStream::connect(dir.join("tap")).unwrap();
    let mut c = Client::connect(&d.sock).unwrap();
    wait_for("tap0", || {
        c.ioctl(Request::GetIfFlags {
            name: "tap0".into(),
        })
        .is_ok_and(|f| f == Reply::Flags(0x8843))
    });
    let rx_frame = frame(60, 0x11);
    write_frame(&mut a, &rx_frame);
    wait_for("input", || status(&mut c, "tap0").data.ipackets == 1);
    c.ioctl(Request::Shutdown).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Whatever the interface sent (its DAD probes) and then EOF.
    let mut rest = Vec::new();
    a.read_to_end(&mut rest).expect("EOF, not a timeout");
    wait_for("sockets removed", || !dir.exists());
}

fn qemu() -> Option<&'static str> {
    ["qemu-system-x86_64", "qemu-system-i386"]
        .into_iter()
        .find(|q| {
            std::process::Command::new(q)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// QEMU plugs a NIC into tap0 with `-netdev stream`. No guest is booted
/// on purpose; the monitor's `announce_self` makes QEMU itself send RARP
/// frames from the NIC's MAC, which must arrive on tap0. When QEMU quits,
/// the last close brings tap0 down.
#[test]
fn qemu_stream_client() {
    let Some(qemu) = qemu() else {
        assert!(!in_ci(), "CI=true: qemu-system-x86_64 is needed");
        eprintln!("skipped: no qemu-system-x86_64");
        return;
    };
    const NIC: [u8; 6] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];
    let e = Env::new();
    e.create("tap0");
    let rx = e.k().listen("tap0").unwrap();
    let path = e.run.join("tap0");
    let mut child = std::process::Command::new(qemu)
        .args([
            "-nodefaults",
            "-nographic",
            "-display",
            "none",
            "-serial",
            "none",
        ])
        .args(["-machine", "accel=tcg", "-monitor", "stdio"])
        .arg("-netdev")
        .arg(format!(
            "stream,id=n0,server=off,addr.type=unix,addr.path={}",
            path.display()
        ))
        .args(["-device", "e1000,netdev=n0,mac=52:54:00:ab:cd:ef"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr = child.stderr.take().unwrap();
    let mut monitor = child.stdin.take().unwrap();
    let mut child = Kill(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while e.status("tap0").media.unwrap().active != Some(true) {
        if let Ok(Some(st)) = child.0.try_wait() {
            let mut log = String::new();
            let _ = { stderr }.read_to_string(&mut log);
            panic!("qemu exited ({st}): {log}");
        }
        assert!(Instant::now() < deadline, "qemu did not attach");
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_for("up on open", || e.status("tap0").flags == 0x8843);
    monitor.write_all(b"announce_self\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = rx
            .recv_timeout(left)
            .expect("a RARP announcement from QEMU");
        if f[12..14] == [0x80, 0x35] {
            assert_eq!(f[..6], [0xff; 6]);
            assert_eq!(f[6..12], NIC);
            break;
        }
    }
    // And QEMU takes what we send it.
    e.k().send("tap0", &frame(60, 1)).unwrap();
    assert_eq!(e.status("tap0").data.ierrors, 0);
    let _ = child.0.kill();
    let _ = child.0.wait();
    wait_for("last close", || e.status("tap0").flags == 0x8802);
}

/// The tap sockets take the control socket's mode (`ifnetd -m`): whoever
/// may configure the daemon may open its taps, and no one else.
#[test]
fn tap_sockets_take_the_daemons_mode() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let d = Daemon::start();
    d.ok(&["tap0", "create"]);
    let rundir = d.run_dir();
    assert_eq!(
        (mode(&rundir.join("tap0")), mode(&rundir.join("tap"))),
        (0o600, 0o600)
    );

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ifnetd.sock");
    let mut child = std::process::Command::new(IFNETD)
        .args(["-f", "-m", "0660", "-s"])
        .arg(&sock)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_socket(&sock);
    let (_, err, rc) = run(std::process::Command::new(IFCONFIG)
        .args(["tap3", "create"])
        .env("IFNET_SERVER", &sock)
        .env("IFNET_NO_AUTOSTART", "1"));
    assert_eq!((err.as_str(), rc), ("", 0));
    let got = (
        mode(&sock),
        mode(&ifnet::server::run_dir(&sock).join("tap3")),
        mode(&ifnet::server::run_dir(&sock).join("tap")),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got, (0o660, 0o660, 0o660));
}

/// TAPGIFNAME: a client of the cloning socket learns which tapN it got,
/// for each of its connections, however quickly it asks.
#[test]
fn gifname_names_the_clients_tap() {
    use ifnet::client::tap::{connect, gifname};
    let d = Daemon::start();
    let mut c = Client::connect(&d.sock).unwrap();
    let clone = d.run_dir().join("tap");
    let first = connect(&clone).unwrap();
    let second = connect(&clone).unwrap();
    assert_eq!(gifname(&mut c, &second), Ok("tap1".to_string()));
    assert_eq!(gifname(&mut c, &first), Ok("tap0".to_string()));
    // A direct connection is named too; one without an address cannot be.
    let third = connect(&d.run_dir().join("tap1")).unwrap();
    let t = Instant::now();
    assert_eq!(gifname(&mut c, &third), Err(Errno::ENXIO), "tap1 is busy");
    assert!(t.elapsed() < Duration::from_secs(3));
    let plain = UnixStream::connect(&clone).unwrap();
    assert_eq!(gifname(&mut c, &plain), Err(Errno::EINVAL));
    drop((first, second));
    // In-process too.
    let e = Env::new();
    e.create("tap0");
    let conn = connect(&e.run.join("tap0")).unwrap();
    assert_eq!(gifname(&mut e.k(), &conn), Ok("tap0".to_string()));
    assert_eq!(
        e.k().ioctl(Request::TapGIfName {
            peer: b"nobody".to_vec()
        }),
        Err(Errno::ENXIO)
    );
}

/// Two daemons whose control sockets share a directory keep their tap
/// sockets apart (each in its `SOCKET.d`): B's start does not replace
/// A's `tap0`, and stopping B leaves A's sockets alone.
#[test]
fn daemons_sharing_a_directory_keep_their_taps() {
    let a = Daemon::start();
    a.ok(&["tap0", "create"]);
    let mut b = Daemon {
        dir: tempfile::tempdir().unwrap(),
        sock: a.dir.path().join("b.sock"),
        child: None,
    };
    b.spawn();
    b.ok(&["tap0", "create"]);
    let mut ca = Client::connect(&a.sock).unwrap();
    let mut cb = Client::connect(&b.sock).unwrap();
    let (la, lb) = (
        status(&mut ca, "tap0").linkstr.unwrap(),
        status(&mut cb, "tap0").linkstr.unwrap(),
    );
    assert_ne!(la, lb);
    let mut conn = UnixStream::connect(&la).unwrap();
    wait_for("A's tap0 up on open", || {
        status(&mut ca, "tap0").flags & iff::UP != 0
    });
    write_frame(&mut conn, &frame(60, 0x11));
    wait_for("A's tap0 input", || {
        status(&mut ca, "tap0").data.ipackets == 1
    });
    assert_eq!(status(&mut cb, "tap0").data.ipackets, 0);
    drop(conn);
    cb.ioctl(Request::Shutdown).unwrap();
    wait_for("B's run directory removed", || !b.run_dir().exists());
    for s in ["tap", "tap0"] {
        assert!(a.run_dir().join(s).exists(), "A's {s} survives B's stop");
    }
}

/// Issue 14 item 2: with `ifnetd --tap-bridge bridge0`, a tap that the
/// cloning socket makes (every tap busy) joins bridge0; a reused one keeps
/// its membership; without the option clones join nothing.
#[test]
fn clones_join_the_template_bridge() {
    let members = |d: &Daemon| {
        let (out, _, _) = d.brconfig(&["bridge0"]);
        out.lines()
            .map(str::trim)
            .filter(|l| l.starts_with("tap") && l.contains(" flags="))
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    };
    let mut args = FAST_DAD.to_vec();
    args.extend(["--tap-bridge", "bridge0"]);
    let d = Daemon::start_with(&args);
    d.ok(&["bridge0", "create"]);
    let c0 = UnixStream::connect(d.run_dir().join("tap")).unwrap();
    wait_for("tap0 in bridge0", || members(&d) == ["tap0"]);
    let c1 = UnixStream::connect(d.run_dir().join("tap")).unwrap();
    wait_for("tap1 in bridge0", || members(&d) == ["tap0", "tap1"]);
    // Reused (tap0's client gone): nothing more to join.
    let mut c = Client::connect(&d.sock).unwrap();
    wait_for("tap0 up", || status(&mut c, "tap0").flags & iff::UP != 0);
    drop(c0);
    wait_for("tap0 free", || status(&mut c, "tap0").flags & iff::UP == 0);
    let _c2 = UnixStream::connect(d.run_dir().join("tap")).unwrap();
    wait_for("tap0 taken again", || {
        status(&mut c, "tap0").flags & iff::UP != 0
    });
    assert_eq!(members(&d), ["tap0", "tap1"]);
    assert_eq!(d.ifconfig(&["-l"]).0, "lo0 bridge0 tap0 tap1\n");
    drop(c1);
    // Without the option, a clone joins nothing.
    let plain = Daemon::start();
    plain.ok(&["bridge0", "create"]);
    let _p = UnixStream::connect(plain.run_dir().join("tap")).unwrap();
    let mut pc = Client::connect(&plain.sock).unwrap();
    wait_for("tap0 made", || {
        pc.ioctl(Request::GetIfFlags {
            name: "tap0".into(),
        })
        .is_ok()
    });
    assert_eq!(members(&plain), Vec::<String>::new());
}

/// A frame from the guest (10.77.0.2) to `dst` and 10.77.0.1: Ethernet
/// and an IPv4 header (DF, TTL 64, id `id`, protocol `proto`) with its
/// checksum, then `l4_len` bytes of `fill` for the caller to shape.
fn ipv4_frame(dst: [u8; 6], id: u16, proto: u8, l4_len: usize, fill: u8) -> Vec<u8> {
    let mut f = vec![fill; 14 + 20 + l4_len];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0x5e, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip.fill(0);
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&[10, 77, 0, 2]);
    ip[16..20].copy_from_slice(&[10, 77, 0, 1]);
    let sum = !smoltcp::wire::checksum::data(&f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    f
}

/// `n` consecutive TCP/IPv4 segments of one flow, `mss` bytes of data
/// each, to `dst`: what a guest without offloads writes for one burst.
fn tcp_segments(dst: [u8; 6], n: u32, mss: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut f = ipv4_frame(dst, i as u16, 6, 20 + mss, 0);
            let tcp = &mut f[34..54];
            tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
            tcp[2..4].copy_from_slice(&5001u16.to_be_bytes());
            tcp[4..8].copy_from_slice(&(1000 + i * mss as u32).to_be_bytes());
            tcp[8..12].copy_from_slice(&1u32.to_be_bytes());
            tcp[12] = 5 << 4;
            tcp[13] = 0x10; // ACK
            tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
            f
        })
        .collect()
}

/// A guest on tap0 and a namespace's host TAP on virt0, in bridge0.
struct GuestAndHost {
    d: Daemon,
    ns: Netns,
    /// The host TAP's name and link address.
    tap: String,
    mac: [u8; 6],
    /// The guest's connection, and one to the daemon.
    c: UnixStream,
    k: Client,
}

impl GuestAndHost {
    fn new() -> GuestAndHost {
        let d = Daemon::start_with(&FAST_DAD);
        let ns = Netns::new();
        let tap = virt_in_ns(&d, "virt0", &ns, "10.77.0.1/24");
        d.ok(&["tap0", "create"]);
        d.ok(&["bridge0", "create"]);
        d.ok(&["bridge0", "up"]);
        assert_eq!(d.brconfig(&["bridge0", "add", "virt0", "tap0"]).2, 0);
        let c = UnixStream::connect(d.run_dir().join("tap0")).unwrap();
        let mut k = Client::connect(&d.sock).unwrap();
        wait_for("tap0 up", || status(&mut k, "tap0").flags & iff::UP != 0);
        let mac: Vec<u8> = ns
            .exec(&format!("cat /sys/class/net/{tap}/address"))
            .trim()
            .split(':')
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        let mac = mac.try_into().unwrap();
        GuestAndHost {
            d,
            ns,
            tap,
            mac,
            c,
            k,
        }
    }

    /// A statistic of the host TAP.
    fn stat(&self, what: &str) -> u64 {
        let tap = &self.tap;
        self.ns
            .exec(&format!("cat /sys/class/net/{tap}/statistics/{what}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// The guest writes `frames` in one write: the daemon reads them in
    /// one turn.
    fn burst(&mut self, frames: &[Vec<u8>]) {
        let mut burst = Vec::new();
        for f in frames {
            burst.extend_from_slice(&(f.len() as u32).to_be_bytes());
            burst.extend_from_slice(f);
        }
        self.c.write_all(&burst).unwrap();
    }
}

/// A guest's TCP burst reaches a virt's host TAP as super-frames: the
/// host counts fewer packets than segments, every byte.
#[test]
fn a_clients_tcp_burst_reaches_a_virt_coalesced() {
    if !can_netadmin() {
        return;
    }
    let mut g = GuestAndHost::new();
    let (p0, b0) = (g.stat("rx_packets"), g.stat("rx_bytes"));
    g.burst(&tcp_segments(g.mac, 40, 1400));
    let want = b0 + 40 * 1400;
    wait_until(10, "the burst's bytes at the host TAP", || {
        g.stat("rx_bytes") >= want
    });
    let packets = g.stat("rx_packets") - p0;
    assert!(
        packets < 20,
        "40 segments reached the host as {packets} packets"
    );
    // Counted as the frames the client wrote, as a wire would.
    let data = status(&mut g.k, "tap0").data;
    assert_eq!((data.ipackets, data.ibytes), (40, 40 * 1454));
}

/// `n` UDP datagrams from 10.77.0.2:40000 to 10.77.0.1:5201, datagram `i`
/// `len(i)` bytes of `i`, with their checksums.
fn udp_datagrams(dst: [u8; 6], n: u8, len: impl Fn(u8) -> usize) -> Vec<Vec<u8>> {
    use smoltcp::wire::{IpAddress, UdpPacket};
    (0..n)
        .map(|i| {
            let size = len(i);
            let mut f = ipv4_frame(dst, u16::from(i), 17, 8 + size, i);
            let mut u = UdpPacket::new_unchecked(&mut f[34..]);
            u.set_src_port(40000);
            u.set_dst_port(5201);
            u.set_len((8 + size) as u16);
            u.fill_checksum(&IpAddress::v4(10, 77, 0, 2), &IpAddress::v4(10, 77, 0, 1));
            f
        })
        .collect()
}

/// A guest's burst of small datagrams reaches a virt's host TAP in
/// batches (UDP segmentation offload) and its UDP socket as the same
/// datagrams, in order; the counters count datagrams.
#[test]
fn a_clients_udp_burst_reaches_a_virt_batched() {
    if !can_netadmin() {
        return;
    }
    let mut g = GuestAndHost::new();
    // The receiver writes what each datagram held: its length and byte.
    let out = g.d.run_dir().join("udp-got");
    g.ns.exec(&format!(
        "python3 -c 'import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind((\"10.77.0.1\",5201));open(\"{0}.up\",\"w\");s.settimeout(10);got=[]\ntry:\n  while len(got)<40:\n    b=s.recv(2048);got.append(\"%d:%d:%d\"%(len(b),b[0],len(set(b))))\nexcept socket.timeout: pass\nopen(\"{0}\",\"w\").write(\" \".join(got))' >/dev/null 2>&1 &",
        out.display()
    ));
    wait_until(10, "the UDP receiver", || out.with_extension("up").exists());
    let p0 = g.stat("rx_packets");
    let s0 = status(&mut g.k, "virt0").data;
    // 39 of 64 bytes and a short last one, in one turn.
    let len = |i: u8| if i == 39 { 20 } else { 64 };
    g.burst(&udp_datagrams(g.mac, 40, len));
    wait_until(15, "the receiver's report", || out.exists());
    let got = std::fs::read_to_string(&out).unwrap();
    let want: Vec<String> = (0..40u8).map(|i| format!("{}:{i}:1", len(i))).collect();
    assert_eq!(got, want.join(" "), "the datagrams as sent, in order");
    let packets = g.stat("rx_packets") - p0;
    assert!(
        packets < 20,
        "40 datagrams reached the host as {packets} packets"
    );
    let s1 = status(&mut g.k, "virt0").data;
    assert_eq!(s1.opackets - s0.opackets, 40);
    assert_eq!(s1.obytes - s0.obytes, 39 * 106 + 62);
}
