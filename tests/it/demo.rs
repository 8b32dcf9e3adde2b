//! The README's first command, `bash scripts/demo.sh`, runs as written
//! (with this build's binaries: `--built` skips its own release build).

use crate::common::can_netadmin;
use std::path::Path;
use std::process::Command;

#[test]
fn the_demo_runs() {
    if !can_netadmin() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bins = Path::new(env!("CARGO_BIN_EXE_ifconfig")).parent().unwrap();
    let o = Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .arg("--built")
        .env("IFNET_BIN", bins)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}\n{err}");
    // The namespaces pinged each other, TCP crossed both daemons, and the
    // daemons pinged each other over the bus.
    assert!(out.contains("3 packets transmitted, 3 received"), "{out}");
    assert!(out.contains("receiver"), "{out}");
    assert!(
        out.contains("3 packets transmitted, 3 packets received"),
        "{out}"
    );
    assert!(out.contains("Done; cleaning up"), "{out}");
}
