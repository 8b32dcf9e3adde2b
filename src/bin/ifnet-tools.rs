//! ifnet-tools: netstat, arp, ndp, sysctl, ifmcstat and shmif_pcapin
//! against an ifnetd, in one binary. The name it is run by picks the tool
//! (the links `ifnetd --env` puts on PATH), else its first argument does:
//! `ifnet-tools netstat -nr`.
#![deny(clippy::undocumented_unsafe_blocks)]

use ifnet::client::Lazy;
use ifnet::inspect::{USAGE, run};
use std::path::Path;

fn main() {
    let mut argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let called = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (name, args) = if ifnet::inspect::TOOLS.contains(&called.as_str()) {
        (called, argv.split_off(1))
    } else if argv.len() >= 2 {
        let rest = argv.split_off(2);
        (argv.swap_remove(1), rest)
    } else {
        eprint!("{USAGE}");
        std::process::exit(1)
    };
    let mut ctl = Lazy::new(|e| {
        eprintln!("{}: {e}", tool_name());
        std::process::exit(1)
    });
    let code = run(
        &name,
        &args,
        &mut ctl,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr(),
    );
    match code {
        Some(c) => std::process::exit(c),
        None => {
            eprintln!("ifnet-tools: {name}: unknown tool");
            eprint!("{USAGE}");
            std::process::exit(1)
        }
    }
}

/// The tool's name for a message from the connection (a plain fn: Lazy
/// takes no closure state).
fn tool_name() -> String {
    let a: Vec<String> = std::env::args().take(2).collect();
    let base = a
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if ifnet::inspect::TOOLS.contains(&base.as_str()) {
        base
    } else {
        a.get(1).cloned().unwrap_or(base)
    }
}
