//! brconfig's grammar and execution against a kernel with a bridge and
//! two members: any argument vector, no panic, exit 0 or 1.
#![no_main]
use ifnet::Kernel;
use ifnet::cloner::KernelEnv;
use ifnet::generic;
use ifnet::ioctl::Request;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn kernel() -> &'static Kernel {
    static K: OnceLock<Kernel> = OnceLock::new();
    K.get_or_init(|| {
        let k = generic::kernel(KernelEnv::default());
        for name in ["bridge0", "tap0", "tap1"] {
            k.ioctl(Request::IfCreate { name: name.into() }).unwrap();
        }
        k
    })
}

fuzz_target!(|data: &[u8]| {
    // Arguments are NUL-separated; "bridge0" first most of the time.
    let mut args: Vec<String> = data
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if data.first().is_some_and(|b| b & 1 == 0) {
        args.insert(0, "bridge0".into());
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let rc = ifnet::brconfig::main_with(&args, &mut kernel(), &mut out, &mut err);
    assert!(rc == 0 || rc == 1, "exit {rc}");
});
