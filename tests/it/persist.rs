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
        let _ = Command::new(IFNETD)
            .arg("--stop")
            .arg("-s")
            .arg(&self.sock)
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
