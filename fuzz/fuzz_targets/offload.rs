//! A frame from a host TAP with the offload header the host put before it
//! (`virtio_net_hdr`, untrusted): the software checksum/segmentation path
//! never panics, never builds a frame beyond a jumbo segment, and a TCP
//! super-frame's segments carry its whole payload.
#![no_main]
use ifnet::offload::{Offload, VNET_HDR_LEN, resolve};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((hdr, frame)) = data.split_first_chunk::<VNET_HDR_LEN>() else {
        return;
    };
    let off = Offload::from_bytes(hdr);
    let (mut n, mut bytes) = (0u64, 0u64);
    let done = resolve(frame, &off, |f| {
        assert!(f.len() <= 9216 || off.is_none());
        n += 1;
        bytes += f.len() as u64;
    });
    if done.is_ok() && off.is_gso() {
        assert_eq!((n, bytes), off.wire_size(frame));
    }
});
