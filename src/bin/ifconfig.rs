//! ifconfig: configure the network interfaces of an ifnetd virtual kernel.
#![deny(clippy::undocumented_unsafe_blocks)]

use ifnet::client::Lazy;

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut ctl = Lazy::new(|e| {
        eprintln!("ifconfig: {e}");
        std::process::exit(1)
    });
    let code = ifnet::ifconfig::main_with(
        &args,
        &mut ctl,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}
