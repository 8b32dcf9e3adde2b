//! ifnet: a NetBSD-style virtual network kernel in userspace.
//!
//! - [`ioctl`]: the kernel/user API (requests, replies, errno, framing).
//! - [`kernel`]: the interface table and request dispatcher.
//! - [`cloner`]: interface classes and name parsing.
//! - [`drivers`]: one module per interface class.
//! - [`port`]: the data-plane face of an interface.
//! - [`reactor`]: the data plane's threads (epoll + timerfd), a few for all interfaces.
//! - [`offload`]: checksum/segmentation work frames carry, done in software when needed.
//! - [`ifconfig`]: the ifconfig(8) tool as a library.

pub mod brconfig;
pub mod client;
pub mod cloner;
pub mod drivers;
pub mod ifconfig;
pub mod ifnet;
pub mod inet;
pub mod ioctl;
pub mod kernel;
pub mod log;
pub mod offload;
pub mod pcap;
pub mod ping;
pub mod port;
pub mod reactor;
pub mod server;

pub use kernel::Kernel;
