//! scripts/install.sh: the tools and manual pages land in PREFIX, the
//! installed tools work, and --uninstall takes back exactly that.

use std::path::Path;
use std::process::Command;

#[test]
fn install_and_uninstall() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bins = Path::new(env!("CARGO_BIN_EXE_ifconfig")).parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("ifnet");
    let script = root.join("scripts/install.sh");
    let o = Command::new("bash")
        .arg(&script)
        .arg("--from")
        .arg(bins)
        .arg(&prefix)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("ifnet installed in"), "{out}");
    for t in [
        "ifnetd",
        "ifconfig",
        "brconfig",
        "shmifdump",
        "ifping",
        "ifnet-tools",
    ] {
        assert!(prefix.join("bin").join(t).is_file(), "bin/{t} missing");
    }
    for m in [
        "man8/ifconfig.8",
        "man8/brconfig.8",
        "man1/shmifdump.1",
        "man4/virt.4",
        "man5/ifconfig.if.5",
        "man8/ifnet-tools.8",
        "man1/ifnet-netstat.1",
    ] {
        assert!(prefix.join("share/man").join(m).is_file(), "{m} missing");
    }
    // The installed ifconfig runs and answers without a daemon.
    let o = Command::new(prefix.join("bin/ifconfig"))
        .arg("-C")
        .env("IFNET_SERVER", tmp.path().join("d.sock"))
        .env("IFNET_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "no daemon: exit 1");
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach ifnetd"));

    let o = Command::new("bash")
        .arg(&script)
        .arg("--uninstall")
        .arg(&prefix)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!prefix.exists(), "PREFIX left behind after uninstall");
    assert!(tmp.path().exists(), "nothing above PREFIX is removed");
    // A second uninstall finds nothing and says so.
    let o = Command::new("bash")
        .arg(&script)
        .arg("--uninstall")
        .arg(&prefix)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}
