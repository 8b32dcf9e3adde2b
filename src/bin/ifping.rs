//! ifping: ping from inside an ifnetd virtual kernel.
#![deny(clippy::undocumented_unsafe_blocks)]

use ifnet::client::Lazy;
use ifnet::ping::{Conn, INTERRUPTED, main_with};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use std::sync::atomic::Ordering;

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let act = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        let _ = sigaction(Signal::SIGINT, &act);
    }
    let connect = || -> Conn {
        Box::new(Lazy::new(|e| {
            eprintln!("ifping: {e}");
            std::process::exit(1)
        }))
    };
    let code = main_with(
        &args,
        &connect,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}
