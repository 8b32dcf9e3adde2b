//! Helpers for the shmif process tests: checksummed frames and running
//! roles in child processes (the test binary runs itself).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

/// Marks the lines a child prints for its parent.
pub const TAG: &str = "@@";

pub fn fnv(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &x| {
        (h ^ u32::from(x)).wrapping_mul(0x0100_0193)
    })
}

/// A frame to `dst` from `src`: writer id, kind, seq, filler, checksum.
pub fn frame(dst: [u8; 6], src: [u8; 6], writer: u8, kind: u8, seq: u32, len: usize) -> Vec<u8> {
    assert!((24..=1514).contains(&len));
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14] = writer;
    f[15] = kind;
    f[16..20].copy_from_slice(&seq.to_le_bytes());
    let mut x = seq.wrapping_mul(2_654_435_761) ^ u32::from(writer);
    for b in &mut f[20..len - 4] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let c = fnv(&f[..len - 4]);
    f[len - 4..].copy_from_slice(&c.to_le_bytes());
    f
}

/// A test frame (our ethertype), not something a kernel sent on its own
/// (IPv6 neighbour discovery when an interface comes up, say).
pub fn ours(f: &[u8]) -> bool {
    f.len() >= 24 && f[12..14] == [0x88, 0xb5]
}

/// (writer, kind, seq) of an intact frame; panics on a damaged one.
pub fn parse(f: &[u8]) -> (u8, u8, u32) {
    let n = f.len();
    assert!(n >= 24, "runt frame of {n} bytes");
    let c = u32::from_le_bytes(f[n - 4..].try_into().unwrap());
    assert_eq!(c, fnv(&f[..n - 4]), "damaged frame");
    (
        f[14],
        f[15],
        u32::from_le_bytes(f[16..20].try_into().unwrap()),
    )
}

/// Frame size for `seq`: varied, so that frames fall across the ring end.
pub fn size_of(seq: u32, writer: u8) -> usize {
    24 + ((seq as usize).wrapping_mul(7919) + writer as usize * 131) % (1514 - 23)
}

pub fn mac_hex(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn parse_mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

/// Run test `role` of this test binary in a child with `envs`. Roles are
/// `#[ignore]`d, so that a normal run does not count them as tests.
pub fn spawn_role(role: &str, envs: &[(&str, String)]) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        role,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("SHMIF_TEST_CHILD", "1")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

pub fn is_child() -> bool {
    std::env::var_os("SHMIF_TEST_CHILD").is_some()
}

/// The tagged lines of a child, one at a time.
pub struct Lines(BufReader<ChildStdout>);

impl Lines {
    pub fn new(c: &mut Child) -> Lines {
        Lines(BufReader::new(c.stdout.take().unwrap()))
    }

    /// The next tagged line, without the tag; None at end of output.
    pub fn next(&mut self) -> Option<String> {
        let mut l = String::new();
        loop {
            l.clear();
            if self.0.read_line(&mut l).ok()? == 0 {
                return None;
            }
            // The harness may have started a line ("test x ... ") before.
            if let Some(i) = l.find(TAG) {
                return Some(l[i + TAG.len()..].trim_end().to_string());
            }
        }
    }
}

/// Say something to the parent.
pub fn tell(s: &str) {
    println!("{TAG}{s}");
}

/// Read one line from the parent.
pub fn hear() -> String {
    let mut l = String::new();
    std::io::stdin().read_line(&mut l).unwrap();
    l.trim().to_string()
}

/// NetBSD's shmif_dumpbus test vectors, kept in the project
/// (tests/data/netbsd/README.md says where they come from).
pub fn testdata() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/netbsd/shmif_dumpbus")
}
