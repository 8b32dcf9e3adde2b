//! ifnet: a NetBSD-style virtual network kernel in userspace.
//!
//! One-way layers, bottom to top (tests/it/layers.rs holds the map and checks
//! it): the API ([`ioctl`]) and pure formats ([`offload`], [`pcap`], the
//! shmif bus, the tap framing, the VXLAN header); the data plane ([`port`],
//! [`frame`], [`reactor`]); the interface model ([`ifnet`], [`cloner`]);
//! the drivers ([`drivers`]), the IP presence ([`inet`]) and routing
//! ([`route`]); the [`kernel`]; [`server`] and [`generic`], which give the
//! kernel its drivers; and the tools ([`ifconfig`], [`brconfig`], [`ping`],
//! [`client`], [`shmifdump`], [`inspect`]), which use the API and formats
//! only.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod brconfig;
pub mod client;
pub mod cloner;
pub mod cred;
pub mod drivers;
pub mod frame;
pub mod generic;
pub mod ifconfig;
pub mod ifnet;
pub mod inet;
pub mod inspect;
pub mod ioctl;
pub mod kernel;
pub mod libxo;
pub mod log;
pub mod offload;
pub mod pcap;
pub mod ping;
pub mod port;
pub mod rcnet;
pub mod reactor;
pub mod route;
pub mod server;
pub mod service;
pub mod shmifdump;

pub use kernel::Kernel;
