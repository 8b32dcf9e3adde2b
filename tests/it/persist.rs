//! A network that survives restarts: ifconfig.IF files applied at start
//! (`-c`), the state file of `-S` restored after a clean stop and after
//! SIGKILL at any moment, a full disk, and files that are not what they
//! should be.

use crate::common::{self, BRCONFIG, IFCONFIG, IFNETD, can_netadmin, run, unique};
use ifnet::client::Client;
use ifnet::ioctl::{Errno, Ioctl, Request, Response};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const IFPING: &str = env!("CARGO_BIN_EXE_ifping");

/// A daemon in the background (`ifnetd` returns once it is ready, its
/// configuration applied), stopped when dropped.
struct Bg {
    sock: PathBuf,
    log: PathBuf,
}

impl Bg {
    /// Start with these options; returns the daemon and ifnetd's exit code.
    fn start(dir: &Path, name: &str, args: &[&str]) -> (Bg, i32) {
        let sock = dir.join(format!("{name}.sock"));
        let log = dir.join(format!("{name}.log"));
        let status = Command::new(IFNETD)
            .arg("-s")
            .arg(&sock)
            .arg("-l")
            .arg(&log)
            .args(common::FAST_DAD)
            .args(args)
            .status()
            .unwrap();
        (Bg { sock, log }, status.code().unwrap_or(-1))
    }

    fn cmd(&self, bin: &str) -> Command {
        let mut c = Command::new(bin);
        c.env("IFNET_SERVER", &self.sock)
            .env("IFNET_NO_AUTOSTART", "1");
        c
    }

    fn tool(&self, bin: &str, args: &[&str]) -> String {
        let (o, e, rc) = run(self.cmd(bin).args(args));
        assert_eq!((rc, e.as_str()), (0, ""), "{bin} {args:?}");
        o
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The whole configuration as JSON, once DAD is done.
    fn config(&self) -> String {
        self.tool(IFCONFIG, &["-w", "10"]);
        let mut s = self.tool(IFCONFIG, &["--libxo", "json", "-a"]);
        s.push_str(&self.tool(BRCONFIG, &["--libxo", "json", "-a"]));
        s
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        // Quietly: a test may have stopped it already.
        let _ = Command::new(IFNETD)
            .arg("--stop")
            .arg("-s")
            .arg(&self.sock)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn jq(filter: &str, input: &str) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut c = Command::new("jq")
        .args(["-r", filter])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("jq (scripts/deps.sh installs it)");
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "jq {filter}");
    String::from_utf8(out.stdout).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn config_dir_brings_up_the_network() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    let bus = tmp.path().join("bus");
    let bus = bus.to_str().unwrap();
    // Line 3 is broken; the lines after it still apply.
    write(
        &conf,
        "ifconfig.lo1",
        "# the second loopback\n\ninet 10.9.9.9/8 bogus\ninet 10.9.0.1/8\ndescription 'loop one'   # trailing\n",
    );
    write(
        &conf,
        "ifconfig.shmif0",
        &format!("create\nlinkstr {bus}\ninet 10.1.0.1/24\nup\n"),
    );
    // No create line: a cloned interface is created anyway.
    write(
        &conf,
        "ifconfig.shmif1",
        &format!("linkstr {bus}\ninet 10.1.0.2/24 up\n"),
    );
    let virt = can_netadmin().then(|| unique("vt"));
    let mut members = "shmif1".to_string();
    if let Some(v) = &virt {
        write(
            &conf,
            "ifconfig.virt0",
            &format!("create\nlinkstr {v}\nup\n"),
        );
        members.push_str(" virt0");
    }
    // Cloners come alphabetically (bridge first): a bridge must still come
    // after its members.
    write(
        &conf,
        "ifconfig.bridge0",
        &format!(
            "create\n!brconfig $int add {members}\n!brconfig $int static shmif1 02:00:00:00:00:aa maxaddr 50\n!brconfig $int nosuchcommand\nup\n"
        ),
    );
    let (d, rc) = Bg::start(tmp.path(), "a", &["-c", conf.to_str().unwrap()]);
    assert_eq!(rc, 0, "{}", d.log());
    let log = d.log();
    let lo1 = conf.join("ifconfig.lo1");
    assert!(
        log.contains(&format!(
            "{}:3: ifconfig lo1 inet 10.9.9.9/8 bogus: invalid arguments",
            lo1.display()
        )),
        "{log}"
    );
    let br = conf.join("ifconfig.bridge0");
    assert!(
        log.contains(&format!(
            "{}:4: !brconfig $int nosuchcommand: brconfig: unknown command: nosuchcommand",
            br.display()
        )),
        "{log}"
    );
    assert_eq!(log.matches("error: ").count(), 2, "{log}");

    let c = d.config();
    let names = if virt.is_some() {
        "lo0 lo1 shmif0 shmif1 virt0 bridge0"
    } else {
        "lo0 lo1 shmif0 shmif1 bridge0"
    };
    assert_eq!(
        jq(r#".interfaces? // empty | map(.name) | join(" ")"#, &c).trim(),
        names
    );
    let lo1 = jq(
        r#".interfaces? // empty | .[] | select(.name == "lo1") | [.description, (.inet | map("\(.address)/\(.prefixlen)") | join(","))] | @tsv"#,
        &c,
    );
    assert_eq!(lo1, "loop one\t10.9.0.1/8\n");
    for (ifname, addr) in [("shmif0", "10.1.0.1/24"), ("shmif1", "10.1.0.2/24")] {
        let f = format!(
            r#".interfaces? // empty | .[] | select(.name == "{ifname}") | [.linkstr, (.flags.names | index("UP") != null), (.inet | map("\(.address)/\(.prefixlen)") | join(","))] | @tsv"#
        );
        assert_eq!(jq(&f, &c), format!("{bus}\ttrue\t{addr}\n"), "{c}");
    }
    let b = jq(
        r#".bridges? // empty | .[0] | [.name, (.flags.names | index("UP") != null), (.interfaces | map(.name) | reverse | join(" ")), .max_cache, (.addresses | map(select(.flags.names == ["STATIC"]) | "\(.address) \(.interface) STATIC") | join(","))] | @tsv"#,
        &c,
    );
    assert_eq!(
        b,
        format!("bridge0\ttrue\t{members}\t50\t02:00:00:00:00:aa shmif1 STATIC\n")
    );
    // The two shmif are on one bus: a second host there reaches both.
    let (peer, rc) = Bg::start(tmp.path(), "b", &[]);
    assert_eq!(rc, 0);
    peer.tool(IFCONFIG, &["shmif0", "create"]);
    peer.tool(IFCONFIG, &["shmif0", "linkstr", bus]);
    peer.tool(IFCONFIG, &["shmif0", "inet", "10.1.0.3/24", "up"]);
    peer.tool(IFCONFIG, &["-w", "10"]);
    for dst in ["10.1.0.1", "10.1.0.2"] {
        let (o, e, rc) = run(peer.cmd(IFPING).args(["-c", "1", "-w", "5", dst]));
        assert_eq!(rc, 0, "ping {dst}: {o}{e}");
        assert!(o.contains("1 packets received"), "{o}");
    }
}

/// A daemon in the foreground with a state file, for killing.
struct Fg {
    sock: PathBuf,
    state: PathBuf,
    child: Option<std::process::Child>,
}

impl Fg {
    fn start(dir: &Path) -> Fg {
        let mut f = Fg {
            sock: dir.join("fg.sock"),
            state: dir.join("state"),
            child: None,
        };
        f.spawn();
        f
    }

    fn spawn(&mut self) {
        let child = Command::new(IFNETD)
            .arg("-f")
            .arg("-s")
            .arg(&self.sock)
            .arg("-S")
            .arg(&self.state)
            .args(common::FAST_DAD)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        common::wait_for_socket(&self.sock);
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    fn reap(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

impl Drop for Fg {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A connection that notes when the daemon went away under it.
struct Tracking<'a> {
    c: &'a mut Client,
    lost: bool,
}

impl Ioctl for Tracking<'_> {
    fn ioctl(&mut self, req: Request) -> Response {
        let r = self.c.ioctl(req);
        if let Err(e) = r
            && [Errno::EPROTO.0, libc::EPIPE, libc::ECONNRESET].contains(&e.0)
        {
            self.lost = true;
        }
        r
    }
}

/// The configuration as the state script says it, without the link
/// addresses (made up at random by each kernel).
fn fingerprint(ctl: &mut dyn Ioctl) -> Result<String, Errno> {
    Ok(ifnet::rcnet::script(ctl)?
        .lines()
        .filter(|l| !l.contains(" link "))
        .map(|l| format!("{l}\n"))
        .collect())
}

/// Run one tool line in-process against `ctl`.
fn tool_line(ctl: &mut dyn Ioctl, argv: &[String]) -> i32 {
    let (mut o, mut e) = (Vec::new(), Vec::new());
    match argv[0].as_str() {
        "ifconfig" => ifnet::ifconfig::main_with(&argv[1..], ctl, &mut o, &mut e),
        _ => ifnet::brconfig::main_with(&argv[1..], ctl, &mut o, &mut e),
    }
}

/// What a kernel in configuration `before` has after `argv`: a fresh
/// in-process kernel told both.
fn model(before: &str, argv: &[String]) -> String {
    let k = ifnet::generic::kernel(ifnet::cloner::KernelEnv::default());
    let mut kr: &ifnet::Kernel = &k;
    let problems = ifnet::rcnet::apply_script(&mut kr, Path::new("model"), before);
    assert!(problems.is_empty(), "{problems:?}\n{before}");
    tool_line(&mut kr, argv);
    let fp = fingerprint(&mut kr).unwrap();
    k.shutdown();
    fp
}

/// xorshift64*: a reproducible stream from the seed the test prints.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random change that is one request (so that a kill cannot leave half
/// of it): on lo1-3, shmif0-2 (no bus) and bridge0-1.
fn random_change(r: &mut Rng) -> Vec<String> {
    let pick = |r: &mut Rng, v: &[&str]| v[r.below(v.len() as u64) as usize].to_string();
    let any = [
        "lo1", "lo2", "lo3", "shmif0", "shmif1", "shmif2", "bridge0", "bridge1",
    ];
    let ifname = pick(r, &any);
    let shmif = pick(r, &["shmif0", "shmif1", "shmif2"]);
    let bridge = pick(r, &["bridge0", "bridge1"]);
    let n = r.below(250) + 1;
    let words: Vec<String> = match r.below(14) {
        0..=2 => vec!["ifconfig".into(), ifname, "create".into()],
        3 => vec!["ifconfig".into(), ifname, "destroy".into()],
        4 => vec![
            "ifconfig".into(),
            ifname,
            "inet".into(),
            format!("10.{}.0.{n}/24", n % 4),
            "alias".into(),
        ],
        5 => vec![
            "ifconfig".into(),
            ifname,
            "inet".into(),
            format!("10.{}.0.{n}", n % 4),
            "-alias".into(),
        ],
        6 => vec![
            "ifconfig".into(),
            ifname,
            "mtu".into(),
            format!("{}", 1000 + n),
        ],
        7 => vec![
            "ifconfig".into(),
            ifname,
            "description".into(),
            format!("d {n}"),
        ],
        8 => vec![
            "ifconfig".into(),
            ifname,
            pick(r, &["up", "down", "link0", "-link0"]),
        ],
        9 => vec!["brconfig".into(), bridge, "add".into(), shmif],
        10 => vec!["brconfig".into(), bridge, "delete".into(), shmif],
        11 => vec![
            "brconfig".into(),
            bridge,
            "static".into(),
            shmif,
            format!("02:00:00:00:00:{n:02x}"),
        ],
        12 => vec!["brconfig".into(), bridge, "maxaddr".into(), format!("{n}")],
        _ => vec![
            "brconfig".into(),
            bridge,
            pick(r, &["-learn", "learn", "stp"]),
            shmif,
        ],
    };
    words
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn sigkill_at_any_moment_loses_no_acknowledged_change() {
    let changes = knob("IFNET_CRASH_CHANGES", 2000);
    let kills = knob("IFNET_CRASH_KILLS", 100).clamp(1, changes);
    let seed = knob(
        "IFNET_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1,
    );
    eprintln!("IFNET_CRASH_SEED={seed} changes {changes} kills {kills}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Fg::start(tmp.path());
    let mut c = Client::connect(&d.sock).unwrap();
    let mut fp = fingerprint(&mut c).unwrap();
    let every = changes / kills;
    let (mut killed, mut in_flight, mut applied_in_flight) = (0, 0, 0);
    let start = Instant::now();
    for i in 0..changes {
        let argv = random_change(&mut rng);
        let kill = i % every == every - 1;
        let killer = kill.then(|| {
            let pid = d.pid();
            let delay = Duration::from_micros(rng.below(3000));
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                // SAFETY: kill(2) of the daemon this test started and has
                // not reaped yet.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            })
        });
        let mut t = Tracking {
            c: &mut c,
            lost: false,
        };
        tool_line(&mut t, &argv);
        let lost = t.lost;
        let Some(killer) = killer else {
            assert!(!lost, "the daemon went away at change {i}: {argv:?}");
            fp = fingerprint(&mut c).unwrap();
            continue;
        };
        killer.join().unwrap();
        d.reap();
        killed += 1;
        let text = std::fs::read_to_string(&d.state).unwrap();
        assert!(
            text.ends_with(&format!("{}\n", ifnet::rcnet::STATE_END)),
            "state file cut short after kill {killed}:\n{text}"
        );
        let after = model(&fp, &argv);
        d.spawn();
        c = Client::connect(&d.sock).unwrap();
        let got = fingerprint(&mut c).unwrap();
        if lost {
            in_flight += 1;
            assert!(
                got == fp || got == after,
                "seed {seed}, change {i} {argv:?} in flight at the kill:\n{got}\nis neither before:\n{fp}\nnor after:\n{after}"
            );
            applied_in_flight += usize::from(got == after && fp != after);
        } else {
            assert_eq!(
                got, after,
                "seed {seed}, change {i} {argv:?} acknowledged, then lost"
            );
        }
        fp = got;
    }
    eprintln!(
        "{changes} changes, {killed} kills ({in_flight} during a request, {applied_in_flight} of those kept it) in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(killed >= kills.min(50), "{killed} kills");
}

#[test]
fn state_survives_stop_and_forget_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let st = state.to_str().unwrap();
    let (d, rc) = Bg::start(tmp.path(), "s", &["-S", st]);
    assert_eq!(rc, 0, "{}", d.log());
    d.tool(IFCONFIG, &["lo1", "create"]);
    d.tool(
        IFCONFIG,
        &["lo1", "inet", "10.5.0.1/16", "description", "it's kept"],
    );
    d.tool(IFCONFIG, &["shmif0", "create"]);
    d.tool(IFCONFIG, &["shmif0", "link", "02:00:00:00:00:05", "active"]);
    d.tool(IFCONFIG, &["tap0", "create"]);
    d.tool(IFCONFIG, &["tap0", "mtu", "1400", "up"]);
    d.tool(IFCONFIG, &["bridge0", "create"]);
    d.tool(
        BRCONFIG,
        &["bridge0", "add", "shmif0", "timeout", "77", "up"],
    );
    let before = d.config();
    d.tool(IFNETD, &["--stop", "-s", d.sock.to_str().unwrap()]);
    assert!(state.exists());
    let (d2, rc) = Bg::start(tmp.path(), "s", &["-S", st]);
    assert_eq!(rc, 0, "{}", d2.log());
    assert_eq!(d2.config(), before);
    assert!(!d2.log().contains("error"), "{}", d2.log());
    // --forget wants to know which file.
    let (_, e, rc) =
        run(Command::new(IFNETD).args(["--stop", "--forget", "-s", d2.sock.to_str().unwrap()]));
    assert_eq!(rc, 1);
    assert!(e.contains("-S FILE"), "{e}");
    d2.tool(
        IFNETD,
        &[
            "--stop",
            "--forget",
            "-S",
            st,
            "-s",
            d2.sock.to_str().unwrap(),
        ],
    );
    assert!(!state.exists());
    let (d3, rc) = Bg::start(tmp.path(), "s", &["-S", st]);
    assert_eq!(rc, 0);
    assert_eq!(d3.tool(IFCONFIG, &["-l"]), "lo0\n");
}

/// Files that are not configurations: a clear error naming each, and the
/// daemon starts with what it could apply.
#[test]
fn bad_files_are_reported_never_fatal() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    // Binary, huge, a directory, a FIFO, unreadable (for a user), good.
    let mut binary = b"inet 10.6.0.1/24\n".to_vec();
    binary.extend((0..=255u8).cycle().take(3000));
    binary.extend(b"\ndescription after-the-noise\n");
    std::fs::write(conf.join("ifconfig.lo1"), &binary).unwrap();
    let huge = std::fs::File::create(conf.join("ifconfig.lo2")).unwrap();
    huge.set_len((16 << 20) + 1).unwrap();
    std::fs::create_dir(conf.join("ifconfig.lo3")).unwrap();
    nix::unistd::mkfifo(&conf.join("ifconfig.lo4"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    write(&conf, "ifconfig.lo5", "inet 10.6.5.1/24\n");
    let root = nix::unistd::geteuid().is_root();
    if !root {
        std::fs::set_permissions(
            conf.join("ifconfig.lo5"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
    }
    write(
        &conf,
        "ifconfig.lo6",
        "inet 10.6.6.1/24\ndescription 'open quote\n",
    );
    write(&conf, "ifconfig.nosuch0", "up\n");
    let (d, rc) = Bg::start(tmp.path(), "bad", &["-c", conf.to_str().unwrap()]);
    assert_eq!(rc, 0, "{}", d.log());
    let log = d.log();
    let p = |n: &str| conf.join(n).display().to_string();
    for want in [
        format!("{}:2: not text", p("ifconfig.lo1")),
        format!("{}: larger than 16 MiB; not read", p("ifconfig.lo2")),
        format!("{}: not a regular file", p("ifconfig.lo3")),
        format!("{}: not a regular file", p("ifconfig.lo4")),
        format!("{}:2: unterminated ' quote", p("ifconfig.lo6")),
        format!("{}: no such interface", p("ifconfig.nosuch0")),
    ] {
        assert!(log.contains(&want), "{want}\n{log}");
    }
    if !root {
        assert!(
            log.contains(&format!("{}: Permission denied", p("ifconfig.lo5"))),
            "{log}"
        );
    }
    assert!(!log.contains("panic"), "{log}");
    // What could be applied was.
    let c = d.config();
    let lo1 = jq(
        r#".interfaces? // empty | .[] | select(.name == "lo1") | [.description, .inet[0].address] | @tsv"#,
        &c,
    );
    assert_eq!(lo1, "after-the-noise\t10.6.0.1\n");
    assert!(c.contains("10.6.6.1"), "{c}");

    // The one file that stops the start: a directory named by -c that
    // cannot be read.
    let missing = tmp.path().join("no-such-dir");
    let sock = tmp.path().join("nodir.sock");
    let (_, e, rc) = run(Command::new(IFNETD)
        .arg("-s")
        .arg(&sock)
        .arg("-c")
        .arg(&missing));
    assert_eq!(rc, 1, "{e}");
    assert!(
        e.contains(&format!("config directory {}", missing.display())),
        "{e}"
    );
    assert!(std::os::unix::net::UnixStream::connect(&sock).is_err());

    // The state file, cut short, binary, huge, a directory.
    let state = tmp.path().join("state");
    let st = state.to_str().unwrap();
    let good = "# x\nifconfig lo1 create\nifconfig lo1 inet 10.8.0.1 netmask 255.255.0.0 alias\nifconfig lo1 up\n";
    type Make<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Make, &str)> = vec![
        (
            "cut",
            Box::new(|| std::fs::write(&state, good).unwrap()),
            "truncated",
        ),
        (
            "binary",
            Box::new(|| {
                let mut b = good.as_bytes().to_vec();
                b.extend([0xff, 0, 1, 2, b'\n']);
                b.extend(format!("{}\n", ifnet::rcnet::STATE_END).as_bytes());
                std::fs::write(&state, b).unwrap()
            }),
            ":5: not text",
        ),
        (
            "huge",
            Box::new(|| {
                let f = std::fs::File::create(&state).unwrap();
                f.set_len(17 << 20).unwrap();
            }),
            "larger than 16 MiB",
        ),
        (
            "dir",
            Box::new(|| std::fs::create_dir(&state).unwrap()),
            "not a regular file",
        ),
    ];
    for (name, make, want) in cases {
        let _ = std::fs::remove_dir(&state);
        let _ = std::fs::remove_file(&state);
        make();
        let (d, rc) = Bg::start(tmp.path(), name, &["-S", st]);
        assert_eq!(rc, 0, "{name}: {}", d.log());
        let log = d.log();
        assert!(
            log.contains(st) && log.contains(want),
            "{name}: {want}\n{log}"
        );
        assert!(log.contains(&format!("kept as {st}.bad")), "{name}: {log}");
        let names = d.tool(IFCONFIG, &["-l"]);
        if name == "cut" || name == "binary" {
            assert_eq!(names, "lo0 lo1\n", "{name}");
        } else {
            assert_eq!(names, "lo0\n", "{name}");
        }
        // What it runs with is the state now, whole.
        let text = std::fs::read_to_string(&state).unwrap();
        assert!(
            text.ends_with(&format!("{}\n", ifnet::rcnet::STATE_END)),
            "{name}"
        );
        drop(d);
        let bad = PathBuf::from(format!("{st}.bad"));
        if bad.is_dir() {
            std::fs::remove_dir(&bad).unwrap();
        } else {
            std::fs::remove_file(&bad).unwrap();
        }
    }
}

/// A full disk under the state file: the request fails with ENOSPC before
/// it changes anything, and the state before it stays. The disk is a 16 KiB tmpfs mounted in a
/// mount namespace of the daemon's own (gone with it).
#[test]
fn full_disk_fails_the_request_and_keeps_the_old_state() {
    if !can_netadmin() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("disk");
    std::fs::create_dir(&mnt).unwrap();
    let sock = tmp.path().join("full.sock");
    let state = mnt.join("state");
    let script = format!(
        "mount -t tmpfs -o size=16k ifnet-test '{}' && exec '{IFNETD}' -f -s '{}' -S '{}'",
        mnt.display(),
        sock.display(),
        state.display()
    );
    let child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed when the test ends, also early.
    let d = Fg {
        sock: sock.clone(),
        state: state.clone(),
        child: Some(child),
    };
    common::wait_for_socket(&sock);
    // The daemon's view of its file system.
    let seen = PathBuf::from(format!("/proc/{}/root{}", d.pid(), state.display()));
    let mut c = Client::connect(&sock).unwrap();
    let descr = "x".repeat(60);
    let mut failed = None;
    for i in 1..400 {
        let before = std::fs::read_to_string(&seen).unwrap();
        let r = c.ioctl(Request::IfCreate {
            name: format!("lo{i}"),
        });
        let r = r.and_then(|_| {
            c.ioctl(Request::SetIfDescr {
                name: format!("lo{i}"),
                descr: Some(descr.clone()),
            })
        });
        if let Err(e) = r {
            failed = Some((i, e, before));
            break;
        }
    }
    let (i, e, before) = failed.expect("the 16 KiB disk never filled");
    assert_eq!(e, Errno::ENOSPC, "at lo{i}");
    let after = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(after, before, "the state changed although its write failed");
    assert!(after.ends_with(&format!("{}\n", ifnet::rcnet::STATE_END)));
    // The room is reserved before a change: the request failed before it
    // changed anything, and memory and file agree.
    assert_eq!(ifnet::rcnet::script(&mut c).unwrap(), after);
    // The daemon goes on serving; the tool says why the request failed.
    let (_, err, rc) = run(Command::new(IFCONFIG)
        .args(["lo999", "create"])
        .env("IFNET_SERVER", &sock)
        .env("IFNET_NO_AUTOSTART", "1"));
    assert_eq!(rc, 1);
    assert!(err.contains("No space left on device"), "{err}");
    drop(d);
}

/// What a driver changes by itself is in the state too: a tap made by
/// its cloning socket, a tap whose client leaves going down and losing its
/// addresses.
#[test]
fn driver_changes_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (d, rc) = Bg::start(tmp.path(), "t", &["-S", state.to_str().unwrap()]);
    assert_eq!(rc, 0, "{}", d.log());
    // The cloning socket makes tap0 for its first client.
    let client =
        std::os::unix::net::UnixStream::connect(ifnet::server::run_dir(&d.sock).join("tap"))
            .unwrap();
    let read = || std::fs::read_to_string(&state).unwrap();
    common::wait_until(10, "the state to have tap0", || {
        read().contains("ifconfig tap0 create\n")
    });
    let ctl = ifnet::server::run_dir(&d.sock).join("tap0");
    common::wait_until(10, "tap0 up", || {
        d.tool(IFCONFIG, &["tap0"]).contains("<UP,")
    });
    d.tool(IFCONFIG, &["tap0", "inet", "10.4.0.1/24"]);
    assert!(read().contains("ifconfig tap0 up\n"), "{}", read());
    assert!(read().contains("ifconfig tap0 inet 10.4.0.1"), "{}", read());
    drop(client);
    common::wait_until(10, "the state to say tap0 is down", || {
        read().contains("ifconfig tap0 down\n")
    });
    assert!(!read().contains("10.4.0.1"), "{}", read());
    // Stopping destroys the interfaces, which their drivers see: that is
    // no change to keep.
    let client = std::os::unix::net::UnixStream::connect(&ctl).unwrap();
    common::wait_until(10, "the state to say tap0 is up", || {
        read().contains("ifconfig tap0 up\n")
    });
    let kept = read();
    d.tool(IFNETD, &["--stop", "-s", d.sock.to_str().unwrap()]);
    drop(client);
    assert_eq!(read(), kept);
}

/// A vxlan's configuration is in the state script and comes back from it
/// (in-process kernels: the script of one, applied to a fresh one, gives
/// the same script); also a tap's txqueue and the spanning tree settings.
#[test]
fn vxlan_tap_and_stp_settings_are_kept() {
    let k = ifnet::generic::kernel(ifnet::cloner::KernelEnv::default());
    let mut kr: &ifnet::Kernel = &k;
    let lines: [&[&str]; 6] = [
        &[
            "ifconfig",
            "vxlan0",
            "create",
            "vxlanid",
            "42",
            "vxlanlocal",
            "192.0.2.1",
            "vxlanremote",
            "192.0.2.2",
            "vxlanportrange",
            "40000",
            "40100",
            "vxlanttl",
            "9",
            "-vxlanlearn",
        ],
        &[
            "ifconfig",
            "vxlan1",
            "create",
            "vxlanid",
            "7",
            "vxlangroup",
            "239.1.1.1",
            "vxlanlocalport",
            "4790",
            "vxlanremoteport",
            "4790",
        ],
        &["ifconfig", "tap0", "create", "txqueue", "1048576"],
        &["ifconfig", "bridge0", "create", "mtu", "1450"],
        &[
            "brconfig",
            "bridge0",
            "add",
            "vxlan0",
            "stp",
            "vxlan0",
            "ifpriority",
            "vxlan0",
            "64",
            "ifpathcost",
            "vxlan0",
            "7",
        ],
        &[
            "brconfig",
            "bridge0",
            "priority",
            "4096",
            "hellotime",
            "1",
            "fwddelay",
            "4",
            "maxage",
            "6",
        ],
    ];
    for l in lines {
        let argv: Vec<String> = l.iter().map(|s| s.to_string()).collect();
        assert_eq!(tool_line(&mut kr, &argv), 0, "{l:?}");
    }
    let script = fingerprint(&mut kr).unwrap();
    for want in [
        "vxlanid 42 vxlanlocal 192.0.2.1",
        "vxlanremote 192.0.2.2",
        "vxlanportrange 40000 40100",
        "vxlanttl 9 -vxlanlearn",
        "vxlanid 7 vxlanlocalport 4790 vxlangroup 239.1.1.1 vxlanremoteport 4790",
        "txqueue 1048576",
        "ifpriority vxlan0 64 ifpathcost vxlan0 7",
        "priority 4096 hellotime 1 fwddelay 4 maxage 6",
    ] {
        assert!(script.contains(want), "{want}:\n{script}");
    }
    let fresh = ifnet::generic::kernel(ifnet::cloner::KernelEnv::default());
    let mut fr: &ifnet::Kernel = &fresh;
    let problems = ifnet::rcnet::apply_script(&mut fr, Path::new("state"), &script);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(fingerprint(&mut fr).unwrap(), script);
}
