//! Interfaces (tap, virt, shmif, bridge) leave no threads, descriptors or
//! bus mappings behind: create, use, destroy (or drop the kernel), and count. The only test in this binary, so that
//! nothing else runs beside it.

#[path = "it/common/mod.rs"]
mod common;

use ifnet::Kernel;
use ifnet::cloner::KernelEnv;
use ifnet::generic;
use ifnet::ioctl::{BridgeReq, Reply, Request, iff};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

fn settle(what: &str, want: (usize, usize)) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = (count("/proc/self/task"), count("/proc/self/fd"));
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: (threads, fds) {now:?}, expected {want:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until `name` exists and is up.
fn wait_up(k: &Kernel, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match k.ioctl(Request::GetIfFlags { name: name.into() }) {
            Ok(Reply::Flags(f)) if f & iff::UP != 0 => return,
            _ => {}
        }
        assert!(Instant::now() < deadline, "{name} did not come up");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn no_threads_or_fds_left() {
    let tun = nix::unistd::geteuid().is_root() && std::path::Path::new("/dev/net/tun").exists();
    assert!(
        tun || !common::in_ci(),
        "CI=true: needs root and /dev/net/tun"
    );
    let host = format!("ifnt{}l", std::process::id());
    let base = (count("/proc/self/task"), count("/proc/self/fd"));
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let buses = tempfile::tempdir().unwrap();
        let k = generic::kernel(KernelEnv {
            run_dir: Some(dir.path().to_path_buf()),
            ..KernelEnv::default()
        });
        for i in 0..3 {
            k.ioctl(Request::IfCreate {
                name: format!("tap{i}"),
            })
            .unwrap();
        }
        let c = UnixStream::connect(dir.path().join("tap1")).unwrap();
        // Every tap busy, so that the cloning socket makes one (tap3).
        let busy = ["tap0", "tap2"].map(|t| UnixStream::connect(dir.path().join(t)).unwrap());
        wait_up(&k, "tap0");
        wait_up(&k, "tap2");
        let cl = UnixStream::connect(dir.path().join("tap")).unwrap();
        wait_up(&k, "tap1");
        wait_up(&k, "tap3");
        if tun {
            k.ioctl(Request::IfCreate {
                name: "virt0".into(),
            })
            .unwrap();
            let req = Request::SetLinkStr {
                name: "virt0".into(),
                linkstr: Some(host.clone()),
            };
            k.ioctl(req).unwrap();
            k.ioctl(Request::SetIfFlags {
                name: "virt0".into(),
                flags: iff::UP,
            })
            .unwrap();
            // The host TAP is down: dropped with EIO, counted.
            assert!(k.send("virt0", &[0xff; 60]).is_err());
        }
        k.send("tap1", &[0xff; 60]).unwrap();
        // A bridge over two shmifs, each on a bus of its own (one bus for
        // both would be a loop): bus mappings, wakeups and the bridge.
        for (i, s) in ["shmif0", "shmif1"].into_iter().enumerate() {
            k.ioctl(Request::IfCreate { name: s.into() }).unwrap();
            let bus = buses.path().join(format!("bus{i}"));
            k.ioctl(Request::SetLinkStr {
                name: s.into(),
                linkstr: Some(bus.to_str().unwrap().into()),
            })
            .unwrap();
            k.ioctl(Request::SetIfFlags {
                name: s.into(),
                flags: iff::UP,
            })
            .unwrap();
        }
        k.ioctl(Request::IfCreate {
            name: "bridge0".into(),
        })
        .unwrap();
        for m in ["shmif0", "shmif1"] {
            k.ioctl(Request::SetDrvSpec {
                name: "bridge0".into(),
                req: BridgeReq::Add { member: m.into() }.into(),
            })
            .unwrap();
        }
        k.ioctl(Request::SetIfFlags {
            name: "bridge0".into(),
            flags: iff::UP,
        })
        .unwrap();
        k.send("shmif0", &[0xff; 60]).unwrap();
        if round == 1 {
            for s in ["bridge0", "shmif0", "shmif1"] {
                k.ioctl(Request::IfDestroy { name: s.into() }).unwrap();
            }
        }
        if round == 0 {
            // Orderly: shutdown destroys everything.
            k.shutdown();
        } else if tun {
            // virt is destroyed (down first); the rest goes with the kernel.
            k.ioctl(Request::SetIfFlags {
                name: "virt0".into(),
                flags: 0,
            })
            .unwrap();
            k.ioctl(Request::IfDestroy {
                name: "virt0".into(),
            })
            .unwrap();
        }
        drop((c, cl, busy));
        drop(k);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "sockets left"
        );
        assert!(!std::path::Path::new("/sys/class/net").join(&host).exists());
        settle(&format!("round {round}"), base);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let bus_dir = buses.path().to_str().unwrap();
        assert!(!maps.contains(bus_dir), "round {round}: a bus still mapped");
    }
}
