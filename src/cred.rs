//! Whose rights the host-side work of a request runs with.
//!
//! ifnetd may serve clients with fewer rights than its own (`ifnetd -m`).
//! What it does on the host for a client — open the file a `linkstr`
//! names, attach or create a host TAP, change a host device's MTU — it
//! does with that client's rights, never with its own: the serving thread
//! marks whom it serves ([`serving`]), and a driver runs such work under
//! [`as_requester`]. That takes on the client's uid, gid and groups for the
//! calling thread only (Linux keeps credentials per thread; the raw system
//! calls change just this one, where glibc's wrappers would change every
//! thread), which also empties the thread's effective capabilities while a
//! root daemon acts for another user: the kernel's own checks (file modes,
//! tun's owner and group, CAP_NET_ADMIN to create a TAP or set an MTU)
//! then apply to the client. Work that no client asked for (the reactor's,
//! the daemon's start) keeps the daemon's rights.

use crate::ioctl::Errno;
use std::cell::RefCell;

/// A client's identity, as the kernel saw it when it connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requester {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups; none if unknown, which only ever grants less.
    pub groups: Vec<libc::gid_t>,
}

thread_local! {
    static REQUESTER: RefCell<Option<Requester>> = const { RefCell::new(None) };
}

/// Run `f`, a request of `who`, on this thread.
pub fn serving<R>(who: Requester, f: impl FnOnce() -> R) -> R {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            REQUESTER.with(|r| r.borrow_mut().take());
        }
    }
    REQUESTER.with(|r| *r.borrow_mut() = Some(who));
    let _clear = Clear;
    f()
}

/// Run `f` with the rights of the client this thread serves, if any.
/// EPERM-like failures of `f` are then the client's.
pub fn as_requester<R>(f: impl FnOnce() -> Result<R, Errno>) -> Result<R, Errno> {
    let Some(who) = REQUESTER.with(|r| r.borrow().clone()) else {
        return f();
    };
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let groups = thread_groups();
    // The client is the daemon's own user: nothing to take on, nothing to
    // put back.
    if (who.uid, who.gid, &who.groups) == (uid, gid, &groups) {
        return f();
    }
    let me = Own { uid, gid, groups };
    let root = me.uid == 0;
    // An unprivileged daemon cannot take on anyone's groups and acts with
    // its own rights, which are all it has to lend; a root daemon that
    // kept its own groups would lend them (root's group): refuse.
    if let Err(e) = set_thread_groups(&who.groups)
        && root
    {
        return Err(e);
    }
    // SAFETY: raw system calls on this thread's credentials; `me` puts
    // them back on drop, also if `f` panics.
    unsafe {
        if root && who.uid != 0 {
            // The group first, while we may still change it.
            libc::syscall(libc::SYS_setresgid, -1i32, who.gid, -1i32);
            libc::syscall(libc::SYS_setresuid, -1i32, who.uid, -1i32);
        } else {
            libc::setfsgid(who.gid);
            libc::setfsuid(who.uid);
        }
    }
    f()
}

/// The daemon's own credentials on this thread, put back on drop.
struct Own {
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
}

impl Drop for Own {
    fn drop(&mut self) {
        // SAFETY: as in as_requester. Back to an effective uid of 0, the
        // kernel gives the thread its permitted capabilities again; the
        // filesystem ids follow the effective ones.
        unsafe {
            libc::syscall(libc::SYS_setresuid, -1i32, self.uid, -1i32);
            libc::syscall(libc::SYS_setresgid, -1i32, self.gid, -1i32);
            libc::setfsuid(self.uid);
            libc::setfsgid(self.gid);
        }
        let _ = set_thread_groups(&self.groups);
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

/// setgroups(2) for this thread only (see the module comment).
fn set_thread_groups(groups: &[libc::gid_t]) -> Result<(), Errno> {
    // SAFETY: the kernel reads `groups.len()` gids from the slice.
    let r = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().into())
    }
}
