//! BPDUs: any bytes after the 802.1D destination and a source address,
//! parsed, emitted and parsed again, and fed to a running spanning tree.
//! No panic; what parses survives a round trip.
#![no_main]
use ifnet::drivers::bridge::bpdu::BpduRepr;
use ifnet::drivers::bridge::stp::{BridgeConf, PortConf, Stp};
use ifnet::frame::Frame;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let mut bytes = vec![0x01, 0x80, 0xc2, 0, 0, 0, 2, 0, 0, 0, 0, 1];
    bytes.extend_from_slice(data);
    let Some(frame) = Frame::new(&bytes) else {
        return;
    };
    let Ok(bpdu) = BpduRepr::from_frame(&frame) else {
        return;
    };
    let again = bpdu.frame([2, 0, 0, 0, 0, 1]);
    assert_eq!(BpduRepr::from_frame(&Frame::new(&again).unwrap()), Ok(bpdu));
    let now = Instant::now();
    let mut stp = Stp::new(BridgeConf {
        priority: 0x8000,
        hello_time: 1,
        max_age: 6,
        forward_delay: 4,
    });
    let port = |ifindex| PortConf {
        ifindex,
        mac: [2, 0, 0, 0, 0, ifindex as u8],
        priority: 0x80,
        path_cost: 55,
    };
    stp.set_ports(&[(port(1), true), (port(2), true)], now);
    stp.start(now);
    stp.input(now, 1, &bpdu);
    stp.input(now + Duration::from_millis(100), 2, &bpdu);
    stp.poll(now + Duration::from_secs(30));
    let _ = stp.take_output();
});
