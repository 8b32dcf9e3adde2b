//! The integration tests, one binary that links once (ripgrep's layout)
//! instead of one per file. Tests that measure the whole process stay
//! binaries of their own: tests/leaks.rs (threads and descriptors) and
//! tests/bridge_alloc.rs (a counting global allocator).
#![deny(clippy::undocumented_unsafe_blocks)]

mod common;
mod shmif_util;

mod bridge;
mod bridge_daemon;
mod bridge_inet;
mod bridge_scene;
mod daemon;
mod demo;
mod faults;
mod hostile_bus;
mod ifconfig;
mod inet;
mod inspect;
mod install;
mod jumbo;
mod layers;
mod libxo;
mod neighbour_flood;
mod persist;
mod reactor;
mod route;
mod scene;
mod service;
mod shmif_dump;
mod shmif_procs;
mod stp;
mod tap;
mod virt;
mod vm;
mod vxlan;
