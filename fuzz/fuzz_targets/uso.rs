//! Frames on their way to a host TAP (untrusted: from a guest, a bus, a
//! namespace), batched as virt batches small UDP datagrams: never a
//! panic; every frame comes out once, in order; a batch of several is
//! one flow's datagrams whose payloads are the inputs' payloads, in
//! order, all but the last of the batch's size, within IP's length.
#![no_main]
use ifnet::drivers::virt::uso::{Uso, datagram};
use ifnet::offload::Offload;
use libfuzzer_sys::fuzz_target;

/// The payload of a finished datagram: what follows the UDP header.
fn payload(f: &[u8], v6: bool) -> &[u8] {
    &f[if v6 { 62 } else { 42 }..]
}

fuzz_target!(|data: &[u8]| {
    // Frames as (length byte, bytes); the ones datagram() takes and the
    // rest, each with the payload it should carry through.
    let mut frames = Vec::new();
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        frames.push(&tail[..n]);
        rest = &tail[n..];
    }
    let mut uso = Uso::default();
    let mut out: Vec<(Vec<u8>, Offload, usize)> = Vec::new();
    let mut put = |b: &[u8], o: &Offload, n: usize| out.push((b.to_vec(), *o, n));
    let mut want: Vec<Vec<u8>> = Vec::new();
    for f in &frames {
        match datagram(f, &Offload::NONE) {
            Some(d) => {
                want.push(payload(f, f[12] == 0x86).to_vec());
                uso.push(f, &Offload::NONE, d, &mut put);
            }
            None => {
                uso.flush(&mut put);
                want.push(f.to_vec());
                put(f, &Offload::NONE, 1);
            }
        }
    }
    uso.flush(&mut put);
    assert_eq!(out.iter().map(|o| o.2).sum::<usize>(), frames.len());
    let mut want = want.into_iter();
    for (b, off, n) in &out {
        if *n == 1 {
            let w = want.next().unwrap();
            assert!(off.is_none());
            assert!(b.ends_with(&w));
            continue;
        }
        assert!(b.len() - 14 <= 65535);
        let v6 = b[12] == 0x86;
        let size = usize::from(off.gso_size);
        let mut pay = payload(b, v6);
        for i in 0..*n {
            let w = want.next().unwrap();
            assert!(w.len() == size || (i + 1 == *n && w.len() < size));
            assert_eq!(&pay[..w.len()], &w[..]);
            pay = &pay[w.len()..];
        }
        assert!(pay.is_empty());
    }
});
