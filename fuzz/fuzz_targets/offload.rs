//! A frame from a host TAP with the offload header the host put before it
//! (`virtio_net_hdr`, untrusted), finished for a consumer that takes no
//! offloads: the software checksum/segmentation path never panics, never
//! builds a frame beyond a jumbo segment, leaves no work on what it hands
//! on, and a TCP super-frame's segments carry its whole payload.
#![no_main]
use ifnet::frame::Frame;
use ifnet::offload::{Offload, OffloadCaps, VNET_HDR_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((hdr, bytes)) = data.split_first_chunk::<VNET_HDR_LEN>() else {
        return;
    };
    let off = Offload::from_bytes(hdr);
    let Some(frame) = Frame::with_offload(bytes, off) else {
        return;
    };
    let (mut n, mut total) = (0u64, 0u64);
    let done = frame.finish(OffloadCaps::NONE, |f| {
        assert!(f.offload().is_none());
        assert!(f.len() <= 9216 || off.is_none());
        n += 1;
        total += f.len() as u64;
    });
    if done.is_ok() && off.is_gso() {
        assert_eq!((n, total), frame.wire_size());
    }
});
