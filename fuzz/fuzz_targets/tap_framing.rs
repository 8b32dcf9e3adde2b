//! The tap control socket's stream from a client, cut at arbitrary read
//! boundaries: no panic, no record beyond the bound.
#![no_main]
use ifnet::drivers::tap::framing::{Deframer, Record, TAP_MAXFRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = Deframer::new();
    let mut rest = data;
    let mut step = 1usize;
    while !rest.is_empty() {
        let space = d.space();
        let n = space.len().min(rest.len()).min(step);
        space[..n].copy_from_slice(&rest[..n]);
        d.filled(n);
        rest = &rest[n..];
        step = step * 7 % 1500 + 1;
        loop {
            match d.next_record() {
                Record::Frame(f) => assert!(f.len() <= TAP_MAXFRAME),
                Record::TooLong(_) => {
                    d.reset();
                    break;
                }
                Record::Incomplete => break,
            }
        }
    }
});
