//! `ifnetd`: one [`Kernel`] served on a Unix stream socket.
//!
//! One thread per client (requests are short; a slow client holds only its
//! own thread). A lock file beside the socket makes sure a single daemon
//! serves a path; a socket file left by a killed daemon is replaced.

use crate::cloner::KernelEnv;
use crate::ioctl::{Errno, Request, Response, wire};
use crate::{Kernel, log};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;

/// More clients than this at once are turned away (each holds a thread).
pub const MAX_CLIENTS: usize = 256;

/// Why the daemon stops.
#[derive(Debug)]
pub enum Stop {
    Signal(i32),
    Request,
}

pub struct Server {
    pub path: PathBuf,
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
    /// Claim `path` and listen on it with permissions `mode`, for a
    /// kernel made with `env` (its run_dir and socket_mode are set here).
    pub fn bind(path: &Path, mode: u32, env: KernelEnv) -> Result<Server, ServeError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            fs::create_dir_all(dir).map_err(|e| err("cannot create", dir, e))?;
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
        }
        let lock_path = lock_path(path);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| err("cannot open", &lock_path, e))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            ServeError(format!(
                "another ifnetd is already serving {} (lock {} is held)",
                path.display(),
                lock_path.display()
            ))
        })?;
        // We hold the lock, so a socket file here is stale: its daemon died.
        match fs::remove_file(path) {
            Ok(()) => log::info(&format!("removed stale socket {}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err("cannot remove stale socket", path, e)),
        }
        // The kernel first: once the control socket answers, the drivers'
        // sockets (tap) are there too.
        let env = KernelEnv {
            run_dir: path.parent().map(Path::to_path_buf),
            socket_mode: Some(mode),
            ..env
        };
        let kernel = Arc::new(Kernel::new(env));
        let listener = UnixListener::bind(path).map_err(|e| err("cannot bind", path, e))?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| err("cannot chmod", path, e))?;
        Ok(Server {
            path: path.to_path_buf(),
            socket_id: file_id(path).unwrap_or_default(),
            listener,
            _lock: lock,
            kernel,
        })
    }

    pub fn kernel(&self) -> &Arc<Kernel> {
        &self.kernel
    }

    /// Accept clients on a background thread; a `Shutdown` request is
    /// reported on `stop`.
    pub fn spawn_accept(&self, stop: Sender<Stop>) -> io::Result<()> {
        let listener = self.listener.try_clone()?;
        let kernel = self.kernel.clone();
        let clients = Arc::new(AtomicUsize::new(0));
        let (uid, gid, mode) = socket_owner(&self.path);
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    if !peer_allowed(&conn, uid, gid, mode) {
                        log::warn("refused a client not allowed by the socket's mode");
                        continue;
                    }
                    if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                        clients.fetch_sub(1, Ordering::SeqCst);
                        log::warn("too many clients; refusing one");
                        continue;
                    }
                    let (kernel, stop, clients) = (kernel.clone(), stop.clone(), clients.clone());
                    let spawned =
                        std::thread::Builder::new()
                            .name("client".into())
                            .spawn(move || {
                                serve_client(conn, &kernel, &stop);
                                clients.fetch_sub(1, Ordering::SeqCst);
                            });
                    if spawned.is_err() {
                        log::warn("cannot spawn a client thread");
                    }
                }
            })?;
        Ok(())
    }

    /// Destroy every interface and remove the socket.
    pub fn shutdown(self) {
        self.kernel.shutdown();
        if file_id(&self.path) == Some(self.socket_id) {
            let _ = fs::remove_file(&self.path);
        }
        log::info("stopped");
    }
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
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
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
fn peer_allowed(conn: &UnixStream, uid: u32, gid: u32, mode: u32) -> bool {
    let Some(p) = Peer::of(conn) else {
        return false;
    };
    p.uid == 0
        || p.uid == uid
        || ((p.gid == gid || p.groups.contains(&gid)) && mode & 0o020 != 0)
        || mode & 0o002 != 0
}

/// Answer one client's requests until it goes away. Garbage ends only this
/// client's connection.
fn serve_client(mut conn: UnixStream, kernel: &Kernel, stop: &Sender<Stop>) {
    let peer = Peer::of(&conn);
    loop {
        let req = match wire::read_request(&mut conn) {
            Ok(r) => r,
            Err(wire::WireError::Eof) => return,
            Err(e) => {
                log::debug(&format!("client sent a bad message: {e}"));
                let errno: Errno = e.into();
                let _ = wire::write_response(&mut conn, &Err(errno));
                return;
            }
        };
        log::debug(&format!("{req:?}"));
        let shutdown = req == Request::Shutdown;
        let resp = match (&req, &peer) {
            // A path the client named is opened with the client's rights.
            (Request::SetLinkStr { .. }, Some(p)) => as_client(p, || kernel.ioctl(req)),
            _ => kernel.ioctl(req),
        };
        if wire::write_response(&mut conn, &resp).is_err() {
            return;
        }
        if shutdown {
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

/// This thread's supplementary groups.
fn thread_groups() -> Vec<libc::gid_t> {
    // SAFETY: a count query, then a fill of at most that many.
    unsafe {
        let n = libc::getgroups(0, std::ptr::null_mut());
        let mut g = vec![0; n.max(0) as usize];
        let n = libc::getgroups(g.len() as libc::c_int, g.as_mut_ptr());
        g.truncate(n.max(0) as usize);
        g
    }
}

/// setgroups(2) for this thread only. The raw system call: glibc's wrapper
/// applies it to every thread of the process, as POSIX wants, which would
/// hand one client's groups to all the others.
fn set_thread_groups(groups: &[libc::gid_t]) -> Result<(), Errno> {
    // SAFETY: the kernel reads `groups.len()` gids from the slice.
    let r = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error().into())
    }
}

/// The daemon's own filesystem identity, put back on drop (also if the
/// request panics).
struct Restore {
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: plain syscalls on this thread's credentials.
        unsafe {
            libc::setfsuid(self.uid);
            libc::setfsgid(self.gid);
        }
        let _ = set_thread_groups(&self.groups);
    }
}

/// Run `f` with this thread's filesystem uid and gid and its supplementary
/// groups set to the client's, so that files opened for it (a shmif bus
/// named by `linkstr`) are opened with no more rights than the client has:
/// a client that may not write /etc/passwd cannot make the daemon map it,
/// and a client in a bus file's group may use it. Linux's fsuid, fsgid
/// and groups are per thread; capabilities other than the filesystem ones
/// (CAP_NET_ADMIN for TAPs) are kept.
fn as_client(peer: &Peer, f: impl FnOnce() -> Response) -> Response {
    let me = Restore {
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        groups: thread_groups(),
    };
    if (peer.uid, peer.gid, &peer.groups) == (me.uid, me.gid, &me.groups) {
        return f();
    }
    // An unprivileged daemon cannot take on anyone's groups, and opens
    // with its own rights as before; a root daemon that kept its own
    // groups would lend them (root's group) to the client: refuse.
    if let Err(e) = set_thread_groups(&peer.groups)
        && me.uid == 0
    {
        return Err(e);
    }
    // SAFETY: plain syscalls on this thread's credentials; `me` restores
    // them.
    unsafe {
        libc::setfsgid(peer.gid);
        libc::setfsuid(peer.uid);
    }
    let r = f();
    drop(me);
    r
}
