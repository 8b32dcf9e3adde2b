//! vxlan's receive path: any datagram from the underlay, checked, its inner
//! source learnt and its inner frame handed to the port. Any bytes, no
//! panic; the table stays within its bound.
#![no_main]
use ifnet::drivers::gro::Gro;
use ifnet::drivers::vxlan::Ftable;
use ifnet::drivers::vxlan::io::decapsulate;
use ifnet::port::Port;
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

fn state() -> &'static (Arc<Port>, Mutex<Ftable>) {
    static S: OnceLock<(Arc<Port>, Mutex<Ftable>)> = OnceLock::new();
    S.get_or_init(|| {
        let mut ft = Ftable::default();
        ft.max = 64;
        (Port::new(1, "vxlan0"), Mutex::new(ft))
    })
}

fuzz_target!(|data: &[u8]| {
    let (port, ft) = state();
    // The first two bytes pick the peer and the MTU; the rest is the datagram.
    let (peer, mtu, dgram) = match data {
        [a, b, rest @ ..] => (*a, 68 + u32::from(*b) * 32, rest),
        _ => return,
    };
    let from = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(peer)));
    // Each input is a batch of up to 4 datagrams (cut at each 0xfe),
    // coalesced as one reading turn coalesces them.
    let mut gro = Gro::default();
    for d in dgram.split(|b| *b == 0xfe).take(4) {
        decapsulate(port, ft, &mut gro, (42, true, mtu), from, d, Instant::now());
    }
    gro.flush(&mut |f| port.input(f));
    assert!(ft.lock().unwrap().len() <= 64);
});
