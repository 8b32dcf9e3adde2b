//! ifnet: a NetBSD-style virtual network kernel in userspace.
//!
//! - [`ioctl`]: the kernel/user API (requests, replies, errno, framing).
//! - [`kernel`]: the interface table and request dispatcher.
//! - [`cloner`]: interface classes and name parsing.
//! - [`drivers`]: one module per interface class.
//! - [`port`]: the data-plane face of an interface.

pub mod cloner;
pub mod drivers;
pub mod ifnet;
pub mod ioctl;
pub mod kernel;
pub mod log;
pub mod pcap;
pub mod port;

pub use kernel::Kernel;
