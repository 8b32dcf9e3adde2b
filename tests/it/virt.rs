//! virt with real host TAPs: a network namespace on the other end, a
//! persistent TAP attached without privileges, the TAP deleted underneath.
//! Needs root and /dev/net/tun; skipped without them, except under CI=true.

use crate::common;

use common::*;
use ifnet::client::Client;
use ifnet::cloner::KernelEnv;
use ifnet::generic;
use ifnet::ioctl::{Errno, IfStatus, Ioctl, LinkState, Reply, Request, iff};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

fn can_tap() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let tun = Path::new("/dev/net/tun").exists();
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    let ok = root && tun && ip;
    assert!(
        ok || !in_ci(),
        "CI=true: needs root ({root}), /dev/net/tun ({tun}), ip(8) ({ip})"
    );
    if !ok {
        eprintln!("skipped: needs root, /dev/net/tun and ip(8)");
    }
    ok
}

/// A host interface name unique to this test process.
fn host_name(tag: &str) -> String {
    format!("ifnt{}{tag}", std::process::id())
}

fn ip(args: &[&str]) -> (String, String, i32) {
    run(Command::new("ip").args(args))
}

fn ip_ok(args: &[&str]) {
    let (o, e, rc) = ip(args);
    assert_eq!(rc, 0, "ip {args:?}: {o}{e}");
}

fn host_link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Deletes a host link when dropped (whether we or the daemon made it).
struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if host_link_exists(&self.0) {
            let _ = ip(&["link", "del", &self.0]);
        }
    }
}

/// A network namespace, deleted (with whatever was moved into it) on drop.
struct NetNs(String);

impl NetNs {
    fn new(name: String) -> NetNs {
        ip_ok(&["netns", "add", &name]);
        NetNs(name)
    }

    fn ip(&self, args: &[&str]) {
        let mut a = vec!["-n", &self.0];
        a.extend_from_slice(args);
        ip_ok(&a);
    }

    fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(args);
        c
    }

    fn counter(&self, dev: &str, what: &str) -> u64 {
        let path = format!("/sys/class/net/{dev}/statistics/{what}");
        let (o, e, rc) = run(&mut self.exec(&["cat", &path]));
        assert_eq!(rc, 0, "{e}");
        o.trim().parse().unwrap()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn status(k: &mut impl Ioctl, name: &str) -> IfStatus {
    match k.ioctl(Request::GetIfConf {
        name: Some(name.into()),
    }) {
        Ok(Reply::IfConf(mut v)) => v.remove(0),
        r => panic!("{r:?}"),
    }
}

fn up(k: &mut impl Ioctl, name: &str) -> Result<Reply, Errno> {
    let flags = status(k, name).flags;
    k.ioctl(Request::SetIfFlags {
        name: name.into(),
        flags: flags | iff::UP,
    })
}

fn down(k: &mut impl Ioctl, name: &str) {
    let flags = status(k, name).flags;
    k.ioctl(Request::SetIfFlags {
        name: name.into(),
        flags: flags & !iff::UP,
    })
    .unwrap();
}

fn linkstr(k: &mut impl Ioctl, name: &str, host: &str) -> Result<Reply, Errno> {
    k.ioctl(Request::SetLinkStr {
        name: name.into(),
        linkstr: Some(host.into()),
    })
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ethertype(f: &[u8]) -> u16 {
    u16::from_be_bytes([f[12], f[13]])
}

/// An ARP request from `mac`/`spa` for `tpa`, broadcast.
fn arp_request(mac: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    f.resize(60, 0);
    f
}

#[test]
fn virt_to_netns_and_back() {
    if !can_tap() {
        return;
    }
    let host = host_name("a");
    let _guard = LinkGuard(host.clone());
    let k = generic::kernel(KernelEnv {
        no_auto_linklocal: true,
        ..KernelEnv::default()
    });
    let mut k = &k;
    k.ioctl(Request::IfCreate {
        name: "virt0".into(),
    })
    .unwrap();
    let s = status(&mut k, "virt0");
    assert_eq!(s.flags, 0x8802);
    assert_eq!(s.linkstr.as_deref(), Some("tap0"));
    let mac = s.lladdr.unwrap();
    assert_eq!(
        [mac[0], mac[1], mac[3], mac[4], mac[5]],
        [0xb2, 0x0a, 0x0b, 0x0e, 0]
    );
    // A test thread forking at that moment holds the TAP's descriptor
    // until its exec closes it (O_CLOEXEC): removal may lag a moment.
    wait_for("host TAP removed", || !host_link_exists(&host));

    linkstr(&mut k, "virt0", &host).unwrap();
    up(&mut k, "virt0").unwrap();
    assert!(host_link_exists(&host), "virt0 up creates the host TAP");
    let s = status(&mut k, "virt0");
    assert_eq!(s.flags, 0x8843);
    assert_eq!(s.linkstr.as_deref(), Some(host.as_str()));
    let media = s.media.unwrap();
    assert_eq!(media.current, "Ethernet autoselect");
    assert_eq!(media.active, Some(false), "the host TAP is still down");
    assert_eq!(linkstr(&mut k, "virt0", "tap9"), Err(Errno::EBUSY));

    let ns = NetNs::new(host_name("n"));
    ip_ok(&["link", "set", &host, "netns", &ns.0]);
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", &host]);
    ns.ip(&["link", "set", &host, "up"]);
    // Not visible from here any more: counts as active while attached.
    assert_eq!(status(&mut k, "virt0").media.unwrap().active, Some(true));

    // An ARP request from the namespace arrives on virt0.
    let rx = k.listen("virt0").unwrap();
    // (No ping(8) needed: a UDP datagram makes the stack resolve the address.)
    let mut ping = ns
        .exec(&["bash", "-c", "echo x > /dev/udp/10.99.0.2/9"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let arp = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(f) if ethertype(&f) == 0x0806 && f[21] == 1 => break f,
            Ok(_) => continue,
            Err(RecvTimeoutError::Timeout) => panic!("no ARP request from the namespace"),
            Err(e) => panic!("{e}"),
        }
    };
    let _ = ping.wait();
    assert_eq!(&arp[0..6], &[0xff; 6]);
    assert_eq!(&arp[38..42], &[10, 99, 0, 2]);
    let ns_mac: [u8; 6] = arp[6..12].try_into().unwrap();

    // A frame sent on virt0 arrives in the namespace, which answers it.
    let before = ns.counter(&host, "rx_packets");
    k.send("virt0", &arp_request(mac, [10, 99, 0, 2], [10, 99, 0, 1]))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = rx
            .recv_timeout(left)
            .expect("an ARP reply from the namespace");
        if ethertype(&f) == 0x0806 && f[21] == 2 {
            assert_eq!(&f[0..6], &mac, "the reply is addressed to virt0");
            assert_eq!(&f[6..12], &ns_mac);
            assert_eq!(&f[28..32], &[10, 99, 0, 1]);
            break;
        }
    }
    assert!(ns.counter(&host, "rx_packets") > before);
    let d = status(&mut k, "virt0").data;
    assert!(
        d.ipackets >= 2 && d.opackets == 1 && d.oerrors == 0 && d.ierrors == 0,
        "{d:?}"
    );

    // Destroy while up is refused, as NetBSD's virt.
    assert_eq!(
        k.ioctl(Request::IfDestroy {
            name: "virt0".into()
        }),
        Err(Errno::EBUSY)
    );
    down(&mut k, "virt0");
    assert_eq!(status(&mut k, "virt0").flags, 0x8802);
    k.ioctl(Request::IfDestroy {
        name: "virt0".into(),
    })
    .unwrap();
    // The TAP we created is gone from the namespace it was moved to.
    let (o, _, _) = run(&mut ns.exec(&["ip", "-o", "link"]));
    assert!(!o.contains(&host), "{o}");
}

#[test]
fn host_tap_deleted_underneath() {
    if !can_tap() {
        return;
    }
    let host = host_name("d");
    let _guard = LinkGuard(host.clone());
    let k = generic::kernel(KernelEnv {
        no_auto_linklocal: true,
        ..KernelEnv::default()
    });
    let mut k = &k;
    k.ioctl(Request::IfCreate {
        name: "virt3".into(),
    })
    .unwrap();
    linkstr(&mut k, "virt3", &host).unwrap();
    up(&mut k, "virt3").unwrap();
    ip_ok(&["link", "set", &host, "up"]);
    assert_eq!(status(&mut k, "virt3").media.unwrap().active, Some(true));
    assert_eq!(status(&mut k, "virt3").link_state, LinkState::Up);

    ip_ok(&["link", "del", &host]);
    wait_for("link down", || {
        status(&mut k, "virt3").link_state == LinkState::Down
    });
    let s = status(&mut k, "virt3");
    assert_eq!(s.media.unwrap().active, Some(false));
    assert_eq!(s.data.ierrors, 1);
    assert_eq!(
        s.flags & iff::UP,
        iff::UP,
        "still up: only the link went away"
    );
    assert!(
        k.send("virt3", &arp_request(s.lladdr.unwrap(), [0; 4], [0; 4]))
            .is_err()
    );
    assert_eq!(status(&mut k, "virt3").data.oerrors, 1);

    // down/up finds (here: makes) the host TAP again.
    down(&mut k, "virt3");
    up(&mut k, "virt3").unwrap();
    assert!(host_link_exists(&host));
    assert_eq!(status(&mut k, "virt3").link_state, LinkState::Up);
    down(&mut k, "virt3");
    k.ioctl(Request::IfDestroy {
        name: "virt3".into(),
    })
    .unwrap();
    // A test thread forking at that moment holds the TAP's descriptor
    // until its exec closes it (O_CLOEXEC): removal may lag a moment.
    wait_for("host TAP removed", || !host_link_exists(&host));
}

/// An ifnetd in a private mount namespace, killed on drop. `setup` runs
/// there first (shell); `nobody` drops root.
struct IsolatedDaemon {
    _dir: tempfile::TempDir,
    sock: std::path::PathBuf,
    child: std::process::Child,
}

const NOBODY: u32 = 65534;

impl IsolatedDaemon {
    fn start(setup: impl FnOnce(&Path) -> String, nobody: bool) -> IsolatedDaemon {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let sock = dir.path().join("ifnetd.sock");
        let setup = setup(dir.path());
        let drop_root = if nobody {
            format!("setpriv --reuid {NOBODY} --regid {NOBODY} --clear-groups ")
        } else {
            String::new()
        };
        let script = format!("{setup}exec {drop_root}{IFNETD} -f -s {}", sock.display());
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_socket(&sock);
        IsolatedDaemon {
            _dir: dir,
            sock,
            child,
        }
    }

    /// As nobody; with `tun`, seeing a world-accessible /dev/net/tun
    /// (bind-mounted: this host's is root-only), as most distributions have.
    fn nobody(tun: bool) -> IsolatedDaemon {
        IsolatedDaemon::start(
            |dir| {
                if !tun {
                    return String::new();
                }
                let node = dir.join("tun");
                let (_, e, rc) = run(Command::new("mknod")
                    .args(["-m", "0666"])
                    .arg(&node)
                    .args(["c", "10", "200"]));
                assert_eq!(rc, 0, "mknod: {e}");
                format!("mount --bind {} /dev/net/tun && ", node.display())
            },
            true,
        )
    }

    /// Stop it and return what it logged.
    fn stop(mut self) -> String {
        let mut c = Client::connect(&self.sock).unwrap();
        c.ioctl(Request::Shutdown).unwrap();
        let mut log = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut log).unwrap();
        log
    }
}

impl Drop for IsolatedDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn missing_dev_net_tun() {
    if !can_tap() {
        return;
    }
    let d = IsolatedDaemon::start(|_| "mount -t tmpfs none /dev/net && ".into(), false);
    let mut c = Client::connect(&d.sock).unwrap();
    c.ioctl(Request::IfCreate {
        name: "virt0".into(),
    })
    .unwrap();
    assert_eq!(up(&mut c, "virt0"), Err(Errno::ENXIO));
    assert_eq!(Errno::ENXIO.to_string(), "Device not configured");
    assert_eq!(status(&mut c, "virt0").flags, 0x8802);
    let log = d.stop();
    assert!(
        log.contains("virt0: cannot open /dev/net/tun: missing (is the tun module loaded?)"),
        "{log}"
    );
}

/// A persistent TAP owned by an unprivileged user is attached by a daemon
/// running as that user, and left in place on destroy; what it may not do
/// fails clearly.
#[test]
fn persistent_tap_without_privileges() {
    if !can_tap() {
        return;
    }
    let host = host_name("p");
    let _guard = LinkGuard(host.clone());
    ip_ok(&[
        "tuntap",
        "add",
        "dev",
        &host,
        "mode",
        "tap",
        "user",
        &NOBODY.to_string(),
    ]);

    let d = IsolatedDaemon::nobody(true);
    let mut c = Client::connect(&d.sock).unwrap();
    c.ioctl(Request::IfCreate {
        name: "virt1".into(),
    })
    .unwrap();
    linkstr(&mut c, "virt1", &host).unwrap();
    up(&mut c, "virt1").unwrap();
    assert_eq!(status(&mut c, "virt1").flags & iff::RUNNING, iff::RUNNING);
    assert_eq!(
        c.ioctl(Request::IfDestroy {
            name: "virt1".into()
        }),
        Err(Errno::EBUSY)
    );
    down(&mut c, "virt1");
    c.ioctl(Request::IfDestroy {
        name: "virt1".into(),
    })
    .unwrap();
    assert!(host_link_exists(&host), "a persistent TAP stays");

    // Without CAP_NET_ADMIN a missing TAP cannot be made.
    let missing = host_name("q");
    let _g2 = LinkGuard(missing.clone());
    c.ioctl(Request::IfCreate {
        name: "virt2".into(),
    })
    .unwrap();
    linkstr(&mut c, "virt2", &missing).unwrap();
    assert_eq!(up(&mut c, "virt2"), Err(Errno::EPERM));
    assert_eq!(status(&mut c, "virt2").flags, 0x8802);
    assert!(!host_link_exists(&missing));
    let log = d.stop();
    assert!(
        log.contains(&format!("virt2: cannot attach host TAP {missing}")),
        "{log}"
    );
    assert!(log.contains("CAP_NET_ADMIN"), "{log}");

    // /dev/net/tun closed to us (this host's is 0600).
    let d = IsolatedDaemon::nobody(false);
    let mut c = Client::connect(&d.sock).unwrap();
    c.ioctl(Request::IfCreate {
        name: "virt1".into(),
    })
    .unwrap();
    linkstr(&mut c, "virt1", &host).unwrap();
    assert_eq!(up(&mut c, "virt1"), Err(Errno::EACCES));
    let log = d.stop();
    assert!(
        log.contains("virt1: cannot open /dev/net/tun: permission denied"),
        "{log}"
    );
}
