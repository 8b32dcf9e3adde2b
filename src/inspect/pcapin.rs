//! shmif_pcapin(1): write the frames of a pcap capture onto a shmif bus,
//! as a peer of the bus would, then wake the bus's readers
//! (usr.bin/shmif_pcapin/shmif_pcapin.c: its usage, messages, the bus
//! line it prints first). A capture taken with `shmifdump -p` replays.

use crate::drivers::shmif::bus::{Bus, random_u64};
use crate::pcap::{MAGIC_NSEC, MAGIC_USEC};
use std::io::Write;
use std::path::Path;

pub const USAGE: &str = "usage: shmif_pcapin pcap-file-path bus-path\n";

pub fn main_with(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let [pcap, bus] = args else {
        let _ = err.write_all(USAGE.as_bytes());
        return 1;
    };
    let bus = match Bus::open_existing(Path::new(bus)) {
        Ok(b) => b,
        Err(crate::ioctl::Errno::ENOEXEC) => {
            let _ = writeln!(err, "shmif_pcapin: {bus} not a shmif bus");
            return 1;
        }
        Err(e) => {
            let _ = writeln!(err, "shmif_pcapin: open bus: {e}");
            return 1;
        }
    };
    let h = bus.header();
    let _ = writeln!(
        out,
        "bus version {}, lock: {}, generation: {}, firstoff: 0x{:04x}, lastoff: 0x{:04x}",
        h.version, h.lock, h.generation, h.first, h.last
    );
    let frames = match std::fs::read(pcap)
        .map_err(|e| e.to_string())
        .and_then(|d| records(&d))
    {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "shmif_pcapin: cannot open pcap file: {pcap}: {e}");
            return 1;
        }
    };
    let sender = random_u64();
    for f in &frames {
        if let Err(e) = bus.send(f, sender) {
            let _ = writeln!(err, "shmif_pcapin: {e}");
            return 1;
        }
    }
    if bus.wakeup().is_err() {
        let _ = writeln!(err, "shmif_pcapin: writev for wakeup");
        return 1;
    }
    0
}

/// The frames of a classic pcap file, in either byte order.
fn records(d: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let word = |b: &[u8], swap: bool| {
        let w = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        if swap { w.swap_bytes() } else { w }
    };
    if d.len() < 24 {
        return Err("truncated dump file; tried to read 24 file header bytes".into());
    }
    let swap = match word(d, false) {
        MAGIC_USEC | MAGIC_NSEC => false,
        m if m.swap_bytes() == MAGIC_USEC || m.swap_bytes() == MAGIC_NSEC => true,
        _ => return Err("unknown file format".into()),
    };
    let mut v = Vec::new();
    let mut off = 24;
    while off < d.len() {
        let Some(rec) = d.get(off..off + 16) else {
            return Err("truncated dump file".into());
        };
        let caplen = word(&rec[8..], swap) as usize;
        let Some(frame) = d.get(off + 16..off + 16 + caplen) else {
            return Err("truncated dump file".into());
        };
        v.push(frame.to_vec());
        off += 16 + caplen;
    }
    Ok(v)
}
