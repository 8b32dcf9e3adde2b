//! shmif(4): Ethernet over a shared-memory bus file.

pub mod bus;
pub mod dump;
