//! A real guest: Debian's Linux kernel under QEMU (TCG, virtio-net-pci)
//! plugged into tap0 with `-netdev stream`, tap0 and virt0 in bridge0,
//! virt0's host TAP in a namespace. The guest (scripts/guest.sh) pings the
//! namespace and moves bytes over TCP both ways; both ends compare
//! checksums. Every step is bounded; under CI=true nothing may skip.

use crate::common;

use common::{Daemon, Netns, in_ci};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const GUEST_MAC: &str = "52:54:00:12:34:56";

/// QEMU and the guest's kernel and initramfs, built once per run and
/// cached under target/, or why not.
fn guest() -> Option<(&'static str, &'static Path)> {
    static GUEST: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let qemu = "qemu-system-x86_64";
    if !Command::new(qemu)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(!in_ci(), "CI=true: {qemu} is needed (scripts/deps.sh)");
        eprintln!("skipped: no {qemu}");
        return None;
    }
    if !common::can_netadmin() {
        return None;
    }
    let built = GUEST.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/guest.sh");
        let out = Command::new("timeout")
            .args(["300", "bash", script])
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("bash: {e}"))?;
        if out.status.success() {
            Ok(dir)
        } else {
            Err(format!(
                "scripts/guest.sh: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    match built {
        Ok(dir) => Some((qemu, dir.as_path())),
        Err(why) => {
            assert!(!in_ci(), "CI=true: no guest: {why}");
            eprintln!("skipped: no guest: {why}");
            None
        }
    }
}

/// A child killed and reaped when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A booted guest and its serial console.
struct Guest {
    qemu: Reaped,
    console: PathBuf,
}

impl Guest {
    /// Boot the guest on the tap socket `tap`; `env` is added to the
    /// kernel command line (init's environment).
    fn boot(qemu: &str, dir: &Path, tap: &Path, console: PathBuf, env: &str) -> Guest {
        let child = Command::new(qemu)
            .args(["-nodefaults", "-display", "none", "-no-reboot"])
            .args(["-machine", "accel=tcg", "-m", "256", "-smp", "1"])
            .arg("-kernel")
            .arg(dir.join("vmlinuz"))
            .arg("-initrd")
            .arg(dir.join("initramfs.gz"))
            .arg("-append")
            .arg(format!("console=ttyS0 quiet panic=-1 {env}"))
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-netdev")
            .arg(format!(
                "stream,id=n0,server=off,addr.type=unix,addr.path={}",
                tap.display()
            ))
            .arg("-device")
            .arg(format!("virtio-net-pci,netdev=n0,mac={GUEST_MAC}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn qemu");
        Guest {
            qemu: Reaped(child),
            console,
        }
    }

    fn console(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// The rest of the first console line that begins with `prefix`,
    /// within `secs`; the whole console in the panic message otherwise.
    fn line(&mut self, prefix: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let text = self.console();
            // Whole lines only: the serial console comes a few bytes at a
            // time, and a line still being written is not its value yet.
            let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
            if let Some(l) = whole
                .lines()
                .find_map(|l| l.trim_end().strip_prefix(prefix))
            {
                return l.trim().to_string();
            }
            if let Ok(Some(st)) = self.qemu.0.try_wait() {
                panic!("qemu exited ({st}) before {prefix:?}; console:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix:?} within {secs} s; console:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for QEMU to exit (the guest powers off).
    fn wait_exit(&mut self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.qemu.0.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the guest did not power off; console:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A TCP receiver in `ns` on `addr:port` that prints the SHA-256 of what
/// it got. Returns once it listens.
fn receiver(ns: &Netns, addr: &str, port: u16) -> (Reaped, BufReader<std::process::ChildStdout>) {
    let code = format!(
        "import socket,hashlib\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind((\"{addr}\",{port}));s.listen(1);s.settimeout(60);print(\"listening\",flush=True)\nc,_=s.accept();c.settimeout(30);h=hashlib.sha256()\nwhile True:\n  b=c.recv(65536)\n  if not b: break\n  h.update(b)\nprint(h.hexdigest(),flush=True)"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0, "python3", "-c", &code])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "listening");
    (Reaped(child), out)
}

/// Send `mib` MiB of random bytes from `ns` to `addr:port` (retrying the
/// connection while the guest's listener comes up); their SHA-256.
fn send(ns: &Netns, addr: &str, port: u16, mib: u32) -> String {
    ns.exec(&format!(
        "timeout 60 python3 -c 'import socket,hashlib,os,time\nd=os.urandom({mib}<<20)\nfor i in range(200):\n  try:\n    s=socket.create_connection((\"{addr}\",{port}),timeout=5);break\n  except OSError:\n    time.sleep(0.1)\ns.settimeout(30);s.sendall(d);s.close();print(hashlib.sha256(d).hexdigest())'"
    ))
    .trim()
    .to_string()
}

/// The guest on tap0 reaches the namespace behind virt0 through bridge0:
/// ping both ways, 4 MiB each way intact, and its MAC learned on tap0.
#[test]
fn linux_guest_on_tap() {
    guest_through_bridge(1500);
}

/// The same on a jumbo bridge built in the natural order, the guest's
/// eth0 at MTU 9000: a 9000-byte ping crosses unfragmented both ways.
#[test]
fn linux_guest_on_a_jumbo_bridge() {
    guest_through_bridge(9000);
}

fn guest_through_bridge(mtu: u32) {
    let Some((qemu, dir)) = guest() else {
        return;
    };
    let d = Daemon::start();
    let ns = Netns::new();
    let host = common::virt_in_ns(&d, "virt0", &ns, "10.9.0.1/24");
    d.ok(&["tap0", "create"]);
    d.ok(&["bridge0", "create"]);
    if mtu != 1500 {
        let mtu = mtu.to_string();
        ns.exec(&format!("ip link set {host} mtu {mtu}"));
        for i in ["bridge0", "virt0", "tap0"] {
            d.ok(&[i, "mtu", &mtu]);
        }
    }
    let (_, err, rc) = d.brconfig(&["bridge0", "add", "virt0", "add", "tap0", "up"]);
    assert_eq!((err.as_str(), rc), ("", 0));
    let (up, mut up_sum) = receiver(&ns, "10.9.0.1", 5001);
    let scratch = tempfile::tempdir().unwrap();
    let tap = d.run_dir().join("tap0");
    let mut g = Guest::boot(
        qemu,
        dir,
        &tap,
        scratch.path().join("console"),
        &format!(
            "guest_ip=10.9.0.2/24 guest_peer=10.9.0.1 guest_mtu={mtu} up_port=5001 up_mib=4 down_port=5002"
        ),
    );
    let eth0 = g.line("guest: eth0 ", 60);
    assert_eq!(eth0, format!("{GUEST_MAC} mtu {mtu}"));
    assert_eq!(g.line("guest: ping ", 30), "ok");
    // The namespace's side: an answer from the guest, as large as the MTU
    // lets a datagram be without fragments.
    ns.exec(&format!(
        "ping -c 1 -w 20 -M do -s {} 10.9.0.2 >/dev/null",
        mtu - 28
    ));
    let sent = g.line("guest: up sha256 ", 30);
    assert_eq!(g.line("guest: sent ", 60), "ok");
    let mut got = String::new();
    up_sum.read_line(&mut got).unwrap();
    assert_eq!(got.trim(), sent, "4 MiB up from the guest arrived intact");
    drop(up);
    g.line("guest: down listening", 30);
    let sent = send(&ns, "10.9.0.2", 5002, 4);
    assert_eq!(
        g.line("guest: down sha256 ", 60),
        sent,
        "4 MiB down to the guest arrived intact"
    );
    let tx = g.line("guest: counters tx ", 10);
    g.line("guest: done", 10);
    g.wait_exit(30);
    // Every frame the guest sent arrived on tap0, byte for byte (the
    // stream's 4-byte record headers are not frame bytes).
    let guest_tx = tx.replace(' ', "/");
    let mut c = ifnet::client::Client::connect(&d.sock).unwrap();
    let mut tap0_in = || {
        use ifnet::ioctl::{Ioctl, Reply, Request};
        match c.ioctl(Request::GetIfConf {
            name: Some("tap0".into()),
        }) {
            Ok(Reply::IfConf(v)) => format!("{}/{}", v[0].data.ipackets, v[0].data.ibytes),
            r => panic!("tap0: {r:?}"),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while tap0_in() != guest_tx && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        tap0_in(),
        guest_tx,
        "tap0's input (packets/bytes) = the guest's output"
    );
    let (out, _, _) = d.brconfig(&["bridge0"]);
    assert!(
        out.lines()
            .any(|l| l.contains(GUEST_MAC) && l.contains("tap0")),
        "the guest's MAC learned on tap0:\n{out}"
    );
}

/// What "Connecting a virtual machine" promises, with plain clients in
/// place of QEMU: `tap0 down` keeps the client attached and `up` resumes;
/// a client that goes away and comes back finds tap0 still in its bridge.
#[test]
fn a_vm_port_survives_down_and_reconnects() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let d = Daemon::start();
    d.ok(&["tap0", "create"]);
    d.ok(&["tap1", "create"]);
    d.ok(&["bridge0", "create"]);
    let (_, err, rc) = d.brconfig(&["bridge0", "add", "tap0", "add", "tap1", "up"]);
    assert_eq!((err.as_str(), rc), ("", 0));
    let run = d.run_dir();
    let up = |name: &str| d.ifconfig(&[name]).0.contains("<UP,");
    let connect = |name: &str| {
        let c = UnixStream::connect(run.join(name)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        common::wait_until(5, "up on open", || up(name));
        c
    };
    let send = |c: &mut UnixStream, tag: u8| {
        let mut f = vec![tag; 60];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, tag]);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        c.write_all(&(f.len() as u32).to_be_bytes()).unwrap();
        c.write_all(&f).unwrap();
    };
    // The next frame of ours (the interfaces' own IPv6 chatter skipped).
    let recv = |c: &mut UnixStream| loop {
        let mut len = [0u8; 4];
        c.read_exact(&mut len).expect("a frame");
        let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
        c.read_exact(&mut f).unwrap();
        if f.len() == 60 && f[12..14] == [0x88, 0xb5] {
            return f[59];
        }
    };
    let mut c0 = connect("tap0");
    let mut c1 = connect("tap1");
    send(&mut c0, 1);
    assert_eq!(recv(&mut c1), 1);

    d.ok(&["tap0", "down"]);
    let (out, _, _) = d.ifconfig(&["tap0"]);
    assert!(out.contains("status: active"), "still attached:\n{out}");
    send(&mut c0, 2);
    common::wait_until(5, "frame 2 dropped, tap0 being down", || {
        d.ifconfig(&["-v", "tap0"]).0.contains("1 queue drop")
    });
    d.ok(&["tap0", "up"]);
    send(&mut c0, 3);
    assert_eq!(recv(&mut c1), 3, "frame 2 was dropped, 3 crossed");

    drop(c0);
    common::wait_until(5, "down on last close", || !up("tap0"));
    let (out, _, _) = d.brconfig(&["bridge0"]);
    assert!(out.contains("tap0"), "still a member:\n{out}");
    let mut c0 = connect("tap0");
    send(&mut c0, 4);
    assert_eq!(recv(&mut c1), 4);
    send(&mut c1, 5);
    assert_eq!(recv(&mut c0), 5);
}

// Issue 14 items 1 to 3: what a VM's port needs of the tap driver (each
// failed before its change).

fn tap_frame(dst: u8, src: u8, n: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, dst]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, src]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..16].copy_from_slice(&n.to_be_bytes());
    f
}

/// Item 1: a switch port absorbs a burst of its own peer's window. The
/// client on tap0 stops reading for 2 s while 1,000 frames of 1,400 bytes
/// arrive for it; with the default queue it gets every one.
#[test]
fn a_stalled_client_gets_the_whole_burst() {
    let (got, _) = burst_after_stall(None);
    assert_eq!(got, 1000, "frames delivered after the stall");
}

/// The queue is set per interface (`ifconfig tap0 txqueue BYTES`): at
/// 256 KiB, the old default, the same burst loses frames, counted as
/// tap0's output errors; the setting shows in `ifconfig -v`.
#[test]
fn txqueue_is_set_per_interface() {
    let (got, d) = burst_after_stall(Some("262144"));
    assert!(got < 1000, "{got} delivered through a 256 KiB queue");
    let (out, _, _) = d.ifconfig(&["-v", "tap0"]);
    assert!(out.contains("\ttxqueue: 262144 bytes\n"), "{out}");
    let oerrors: u64 = out
        .lines()
        .find(|l| l.contains("output:"))
        .and_then(|l| l.split(", ").find(|w| w.ends_with(" errors")))
        .and_then(|w| w.trim_end_matches(" errors").parse().ok())
        .unwrap_or(0);
    assert!(oerrors as usize >= 1000 - got, "{out}");
    let bad = |q: &str| d.ifconfig(&["tap0", "txqueue", q]);
    let einval = (
        String::new(),
        "ifconfig: SIOCSIFTXQUEUE: Invalid argument\n".to_string(),
        1,
    );
    assert_eq!(bad("100"), einval);
    assert_eq!(bad("-1"), einval);
    assert_eq!(
        d.ifconfig(&["bridge0", "txqueue", "1048576"]),
        (
            String::new(),
            "ifconfig: SIOCSIFTXQUEUE: Operation not supported\n".to_string(),
            1
        )
    );
}

/// 1,000 frames of 1,400 bytes for tap0's client while it stops reading
/// for 2 s; tap0's queue set to `txqueue` first if given. The frames that
/// reach the client, and the daemon.
fn burst_after_stall(txqueue: Option<&str>) -> (usize, Daemon) {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let d = Daemon::start();
    for i in ["tap0", "tap1", "bridge0"] {
        d.ok(&[i, "create"]);
    }
    if let Some(q) = txqueue {
        d.ok(&["tap0", "txqueue", q]);
    }
    let (_, err, rc) = d.brconfig(&["bridge0", "add", "tap0", "add", "tap1", "up"]);
    assert_eq!((err.as_str(), rc), ("", 0));
    let run = d.run_dir();
    let mut c0 = UnixStream::connect(run.join("tap0")).unwrap();
    let mut c1 = UnixStream::connect(run.join("tap1")).unwrap();
    common::wait_until(5, "both up", || {
        d.ifconfig(&["tap0"]).0.contains("<UP,") && d.ifconfig(&["tap1"]).0.contains("<UP,")
    });
    for n in 0..1000 {
        let f = tap_frame(0xaa, 0xbb, n, 1400);
        c1.write_all(&(f.len() as u32).to_be_bytes()).unwrap();
        c1.write_all(&f).unwrap();
    }
    // The client's stall is the point of the test.
    std::thread::sleep(Duration::from_secs(2));
    c0.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut got = 0;
    while got < 1000 {
        let mut len = [0u8; 4];
        if c0.read_exact(&mut len).is_err() {
            break;
        }
        let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
        c0.read_exact(&mut f).unwrap();
        if f.len() == 1400 && f[12..14] == [0x88, 0xb5] {
            got += 1;
        }
    }
    (got, d)
}

/// Item 2: as FreeBSD's tap(4), the cloning device gives the lowest
/// unused tap (one without a client) and makes one only when none is
/// free: three clients in turn all get tap0.
#[test]
fn the_cloning_socket_gives_the_lowest_unused_tap() {
    use ifnet::client::Client;
    use ifnet::client::tap::{connect, gifname};
    let d = Daemon::start();
    let mut c = Client::connect(&d.sock).unwrap();
    let clone = d.run_dir().join("tap");
    for _ in 0..3 {
        let conn = connect(&clone).unwrap();
        assert_eq!(gifname(&mut c, &conn), Ok("tap0".to_string()));
        drop(conn);
        common::wait_until(5, "tap0 free again", || {
            !d.ifconfig(&["tap0"]).0.contains("<UP,")
        });
    }
}

/// Item 3: a QEMU retrying against a busy tap0 every 500 ms must not
/// flood the log: the lines are rate-limited and name the client's pid.
#[test]
fn rejected_clients_are_logged_sparingly_with_their_pid() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    // The daemon's own, to keep its log (standard error in the foreground).
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ifnetd.log");
    let sock = dir.path().join("ifnetd.sock");
    let _daemon = Reaped(
        Command::new(common::IFNETD)
            .args(["-f", "-s"])
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    common::wait_for_socket(&sock);
    let d = Daemon {
        dir: tempfile::tempdir().unwrap(),
        sock,
        child: None,
    };
    d.ok(&["tap0", "create"]);
    let tap = d.run_dir().join("tap0");
    let _first = UnixStream::connect(&tap).unwrap();
    common::wait_until(5, "tap0 up", || d.ifconfig(&["tap0"]).0.contains("<UP,"));
    for _ in 0..20 {
        let mut c = UnixStream::connect(&tap).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).expect("closed at once");
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let busy: Vec<&str> = text.lines().filter(|l| l.contains("busy")).collect();
    assert!(
        (1..=2).contains(&busy.len()),
        "20 rejections, {} lines:\n{text}",
        busy.len()
    );
    let pid = format!("pid {}", std::process::id());
    assert!(busy.iter().all(|l| l.contains(&pid)), "{text}");
}
