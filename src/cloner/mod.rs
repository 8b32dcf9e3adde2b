//! The interface cloner (`if_clone`): classes registered by drivers, and
//! the parsing of interface names into class and unit.

mod hook;

pub use hook::{CreatedFn, KernelEvent, KernelHook};

use crate::ifnet::{Driver, IfState};
use crate::ioctl::Errno;
use std::path::PathBuf;
use std::sync::Arc;

/// Longest interface name, as IFNAMSIZ less the NUL.
pub const IFNAMSIZ: usize = 16;

/// What the daemon tells drivers about their surroundings.
#[derive(Clone, Debug, Default)]
pub struct KernelEnv {
    /// Directory of the control socket, where drivers put their own
    /// sockets (the tap control devices). `None` in-process.
    pub run_dir: Option<PathBuf>,
    /// Do not give interfaces an IPv6 link-local address when they come
    /// up (NetBSD's sysctl net.inet6.ip6.auto_linklocal=0), so that an
    /// interface without addresses sends nothing of its own.
    pub no_auto_linklocal: bool,
    /// Permissions of the drivers' sockets: the control socket's (ifnetd
    /// `-m`), so whoever may configure the daemon may also use its taps.
    /// `None`: 0600.
    pub socket_mode: Option<u32>,
    /// Duplicate address detection of the IP presence.
    pub dad: DadTimers,
    /// Most interfaces the kernel holds at once (`ifnetd
    /// --max-interfaces`); more are refused with ENOSPC. `None`: no limit.
    pub max_interfaces: Option<usize>,
    /// The data plane's threads. The kernel makes them at start when
    /// `None`, from the thread that makes it (with its credentials).
    pub reactor: Option<Arc<crate::reactor::Reactor>>,
}

/// Duplicate address detection, as NetBSD's sysctls net.inet.ip.dad_count
/// (3), net.inet6.ip6.dad_count (1) and the RetransTimer (1 s). IPv4
/// follows arp_dad_start/arp_dad_timer (RFC 5227) with `retrans` as its
/// second: the first probe within one `retrans`, the next ones one to two
/// apart, usable two after the last, then two announcements two apart.
/// IPv6 follows nd6_dad_start/nd6_dad_timer: a probe at once and every
/// `retrans`, usable one `retrans` after the last. Tests set it short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DadTimers {
    pub probes_v4: u8,
    pub probes_v6: u8,
    pub retrans: std::time::Duration,
}

impl Default for DadTimers {
    /// NetBSD's defaults.
    fn default() -> DadTimers {
        DadTimers {
            probes_v4: 3,
            probes_v6: 1,
            retrans: std::time::Duration::from_secs(1),
        }
    }
}

impl KernelEnv {
    /// The reactor drivers put their sources on.
    pub fn reactor(&self) -> Result<Arc<crate::reactor::Reactor>, Errno> {
        self.reactor.clone().ok_or(Errno::ENXIO)
    }
}

/// A class of interfaces that can be created by name (`lo`, `shmif`, …).
pub trait IfClone: Send + Sync {
    fn name(&self) -> &'static str;

    /// Make interface `ifs.unit`: fill in flags, MTU, MAC… and return its driver.
    fn create(&self, env: &KernelEnv, ifs: &mut IfState) -> Result<Box<dyn Driver>, Errno>;

    /// The kernel starts. A class that serves something of its own (tap's
    /// cloning socket) starts it here; `hook` is how its threads, and
    /// those of its interfaces, ask the kernel to act.
    fn attach(&self, _env: &KernelEnv, _hook: &KernelHook) {}

    /// The kernel shuts down: stop what `attach` started.
    fn detach(&self) {}
}

/// The registered classes, in registration order (`ifconfig -C`).
pub struct Cloners {
    classes: Vec<Box<dyn IfClone>>,
}

impl Cloners {
    pub fn new(classes: Vec<Box<dyn IfClone>>) -> Cloners {
        Cloners { classes }
    }

    pub fn classes(&self) -> impl Iterator<Item = &dyn IfClone> {
        self.classes.iter().map(|c| c.as_ref())
    }

    pub fn names(&self) -> Vec<String> {
        self.classes.iter().map(|c| c.name().to_string()).collect()
    }

    /// Find the class and unit of `name` (`if_clone_lookup`): EINVAL when no
    /// class matches or the unit is not a number.
    pub fn lookup(&self, name: &str) -> Result<(&dyn IfClone, u32), Errno> {
        let (class, unit) = split_name(name).ok_or(Errno::EINVAL)?;
        let cl = self
            .classes
            .iter()
            .find(|c| c.name() == class)
            .ok_or(Errno::EINVAL)?;
        Ok((cl.as_ref(), unit))
    }
}

/// Split `shmif12` into ("shmif", 12).
pub fn split_name(name: &str) -> Option<(&str, u32)> {
    if name.len() >= IFNAMSIZ {
        return None;
    }
    let digits = name.find(|c: char| c.is_ascii_digit())?;
    let (class, unit) = name.split_at(digits);
    if class.is_empty() || !unit.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if unit.len() > 1 && unit.starts_with('0') {
        return None;
    }
    Some((class, unit.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(split_name("shmif12"), Some(("shmif", 12)));
        assert_eq!(split_name("lo0"), Some(("lo", 0)));
        assert_eq!(split_name("lo"), None);
        assert_eq!(split_name("0"), None);
        assert_eq!(split_name("lo01"), None);
        assert_eq!(split_name("lo1x"), None);
        assert_eq!(split_name("lo99999999999"), None);
    }
}
