//! What ifnetd reads at start (a state file of `-S`, the lines of an
//! ifconfig.IF file) against a kernel: any bytes, no panic, and every
//! problem names a line of the input. Lines that would touch the host
//! (linkstr: files; virt and tap: TAPs and sockets) are left out.
#![no_main]
use ifnet::Kernel;
use ifnet::cloner::KernelEnv;
use ifnet::generic;
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;

fn kernel() -> &'static Kernel {
    static K: OnceLock<Kernel> = OnceLock::new();
    K.get_or_init(|| generic::kernel(KernelEnv::default()))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if ["linkstr", "virt", "tap"].iter().any(|w| text.contains(w)) {
        return;
    }
    let lines = text.split('\n').count();
    let problems = ifnet::rcnet::apply_script(&mut kernel(), Path::new("fuzz"), &text);
    for p in &problems {
        assert!(p.line <= lines, "{p}");
    }
    // Whatever came of it can be written as a script.
    ifnet::rcnet::script(&mut kernel()).unwrap();
});
