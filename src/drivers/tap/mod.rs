//! tap(4): an Ethernet interface with a control device for one program.
//!
//! The control device of `tapN` is the Unix stream socket `tapN` in the
//! daemon's run directory, `SOCKET.d` beside its control socket `SOCKET`
//! (in-process, without a run directory: in a private temporary
//! directory; `linkstr:` shows the path either way).
//! Framing is QEMU's `-netdev stream` (see [`framing`]). Connecting to the
//! cloning socket `tap` attaches the client to the lowest `tapN` without
//! one, creating the lowest unused unit only when every tap is busy, as
//! FreeBSD's (daemon only: the socket lives in the run directory).
//!
//! Choices, after FreeBSD's tap(4):
//! - Opening the control device marks the interface up (as FreeBSD with
//!   `net.link.tap.up_on_open=1`), so a VM's link works without ifconfig.
//! - On the last close the interface goes down and its addresses are
//!   deleted, unless IFF_LINK0 is set; queued frames are thrown away.
//! - With no client, frames the interface transmits are dropped and
//!   counted as output errors.
//! - Media "Ethernet autoselect", active and link up while a client is
//!   attached.
//! - A template for clones (ifnet's own): a tap the cloning socket makes
//!   joins the bridge the class names (`ifnetd --tap-bridge`), so that a
//!   VM that finds every tap busy still lands on the switch.
//! - MAC: NetBSD's tap scheme, f2:0b:a4 and three random bytes.
//! - Information requests: TAPGIFNAME is a control request naming the
//!   client's socket (see `client::tap`): a socket has no
//!   ioctls of its own;
//!   TAPGIFINFO is the interface's status; FIONREAD/FIONBIO are the
//!   client's own socket's.
//!
//! The device's reactor sources and the kernel meet through
//! [`KernelHook`]: a poll records what happened in
//! `Softc::events` and asks for a sync; [`Driver::sync`] turns it into
//! requests the kernel runs (IFF_UP set or cleared).

mod cdev;
pub mod framing;

use crate::cloner::{IfClone, KernelEnv, KernelHook};
use crate::drivers::ether;
use crate::drivers::kthread::random_bytes;
use crate::ifnet::{Driver, IfState};
use crate::ioctl::{BridgeReq, Errno, IfMedia, LinkState, Mac, Request, iff};
use crate::reactor::{Handler, Registration, io_group};
use cdev::{EV_CLOSED, EV_OPENED, Softc, TapTx};
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::AcqRel;
use std::sync::{Arc, Mutex, Weak};

/// Largest MTU: a frame (MTU + 14) must fit the framing's largest record.
pub const TAP_MAXMTU: u32 = (framing::TAP_MAXFRAME - 14) as u32;
/// Name of the cloning socket.
pub const TAP_CLONE: &str = "tap";

/// NetBSD's tap scheme: f2:0b:a4 and three random bytes.
pub fn tap_mac() -> std::io::Result<Mac> {
    let r = random_bytes::<3>()?;
    Ok([0xf2, 0x0b, 0xa4, r[0], r[1], r[2]])
}

/// Where the control sockets go.
enum SockDir {
    Run(PathBuf),
    /// Ours, removed with the class.
    Temp(PathBuf),
}

impl SockDir {
    fn path(&self) -> &Path {
        match self {
            SockDir::Run(p) | SockDir::Temp(p) => p,
        }
    }
}

impl Drop for SockDir {
    fn drop(&mut self) {
        if let SockDir::Temp(p) = self {
            let _ = std::fs::remove_dir(p);
        }
    }
}

type Units = Arc<Mutex<HashMap<u32, Weak<Softc>>>>;

#[derive(Default)]
pub struct TapClone {
    /// The bridge that taps made by the cloning socket join.
    clone_bridge: Option<String>,
    hook: Mutex<Option<KernelHook>>,
    dir: Mutex<Option<Arc<SockDir>>>,
    /// The interfaces, for the cloning socket to hand clients to.
    units: Units,
    cloner: Mutex<Option<(Registration, Arc<Cloning>, PathBuf)>>,
}

/// Bind a control socket, replacing a stale one (the daemon's lock file
/// says no other daemon serves this directory).
fn bind(path: &Path, env: &KernelEnv) -> Result<UnixListener, Errno> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
    let l = UnixListener::bind(path).map_err(|e| {
        crate::log::warn(&format!("cannot bind {}: {e}", path.display()));
        Errno::from(e)
    })?;
    // As the control socket: by default the daemon's user (and root) only.
    let mode = env.socket_mode.unwrap_or(0o600);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

impl TapClone {
    /// The class, with the taps its cloning socket makes joining `bridge`.
    pub fn with_clone_bridge(bridge: Option<String>) -> TapClone {
        let mut c = TapClone::default();
        c.clone_bridge = bridge;
        c
    }

    fn sock_dir(&self, env: &KernelEnv) -> Result<Arc<SockDir>, Errno> {
        let mut dir = self.dir.lock().unwrap();
        if let Some(d) = dir.as_ref() {
            return Ok(d.clone());
        }
        let d = Arc::new(match &env.run_dir {
            Some(p) => SockDir::Run(p.clone()),
            None => {
                let tmpl = std::env::temp_dir().join("ifnet-tap.XXXXXX");
                SockDir::Temp(nix::unistd::mkdtemp(&tmpl)?)
            }
        });
        *dir = Some(d.clone());
        Ok(d)
    }
}

impl IfClone for TapClone {
    fn name(&self) -> &'static str {
        "tap"
    }

    /// Serve the cloning socket `tap` in the run directory.
    fn attach(&self, env: &KernelEnv, hook: &KernelHook) {
        *self.hook.lock().unwrap() = Some(hook.clone());
        let Some(run) = &env.run_dir else { return };
        let path = run.join(TAP_CLONE);
        let Ok(listener) = bind(&path, env) else {
            return;
        };
        let cloning = Arc::new(Cloning {
            listener,
            hook: hook.clone(),
            units: self.units.clone(),
            bridge: self.clone_bridge.clone(),
        });
        let reg = env.reactor().and_then(|r| {
            r.register(Some(cloning.listener.as_fd()), cloning.clone())
                .map_err(Errno::from)
        });
        match reg {
            Ok(reg) => *self.cloner.lock().unwrap() = Some((reg, cloning, path)),
            Err(e) => crate::log::warn(&format!("tap: cloning socket: {e}")),
        }
    }

    fn detach(&self) {
        let cloner = self.cloner.lock().unwrap().take();
        if let Some((reg, cloning, path)) = cloner {
            drop(reg);
            drop(cloning);
            let _ = std::fs::remove_file(path);
        }
    }

    fn create(&self, env: &KernelEnv, ifs: &mut IfState) -> Result<Box<dyn Driver>, Errno> {
        ifs.flags = iff::BROADCAST | iff::SIMPLEX | iff::MULTICAST;
        ifs.mtu = 1500;
        ifs.set_lladdr(tap_mac()?);
        ifs.link_state = LinkState::Down;
        let hook = self
            .hook
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(KernelHook::detached);
        let dir = self.sock_dir(env)?;
        let path = dir.path().join(&ifs.name);
        let listener = bind(&path, env)?;
        let sc = env
            .reactor()
            .and_then(|r| Softc::start(&ifs.name, ifs.port.clone(), hook, ifs.mtu, listener, &r))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&path);
            })?;
        ifs.port.set_transmit(Some(Arc::new(TapTx(sc.clone()))));
        self.units
            .lock()
            .unwrap()
            .insert(ifs.unit, Arc::downgrade(&sc));
        Ok(Box::new(Tap {
            unit: ifs.unit,
            sc,
            open: true,
            path,
            _dir: dir,
            units: self.units.clone(),
        }))
    }
}

impl Drop for TapClone {
    fn drop(&mut self) {
        self.detach();
    }
}

/// The cloning socket, a reactor source.
struct Cloning {
    listener: UnixListener,
    hook: KernelHook,
    units: Units,
    bridge: Option<String>,
}

/// Accept on the cloning socket: as FreeBSD's, hand the client to the
/// lowest tapN that has none; only when every one is busy have the kernel
/// make the lowest unused unit (without waiting for it here) and hand it
/// the client. (A client connecting to the new tapN's own socket in
/// between would win it; this one would then be closed as a second open.)
impl Handler for Cloning {
    fn poll(&self, _now: std::time::Instant) -> Option<std::time::Instant> {
        while let Ok((conn, _)) = self.listener.accept() {
            let Some(conn) = self.hand_to_unused(conn) else {
                continue;
            };
            let units = self.units.clone();
            let bridge = self.bridge.clone();
            self.hook.create_lowest(
                TAP_CLONE,
                Box::new(move |r| {
                    let name = match r {
                        Ok(n) => n,
                        Err(e) => {
                            crate::log::warn(&format!("tap: cloning: {e}"));
                            return;
                        }
                    };
                    let unit = crate::cloner::split_name(&name).map(|(_, u)| u);
                    let sc = unit.and_then(|u| {
                        units
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(&u)
                            .and_then(Weak::upgrade)
                    });
                    if let Some(sc) = sc {
                        crate::log::info(&format!("tap: cloned {name}"));
                        // Taken by the sync that the client's arrival asks
                        // for (a sync of our own could take its event early).
                        *sc.join.lock().unwrap_or_else(|e| e.into_inner()) = bridge;
                        sc.hand_over(conn);
                    }
                }),
            );
        }
        None
    }
}

impl Cloning {
    /// The client to the lowest existing tap without one; back if none.
    fn hand_to_unused(&self, mut conn: UnixStream) -> Option<UnixStream> {
        let mut units: Vec<(u32, Arc<Softc>)> = self
            .units
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(u, w)| Some((*u, w.upgrade()?)))
            .collect();
        units.sort_by_key(|(u, _)| *u);
        for (_, sc) in units {
            match sc.hand_over_if_unused(conn) {
                Ok(()) => {
                    crate::log::info(&format!("tap: reused {}", sc.name));
                    return None;
                }
                Err(c) => conn = c,
            }
        }
        Some(conn)
    }
}

pub struct Tap {
    unit: u32,
    sc: Arc<Softc>,
    /// The device is served (until destroy).
    open: bool,
    path: PathBuf,
    /// Keeps a private socket directory until its last interface goes.
    _dir: Arc<SockDir>,
    units: Units,
}

impl Tap {
    fn close(&mut self) {
        if std::mem::take(&mut self.open) {
            self.sc.stop();
            self.sc.port.set_transmit(None);
            let _ = std::fs::remove_file(&self.path);
            self.units.lock().unwrap().remove(&self.unit);
        }
    }
}

impl Driver for Tap {
    fn control_peer(&self) -> Option<Vec<u8>> {
        self.sc.peer()
    }

    fn stop(&mut self, ifs: &mut IfState) {
        self.sc.flush();
        ifs.set_flags(ifs.flags & !iff::RUNNING);
    }

    fn linkstr(&self) -> Option<String> {
        Some(self.path.display().to_string())
    }

    fn media(&self, _ifs: &IfState) -> Option<IfMedia> {
        Some(ether::autoselect_media(self.sc.attached()))
    }

    fn set_media(&mut self, _ifs: &mut IfState, media: &str) -> Result<(), Errno> {
        ether::set_autoselect_media(media)
    }

    fn set_bridge(&mut self, ifs: &mut IfState, bridge: Option<u32>) {
        if self.open
            && let Err(e) = self.sc.move_to(io_group(bridge))
        {
            crate::log::warn(&format!("{}: {e}", ifs.name));
        }
    }

    fn set_mtu(&mut self, _ifs: &mut IfState, mtu: u32) -> Result<(), Errno> {
        if !(68..=TAP_MAXMTU).contains(&mtu) {
            return Err(Errno::EINVAL);
        }
        self.sc.mtu.store(mtu, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn destroy(&mut self, _ifs: &mut IfState) -> Result<(), Errno> {
        self.close();
        Ok(())
    }

    /// The control device was opened or closed.
    fn txqueue(&self) -> Option<u32> {
        u32::try_from(self.sc.queue_bytes()).ok()
    }

    fn set_txqueue(&mut self, _ifs: &mut IfState, bytes: u32) -> Result<(), Errno> {
        self.sc.set_queue_bytes(bytes as usize)
    }

    fn sync(&mut self, ifs: &mut IfState) -> Vec<Request> {
        let ev = self.sc.events.swap(0, AcqRel);
        let attached = self.sc.attached();
        ifs.link_state = if attached {
            LinkState::Up
        } else {
            LinkState::Down
        };
        let mut reqs = Vec::new();
        let mut flags = ifs.flags;
        if ev & EV_CLOSED != 0 && flags & iff::LINK0 == 0 {
            // if_purgeaddrs; the link-local address comes back on next up.
            ifs.inet.clear();
            ifs.inet6.clear();
            ifs.in6_attached = false;
            if flags & iff::UP != 0 {
                flags &= !iff::UP;
                reqs.push(Request::SetIfFlags {
                    name: ifs.name.clone(),
                    flags,
                });
            }
        }
        if let Some(bridge) = self.sc.join.lock().unwrap().take() {
            reqs.push(Request::SetDrvSpec {
                name: bridge,
                req: BridgeReq::Add {
                    member: ifs.name.clone(),
                }
                .into(),
            });
        }
        if ev & EV_OPENED != 0 && attached && flags & iff::UP == 0 {
            flags |= iff::UP;
            reqs.push(Request::SetIfFlags {
                name: ifs.name.clone(),
                flags,
            });
        }
        reqs
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_scheme() {
        let m = tap_mac().unwrap();
        assert_eq!(m[..3], [0xf2, 0x0b, 0xa4]);
    }
}
