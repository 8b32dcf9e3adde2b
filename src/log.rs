//! Minimal logging for the daemon: to stderr, or to syslog-style lines in
//! a file when running in the background. Quiet in-process.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(0);

/// 0: silent (library use), 1: warnings, 2: info, 3: debug.
pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

fn emit(level: u8, tag: &str, msg: &str) {
    if LEVEL.load(Ordering::Relaxed) >= level {
        let _ = writeln!(
            std::io::stderr(),
            "ifnetd[{}]: {tag}{msg}",
            std::process::id()
        );
    }
}

pub fn error(msg: &str) {
    emit(1, "error: ", msg)
}

pub fn warn(msg: &str) {
    emit(1, "warning: ", msg)
}

pub fn info(msg: &str) {
    emit(2, "", msg)
}

pub fn debug(msg: &str) {
    emit(3, "debug: ", msg)
}
