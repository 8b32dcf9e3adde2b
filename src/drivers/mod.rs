//! The drivers, one module each, and the classes they register.

pub mod lo;
pub mod shmif;

use crate::cloner::Cloners;

/// Every interface class, in the order `ifconfig -C` lists them.
pub fn cloners() -> Cloners {
    Cloners::new(vec![Box::new(lo::LoClone), Box::new(shmif::ShmifClone)])
}
