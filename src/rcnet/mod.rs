//! What NetBSD's `/etc/rc.d/network` does with `ifconfig.IF` files, and
//! the state file of `ifnetd -S`, against anything that answers
//! [`Ioctl`] requests (the daemon's own kernel, in-process).
//!
//! - [`config_files`]: which `ifconfig.IF` files of a directory, in what
//!   order; [`apply_ifconfig_file`] runs one.
//! - [`script`]: the whole configuration as lines of `ifconfig` and
//!   `brconfig` commands; [`apply_state`] runs them again.
//! - [`statefile`]: writing that script crash-safely.
//!
//! Lines are run by the ifconfig and brconfig libraries; a line that fails
//! is a [`Problem`] with its file and line number, and the rest is still
//! applied.

mod script;
pub mod statefile;
pub mod words;

pub use script::script;

use crate::ioctl::{Ioctl, Reply, Request};
use std::path::{Path, PathBuf};

/// A file larger than this is refused as a whole (a configuration is a few
/// kilobytes; this is not a way to make the daemon read a disk image).
pub const MAX_FILE: u64 = 16 << 20;

/// The last line of a state file: without it the file was cut short.
pub const STATE_END: &str = "# end of ifnetd state";

/// One line (or a whole file, `line` 0) that could not be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub msg: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.msg)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.msg)
        }
    }
}

/// Read a configuration or state file: refused as a whole when it cannot
/// be read, is not a regular file or is larger than [`MAX_FILE`]; its
/// lines, as bytes, otherwise (a line that is not text fails alone).
pub fn read_lines(path: &Path) -> Result<Vec<Vec<u8>>, Problem> {
    use std::io::Read;
    let whole = |msg: String| Problem {
        file: path.to_path_buf(),
        line: 0,
        msg,
    };
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: a FIFO put there must not hold the daemon's start.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| whole(e.to_string()))?;
    let m = f.metadata().map_err(|e| whole(e.to_string()))?;
    if !m.is_file() {
        return Err(whole("not a regular file".into()));
    }
    let mut data = Vec::new();
    // One byte more than allowed tells a file that grew past the limit.
    f.take(MAX_FILE + 1)
        .read_to_end(&mut data)
        .map_err(|e| whole(e.to_string()))?;
    if data.len() as u64 > MAX_FILE {
        return Err(whole(format!(
            "larger than {} MiB; not read",
            MAX_FILE >> 20
        )));
    }
    Ok(data.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect())
}

/// A line as text, or why it is not.
fn text(line: &[u8]) -> Result<&str, String> {
    let s = std::str::from_utf8(line).map_err(|_| "not text (invalid UTF-8)".to_string())?;
    if s.chars().any(|c| c.is_control() && c != '\t' && c != '\r') {
        return Err("not text (control characters)".into());
    }
    Ok(s.trim())
}

/// Run one tool of ours in-process: its error output is the message.
fn run_tool(ctl: &mut dyn Ioctl, argv: &[String]) -> Result<(), String> {
    let (tool, args) = argv.split_first().ok_or("empty line")?;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let rc = match tool.as_str() {
        "ifconfig" => crate::ifconfig::main_with(args, ctl, &mut out, &mut err),
        "brconfig" => crate::brconfig::main_with(args, ctl, &mut out, &mut err),
        "route" => crate::inspect::route::main_with(args, ctl, &mut out, &mut err),
        "sysctl" => crate::inspect::sysctl::main_with(args, ctl, &mut out, &mut err),
        t => return Err(format!("{t}: not ifconfig, brconfig, route or sysctl")),
    };
    if rc == 0 {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&err);
    // The first line says it; a usage text says only that the words are
    // wrong.
    let first = msg.lines().next().unwrap_or("").trim();
    Err(if first.is_empty() {
        format!("{tool} exited {rc}")
    } else if first.starts_with("usage:") {
        format!("{}: invalid arguments", argv.join(" "))
    } else {
        first.to_string()
    })
}

fn interface_names(ctl: &mut dyn Ioctl) -> Vec<String> {
    match ctl.ioctl(Request::GetIfConf { name: None }) {
        Ok(Reply::IfConf(l)) => l.into_iter().map(|s| s.name).collect(),
        _ => Vec::new(),
    }
}

fn cloner_names(ctl: &mut dyn Ioctl) -> Vec<String> {
    match ctl.ioctl(Request::IfGCloners) {
        Ok(Reply::Cloners(c)) => c,
        _ => Vec::new(),
    }
}

/// Whether `name` is `class` followed by a unit number.
fn of_class(name: &str, class: &str) -> bool {
    name.strip_prefix(class)
        .is_some_and(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit()))
}

/// An interface and its `ifconfig.IF` file.
pub type ConfigFile = (String, PathBuf);

/// The `ifconfig.IF` files of `dir` in the order NetBSD's rc.d/network
/// takes them with `auto_ifconfig`: the interfaces that exist (`ifconfig
/// -l`), then, class by class in `ifconfig -C` order, the files of that
/// class in `ls` order; bridges last, after the members they join.
/// Files that name no interface or class are problems.
pub fn config_files(
    ctl: &mut dyn Ioctl,
    dir: &Path,
) -> Result<(Vec<ConfigFile>, Vec<Problem>), Problem> {
    let rd = std::fs::read_dir(dir).map_err(|e| Problem {
        file: dir.to_path_buf(),
        line: 0,
        msg: e.to_string(),
    })?;
    let mut names: Vec<String> = rd
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|f| f.strip_prefix("ifconfig.").map(str::to_string))
        .collect();
    names.sort();
    let existing = interface_names(ctl);
    let cloners = cloner_names(ctl);
    let mut order: Vec<String> = existing
        .iter()
        .filter(|n| names.contains(n))
        .cloned()
        .collect();
    for class in &cloners {
        for n in names.iter().filter(|n| of_class(n, class)) {
            if !order.contains(n) {
                order.push(n.clone());
            }
        }
    }
    let problems = names
        .iter()
        .filter(|n| !order.contains(n))
        .map(|n| Problem {
            file: dir.join(format!("ifconfig.{n}")),
            line: 0,
            msg: "no such interface or interface class; not applied".into(),
        })
        .collect();
    let (mut bridges, mut files): (Vec<String>, Vec<String>) =
        order.into_iter().partition(|n| of_class(n, "bridge"));
    files.append(&mut bridges);
    let files = files
        .into_iter()
        .map(|n| {
            let p = dir.join(format!("ifconfig.{n}"));
            (n, p)
        })
        .collect();
    Ok((files, problems))
}

/// How `!command` lines are run: through `/bin/sh -c` with `$int` set to
/// the interface and the environment given here (IFNET_SERVER and PATH,
/// so that `!brconfig $int add virt0` reaches this daemon).
pub struct Shell {
    pub env: Vec<(String, std::ffi::OsString)>,
}

impl Shell {
    fn run(&self, int: &str, cmd: &str) -> Result<(), String> {
        let mut c = std::process::Command::new("/bin/sh");
        c.arg("-c").arg(cmd).env("int", int);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.stdin(std::process::Stdio::null());
        let out = c.output().map_err(|e| format!("/bin/sh: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty());
        Err(match (last, out.status.code()) {
            (Some(l), _) => format!("!{cmd}: {}", l.trim()),
            (None, Some(c)) => format!("!{cmd}: exit status {c}"),
            (None, None) => format!("!{cmd}: killed by a signal"),
        })
    }
}

/// Apply `ifconfig.IF` file `path` to interface `int`: each line is
/// `ifconfig IF LINE`, a `create` line creates it, `!` lines go to
/// `shell` (none: they are problems), `#` starts a comment. A cloned
/// interface that does not exist is created first. Returns the problems.
pub fn apply_ifconfig_file(
    ctl: &mut dyn Ioctl,
    int: &str,
    path: &Path,
    shell: Option<&Shell>,
) -> Vec<Problem> {
    let lines = match read_lines(path) {
        Ok(l) => l,
        Err(p) => return vec![p],
    };
    let mut problems = Vec::new();
    let mut report = |line: usize, msg: String| {
        problems.push(Problem {
            file: path.to_path_buf(),
            line,
            msg,
        })
    };
    let exists = |ctl: &mut dyn Ioctl| {
        ctl.ioctl(Request::GetIfFlags {
            name: int.to_string(),
        })
        .is_ok()
    };
    if !exists(ctl)
        && let Err(e) = run_tool(ctl, &argv(&["ifconfig", int, "create"]))
    {
        report(0, e);
    }
    for (i, raw) in lines.iter().enumerate() {
        let n = i + 1;
        let line = match text(raw) {
            Ok(l) => l,
            Err(e) => {
                report(n, e);
                continue;
            }
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(cmd) = line.strip_prefix('!') {
            let r = match shell {
                Some(sh) => sh.run(int, cmd),
                None => Err("! lines are not run here".into()),
            };
            if let Err(e) = r {
                report(n, e);
            }
            continue;
        }
        let words = match words::split(line) {
            Ok(w) => w,
            Err(e) => {
                report(n, e);
                continue;
            }
        };
        if words.is_empty() {
            continue;
        }
        // Made above already.
        if words == ["create"] && exists(ctl) {
            continue;
        }
        let mut a = argv(&["ifconfig", int]);
        a.extend(words);
        if let Err(e) = run_tool(ctl, &a) {
            report(n, e);
        }
    }
    problems
}

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Apply a state file written by [`script`]: `ifconfig …` and `brconfig
/// …` lines only (never a shell). A file without its last line
/// ([`STATE_END`]) was cut short: what it has is applied, and that is a
/// problem too.
pub fn apply_state(ctl: &mut dyn Ioctl, path: &Path) -> Vec<Problem> {
    let lines = match read_lines(path) {
        Ok(l) => l,
        Err(p) => return vec![p],
    };
    apply_state_lines(ctl, path, &lines)
}

/// [`apply_state`] on a script in memory; `name` names it in problems.
pub fn apply_script(ctl: &mut dyn Ioctl, name: &Path, text: &str) -> Vec<Problem> {
    let lines: Vec<Vec<u8>> = text.split('\n').map(|l| l.as_bytes().to_vec()).collect();
    apply_state_lines(ctl, name, &lines)
}

fn apply_state_lines(ctl: &mut dyn Ioctl, path: &Path, lines: &[Vec<u8>]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut ended = false;
    // The interfaces the file creates and the link addresses it gives
    // them: those get no other (not the one made up at creation).
    let mut links: Vec<(String, Vec<String>)> = Vec::new();
    for (i, raw) in lines.iter().enumerate() {
        let mut report = |msg: String| {
            problems.push(Problem {
                file: path.to_path_buf(),
                line: i + 1,
                msg,
            })
        };
        let line = match text(raw) {
            Ok(l) => l,
            Err(e) => {
                report(e);
                continue;
            }
        };
        if line == STATE_END {
            ended = true;
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match words::split(line) {
            Ok(w) if w.is_empty() => {}
            Ok(w) => {
                match &w[..] {
                    [t, n, c] if t == "ifconfig" && c == "create" => {
                        links.push((n.clone(), Vec::new()));
                    }
                    [t, n, l, mac, ..] if t == "ifconfig" && l == "link" => {
                        if let Some((_, v)) = links.iter_mut().find(|(x, _)| x == n) {
                            v.push(mac.to_ascii_lowercase());
                        }
                    }
                    _ => {}
                }
                if let Err(e) = run_tool(ctl, &w) {
                    report(e);
                }
            }
            Err(e) => report(e),
        }
    }
    for (name, keep) in links.iter().filter(|(_, k)| !k.is_empty()) {
        let Ok(Reply::IfConf(l)) = ctl.ioctl(Request::GetIfConf {
            name: Some(name.clone()),
        }) else {
            continue;
        };
        for s in &l {
            for mac in &s.lladdrs {
                if !keep.contains(&script::mac_ntoa(mac)) {
                    let _ = ctl.ioctl(Request::DLifAddr {
                        name: name.clone(),
                        mac: *mac,
                    });
                }
            }
        }
    }
    if !ended && lines.iter().any(|l| !l.is_empty()) {
        problems.push(Problem {
            file: path.to_path_buf(),
            line: 0,
            msg: format!("truncated: no \"{STATE_END}\" line; applied what it has"),
        });
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kernel() -> crate::Kernel {
        crate::generic::kernel(crate::cloner::KernelEnv::default())
    }

    /// Words that make mostly valid lines, and some that do not.
    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("lo1".to_string()),
            Just("shmif0".to_string()),
            Just("bridge0".to_string()),
            Just("create".to_string()),
            Just("destroy".to_string()),
            Just("up".to_string()),
            Just("down".to_string()),
            Just("add".to_string()),
            Just("static".to_string()),
            Just("inet".to_string()),
            Just("10.0.0.1/24".to_string()),
            Just("alias".to_string()),
            Just("mtu".to_string()),
            Just("1400".to_string()),
            Just("description".to_string()),
            Just("'a b".to_string()),
            Just("\"".to_string()),
            Just("02:00:00:00:00:01".to_string()),
            "[ -~]{0,8}",
        ]
    }

    fn line() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("ifconfig"), Just("brconfig"), Just("rm"), Just("")],
            proptest::collection::vec(word(), 0..6),
        )
            .prop_map(|(t, w)| format!("{t} {}", w.join(" ")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever a state file holds, applying it never panics, every
        /// problem names a line of it, and what was applied is written
        /// back as a script that makes the same configuration again.
        #[test]
        fn scripts_round_trip(lines in proptest::collection::vec(line(), 0..30)) {
            let text = lines.join("\n");
            let k = kernel();
            let problems = apply_script(&mut &k, Path::new("t"), &text);
            for p in &problems {
                prop_assert!(p.line <= lines.len() + 1, "{p}");
            }
            let first = script(&mut &k).unwrap();
            let k2 = kernel();
            let again = apply_script(&mut &k2, Path::new("t2"), &first);
            prop_assert!(again.is_empty(), "{again:?}\n{first}");
            let second = script(&mut &k2).unwrap();
            let no_links = |s: &str| {
                s.lines().filter(|l| !l.contains(" link ")).collect::<Vec<_>>().join("\n")
            };
            prop_assert_eq!(no_links(&first), no_links(&second));
            k.shutdown();
            k2.shutdown();
        }
    }
}
