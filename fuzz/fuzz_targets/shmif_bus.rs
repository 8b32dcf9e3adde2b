//! The shmif bus reader on any bytes: shmifdump's walk over an arbitrary
//! bus image, and a live reader and writer on a bus whose header and ring
//! were overwritten with the input. No panic, no hang, no stray access.
#![no_main]
use ifnet::drivers::shmif::bus::{BUS_SIZE, Batch, Bus, BusReader, Recv};
use ifnet::shmifdump::{Dumper, dump_image};
use libfuzzer_sys::fuzz_target;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

fn bus() -> &'static Bus {
    static B: OnceLock<(tempfile::TempDir, Bus)> = OnceLock::new();
    let (_, b) = B.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let b = Bus::attach(&d.path().join("bus")).unwrap();
        (d, b)
    });
    b
}

fuzz_target!(|data: &[u8]| {
    // 1. The dump walk over the input as a whole bus file (small rings too).
    let mut out = Dumper::new(Box::new(std::io::sink()), "sink", None).unwrap();
    let _ = dump_image("fuzz", data, false, &mut out);

    // 2. A live bus: the input's first 24 bytes become magic..last (the
    // lock word stays ours), the rest lands at the start of the ring and
    // just before its end, where frames wrap.
    let bus = bus();
    let f = bus.file();
    let head = &data[..data.len().min(24)];
    f.write_at(head, 0).unwrap();
    let rest = data.get(24..).unwrap_or(&[]);
    f.write_at(rest, 32).unwrap();
    let tail = &rest[..rest.len().min(4096)];
    f.write_at(tail, (BUS_SIZE - tail.len()) as u64).unwrap();
    let mut r = BusReader::at_newest(bus);
    let mut batch = Batch::new(8);
    for _ in 0..64 {
        match r.recv_batch(bus, &mut batch, |_| true) {
            Recv::Empty | Recv::Corrupt => break,
            _ => {}
        }
    }
    let mut frame = [0xffu8; 60];
    frame[12] = 0x88;
    let _ = bus.send(&frame, 1);
    // Restore a sane header for the next input.
    f.write_at(&0xca11_d054u32.to_ne_bytes(), 0).unwrap();
    f.write_at(&[0u8; 16], 8).unwrap();
    f.write_at(&((BUS_SIZE - 32) as u32).to_ne_bytes(), 16)
        .unwrap();
});
