//! ifconfig against an in-process kernel: exact stdout, stderr and exit code.

use ifnet::Kernel;
use ifnet::cloner::KernelEnv;
use ifnet::ifconfig::{USAGE, main_with};

fn kernel() -> Kernel {
    Kernel::new(KernelEnv::default())
}

/// Run `ifconfig ARGS` against `k`: (exit code, stdout, stderr).
fn ifconfig(k: &Kernel, args: &str) -> (i32, String, String) {
    let args: Vec<String> = args.split_whitespace().map(str::to_string).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = main_with(&args, &mut &*k, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// Run and insist on success with no diagnostics; return stdout.
fn ok(k: &Kernel, args: &str) -> String {
    let (code, out, err) = ifconfig(k, args);
    assert_eq!((code, err.as_str()), (0, ""), "ifconfig {args}");
    out
}

const LO0: &str = "\
lo0: flags=0x8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 33624
\tinet 127.0.0.1/8 flags 0x0
\tinet6 ::1/128 flags 0x20<NODAD>
\tinet6 fe80::1%lo0/64 flags 0x0 scopeid 0x1
";

#[test]
fn lo0_status() {
    let k = kernel();
    assert_eq!(ok(&k, "lo0"), LO0);
    assert_eq!(ok(&k, "-a"), LO0);
    assert_eq!(ok(&k, ""), LO0);
}
