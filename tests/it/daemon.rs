//! ifnetd as a process: serving, refusing, surviving bad clients, stopping.

use crate::common;

use common::*;
use ifnet::client::Client;
use ifnet::ioctl::{Errno, Ioctl, Reply, Request, wire};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn names(c: &mut Client) -> Vec<String> {
    match c.ioctl(Request::GetIfConf { name: None }).unwrap() {
        Reply::IfConf(v) => v.into_iter().map(|s| s.name).collect(),
        r => panic!("{r:?}"),
    }
}

#[test]
fn serves_requests() {
    let d = Daemon::start();
    let mut c = Client::connect(&d.sock).unwrap();
    assert_eq!(names(&mut c), ["lo0"]);
    c.ioctl(Request::IfCreate { name: "lo1".into() }).unwrap();
    assert_eq!(
        c.ioctl(Request::IfCreate { name: "lo1".into() }),
        Err(Errno::EEXIST)
    );
    assert_eq!(names(&mut c), ["lo0", "lo1"]);
    // A second client sees the same kernel.
    let mut c2 = Client::connect(&d.sock).unwrap();
    assert_eq!(names(&mut c2), ["lo0", "lo1"]);
}

#[test]
fn socket_mode_is_0600() {
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start();
    let mode = std::fs::metadata(&d.sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn bad_clients_do_not_disturb_others() {
    let d = Daemon::start();
    let mut good = Client::connect(&d.sock).unwrap();
    good.ioctl(Request::IfCreate { name: "lo1".into() })
        .unwrap();

    // Garbage after a valid length: answered with EPROTO, then closed.
    let mut s = UnixStream::connect(&d.sock).unwrap();
    s.write_all(&[0, 0, 0, 4, 1, 0xff, 0xff, 0xff]).unwrap();
    let resp = wire::read_response(&mut s).unwrap();
    assert_eq!(resp, Err(Errno::EPROTO));

    // A wrong protocol version.
    let mut s = UnixStream::connect(&d.sock).unwrap();
    s.write_all(&[0, 0, 0, 2, 99, 0]).unwrap();
    assert_eq!(wire::read_response(&mut s).unwrap(), Err(Errno::EPROTO));

    // An oversized request is refused before any allocation.
    let mut s = UnixStream::connect(&d.sock).unwrap();
    s.write_all(&0x7fff_ffffu32.to_be_bytes()).unwrap();
    assert_eq!(wire::read_response(&mut s).unwrap(), Err(Errno::EMSGSIZE));

    // Disconnect in the middle of a request.
    let mut s = UnixStream::connect(&d.sock).unwrap();
    s.write_all(&[0, 0, 0, 100, 1, 2, 3]).unwrap();
    drop(s);

    // A client that connects and says nothing holds only its own thread.
    let idle = UnixStream::connect(&d.sock).unwrap();

    // Random bytes from many clients at once.
    let threads: Vec<_> = (0..16u8)
        .map(|i| {
            let sock = d.sock.clone();
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(&sock).unwrap();
                let junk: Vec<u8> = (0..64u8)
                    .map(|j| j.wrapping_mul(37).wrapping_add(i))
                    .collect();
                let _ = s.write_all(&junk);
                let mut buf = Vec::new();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let _ = s.read_to_end(&mut buf);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    // The daemon and the first client are unharmed.
    assert_eq!(names(&mut good), ["lo0", "lo1"]);
    let mut fresh = Client::connect(&d.sock).unwrap();
    assert_eq!(names(&mut fresh), ["lo0", "lo1"]);
    drop(idle);
}

#[test]
fn second_daemon_on_same_socket_refuses() {
    let d = Daemon::start();
    let (out, err, rc) = run(std::process::Command::new(IFNETD)
        .args(["-f", "-s"])
        .arg(&d.sock));
    assert_eq!(rc, 1);
    assert_eq!(out, "");
    assert!(
        err.starts_with("ifnetd: another ifnetd is already serving"),
        "{err}"
    );
    // The first is still serving.
    let mut c = Client::connect(&d.sock).unwrap();
    assert_eq!(names(&mut c), ["lo0"]);
}

#[test]
fn stale_socket_is_replaced() {
    let mut d = Daemon::start();
    {
        let mut c = Client::connect(&d.sock).unwrap();
        c.ioctl(Request::IfCreate { name: "lo7".into() }).unwrap();
    }
    d.kill9();
    assert!(d.sock.exists(), "kill -9 leaves the socket file behind");
    assert!(UnixStream::connect(&d.sock).is_err());
    d.spawn();
    let mut c = Client::connect(&d.sock).unwrap();
    assert_eq!(names(&mut c), ["lo0"], "a new kernel starts empty");
}

#[test]
fn sigterm_and_shutdown_request_stop_cleanly() {
    let mut d = Daemon::start();
    let mut child = d.child.take().unwrap();
    // SAFETY: plain kill(2) of a process we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(!d.sock.exists(), "socket removed on a clean stop");

    d.spawn();
    let mut child = d.child.take().unwrap();
    let (out, err, rc) = run(std::process::Command::new(IFNETD)
        .arg("--stop")
        .arg("-s")
        .arg(&d.sock));
    assert_eq!((out.as_str(), err.as_str(), rc), ("", "", 0));
    assert!(child.wait().unwrap().success());
    assert!(!d.sock.exists());
}

#[test]
fn background_mode_serves_once_started() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("bg.sock");
    let (_, err, rc) = run(std::process::Command::new(IFNETD).arg("-s").arg(&sock));
    assert_eq!((err.as_str(), rc), ("", 0));
    // Ready as soon as the parent exited: no waiting needed.
    let mut c = Client::connect(&sock).unwrap();
    assert_eq!(names(&mut c), ["lo0"]);
    assert_eq!(c.ioctl(Request::Shutdown), Ok(Reply::Ok));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sock.exists() {
        assert!(std::time::Instant::now() < deadline, "daemon did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = std::fs::read_to_string(dir.path().join("ifnetd.log")).unwrap();
    assert!(log.contains("serving"), "{log}");
}

/// A panic in any thread ends the whole daemon (SIGABRT) with one line in
/// its log; never a daemon that is up with a dead thread.
#[test]
fn a_panic_anywhere_aborts_with_a_log_line() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("p.sock");
    let out = std::process::Command::new(IFNETD)
        .args(["-f", "-s"])
        .arg(&sock)
        .env("IFNET_TEST_PANIC", "doomed")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}", out.status);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: panic in thread 'doomed' at src/bin/ifnetd.rs:")
            && err.ends_with(": IFNET_TEST_PANIC is set\n"),
        "{err}"
    );
    // In the background, the line goes to the log file.
    let sock = dir.path().join("bg.sock");
    let (_, err, rc) = run(std::process::Command::new(IFNETD)
        .arg("-s")
        .arg(&sock)
        .env("IFNET_TEST_PANIC", "doomed"));
    assert_eq!((err.as_str(), rc), ("", 0));
    let log = dir.path().join("ifnetd.log");
    wait_until(10, "the panic in the log", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("panic in thread 'doomed'"))
    });
    wait_until(10, "the daemon gone", || {
        UnixStream::connect(&sock).is_err()
    });
}

/// `-s` takes the socket as IFNET_SERVER does: `unix:///abs` and QEMU's
/// `unix:/abs` are the absolute path, never a directory named `unix:` in
/// the working directory.
#[test]
fn socket_option_takes_server_addresses() {
    let dir = tempfile::tempdir().unwrap();
    for (i, form) in ["unix://", "unix:"].iter().enumerate() {
        let sock = dir.path().join(format!("u{i}.sock"));
        let addr = format!("{form}{}", sock.display());
        let (_, err, rc) = run(std::process::Command::new(IFNETD)
            .current_dir(dir.path())
            .arg("-s")
            .arg(&addr));
        assert_eq!((err.as_str(), rc), ("", 0), "{addr}");
        let mut c = Client::connect(&sock).unwrap();
        assert_eq!(names(&mut c), ["lo0"]);
        let (_, err, rc) = run(std::process::Command::new(IFNETD)
            .args(["--stop", "-s"])
            .arg(&addr));
        assert_eq!((err.as_str(), rc), ("", 0), "{addr}");
    }
    let strays: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("unix"))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
    // A misspelt address is an error, not a path.
    let (_, err, rc) = run(std::process::Command::new(IFNETD)
        .current_dir(dir.path())
        .args(["-f", "-s", "unix:unix:/x"]));
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("malformed address"), "{err}");
}

/// The uid/gid of `nobody`, for privilege tests (they need root to switch).
fn nobody() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        assert!(!in_ci(), "privilege tests need root in CI");
        eprintln!("skipped: needs root to act as nobody (CI=true makes this a failure)");
        return None;
    }
    Some((65534, 65534))
}

#[test]
fn socket_mode_keeps_other_users_out() {
    use std::os::unix::process::CommandExt;
    let Some((uid, gid)) = nobody() else { return };
    let d = Daemon::start();
    // The temp dir is 0700 root: let nobody reach the socket file itself,
    // so that only the socket's own mode (0600) stands in the way.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let (out, err, rc) = run(std::process::Command::new(for_others(IFCONFIG))
        .args(["lo1", "create"])
        .env("IFNET_SERVER", &d.sock)
        .env("IFNET_NO_AUTOSTART", "1")
        .uid(uid)
        .gid(gid));
    assert_eq!(out, "");
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    let mut c = Client::connect(&d.sock).unwrap();
    assert_eq!(names(&mut c), ["lo0"], "nothing was created");
}

#[test]
fn unprivileged_user_runs_own_daemon() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let Some((uid, gid)) = nobody() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let sock = dir.path().join("user.sock");
    let mut child = std::process::Command::new(for_others(IFNETD))
        .arg("-f")
        .arg("-s")
        .arg(&sock)
        .stderr(std::process::Stdio::null())
        .uid(uid)
        .gid(gid)
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child.id());
    wait_for_socket(&sock);
    let (out, err, rc) = run(std::process::Command::new(for_others(IFCONFIG))
        .args(["lo1", "create", "inet", "10.9.0.1/24"])
        .env("IFNET_SERVER", &sock)
        .env("IFNET_NO_AUTOSTART", "1")
        .uid(uid)
        .gid(gid));
    assert_eq!((out.as_str(), err.as_str(), rc), ("", "", 0));
    let (out, _, rc) = run(std::process::Command::new(for_others(IFCONFIG))
        .arg("-l")
        .env("IFNET_SERVER", &sock)
        .uid(uid)
        .gid(gid));
    assert_eq!((out.as_str(), rc), ("lo0 lo1\n", 0));
    // SAFETY: plain kill(2) of a process we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn tools_start_the_daemon_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("auto.sock");
    // No daemon, and autostart refused: a clear error.
    let (out, err, rc) = run(std::process::Command::new(IFCONFIG)
        .env_clear()
        .env("IFNET_SERVER", format!("unix://{}", sock.display()))
        .env("IFNET_NO_AUTOSTART", "1")
        .arg("lo0"));
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "ifconfig: cannot reach ifnetd at {}: No such file or directory\n",
            sock.display()
        )
    );
    assert_eq!(rc, 1);
    // From a clean environment, the first command starts one and is answered.
    let (out, err, rc) = run(std::process::Command::new(IFCONFIG)
        .env_clear()
        .env("IFNET_SERVER", format!("unix://{}", sock.display()))
        .arg("lo0"));
    assert_eq!((err.as_str(), rc), ("", 0));
    assert_eq!(
        out,
        "lo0: flags=0x8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 33624\n\
         \tinet 127.0.0.1/8 flags 0x0\n\
         \tinet6 ::1/128 flags 0x20<NODAD>\n\
         \tinet6 fe80::1%lo0/64 flags 0x0 scopeid 0x1\n"
    );
    // The same daemon serves the next command: what it created is there.
    let env = [("IFNET_SERVER", sock.to_str().unwrap())];
    let (_, _, rc) = run(std::process::Command::new(IFCONFIG).envs(env).args([
        "lo1",
        "create",
        "inet",
        "10.1.0.1/24",
    ]));
    assert_eq!(rc, 0);
    let (out, _, _) = run(std::process::Command::new(IFCONFIG).envs(env).arg("-l"));
    assert_eq!(out, "lo0 lo1\n");
    let (_, _, rc) = run(std::process::Command::new(IFNETD)
        .arg("--stop")
        .arg("-s")
        .arg(&sock));
    assert_eq!(rc, 0);
}

#[test]
fn many_clients_at_once() {
    let d = Daemon::start();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let sock = d.sock.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&sock).unwrap();
                for i in 0..100 {
                    let name = format!("lo{}", 1 + t * 100 + i);
                    c.ioctl(Request::IfCreate { name: name.clone() }).unwrap();
                    c.ioctl(Request::IfDestroy { name }).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = Client::connect(&d.sock).unwrap();
    assert_eq!(names(&mut c), ["lo0"]);
}

/// `linkstr` opens the bus with the client's rights, not the daemon's:
/// a client that may not write /etc/passwd cannot make root's daemon map
/// it, nor create a bus where it may not create files.
#[test]
fn linkstr_opens_with_the_clients_rights() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let Some((uid, gid)) = nobody() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.path().join("open.sock");
    let mut child = std::process::Command::new(IFNETD)
        .args(["-f", "-m", "0666", "-s"])
        .arg(&sock)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_socket(&sock);
    let as_nobody = |args: &[&str]| {
        run(std::process::Command::new(for_others(IFCONFIG))
            .args(args)
            .env("IFNET_SERVER", &sock)
            .env("IFNET_NO_AUTOSTART", "1")
            .uid(uid)
            .gid(gid))
    };
    let passwd = std::fs::read("/etc/passwd").unwrap();
    assert_eq!(as_nobody(&["shmif0", "create"]).2, 0);
    let (out, err, rc) = as_nobody(&["shmif0", "linkstr", "/etc/passwd"]);
    assert_eq!(
        (out.as_str(), err.as_str(), rc),
        ("", "ifconfig: SIOCSLINKSTR: Permission denied\n", 1)
    );
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd, "untouched");
    // Not in a directory only root may write to.
    let root_only = dir.path().join("bus");
    let (_, err, rc) = as_nobody(&["shmif0", "linkstr", root_only.to_str().unwrap()]);
    assert_eq!(
        (err.as_str(), rc),
        ("ifconfig: SIOCSLINKSTR: Permission denied\n", 1)
    );
    assert!(!root_only.exists());
    // Where nobody may create files, the bus is nobody's.
    let theirs = dir.path().join("nobody");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(uid), Some(gid)).unwrap();
    let bus = theirs.join("bus");
    assert_eq!(
        as_nobody(&["shmif0", "linkstr", bus.to_str().unwrap()]),
        (String::new(), String::new(), 0)
    );
    assert_eq!(std::fs::metadata(&bus).unwrap().uid(), uid);
    // SAFETY: plain kill(2) of a process we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

/// The client's supplementary groups count for `linkstr`, and the
/// daemon's own (root's) never do: a bus file 0660 in some group opens for
/// a client in that group, not for one outside it, and a root:root 0660
/// file not at all.
#[test]
fn linkstr_uses_the_clients_groups() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let Some((uid, gid)) = nobody() else { return };
    // A group no one is in, by number: nothing to create or clean up.
    let grp = (4_000_000..)
        .find(|&g| {
            nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(g)).is_ok_and(|g| g.is_none())
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.path().join("open.sock");
    let mut daemon = std::process::Command::new(IFNETD);
    daemon
        .args(["-f", "-m", "0666", "-s"])
        .arg(&sock)
        .stderr(std::process::Stdio::null());
    // In group root, as a daemon started through sudo or systemd is.
    // SAFETY: only setgroups between fork and exec.
    unsafe {
        daemon.pre_exec(|| match libc::setgroups(1, &0) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        });
    }
    let child = daemon.spawn().unwrap();
    wait_for_socket(&sock);
    let path = dir.path().to_path_buf();
    // Killed on drop, also when an assertion fails.
    let _d = Daemon {
        dir,
        sock: sock.clone(),
        child: Some(child),
    };
    let as_nobody_at = |sock: &std::path::Path, groups: Vec<libc::gid_t>, args: &[&str]| {
        let mut c = std::process::Command::new(for_others(IFCONFIG));
        c.args(args)
            .env("IFNET_SERVER", sock)
            .env("IFNET_NO_AUTOSTART", "1");
        // SAFETY: only setgroups/setgid/setuid between fork and exec.
        unsafe {
            c.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        run(&mut c)
    };
    let as_nobody = |groups, args: &[&str]| as_nobody_at(&sock, groups, args);
    let bus_file = |name: &str, group: u32| {
        let p = path.join(name);
        std::fs::File::create(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(0), Some(group)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o660)).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (theirs, roots) = (bus_file("theirs", grp), bus_file("roots", 0));
    let denied = (
        String::new(),
        "ifconfig: SIOCSLINKSTR: Permission denied\n".to_string(),
        1,
    );
    assert_eq!(as_nobody(vec![], &["shmif0", "create"]).2, 0);
    assert_eq!(as_nobody(vec![], &["shmif0", "linkstr", &theirs]), denied);
    assert_eq!(as_nobody(vec![grp], &["shmif0", "linkstr", &roots]), denied);
    assert_eq!(
        as_nobody(vec![grp], &["shmif0", "linkstr", &theirs]),
        (String::new(), String::new(), 0)
    );
    assert_eq!(std::fs::metadata(&theirs).unwrap().len(), 1 << 20);
    // Other clients get their own groups again, not the last one's.
    assert_eq!(as_nobody(vec![], &["shmif1", "create"]).2, 0);
    assert_eq!(as_nobody(vec![], &["shmif1", "linkstr", &theirs]), denied);
    // A socket of mode 0660 admits its group's members, also those for
    // whom it is a supplementary group.
    let mut d = Daemon {
        dir: tempfile::tempdir_in(&path).unwrap(),
        sock: path.join("group.sock"),
        child: None,
    };
    d.child = Some(
        std::process::Command::new(IFNETD)
            .args(["-f", "-m", "0660", "-s"])
            .arg(&d.sock)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&d.sock);
    assert_eq!(
        as_nobody_at(&d.sock, vec![0], &["-l"]),
        ("lo0\n".into(), String::new(), 0)
    );
    assert_ne!(as_nobody_at(&d.sock, vec![], &["-l"]).2, 0);
}

/// `ifnetd --stop` returns once the daemon is gone, so a new daemon can
/// take the socket at once, and the old one never removes the new socket.
#[test]
fn stop_waits_and_a_successor_keeps_its_socket() {
    let mut d = Daemon::start();
    for n in 0..16 {
        let bus = d.dir.path().join(format!("bus{n}"));
        d.ok(&[&format!("shmif{n}"), "create"]);
        d.ok(&[&format!("shmif{n}"), "linkstr", bus.to_str().unwrap()]);
        d.ok(&[&format!("shmif{n}"), "up"]);
    }
    let mut old = d.child.take().unwrap();
    let (out, err, rc) = run(std::process::Command::new(IFNETD)
        .arg("--stop")
        .arg("-s")
        .arg(&d.sock));
    assert_eq!((out.as_str(), err.as_str(), rc), ("", "", 0));
    assert!(old.try_wait().unwrap().is_some() || old.wait().unwrap().success());
    assert!(!d.sock.exists());
    d.spawn();
    std::thread::sleep(Duration::from_millis(300));
    assert!(d.sock.exists(), "the successor's socket is still there");
    let (out, _, rc) = d.ifconfig(&["-l"]);
    assert_eq!((out.as_str(), rc), ("lo0\n", 0));
}

/// Files beside the socket are opened without following a symlink that
/// someone planted where others may write (issue 12, item 8).
#[test]
fn planted_symlinks_are_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = dir.path().join("victim");
    let sock = dir.path().join("s.sock");
    std::os::unix::fs::symlink(&victim, dir.path().join("s.sock.lock")).unwrap();
    let (_, err, rc) = run(std::process::Command::new(IFNETD)
        .args(["-f", "-s"])
        .arg(&sock));
    assert_eq!(rc, 1, "{err}");
    assert!(
        err.contains("cannot open") && err.contains("s.sock.lock"),
        "{err}"
    );
    assert!(!victim.exists(), "followed the lock's symlink");
    // The log of a background daemon likewise: refused before it serves.
    std::fs::remove_file(dir.path().join("s.sock.lock")).unwrap();
    let log = dir.path().join("planted.log");
    std::os::unix::fs::symlink(&victim, &log).unwrap();
    let (_, err, rc) = run(std::process::Command::new(IFNETD)
        .arg("-s")
        .arg(&sock)
        .arg("-l")
        .arg(&log));
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("cannot open log"), "{err}");
    assert!(!victim.exists(), "followed the log's symlink");
    assert!(!sock.exists(), "served after refusing its log");
}

/// The default run directory of an unprivileged user is trusted only if
/// it is the user's own and nobody else may write it (issue 12, item 7).
#[test]
fn a_foreign_run_directory_is_refused() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let Some((uid, gid)) = nobody() else { return };
    let xdg = tempfile::tempdir().unwrap();
    std::fs::set_permissions(xdg.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let ifconfig = |args: &[&str]| {
        run(std::process::Command::new(for_others(IFCONFIG))
            .args(args)
            .env_clear()
            .env("XDG_RUNTIME_DIR", xdg.path())
            .env("IFNETD", for_others(IFNETD))
            .uid(uid)
            .gid(gid))
    };
    // Made by someone else (root here), world-writable: refused, and no
    // daemon is started in it.
    let rundir = xdg.path().join("ifnet");
    std::fs::create_dir(&rundir).unwrap();
    std::fs::set_permissions(&rundir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (_, err, rc) = ifconfig(&["-l"]);
    assert_eq!(rc, 1, "{err}");
    assert!(
        err.contains("run directory") && err.contains("owned by uid 0"),
        "{err}"
    );
    assert!(std::fs::read_dir(&rundir).unwrap().next().is_none());
    // The user's own but writable by others: refused too.
    std::os::unix::fs::chown(&rundir, Some(uid), Some(gid)).unwrap();
    let (_, err, rc) = ifconfig(&["-l"]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("writable by others"), "{err}");
    // None at all: the auto-started daemon makes it, 0700, and serves.
    std::fs::remove_dir(&rundir).unwrap();
    let (out, err, rc) = ifconfig(&["-l"]);
    assert_eq!((out.as_str(), err.as_str(), rc), ("lo0\n", "", 0));
    let m = std::fs::metadata(&rundir).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (uid, 0o700));
    let (_, err, rc) = run(std::process::Command::new(for_others(IFNETD))
        .arg("--stop")
        .env_clear()
        .env("XDG_RUNTIME_DIR", xdg.path())
        .uid(uid)
        .gid(gid));
    assert_eq!((err.as_str(), rc), ("", 0));
}

/// Idle connections of a user admitted by `-m 0666` cannot lock root out:
/// a per-uid cap and room kept for root and the owner (issue 12, item 10).
#[test]
fn idle_clients_of_one_user_cannot_lock_root_out() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let Some((uid, gid)) = nobody() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let sock = dir.path().join("d.sock");
    let mut d = std::process::Command::new(IFNETD)
        .args(["-f", "-m", "0666", "-s"])
        .arg(&sock)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_socket(&sock);
    // nobody opens 300 connections and holds them, sending nothing; it
    // reports how many the daemon kept open (the others it closes).
    let script = r#"
import socket, sys, time
held = []
for _ in range(300):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    held.append(s)
time.sleep(1.0)
open_ = 0
for s in held:
    s.setblocking(False)
    try:
        open_ += 0 if s.recv(1) == b"" else 1
    except BlockingIOError:
        open_ += 1
print(open_, flush=True)
time.sleep(30)
"#;
    let mut attacker = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&sock)
        .stdout(std::process::Stdio::piped())
        .uid(uid)
        .gid(gid)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(attacker.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let kept: usize = line.trim().parse().unwrap();
    // Root is still served, at once.
    let t = std::time::Instant::now();
    let (out, err, rc) = run(std::process::Command::new(IFCONFIG)
        .arg("-l")
        .env("IFNET_SERVER", &sock)
        .env("IFNET_NO_AUTOSTART", "1"));
    let took = t.elapsed();
    let _ = attacker.kill();
    let _ = attacker.wait();
    let _ = d.kill();
    let _ = d.wait();
    assert_eq!((out.as_str(), err.as_str(), rc), ("lo0\n", "", 0));
    assert!(took < Duration::from_secs(2), "root waited {took:?}");
    assert!(
        kept <= ifnet::server::MAX_CLIENTS_PER_UID,
        "nobody kept {kept} connections"
    );
}

/// A linkstr path is the client's: a relative one is resolved in the
/// client, never against the daemon's working directory, and magic links
/// through /proc (which would name the daemon's files) are refused
/// (issue 12, item 9).
#[test]
fn linkstr_paths_resolve_in_the_client() {
    let daemon_cwd = tempfile::tempdir().unwrap();
    let client_cwd = tempfile::tempdir().unwrap();
    // A daemon whose working directory is known.
    let sock = daemon_cwd.path().join("d.sock");
    let mut child = std::process::Command::new(IFNETD)
        .args(["-f", "-s"])
        .arg(&sock)
        .current_dir(daemon_cwd.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_socket(&sock);
    let ifconfig = |args: &[&str]| {
        run(std::process::Command::new(IFCONFIG)
            .args(args)
            .current_dir(client_cwd.path())
            .env("IFNET_SERVER", &sock)
            .env("IFNET_NO_AUTOSTART", "1"))
    };
    let (_, err, rc) = ifconfig(&["shmif0", "create", "linkstr", "bus0"]);
    assert_eq!((err.as_str(), rc), ("", 0));
    assert!(client_cwd.path().join("bus0").exists());
    assert!(!daemon_cwd.path().join("bus0").exists());
    let (out, _, _) = ifconfig(&["shmif0"]);
    let want = format!("linkstr: {}", client_cwd.path().join("bus0").display());
    assert!(out.contains(&want), "{out}");
    // Through /proc/self/… the path would be the daemon's: refused.
    let (_, err, rc) = ifconfig(&["shmif1", "create", "linkstr", "/proc/self/cwd/evil"]);
    assert_eq!(rc, 1);
    assert!(err.contains("SIOCSLINKSTR"), "{err}");
    assert!(!daemon_cwd.path().join("evil").exists());
    // A relative path sent by some other client is refused outright.
    let mut c = Client::connect(&sock).unwrap();
    c.ioctl(Request::IfCreate {
        name: "shmif2".into(),
    })
    .unwrap();
    assert_eq!(
        c.ioctl(Request::SetLinkStr {
            name: "shmif2".into(),
            linkstr: Some("rel".into()),
        }),
        Err(Errno::EINVAL)
    );
    assert!(!daemon_cwd.path().join("rel").exists());
    let _ = child.kill();
    let _ = child.wait();
}

/// Issue 12 item 3: host TAPs are attached, created and changed with the
/// requesting client's rights, not root's: `nobody`, admitted by `-m
/// 0666`, cannot create a host TAP (CAP_NET_ADMIN), attach root's or
/// another user's persistent TAP, nor raise the MTU of one; it may attach
/// a TAP made for it. Only root and the daemon's user may stop it.
#[test]
fn host_taps_are_used_with_the_clients_rights() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let Some((uid, gid)) = nobody() else { return };
    if !can_netadmin() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.path().join("taps.sock");
    let mut child = std::process::Command::new(IFNETD)
        .args(["-f", "-m", "0666", "-s"])
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(child.id());
    wait_for_socket(&sock);
    let as_nobody = |args: &[&str]| {
        run(std::process::Command::new(for_others(IFCONFIG))
            .args(args)
            .env("IFNET_SERVER", &sock)
            .env("IFNET_NO_AUTOSTART", "1")
            .uid(uid)
            .gid(gid))
    };
    // Host TAPs of root, of uid 1000 and of nobody, persistent.
    let names = [unique("rt"), unique("ut"), unique("nt")];
    struct Del(Vec<String>);
    impl Drop for Del {
        fn drop(&mut self) {
            for n in &self.0 {
                let _ = std::process::Command::new("ip")
                    .args(["link", "del", n])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
    let evil = unique("ev");
    let _del = Del(vec![
        names[0].clone(),
        names[1].clone(),
        names[2].clone(),
        evil.clone(),
    ]);
    for (n, owner) in names.iter().zip(["0", "1000", &uid.to_string()]) {
        sh(&format!("ip tuntap add {n} mode tap user {owner}"));
    }
    // Refused by tun (EPERM), or before, by /dev/net/tun's mode (EACCES:
    // some systems make it 0600).
    let refused = |r: (String, String, i32)| {
        let ok = [
            "ifconfig: exec_matches: Operation not permitted\n",
            "ifconfig: exec_matches: Permission denied\n",
        ];
        assert!(
            r.0.is_empty() && ok.contains(&r.1.as_str()) && r.2 == 1,
            "{r:?}"
        );
    };
    // Creating one needs CAP_NET_ADMIN, which nobody lacks.
    assert_eq!(as_nobody(&["virt0", "create", "linkstr", &evil]).2, 0);
    refused(as_nobody(&["virt0", "up"]));
    assert!(
        !sh("ip -o link show").contains(&format!("{evil}:")),
        "nobody made a host TAP"
    );
    // Someone else's persistent TAP: refused, as tun refuses it.
    for (i, n) in names[..2].iter().enumerate() {
        let v = format!("virt{}", i + 1);
        assert_eq!(as_nobody(&[&v, "create", "linkstr", n]).2, 0);
        refused(as_nobody(&[&v, "up"]));
    }
    // Its own: attached where it may open /dev/net/tun itself.
    assert_eq!(as_nobody(&["virt3", "create", "linkstr", &names[2]]).2, 0);
    let tun_mode = std::fs::metadata("/dev/net/tun")
        .unwrap()
        .permissions()
        .mode();
    if tun_mode & 0o006 == 0o006 {
        assert_eq!(
            as_nobody(&["virt3", "up"]),
            (String::new(), String::new(), 0)
        );
    } else {
        refused(as_nobody(&["virt3", "up"]));
    }
    // Attached by root, its MTU is still not nobody's to raise.
    let as_root = |args: &[&str]| {
        run(std::process::Command::new(IFCONFIG)
            .args(args)
            .env("IFNET_SERVER", &sock)
            .env("IFNET_NO_AUTOSTART", "1"))
    };
    assert_eq!(as_root(&["virt3", "up"]).2, 0);
    // (A warning, exit 0, as NetBSD's ifconfig.)
    assert_eq!(
        as_nobody(&["virt3", "mtu", "9000"]),
        (
            String::new(),
            "ifconfig: SIOCSIFMTU: Operation not permitted\n".to_string(),
            0
        )
    );
    let mtu = sh(&format!("cat /sys/class/net/{}/mtu", names[2]));
    assert_eq!(mtu.trim(), "1500");
    assert_eq!(as_root(&["virt3", "mtu", "9000"]).2, 0);
    let mtu = sh(&format!("cat /sys/class/net/{}/mtu", names[2]));
    assert_eq!(mtu.trim(), "9000");
    // Stopping the daemon is for root and its owner.
    let (_, err, rc) = run(std::process::Command::new(for_others(IFNETD))
        .arg("--stop")
        .env("IFNET_SERVER", &sock)
        .uid(uid)
        .gid(gid));
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
    assert_eq!(as_nobody(&["-l"]).2, 0, "still serving");
    // SAFETY: plain kill(2) of a process we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

/// Issue 12 item 4: a daemon holds at most `--max-interfaces`; beyond
/// that creating fails with ENOSPC, by name and through the tap cloning
/// socket alike, and the daemon goes on serving.
#[test]
fn interfaces_are_limited() {
    let d = Daemon::start_with(&["--max-interfaces", "4"]);
    for i in ["lo1", "shmif0", "tap0"] {
        assert_eq!(
            d.ifconfig(&[i, "create"]),
            (String::new(), String::new(), 0)
        );
    }
    assert_eq!(
        d.ifconfig(&["lo2", "create"]),
        (
            String::new(),
            "ifconfig: clone_command: No space left on device\n\
             ifconfig: exec_matches: No space left on device\n"
                .into(),
            1
        )
    );
    // tap0 busy, so a client of the cloning socket would need a tap1.
    let _busy = UnixStream::connect(d.run_dir().join("tap0")).unwrap();
    wait_until(5, "tap0 attached", || {
        d.ifconfig(&["tap0"]).0.contains("<UP,")
    });
    let clone = UnixStream::connect(d.run_dir().join("tap")).unwrap();
    // Refused: the daemon closes the clone's connection.
    clone
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 1];
    assert_eq!((&clone).read(&mut b).unwrap(), 0, "connection closed");
    assert_eq!(d.ifconfig(&["-l"]).0, "lo0 lo1 shmif0 tap0\n");
    d.ok(&["lo1", "destroy"]);
    d.ok(&["lo2", "create"]);
}
