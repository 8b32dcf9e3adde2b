//! ifnetd: the virtual network kernel daemon.
#![deny(clippy::undocumented_unsafe_blocks)]

use anyhow::{Context, bail};
use clap::Parser;
use ifnet::client::{Client, parse_server, server_path};
use ifnet::cloner::{DadTimers, KernelEnv};
use ifnet::drivers;
use ifnet::ioctl::{Ioctl, Request};
use ifnet::log;
use ifnet::server::{Server, Stop, wait_stopped};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{ForkResult, fork, setsid};
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::exit;
use std::time::Duration;

/// The ifnet virtual network kernel: owns a namespace of virtual interfaces
/// and serves ifconfig(8) and brconfig(8) on a Unix socket.
#[derive(Parser)]
#[command(name = "ifnetd", version)]
struct Args {
    /// Stay in the foreground and log to stderr.
    #[arg(short = 'f', long)]
    foreground: bool,
    /// Control socket, a path or unix:///path as IFNET_SERVER takes it
    /// (default: $IFNET_SERVER, else /run/ifnet/ifnetd.sock for root,
    /// $XDG_RUNTIME_DIR/ifnet/ifnetd.sock otherwise).
    #[arg(short = 's', long, value_name = "PATH", value_parser = parse_server)]
    socket: Option<PathBuf>,
    /// Permissions of the control socket, in octal.
    #[arg(short = 'm', long, value_name = "MODE", default_value = "0600", value_parser = parse_mode)]
    mode: u32,
    /// Log file in background mode (default: ifnetd.log beside the socket).
    #[arg(short = 'l', long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// More log output (repeat for debug).
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Stop the daemon serving the socket, destroying its interfaces
    /// (the state file of -S is kept).
    #[arg(long)]
    stop: bool,
    /// With --stop: also remove the state file named by -S.
    #[arg(long, requires = "stop")]
    forget: bool,
    /// Configuration directory of ifconfig.IF files, applied at start
    /// when there is no state to restore (default: /etc/ifnet for root,
    /// $XDG_CONFIG_HOME/ifnet otherwise).
    #[arg(short = 'c', long = "config-dir", value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// Keep the configuration in FILE: written after every change, before
    /// the reply, and restored at start.
    #[arg(short = 'S', long = "state", value_name = "FILE")]
    state: Option<PathBuf>,
    /// Print shell commands that point the NetBSD-named tools (netstat,
    /// route, traceroute, arp, ndp, sysctl, ifmcstat, shmif_pcapin, ifconfig,
    /// brconfig, ping)
    /// at this daemon: `eval "$(ifnetd --env)"`. Makes their links in
    /// bin/ beside the socket.
    #[arg(long)]
    env: bool,
    /// Duplicate address detection probes of a new IPv4 address.
    #[arg(long, value_name = "N", default_value_t = DadTimers::default().probes_v4)]
    ip_dad_count: u8,
    /// Duplicate address detection probes of a new IPv6 address.
    #[arg(long, value_name = "N", default_value_t = DadTimers::default().probes_v6)]
    ip6_dad_count: u8,
    /// The DAD retransmission timer in milliseconds (RetransTimer; RFC 5227's second).
    #[arg(long, value_name = "MS", default_value_t = DadTimers::default().retrans.as_millis() as u64)]
    retrans_timer: u64,
    /// Most interfaces at once; creating more fails with ENOSPC.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_interfaces: usize,
    /// The bridge that taps made by the cloning socket `tap` join.
    #[arg(long, value_name = "BRIDGE")]
    tap_bridge: Option<String>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("invalid mode {s}: expected octal such as 0600"))
}

fn main() {
    // SAFETY: no other thread runs yet.
    let inherited = unsafe { ifnet::service::listen_fds() };
    let args = Args::parse();
    if let Err(e) = run(&args, inherited) {
        eprintln!("ifnetd: {e:#}");
        exit(1)
    }
}

/// A panic anywhere ends the daemon with one log line, never leaving half
/// a daemon (a dead I/O thread, a poisoned table lock) that is up and
/// fails: a service manager restarts a whole one.
fn abort_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        log::error(&format!(
            "panic in thread '{}'{at}: {}",
            thread.name().unwrap_or("unnamed"),
            info.payload_as_str().unwrap_or("(no message)")
        ));
        std::process::abort()
    }));
}

fn run(args: &Args, inherited: Option<std::os::unix::net::UnixListener>) -> anyhow::Result<()> {
    // A socket passed by a service manager is served at its own path.
    let passed_path = inherited
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .and_then(|a| a.as_pathname().map(PathBuf::from));
    let path = match (&args.socket, passed_path) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => p,
        (None, None) => server_path().map_err(anyhow::Error::msg)?,
    };
    if args.env {
        return print_env(&path);
    }
    if args.stop {
        if args.forget && args.state.is_none() {
            bail!("--forget: which state file? Give it with -S FILE");
        }
        match Client::connect(&path) {
            Ok(mut c) => {
                // Return once it has gone: its interfaces destroyed, its
                // socket removed, its lock released.
                c.ioctl(Request::Shutdown)?;
                if !wait_stopped(&path, Duration::from_secs(30)) {
                    bail!("{}: still stopping after 30 s", path.display());
                }
            }
            // Forgetting the state of a daemon that is not running is fine.
            Err(_) if args.forget && wait_stopped(&path, Duration::ZERO) => {}
            Err(e) => return Err(e).with_context(|| path.display().to_string()),
        }
        if let (true, Some(state)) = (args.forget, &args.state) {
            ifnet::rcnet::statefile::forget(state)
                .with_context(|| format!("cannot remove {}", state.display()))?;
        }
        return Ok(());
    }
    // A configuration directory named on the command line must be there;
    // the default one may be missing.
    let config_dir = match &args.config_dir {
        Some(d) => {
            std::fs::read_dir(d).with_context(|| format!("config directory {}", d.display()))?;
            Some(d.clone())
        }
        None => default_config_dir().filter(|d| d.is_dir()),
    };
    log::set_level(2 + args.verbose);
    abort_on_panic();

    // Signals go to one thread that turns them into a clean stop.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    signals.thread_block()?;

    // In the background, the parent waits until the child serves, so that
    // whoever started us can connect as soon as we exit.
    let ready = if args.foreground {
        None
    } else {
        Some(daemonize()?)
    };
    let env = KernelEnv {
        dad: DadTimers {
            probes_v4: args.ip_dad_count,
            probes_v6: args.ip6_dad_count,
            retrans: Duration::from_millis(args.retrans_timer),
        },
        max_interfaces: Some(args.max_interfaces),
        ..KernelEnv::default()
    };
    // The log is opened before the socket is bound: refused, nothing serves.
    ifnet::server::prepare_socket_dir(&path).map_err(|e| anyhow::Error::msg(e.0))?;
    let log = match ready {
        Some(_) => {
            let log = args
                .log
                .clone()
                .unwrap_or_else(|| path.with_file_name("ifnetd.log"));
            let f = ifnet::server::open_own_file(&log, true)
                .with_context(|| format!("cannot open log {}", log.display()))?;
            Some(f)
        }
        None => None,
    };
    let classes = drivers::cloners_with(&drivers::Options {
        tap_bridge: args.tap_bridge.clone(),
    });
    let mut server = Server::bind_or_take(&path, args.mode, env, classes, inherited)
        .map_err(|e| anyhow::Error::msg(e.0))?;
    if let Some(log) = &log {
        redirect_stdio(log);
    }
    // The state first, before anyone is served; without one, the
    // configuration files once serving (their ! lines are clients).
    let restored = match &args.state {
        Some(state) if state.exists() => {
            log::info(&format!("restoring {}", state.display()));
            let problems = ifnet::rcnet::apply_state(&mut &**server.kernel(), state);
            if !problems.is_empty() {
                keep_bad(state);
            }
            report(problems);
            true
        }
        _ => false,
    };
    if let Some(state) = &args.state {
        server.set_persist(Box::new(ScriptState(
            ifnet::rcnet::statefile::StateFile::new(state),
        )));
    }
    log::info(&format!("serving {}", path.display()));

    let (tx, rx) = std::sync::mpsc::channel();
    let sig_tx = tx.clone();
    std::thread::spawn(move || {
        if let Ok(sig) = signals.wait() {
            let _ = sig_tx.send(Stop::Signal(sig as i32));
        }
    });
    server.spawn_accept(tx)?;
    if let Some(dir) = config_dir.filter(|_| !restored) {
        apply_config_dir(&server, &dir, &path);
    }
    // What restoring or the files made is the state from now on (an
    // error is logged by the writer).
    let _ = server.persist_now();
    if let Some(ready) = ready {
        let _ = (&ready).write_all(b"1");
    }
    if let Err(e) = ifnet::service::notify("READY=1") {
        log::warn(&format!("NOTIFY_SOCKET: {e}"));
    }
    if let Some(name) = std::env::var_os("IFNET_TEST_PANIC") {
        // Tests only: a panic in a thread of that name, to check the
        // policy of abort_on_panic.
        let _ = std::thread::Builder::new()
            .name(name.to_string_lossy().into_owned())
            .spawn(|| panic!("IFNET_TEST_PANIC is set"));
    }
    let why = rx.recv().unwrap_or(Stop::Request);
    log::info(&format!("stopping ({why:?})"));
    let _ = ifnet::service::notify("STOPPING=1");
    server.shutdown();
    Ok(())
}

/// /etc/ifnet for root, $XDG_CONFIG_HOME/ifnet (~/.config/ifnet) for
/// others.
fn default_config_dir() -> Option<PathBuf> {
    if nix::unistd::geteuid().is_root() {
        return Some(PathBuf::from("/etc/ifnet"));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("ifnet"))
}

/// The state written from now on holds what could be applied; the file
/// as it was is kept beside it, as FILE.bad.
fn keep_bad(state: &std::path::Path) {
    let mut bad = state.as_os_str().to_owned();
    bad.push(".bad");
    let bad = PathBuf::from(bad);
    match std::fs::rename(state, &bad) {
        Ok(()) => log::error(&format!(
            "{}: could not all be applied; kept as {}",
            state.display(),
            bad.display()
        )),
        Err(e) => log::error(&format!("cannot rename {}: {e}", state.display())),
    }
}

/// Log what could not be applied, file and line.
fn report(problems: Vec<ifnet::rcnet::Problem>) {
    for p in problems {
        log::error(&p.to_string());
    }
}

/// Apply the ifconfig.IF files of `dir` to the kernel, in NetBSD's order;
/// `!` lines run through the shell as clients of this daemon, with this
/// daemon's own user and our tools first on PATH.
fn apply_config_dir(server: &Server, dir: &std::path::Path, sock: &std::path::Path) {
    let mut k: &ifnet::Kernel = server.kernel();
    let (files, problems) = match ifnet::rcnet::config_files(&mut k, dir) {
        Ok(f) => f,
        Err(p) => return report(vec![p]),
    };
    report(problems);
    let mut env = vec![
        ("IFNET_SERVER".to_string(), sock.as_os_str().to_owned()),
        ("IFNET_NO_AUTOSTART".to_string(), "1".into()),
    ];
    if let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from))
    {
        let mut paths = vec![bin];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        ));
        if let Ok(p) = std::env::join_paths(paths) {
            env.push(("PATH".to_string(), p));
        }
    }
    let shell = ifnet::rcnet::Shell { env };
    for (int, file) in files {
        log::info(&format!("configuring {int} from {}", file.display()));
        report(ifnet::rcnet::apply_ifconfig_file(
            &mut k,
            &int,
            &file,
            Some(&shell),
        ));
    }
}

/// The state of -S: the configuration as a script, written crash-safely
/// when it changed, room reserved before each change.
struct ScriptState(ifnet::rcnet::statefile::StateFile);

impl ScriptState {
    fn failed(&self, e: std::io::Error) -> ifnet::ioctl::Errno {
        log::error(&format!("cannot write {}: {e}", self.0.path().display()));
        ifnet::ioctl::Errno::from_io(&e)
    }
}

impl ifnet::server::StateStore for ScriptState {
    fn reserve(&self) -> Result<(), ifnet::ioctl::Errno> {
        self.0.reserve().map_err(|e| self.failed(e))
    }

    fn write(&self, ctl: &mut dyn ifnet::ioctl::Ioctl) -> Result<(), ifnet::ioctl::Errno> {
        let text = ifnet::rcnet::script(ctl)?;
        self.0.write(text.as_bytes()).map_err(|e| self.failed(e))
    }
}

/// The NetBSD names and the binaries (beside ifnetd) that answer to them.
const LINKS: [(&str, &str); 11] = [
    ("netstat", "ifnet-tools"),
    ("route", "ifnet-tools"),
    ("traceroute", "ifnet-tools"),
    ("arp", "ifnet-tools"),
    ("ndp", "ifnet-tools"),
    ("sysctl", "ifnet-tools"),
    ("ifmcstat", "ifnet-tools"),
    ("shmif_pcapin", "ifnet-tools"),
    ("ifconfig", "ifconfig"),
    ("brconfig", "brconfig"),
    ("ping", "ifping"),
];

/// --env: make the directory of NetBSD-named links beside the socket and
/// print what puts it first on PATH, as rump's remote mode sets up its
/// tools; the host's own tools stay where they are for everyone else.
fn print_env(sock: &std::path::Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find ifnetd's directory")?;
    let exe_dir = exe.parent().context("ifnetd has no directory")?;
    let dir = sock.with_file_name("bin");
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    for (name, target) in LINKS {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(exe_dir.join(target), &link)
            .with_context(|| link.display().to_string())?;
    }
    let quote =
        |p: &std::path::Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    println!("IFNET_SERVER={}; export IFNET_SERVER;", quote(sock));
    println!("PATH={}:\"$PATH\"; export PATH;", quote(&dir));
    Ok(())
}

/// Fork into the background. Returns, in the child, the pipe on which to
/// report readiness; the parent exits 0 once it is reported, 1 if the child
/// died first (its error went to our stderr).
fn daemonize() -> anyhow::Result<std::fs::File> {
    let (r, w) = nix::unistd::pipe()?;
    // SAFETY: no other thread runs yet (the signal thread starts later),
    // so the child may go on as a normal process.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Parent { .. } => {
            drop(w);
            let mut b = [0u8; 1];
            let mut r = std::fs::File::from(r);
            exit(if matches!(r.read(&mut b), Ok(1)) {
                0
            } else {
                1
            })
        }
        ForkResult::Child => {
            drop(r);
            let _ = setsid();
            Ok(std::fs::File::from(w))
        }
    }
}

fn redirect_stdio(log: &std::fs::File) {
    let null = OpenOptions::new().read(true).write(true).open("/dev/null");
    // SAFETY: dup2 on descriptors this process owns; stdio is replaced
    // before any other thread uses it.
    unsafe {
        if let Ok(null) = &null {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
        libc::dup2(log.as_raw_fd(), 2);
    }
}
