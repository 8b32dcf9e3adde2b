//! The daemon's decoder of control messages: any bytes, no panic.
#![no_main]
use ifnet::ioctl::{Request, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wire::decode_body::<Request>(data);
    let _ = wire::read_request(&mut &data[..]);
});
