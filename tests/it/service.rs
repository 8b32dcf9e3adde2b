//! ifnetd under a service manager: systemd-socket-activate (from Debian's
//! systemd package; no init system needed) holds the socket and starts the
//! daemon on the first client; the daemon says READY=1 on NOTIFY_SOCKET.

use crate::common::{IFCONFIG, IFNETD, in_ci, run};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn have_socket_activate() -> bool {
    let ok = Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || !in_ci(),
        "systemd-socket-activate is missing (scripts/deps.sh installs systemd)"
    );
    if !ok {
        eprintln!("skipped: systemd-socket-activate is missing");
    }
    ok
}

/// Kills the process if the test ends early.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn socket_activation_and_readiness() {
    if !have_socket_activate() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("sa.sock");
    let notify_path = tmp.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_nonblocking(true).unwrap();
    let state = tmp.path().join("state");
    let mut child = Reap(
        Command::new("systemd-socket-activate")
            .arg("-l")
            .arg(&sock)
            .arg(format!("-ENOTIFY_SOCKET={}", notify_path.display()))
            .arg(IFNETD)
            .arg("-f")
            .arg("-S")
            .arg(&state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "no socket from systemd-socket-activate"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Nothing runs before the first client.
    let mut buf = [0u8; 64];
    assert!(notify.recv(&mut buf).is_err(), "ready before any client");
    assert!(!state.exists());
    let tool = |args: &[&str]| {
        run(Command::new(IFCONFIG)
            .args(args)
            .env("IFNET_SERVER", &sock)
            .env("IFNET_NO_AUTOSTART", "1"))
    };
    assert_eq!(tool(&["lo1", "create"]), (String::new(), String::new(), 0));
    notify.set_nonblocking(false).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = notify.recv(&mut buf).expect("READY=1 on NOTIFY_SOCKET");
    assert_eq!(&buf[..n], b"READY=1");
    assert_eq!(tool(&["-l"]), ("lo0 lo1\n".into(), String::new(), 0));
    assert!(state.exists(), "the state is written");
    // systemd-socket-activate became ifnetd (exec): SIGTERM stops it
    // cleanly, and the socket, the manager's, stays.
    // SAFETY: kill(2) of the process this test started.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let n = notify.recv(&mut buf).expect("STOPPING=1 on NOTIFY_SOCKET");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(sock.exists(), "ifnetd removed the manager's socket");
    // A daemon started by hand on that path again is a fresh one with the
    // same state.
    let (o, e, rc) = run(Command::new(IFNETD)
        .arg("-s")
        .arg(&sock)
        .arg("-S")
        .arg(&state)
        .arg("-l")
        .arg(tmp.path().join("log")));
    assert_eq!(rc, 0, "{o}{e}");
    assert_eq!(tool(&["-l"]).0, "lo0 lo1\n");
    let _ = run(Command::new(IFNETD).arg("--stop").arg("-s").arg(&sock));
}

/// The units in contrib/systemd are valid (systemd-analyze verify), with
/// ExecStart pointed at the binary built here.
#[test]
fn units_verify() {
    if !have_socket_activate() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let service = std::fs::read_to_string(format!("{root}/contrib/systemd/ifnetd.service"))
        .unwrap()
        .replace("/opt/ifnet/bin/ifnetd", IFNETD);
    assert!(service.contains(&format!("ExecStart={IFNETD} -f -S ")));
    assert!(service.contains("Type=notify"));
    std::fs::write(tmp.path().join("ifnetd.service"), service).unwrap();
    std::fs::copy(
        format!("{root}/contrib/systemd/ifnetd.socket"),
        tmp.path().join("ifnetd.socket"),
    )
    .unwrap();
    let (o, e, rc) = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no", "./ifnetd.socket", "./ifnetd.service"])
        .current_dir(tmp.path()));
    assert_eq!(rc, 0, "{o}{e}");
    assert_eq!(e, "", "{o}");
}
