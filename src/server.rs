//! `ifnetd`: one [`Kernel`] served on a Unix stream socket.
//!
//! One thread per client (requests are short; a slow client holds only its
//! own thread). A lock file beside the socket makes sure a single daemon
//! serves a path; a socket file left by a killed daemon is replaced.

use crate::cloner::{Cloners, KernelEnv};
use crate::ioctl::{Errno, Request, wire};
use crate::kernel::Kernel;
use crate::log;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;

/// More clients than this at once are turned away (each holds a thread).
pub const MAX_CLIENTS: usize = 256;
/// Of those, what one uid other than root and the socket's owner may hold,
/// and what is kept for root and the owner, so that idle connections of
/// users admitted by `-m` cannot lock the administrator out.
pub const MAX_CLIENTS_PER_UID: usize = 32;
pub const RESERVED_CLIENTS: usize = 32;
/// A client other than root or the owner that sends nothing for this long
/// is disconnected.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Counts the connections held, per uid, against the limits above.
struct Admission {
    owner: u32,
    held: std::sync::Mutex<std::collections::HashMap<u32, usize>>,
}

/// One admitted connection; its slot is given back on drop.
struct Ticket {
    admission: Arc<Admission>,
    uid: u32,
}

impl Admission {
    fn new(owner: u32) -> Admission {
        Admission {
            owner,
            held: Default::default(),
        }
    }

    fn trusted(&self, uid: u32) -> bool {
        uid == 0 || uid == self.owner
    }

    fn admit(self: &Arc<Self>, uid: u32) -> Option<Ticket> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = held.values().sum();
        let mine = held.get(&uid).copied().unwrap_or(0);
        let ok = if self.trusted(uid) {
            total < MAX_CLIENTS
        } else {
            let others: usize = held
                .iter()
                .filter(|(u, _)| !self.trusted(**u))
                .map(|(_, n)| n)
                .sum();
            mine < MAX_CLIENTS_PER_UID && others < MAX_CLIENTS - RESERVED_CLIENTS
        };
        if !ok {
            return None;
        }
        *held.entry(uid).or_default() += 1;
        Some(Ticket {
            admission: self.clone(),
            uid,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut held = self
            .admission
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.uid);
            }
        }
    }
}

/// Exponential pause after accept(2) fails (EMFILE, ENFILE, ENOMEM…).
#[derive(Default)]
struct Backoff {
    wait_ms: u64,
}

impl Backoff {
    fn failed(&mut self, e: &io::Error) {
        self.wait_ms = (self.wait_ms * 2).clamp(1, 500);
        if self.wait_ms == 1 {
            log::warn(&format!("accept: {e}; backing off"));
        }
        std::thread::sleep(std::time::Duration::from_millis(self.wait_ms));
    }

    fn reset(&mut self) {
        self.wait_ms = 0;
    }
}

/// Why the daemon stops.
#[derive(Debug)]
pub enum Stop {
    Signal(i32),
    Request,
}

/// Where the daemon keeps its configuration (`ifnetd -S`).
pub trait StateStore: Send + Sync {
    /// Before a request that changes the configuration: make sure the
    /// state it makes can be written. An error fails the request before
    /// anything changes (a full disk: ENOSPC).
    fn reserve(&self) -> Result<(), Errno>;

    /// After the change, before the reply: write the configuration `ctl`
    /// answers for. An error fails the request with that errno; the change
    /// stays in memory and is in the next state written (see ifnetd(8),
    /// STATE).
    fn write(&self, ctl: &mut dyn crate::ioctl::Ioctl) -> Result<(), Errno>;
}

/// Requests that change the configuration run one at a time with their
/// state write, so that each reply follows a state that holds its change.
struct Persist {
    /// Held across a change and its write; `true` once the daemon stops:
    /// what stopping destroys is not a change to keep.
    lock: std::sync::Mutex<bool>,
    store: Box<dyn StateStore>,
}

impl Persist {
    /// Write the state, unless the daemon is stopping.
    fn write_now(&self, ctl: &mut dyn crate::ioctl::Ioctl) -> Result<(), Errno> {
        let stopped = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if *stopped {
            return Err(Errno(libc::ESHUTDOWN));
        }
        self.store.write(ctl)
    }
}

pub struct Server {
    pub path: PathBuf,
    persist: Option<Arc<Persist>>,
    /// (device, inode) of the socket we bound: only that file is ours to
    /// remove on the way out, not one a later daemon bound at the same path.
    socket_id: (u64, u64),
    listener: UnixListener,
    _lock: Flock<File>,
    kernel: Arc<Kernel>,
}

/// An error with what the user should read.
#[derive(Debug)]
pub struct ServeError(pub String);

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(what: &str, path: &Path, e: impl std::fmt::Display) -> ServeError {
    ServeError(format!("{what} {}: {e}", path.display()))
}

impl Server {
    /// Claim `path` and listen on it with permissions `mode`, serving a
    /// kernel made with `env` (its run_dir and socket_mode are set here)
    /// and the interface classes `cloners`.
    pub fn bind(
        path: &Path,
        mode: u32,
        env: KernelEnv,
        cloners: Cloners,
    ) -> Result<Server, ServeError> {
        Server::bind_or_take(path, mode, env, cloners, None)
    }

    /// As [`Server::bind`], but serve `listener`, a socket a service
    /// manager bound at `path` and passed to us: it stays the manager's
    /// (never removed, its mode left as it made it).
    pub fn bind_or_take(
        path: &Path,
        mode: u32,
        env: KernelEnv,
        cloners: Cloners,
        listener: Option<UnixListener>,
    ) -> Result<Server, ServeError> {
        prepare_socket_dir(path)?;
        let lock_path = lock_path(path);
        let lock_file =
            open_own_file(&lock_path, false).map_err(|e| err("cannot open", &lock_path, e))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            ServeError(format!(
                "another ifnetd is already serving {} (lock {} is held)",
                path.display(),
                lock_path.display()
            ))
        })?;
        // We hold the lock, so a socket file here is stale: its daemon died.
        // (Unless a service manager made it and passed it to us.)
        if listener.is_none() {
            match fs::remove_file(path) {
                Ok(()) => log::info(&format!("removed stale socket {}", path.display())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(err("cannot remove stale socket", path, e)),
            }
        }
        // The drivers' sockets (tap) go in a directory of this daemon's
        // own, so that daemons sharing a socket directory never meet.
        let run_dir = run_dir(path);
        prepare_run_dir(&run_dir)?;
        // The kernel first: once the control socket answers, the drivers'
        // sockets are there too.
        let env = KernelEnv {
            run_dir: Some(run_dir),
            socket_mode: Some(mode),
            ..env
        };
        let kernel = Arc::new(Kernel::new(env, cloners));
        let (listener, socket_id) = match listener {
            // (0, 0) is no file: shutdown leaves the manager's socket.
            Some(l) => (l, (0, 0)),
            None => {
                let l = UnixListener::bind(path).map_err(|e| err("cannot bind", path, e))?;
                fs::set_permissions(path, fs::Permissions::from_mode(mode))
                    .map_err(|e| err("cannot chmod", path, e))?;
                (l, file_id(path).unwrap_or_default())
            }
        };
        Ok(Server {
            path: path.to_path_buf(),
            persist: None,
            socket_id,
            listener,
            _lock: lock,
            kernel,
        })
    }

    pub fn kernel(&self) -> &Arc<Kernel> {
        &self.kernel
    }

    /// Keep the configuration in `store`: room reserved before every
    /// request that changes it, the state written after, before the reply
    /// (see [`StateStore`]). Set before [`Server::spawn_accept`].
    pub fn set_persist(&mut self, store: Box<dyn StateStore>) {
        let p = Arc::new(Persist {
            lock: std::sync::Mutex::new(false),
            store,
        });
        // What a driver changes by itself (a tap going down when its
        // client leaves) is written too, in turn with the requests.
        let weak = Arc::downgrade(&p);
        self.kernel.set_on_sync_change(Box::new(move |k| {
            if let Some(p) = weak.upgrade() {
                let _ = p.write_now(&mut { k });
            }
        }));
        self.persist = Some(p);
    }

    /// Write the state now, in turn with the requests (after changes made
    /// in-process, as at start).
    pub fn persist_now(&self) -> Result<(), Errno> {
        match &self.persist {
            Some(p) => p.write_now(&mut &*self.kernel),
            None => Ok(()),
        }
    }

    /// Accept clients on a background thread; a `Shutdown` request is
    /// reported on `stop`.
    pub fn spawn_accept(&self, stop: Sender<Stop>) -> io::Result<()> {
        let listener = self.listener.try_clone()?;
        let kernel = self.kernel.clone();
        let persist = self.persist.clone();
        let (uid, gid, mode) = socket_owner(&self.path);
        let admission = Arc::new(Admission::new(uid));
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || {
                let mut backoff = Backoff::default();
                for conn in listener.incoming() {
                    let conn = match conn {
                        Ok(c) => c,
                        Err(e) => {
                            // Out of descriptors: wait for some to be
                            // closed rather than spin on the listener.
                            backoff.failed(&e);
                            continue;
                        }
                    };
                    backoff.reset();
                    let Some(peer) = Peer::of(&conn) else {
                        continue;
                    };
                    if !peer_allowed(&peer, uid, gid, mode) {
                        log::warn("refused a client not allowed by the socket's mode");
                        continue;
                    }
                    let Some(ticket) = admission.admit(peer.uid) else {
                        log::warn(&format!(
                            "too many clients of uid {}; refusing one",
                            peer.uid
                        ));
                        continue;
                    };
                    if !admission.trusted(peer.uid) {
                        let _ = conn.set_read_timeout(Some(IDLE_TIMEOUT));
                    }
                    let (kernel, stop) = (kernel.clone(), stop.clone());
                    let persist = persist.clone();
                    let spawned =
                        std::thread::Builder::new()
                            .name("client".into())
                            .spawn(move || {
                                serve_client(conn, peer, &kernel, persist.as_deref(), &stop);
                                drop(ticket);
                            });
                    if spawned.is_err() {
                        log::warn("cannot spawn a client thread");
                    }
                }
            })?;
        Ok(())
    }

    /// Destroy every interface and remove the socket. The state file keeps
    /// the configuration from before.
    pub fn shutdown(self) {
        if let Some(p) = &self.persist {
            *p.lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        }
        self.kernel.shutdown();
        if file_id(&self.path) == Some(self.socket_id) {
            let _ = fs::remove_file(&self.path);
        }
        // Empty now that the drivers are gone; left alone if not.
        let _ = fs::remove_dir(run_dir(&self.path));
        log::info("stopped");
    }
}

/// Make the directory of socket `path` if it is missing, and refuse one
/// where others could replace the socket.
pub fn prepare_socket_dir(path: &Path) -> Result<(), ServeError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if !dir.exists() {
        // Only the daemon's user may write where its socket is.
        let m = if nix::unistd::geteuid().is_root() {
            0o755
        } else {
            0o700
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(m)
            .create(dir)
            .map_err(|e| err("cannot create", dir, e))?;
    }
    check_socket_dir(dir)
}

/// A directory that others may write without the sticky bit lets them
/// replace the socket under our clients: refuse it.
fn check_socket_dir(dir: &Path) -> Result<(), ServeError> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(dir).map_err(|e| err("cannot use", dir, e))?;
    if m.mode() & 0o002 != 0 && m.mode() & 0o1000 == 0 {
        return Err(ServeError(format!(
            "{}: writable by others and not sticky; refusing to serve there",
            dir.display()
        )));
    }
    Ok(())
}

/// Open (creating, mode 0600) a file of the daemon's own beside its socket:
/// the lock, the log. Never through a symlink, and never a file someone
/// else owns or has linked elsewhere, even where others may write (/tmp).
pub fn open_own_file(path: &Path, append: bool) -> io::Result<File> {
    use std::os::unix::fs::MetadataExt;
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let m = f.metadata()?;
    let me = nix::unistd::geteuid().as_raw();
    if !m.is_file() || m.uid() != me || m.nlink() != 1 {
        return Err(io::Error::other(format!(
            "not a file of uid {me}'s own (owner {}, {} links)",
            m.uid(),
            m.nlink()
        )));
    }
    Ok(f)
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Wait until no daemon holds the lock of `path` (it has exited), for at
/// most `timeout`. True once it is free.
pub fn wait_stopped(path: &Path, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let free = match File::open(lock_path(path)) {
            Err(_) => true,
            Ok(f) => Flock::lock(f, FlockArg::LockSharedNonblock).is_ok(),
        };
        if free {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

pub fn lock_path(path: &Path) -> PathBuf {
    with_suffix(path, ".lock")
}

/// The directory of the drivers' sockets of the daemon at `path`
/// (`SOCKET.d`: tap(4)'s control devices).
pub fn run_dir(path: &Path) -> PathBuf {
    with_suffix(path, ".d")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Make the run directory, or take over the one a dead predecessor left
/// (we hold the lock): only a real directory of our own that nobody else
/// may write, so that no one can swap a socket under a client.
fn prepare_run_dir(dir: &Path) -> Result<(), ServeError> {
    use std::os::unix::fs::MetadataExt;
    // Searchable by all: the sockets' own modes say who may connect.
    match fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err("cannot create", dir, e)),
    }
    let m = fs::symlink_metadata(dir).map_err(|e| err("cannot use", dir, e))?;
    if !m.is_dir() || m.uid() != nix::unistd::geteuid().as_raw() || m.mode() & 0o022 != 0 {
        return Err(ServeError(format!(
            "{}: not a directory of this user's own that only it may write; refusing to serve there",
            dir.display()
        )));
    }
    Ok(())
}

fn socket_owner(path: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    match fs::metadata(path) {
        Ok(m) => (m.uid(), m.gid(), m.mode()),
        Err(_) => (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
            0o600,
        ),
    }
}

/// SO_PEERCRED check: root, the socket's owner, or whom its mode admits.
/// (The file mode already guards connect(); this also covers a socket
/// whose mode was changed, or one passed to a process in another way.)
fn peer_allowed(p: &Peer, uid: u32, gid: u32, mode: u32) -> bool {
    p.uid == 0
        || p.uid == uid
        || ((p.gid == gid || p.groups.contains(&gid)) && mode & 0o020 != 0)
        || mode & 0o002 != 0
}

/// Answer one client's requests until it goes away. Garbage ends only this
/// client's connection.
fn serve_client(
    mut conn: UnixStream,
    peer: Peer,
    kernel: &Kernel,
    persist: Option<&Persist>,
    stop: &Sender<Stop>,
) {
    loop {
        let req = match wire::read_request(&mut conn) {
            Ok(r) => r,
            Err(wire::WireError::Eof) => return,
            Err(wire::WireError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                log::debug(&format!("client of uid {} idle; disconnected", peer.uid));
                return;
            }
            Err(e) => {
                log::debug(&format!("client sent a bad message: {e}"));
                let errno: Errno = e.into();
                let _ = wire::write_response(&mut conn, &Err(errno));
                return;
            }
        };
        log::debug(&format!("{req:?}"));
        let shutdown = req == Request::Shutdown;
        let persist = persist.filter(|_| req.changes_config());
        let serial = persist.map(|p| p.lock.lock().unwrap_or_else(|e| e.into_inner()));
        let reserved = match (persist, &serial) {
            // Stopping: nothing changes any more.
            (_, Some(stopped)) if **stopped => Err(Errno(libc::ESHUTDOWN)),
            (Some(p), _) => p.store.reserve(),
            _ => Ok(()),
        };
        let resp = match reserved {
            Err(e) => Err(e),
            // Only root and the daemon's own user may stop it.
            Ok(()) if shutdown && !peer.owner() => Err(Errno::EPERM),
            // What is done on the host for the client, with its rights.
            Ok(()) => crate::cred::serving(peer.requester(), || kernel.ioctl(req)),
        };
        let resp = match (persist, resp) {
            (Some(p), Ok(r)) => p.store.write(&mut { kernel }).map(|()| r),
            (_, r) => r,
        };
        drop(serial);
        if wire::write_response(&mut conn, &resp).is_err() {
            return;
        }
        if shutdown && resp.is_ok() {
            let _ = stop.send(Stop::Request);
            return;
        }
    }
}

/// Who a client is, as the kernel saw it when it connected.
struct Peer {
    uid: u32,
    gid: u32,
    /// Supplementary groups (SO_PEERGROUPS); none if the kernel cannot
    /// say, which only ever grants less.
    groups: Vec<libc::gid_t>,
}

impl Peer {
    fn requester(&self) -> crate::cred::Requester {
        crate::cred::Requester {
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.clone(),
        }
    }

    /// Root, or the daemon's own user.
    fn owner(&self) -> bool {
        self.uid == 0 || self.uid == nix::unistd::geteuid().as_raw()
    }

    fn of(conn: &UnixStream) -> Option<Peer> {
        let cred = getsockopt(conn, PeerCredentials).ok()?;
        Some(Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            groups: peer_groups(conn),
        })
    }
}

/// SO_PEERGROUPS (Linux 4.13): the client's groups at connect time, like
/// SO_PEERCRED (no race with a pid reused, as /proc/PID would have).
fn peer_groups(conn: &UnixStream) -> Vec<libc::gid_t> {
    use std::os::fd::AsRawFd;
    // asm-generic value; the libc crate does not export it.
    const SO_PEERGROUPS: libc::c_int = 59;
    const GID: usize = std::mem::size_of::<libc::gid_t>();
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * GID) as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `groups`.
        let r = unsafe {
            libc::getsockopt(
                conn.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let want = len as usize / GID;
        if r == 0 {
            groups.truncate(want);
            return groups;
        }
        // ERANGE: `len` is now the size needed (NGROUPS_MAX is 65536).
        let erange = io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE);
        if !erange || want <= groups.len() || want > 65536 {
            return Vec::new();
        }
        groups.resize(want, 0);
    }
}
