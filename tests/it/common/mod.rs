//! Shared test harness: a real `ifnetd` per test, on its own socket in its
//! own temporary directory, and the real tool binaries run against it.
#![allow(dead_code)]

pub mod cable;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const IFNETD: &str = env!("CARGO_BIN_EXE_ifnetd");
pub const IFCONFIG: &str = env!("CARGO_BIN_EXE_ifconfig");
pub const BRCONFIG: &str = env!("CARGO_BIN_EXE_brconfig");
pub const SHMIFDUMP: &str = env!("CARGO_BIN_EXE_shmifdump");

/// A daemon in the foreground, killed when dropped.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub child: Option<Child>,
}

/// Test daemons run duplicate address detection with a 50 ms RetransTimer
/// (RFC 5227's second for IPv4), not 1 s.
pub const FAST_DAD: [&str; 2] = ["--retrans-timer", "50"];

impl Daemon {
    /// Where the daemon serves its tap sockets (`SOCKET.d`).
    pub fn run_dir(&self) -> PathBuf {
        ifnet::server::run_dir(&self.sock)
    }

    pub fn start() -> Daemon {
        Daemon::start_with(&FAST_DAD)
    }

    /// A daemon with these `ifnetd` options.
    pub fn start_with(args: &[&str]) -> Daemon {
        Daemon::start_full(None, args, &[])
    }

    /// A daemon on a fresh socket in a fresh directory.
    fn start_full(netns: Option<(&str, &[&str])>, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("ifnetd.sock");
        let mut d = Daemon {
            dir,
            sock,
            child: None,
        };
        d.spawn_in(netns, args, env);
        d
    }

    /// Start (again) on the same socket and wait until it answers.
    pub fn spawn(&mut self) {
        self.spawn_with(&FAST_DAD)
    }

    pub fn spawn_with(&mut self, args: &[&str]) {
        self.spawn_in(None, args, &[])
    }

    /// A daemon (with fast DAD) whose environment also has `env`.
    pub fn start_env(env: &[(&str, &str)]) -> Daemon {
        Daemon::start_full(None, &FAST_DAD, env)
    }

    /// A daemon whose network namespace is `ns` (`ip netns exec`): the
    /// host sockets it opens (a vxlan's) live there.
    pub fn start_in(ns: &Netns) -> Daemon {
        Daemon::start_in_as(ns, &[])
    }

    /// `start_in`, the daemon run through `wrapper` (`setpriv …`).
    pub fn start_in_as(ns: &Netns, wrapper: &[&str]) -> Daemon {
        Daemon::start_full(Some((&ns.0, wrapper)), &FAST_DAD, &[])
    }

    fn spawn_in(&mut self, netns: Option<(&str, &[&str])>, args: &[&str], env: &[(&str, &str)]) {
        let mut cmd = match netns {
            Some((ns, wrapper)) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).args(wrapper).arg(IFNETD);
                c
            }
            None => Command::new(IFNETD),
        };
        let child = cmd
            .args(["-f", "-s"])
            .arg(&self.sock)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for_socket(&self.sock);
    }

    /// A command for one of the tools, aimed at this daemon.
    pub fn cmd(&self, bin: &str) -> Command {
        let mut c = Command::new(bin);
        c.env("IFNET_SERVER", &self.sock)
            .env("IFNET_NO_AUTOSTART", "1");
        c
    }

    /// Run `ifconfig ARGS` and return (stdout, stderr, exit code).
    pub fn ifconfig(&self, args: &[&str]) -> (String, String, i32) {
        run(self.cmd(IFCONFIG).args(args))
    }

    pub fn brconfig(&self, args: &[&str]) -> (String, String, i32) {
        run(self.cmd(BRCONFIG).args(args))
    }

    /// `ifconfig ARGS` that must succeed silently.
    pub fn ok(&self, args: &[&str]) {
        let (o, e, rc) = self.ifconfig(args);
        assert_eq!(
            (o.as_str(), e.as_str(), rc),
            ("", "", 0),
            "ifconfig {args:?}"
        );
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            // SAFETY: plain kill(2) of a process we started.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn wait_for_socket(sock: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(sock).is_err() {
        assert!(
            Instant::now() < deadline,
            "ifnetd did not come up on {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn run(cmd: &mut Command) -> (String, String, i32) {
    let out: Output = cmd.stdin(Stdio::null()).output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// Whether the tests must not skip for a missing capability.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Run a command that must succeed (set-up steps: ip, tcpdump…).
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A unique short name for host objects (namespaces, TAPs): IFNAMSIZ is 16.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace, deleted when dropped (also when the test fails).
pub struct Netns(pub String);

impl Netns {
    pub fn new() -> Netns {
        let name = unique("ifn");
        sh(&format!("ip netns add {name}"));
        sh(&format!("ip -n {name} link set lo up"));
        Netns(name)
    }

    /// A shell command run inside the namespace.
    pub fn exec(&self, cmd: &str) -> String {
        sh(&format!(
            "ip netns exec {} sh -c '{}'",
            self.0,
            cmd.replace('\'', "'\\''")
        ))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Whether this process may make namespaces and TAPs; in CI it must.
pub fn can_netadmin() -> bool {
    let ok = nix::unistd::geteuid().is_root() && Path::new("/dev/net/tun").exists();
    assert!(ok || !in_ci(), "CI must run as root with /dev/net/tun");
    if !ok {
        eprintln!("skipped: needs root and /dev/net/tun (CI=true makes this a failure)");
    }
    ok
}

/// Poll `f` until it is true or `secs` pass.
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `virt` in daemon `d`, attached to a fresh host TAP that is moved into
/// `ns` and given `host_addr`. Returns the TAP's name.
pub fn virt_in_ns(d: &Daemon, virt: &str, ns: &Netns, host_addr: &str) -> String {
    let tap = unique("ift");
    d.ok(&[virt, "create"]);
    d.ok(&[virt, "linkstr", &tap]);
    d.ok(&[virt, "up"]);
    sh(&format!("ip link set {tap} netns {}", ns.0));
    ns.exec(&format!(
        "ip addr add {host_addr} dev {tap} && ip link set {tap} up"
    ));
    tap
}

/// Send `mib` MiB of random bytes over TCP from namespace `from` to a
/// server at `addr:port` in `to`, and assert that the SHA-256 the server
/// computed equals the sender's. `scratch` is a directory for the result.
pub fn tcp_transfer_intact(
    from: &Netns,
    to: &Netns,
    addr: &str,
    port: u16,
    mib: u32,
    scratch: &Path,
) {
    let sum = scratch.join(format!("sum{port}"));
    to.exec(&format!(
        "python3 -c 'import socket,hashlib\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind((\"{addr}\",{port}));s.listen(1);s.settimeout(30);open(\"{0}.up\",\"w\")\nc,_=s.accept();c.settimeout(30);h=hashlib.sha256()\nwhile True:\n  b=c.recv(65536)\n  if not b: break\n  h.update(b)\nopen(\"{0}.tmp\",\"w\").write(h.hexdigest())\nimport os;os.rename(\"{0}.tmp\",\"{0}\")' >/dev/null 2>&1 &",
        sum.display()
    ));
    let up = scratch.join(format!("sum{port}.up"));
    wait_until(10, "the receiver's listener", || up.exists());
    let sent = from.exec(&format!(
        "python3 -c 'import socket,hashlib,os\nd=os.urandom({mib}<<20);s=socket.create_connection((\"{addr}\",{port}),timeout=20);s.sendall(d);s.close();print(hashlib.sha256(d).hexdigest())'"
    ));
    wait_until(30, "the receiver's checksum", || sum.exists());
    let got = std::fs::read_to_string(&sum).unwrap();
    assert_eq!(sent.trim(), got.trim(), "{mib} MiB arrived intact");
}

/// `exe` at a path other users can reach, for tests that run the tools as
/// `nobody`. A build directory under a 0700 directory (a home, `mktemp -d`)
/// is not: then ifnetd and ifconfig are copied, side by side (ifconfig
/// starts the ifnetd beside it), into a world-readable directory, once per
/// process.
pub fn for_others(exe: &str) -> PathBuf {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::sync::OnceLock;
    let reachable = Path::new(exe)
        .ancestors()
        .skip(1)
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.mode() & 0o001 != 0));
    if reachable {
        return PathBuf::from(exe);
    }
    static COPIES: OnceLock<PathBuf> = OnceLock::new();
    let dir = COPIES.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("ifnet-test-bins.")
            .tempdir()
            .unwrap()
            .keep();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for e in [IFNETD, IFCONFIG] {
            let to = dir.join(Path::new(e).file_name().unwrap());
            std::fs::copy(e, &to).unwrap();
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    });
    dir.join(Path::new(exe).file_name().unwrap())
}

/// SIGKILL for a process a test started, when the test ends (also by a
/// failed assertion, so that it cannot hold the test's output open).
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of a process we started.
        unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
    }
}
