//! The client side of the control socket: finding the daemon (like rump's
//! RUMP_SERVER), starting it when it is not there, and sending requests.
//! [`tap`]: the client side of a tap's control device.

pub mod tap;

use crate::ioctl::{Errno, Ioctl, Request, Response, wire};
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Environment variable that names the daemon's socket.
pub const SERVER_ENV: &str = "IFNET_SERVER";
/// Set to 1 to stop the tools from starting a daemon.
pub const NO_AUTOSTART_ENV: &str = "IFNET_NO_AUTOSTART";
/// Path of the `ifnetd` binary to auto-start, when not beside the tool.
pub const IFNETD_ENV: &str = "IFNETD";

/// The socket path from `IFNET_SERVER`, else the default for this user,
/// whose directory must be the user's own (see [`check_run_dir`]).
pub fn server_path() -> Result<PathBuf, String> {
    match std::env::var_os(SERVER_ENV) {
        Some(v) if !v.is_empty() => parse_server(&v.to_string_lossy()),
        _ => {
            let path = default_path();
            if let Some(dir) = path.parent().filter(|d| d.exists()) {
                check_run_dir(dir)?;
            }
            Ok(path)
        }
    }
}

/// A default run directory is trusted only if it is a real directory of
/// this user's that nobody else may write: otherwise whoever made it could
/// plant a socket of their own daemon, or a symlink for the log.
pub fn check_run_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if !m.is_dir() {
        return Err(format!(
            "run directory {} is not a directory",
            dir.display()
        ));
    }
    if m.uid() != me {
        return Err(format!(
            "run directory {} is owned by uid {}, not by uid {me}",
            dir.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "run directory {} is writable by others (mode {:o})",
            dir.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// A server address as `IFNET_SERVER` and `ifnetd -s` take it, like rump's
/// RUMP_SERVER: `unix:///abs`, `unix://rel`, QEMU's `unix:/abs` and
/// `unix:rel`, or a plain path. A path whose first component still starts
/// with `unix:` is a misspelt address, never a directory to create.
pub fn parse_server(s: &str) -> Result<PathBuf, String> {
    let path = if let Some(rest) = s.strip_prefix("unix://") {
        rest
    } else if let Some(rest) = s.strip_prefix("unix:") {
        rest
    } else if let Some((scheme, _)) = s.split_once("://") {
        return Err(format!(
            "{SERVER_ENV}: unsupported scheme {scheme}:// (only unix://)"
        ));
    } else {
        s
    };
    if path.is_empty() {
        return Err(format!("{SERVER_ENV}: empty path in {s}"));
    }
    if path.starts_with("unix:") {
        return Err(format!("{SERVER_ENV}: malformed address {s}"));
    }
    Ok(PathBuf::from(path))
}

/// `/run/ifnet/ifnetd.sock` for root, `$XDG_RUNTIME_DIR/ifnet/ifnetd.sock`
/// otherwise (`/tmp/ifnet-UID/` when XDG_RUNTIME_DIR is unset).
pub fn default_path() -> PathBuf {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/ifnet/ifnetd.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => Path::new(&d).join("ifnet/ifnetd.sock"),
        _ => PathBuf::from(format!("/tmp/ifnet-{uid}/ifnetd.sock")),
    }
}

/// A connection to an `ifnetd`.
pub struct Client {
    stream: UnixStream,
}

/// Why no connection could be made, with what to tell the user.
#[derive(Debug)]
pub struct ConnectError {
    pub path: PathBuf,
    pub error: String,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot reach ifnetd at {}: {}",
            self.path.display(),
            self.error
        )
    }
}

impl Client {
    /// Connect to the daemon at `path` without starting one.
    pub fn connect(path: &Path) -> io::Result<Client> {
        Ok(Client {
            stream: UnixStream::connect(path)?,
        })
    }

    /// Connect to the daemon named by the environment, starting it in the
    /// background if none answers (unless IFNET_NO_AUTOSTART=1).
    pub fn connect_default() -> Result<Client, ConnectError> {
        let path = server_path().map_err(|error| ConnectError {
            path: PathBuf::new(),
            error,
        })?;
        let fail = |e: &io::Error| ConnectError {
            path: path.clone(),
            error: io_message(e),
        };
        match Client::connect(&path) {
            Ok(c) => return Ok(c),
            Err(e) if !daemon_absent(&e) || !autostart_enabled() => return Err(fail(&e)),
            Err(_) => {}
        }
        start_daemon(&path).map_err(|e| fail(&e))?;
        Client::connect(&path).map_err(|e| fail(&e))
    }
}

/// An I/O error in NetBSD's words when it carries an errno.
fn io_message(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => Errno(n).desc(),
        None => e.to_string(),
    }
}

/// The errors that mean "nobody serves this path".
fn daemon_absent(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ECONNREFUSED)
    )
}

fn autostart_enabled() -> bool {
    std::env::var(NO_AUTOSTART_ENV).map_or(true, |v| v != "1")
}

/// The ifnetd binary: $IFNETD, beside the running tool, or from PATH.
fn ifnetd_binary() -> PathBuf {
    if let Some(p) = std::env::var_os(IFNETD_ENV) {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        let beside = exe.with_file_name("ifnetd");
        if beside.exists() {
            return beside;
        }
    }
    PathBuf::from("ifnetd")
}

/// Start `ifnetd` in the background on `path`; returns once it serves.
/// A daemon that another client started at the same moment is fine.
fn start_daemon(path: &Path) -> io::Result<()> {
    let bin = ifnetd_binary();
    let out = Command::new(&bin)
        .arg("-s")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("starting {}: {e}", bin.display())))?;
    if out.status.success() || UnixStream::connect(path).is_ok() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr);
    Err(io::Error::other(format!(
        "could not start {}: {}",
        bin.display(),
        msg.trim()
    )))
}

impl Ioctl for Client {
    fn ioctl(&mut self, req: Request) -> Response {
        wire::write_request(&mut self.stream, &req).map_err(|e| Errno::from_io(&e))?;
        match wire::read_response(&mut self.stream) {
            Ok(r) => r,
            Err(wire::WireError::Eof) => Err(Errno::EPROTO),
            Err(e) => Err(e.into()),
        }
    }
}

/// A connection made on the first request, so that usage errors and
/// `--help` need no daemon. If none can be reached, `unreachable` decides
/// (the tools say why and exit 1, as NetBSD's do when socket(2) fails):
/// the library itself never ends the process.
pub struct Lazy {
    unreachable: fn(ConnectError) -> !,
    client: Option<Client>,
}

impl Lazy {
    pub fn new(unreachable: fn(ConnectError) -> !) -> Lazy {
        Lazy {
            unreachable,
            client: None,
        }
    }
}

impl Ioctl for Lazy {
    fn ioctl(&mut self, req: Request) -> Response {
        if self.client.is_none() {
            match Client::connect_default() {
                Ok(c) => self.client = Some(c),
                Err(e) => (self.unreachable)(e),
            }
        }
        self.client.as_mut().expect("connected above").ioctl(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_syntax() {
        assert_eq!(
            parse_server("unix:///run/x.sock").unwrap(),
            PathBuf::from("/run/x.sock")
        );
        assert_eq!(
            parse_server("unix://rel/x").unwrap(),
            PathBuf::from("rel/x")
        );
        assert_eq!(parse_server("/tmp/a").unwrap(), PathBuf::from("/tmp/a"));
        assert!(parse_server("tcp://1.2.3.4:5").is_err());
        assert!(parse_server("unix://").is_err());
        // QEMU's spelling: one slash is an absolute path, never `unix:/…`
        // taken as a relative directory.
        assert_eq!(
            parse_server("unix:/abs/x").unwrap(),
            PathBuf::from("/abs/x")
        );
        assert_eq!(parse_server("unix:rel").unwrap(), PathBuf::from("rel"));
        assert!(parse_server("unix:").is_err());
        assert!(parse_server("unix:unix:/x").is_err());
    }
}
