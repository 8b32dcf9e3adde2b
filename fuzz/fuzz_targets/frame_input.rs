//! The receive path: frames from the medium into an interface that is a
//! host (ARP, NDP, ICMP, DAD sniffing, smoltcp). Any bytes, no panic.
#![no_main]
use ifnet::Kernel;
use ifnet::cloner::KernelEnv;
use ifnet::frame::Frame;
use ifnet::generic;
use ifnet::ioctl::{In6AliasReq, InAliasReq, Request};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn kernel() -> &'static Kernel {
    static K: OnceLock<Kernel> = OnceLock::new();
    K.get_or_init(|| {
        let k = generic::kernel(KernelEnv::default());
        k.ioctl(Request::IfCreate {
            name: "tap0".into(),
        })
        .unwrap();
        let req = InAliasReq {
            addr: [10, 0, 0, 1].into(),
            mask: Some([255, 255, 255, 0].into()),
            broadcast: None,
            dst: None,
            flags: 0,
        };
        k.ioctl(Request::AifAddr {
            name: "tap0".into(),
            req,
        })
        .unwrap();
        let req = In6AliasReq {
            addr: "fc00::1".parse().unwrap(),
            prefixlen: 64,
            dst: None,
            flags: 0,
            pltime: u32::MAX,
            vltime: u32::MAX,
        };
        k.ioctl(Request::AifAddrIn6 {
            name: "tap0".into(),
            req,
        })
        .unwrap();
        k
    })
}

fuzz_target!(|data: &[u8]| {
    // Bytes too short for an Ethernet header are refused where the frame
    // is made; nothing past it checks a length again.
    if let Some(port) = kernel().port("tap0")
        && let Some(frame) = Frame::new(data)
    {
        port.input(&frame);
    }
});
