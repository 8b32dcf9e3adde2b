//! The drivers, one module each, and the classes they register.

pub mod bridge;
pub mod ether;
pub mod gro;
pub mod kthread;
pub mod lo;
pub mod shmif;
pub mod tap;
pub mod virt;
pub mod vxlan;

use crate::cloner::Cloners;

/// How the daemon configures its classes.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The bridge that taps made by tap's cloning socket join.
    pub tap_bridge: Option<String>,
}

/// Every interface class, in the order `ifconfig -C` lists them.
pub fn cloners() -> Cloners {
    cloners_with(&Options::default())
}

/// [`cloners`], configured.
pub fn cloners_with(o: &Options) -> Cloners {
    Cloners::new(vec![
        Box::new(bridge::BridgeClone::default()),
        Box::new(lo::LoClone),
        Box::<shmif::ShmifClone>::default(),
        Box::new(tap::TapClone::with_clone_bridge(o.tap_bridge.clone())),
        Box::<virt::VirtClone>::default(),
        Box::<vxlan::VxlanClone>::default(),
    ])
}
