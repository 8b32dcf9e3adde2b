//! The GENERIC kernel: every driver class, as NetBSD's GENERIC
//! configuration has every device. The kernel itself names no driver; it
//! is given its classes here, above both, by whoever starts one in-process
//! (tests, Rust programs). `ifnetd` hands its server [`drivers::cloners`].

use crate::cloner::KernelEnv;
use crate::drivers;
use crate::kernel::Kernel;

/// A kernel with every driver class registered and `lo0` attached.
pub fn kernel(env: KernelEnv) -> Kernel {
    Kernel::new(env, drivers::cloners())
}
