//! The forwarding path: frames into an interface of a kernel that routes
//! between two buses (ip_input's checks, ip_forward, ip6_forward, ICMP
//! errors, next-hop resolution, fragmentation, IPv4 options: record
//! route, source routes, timestamps, reflected echo replies). Any bytes,
//! no panic.
#![no_main]
use ifnet::Kernel;
use ifnet::cloner::KernelEnv;
use ifnet::frame::Frame;
use ifnet::generic;
use ifnet::ioctl::{In6AliasReq, InAliasReq, Knobs, Reply, Request, RouteReq, RtEntry, rtf};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn kernel() -> &'static Kernel {
    static K: OnceLock<Kernel> = OnceLock::new();
    K.get_or_init(|| {
        let k = generic::kernel(KernelEnv::default());
        let dir = std::env::temp_dir().join(format!("ifnet-fuzz-route.{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (n, name) in ["shmif0", "shmif1"].into_iter().enumerate() {
            let bus = dir.join(format!("bus{n}"));
            k.ioctl(Request::IfCreate { name: name.into() }).unwrap();
            let linkstr = Some(bus.to_string_lossy().into_owned());
            k.ioctl(Request::SetLinkStr {
                name: name.into(),
                linkstr,
            })
            .unwrap();
            let req = InAliasReq {
                addr: [10, 0, n as u8, 1].into(),
                mask: Some([255, 255, 255, 0].into()),
                broadcast: None,
                dst: None,
                flags: 0,
            };
            k.ioctl(Request::AifAddr {
                name: name.into(),
                req,
            })
            .unwrap();
            let req = In6AliasReq {
                addr: format!("fc00:{n}::1").parse().unwrap(),
                prefixlen: 64,
                dst: None,
                flags: 0,
                pltime: u32::MAX,
                vltime: u32::MAX,
            };
            k.ioctl(Request::AifAddrIn6 {
                name: name.into(),
                req,
            })
            .unwrap();
        }
        k.ioctl(Request::SetIfMtu {
            name: "shmif1".into(),
            mtu: 576,
        })
        .ok();
        let Ok(Reply::Knobs(knobs)) = k.ioctl(Request::GetKnobs) else {
            panic!("no knobs")
        };
        // Source routes taken and followed: IPv4 options all the way.
        let knobs = Knobs {
            ip_forwarding: true,
            ip6_forwarding: true,
            ip_allowsrcrt: true,
            ip_forwsrcrt: true,
            ..knobs
        };
        k.ioctl(Request::SetKnobs(knobs)).unwrap();
        let route = RtEntry {
            dst: [0, 0, 0, 0].into(),
            prefix: 0,
            gateway: Some([10, 0, 1, 2].into()),
            ifname: None,
            ifa: None,
            flags: rtf::UP | rtf::GATEWAY | rtf::STATIC,
            mtu: 0,
            used: 0,
        };
        k.ioctl(Request::Route(RouteReq::Add(route))).unwrap();
        k
    })
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the interface and whether the frame is sent
    // to its link address (what the forwarding path takes).
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let name = if pick & 1 == 0 { "shmif0" } else { "shmif1" };
    let Some(port) = kernel().port(name) else {
        return;
    };
    let mut frame = rest.to_vec();
    if pick & 2 == 0
        && frame.len() >= 6
        && let Some(mac) = port.mac()
    {
        frame[..6].copy_from_slice(&mac);
    }
    if let Some(f) = Frame::new(&frame) {
        port.input(&f);
    }
});
