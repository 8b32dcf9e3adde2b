//! The drivers, one module each, and the classes they register.

pub mod bridge;
pub mod ether;
pub mod kthread;
pub mod lo;
pub mod shmif;
pub mod tap;
pub mod virt;
pub mod vxlan;

use crate::cloner::Cloners;

/// Every interface class, in the order `ifconfig -C` lists them.
pub fn cloners() -> Cloners {
    Cloners::new(vec![
        Box::new(bridge::BridgeClone::default()),
        Box::new(lo::LoClone),
        Box::<shmif::ShmifClone>::default(),
        Box::<tap::TapClone>::default(),
        Box::<virt::VirtClone>::default(),
        Box::<vxlan::VxlanClone>::default(),
    ])
}
