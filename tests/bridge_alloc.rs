//! The bridge forwards without allocating: a counting global allocator
//! watches frames go through known-unicast, unknown-unicast and broadcast
//! paths. Also a rough throughput figure (`--ignored`). And the router:
//! IPv4 and IPv6 packets forwarded between two interfaces, their TTL
//! lowered, once the next hops are resolved.

use ifnet::Kernel;
use ifnet::cloner::{Cloners, IfClone, KernelEnv};
use ifnet::drivers::bridge::BridgeClone;
use ifnet::drivers::lo::LoClone;
use ifnet::frame::Frame;
use ifnet::ifnet::{Driver, IfState, IfType};
use ifnet::ioctl::{BridgeReq, Errno, In6AliasReq, InAliasReq, Knobs, Reply, Request, iff};
use ifnet::port::Transmit;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Count only on the thread the frames go through: the kernel's own
    /// threads may allocate whenever they like.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// A medium that takes every frame and only counts it.
struct Sink(AtomicU64);

impl Transmit for Sink {
    fn transmit(&self, _frame: &Frame) -> Result<(), Errno> {
        self.0.fetch_add(1, Relaxed);
        Ok(())
    }
}

struct SinkClone;
struct SinkDriver;
impl Driver for SinkDriver {}

impl IfClone for SinkClone {
    fn name(&self) -> &'static str {
        "sink"
    }

    fn create(&self, _env: &KernelEnv, ifs: &mut IfState) -> Result<Box<dyn Driver>, Errno> {
        ifs.kind = IfType::Ethernet;
        ifs.flags = iff::BROADCAST | iff::SIMPLEX | iff::MULTICAST | iff::UP | iff::RUNNING;
        ifs.set_lladdr([0xb2, 0xa0, 0, 0, 0, ifs.unit as u8 + 1]);
        ifs.port
            .set_transmit(Some(Arc::new(Sink(AtomicU64::new(0)))));
        Ok(Box::new(SinkDriver))
    }
}

fn kernel(members: u32) -> Kernel {
    let k = Kernel::new(
        KernelEnv::default(),
        Cloners::new(vec![
            Box::new(BridgeClone::default()),
            Box::new(LoClone),
            Box::new(SinkClone),
        ]),
    );
    k.ioctl(Request::IfCreate {
        name: "bridge0".into(),
    })
    .unwrap();
    k.ioctl(Request::SetIfFlags {
        name: "bridge0".into(),
        flags: iff::UP,
    })
    .unwrap();
    for u in 0..members {
        let name = format!("sink{u}");
        k.ioctl(Request::IfCreate { name: name.clone() }).unwrap();
        let req = BridgeReq::Add { member: name };
        k.ioctl(Request::SetDrvSpec {
            name: "bridge0".into(),
            req: req.into(),
        })
        .unwrap();
    }
    k
}

fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = [dst, src].concat();
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(64, 0xab);
    f
}

#[test]
fn forwarding_does_not_allocate() {
    let k = kernel(3);
    let (p0, p1) = (k.port("sink0").unwrap(), k.port("sink1").unwrap());
    let (a, b) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
    let (ab, ba) = (frame(b, a), frame(a, b));
    let bcast = frame([0xff; 6], a);
    let unknown = frame([2, 0, 0, 0, 0, 0xc], a);
    let [ab, ba, bcast, unknown] = [&ab, &ba, &bcast, &unknown].map(|f| Frame::new(f).unwrap());
    // Learn both stations first: inserting into the cache may allocate.
    p0.input(&bcast);
    p1.input(&ba);
    COUNTING.with(|c| c.set(true));
    for _ in 0..10_000 {
        p0.input(&ab);
        p1.input(&ba);
        p0.input(&unknown);
        p0.input(&bcast);
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCS.load(Relaxed), 0);
    let sent = |n: &str| k.ioctl(Request::GetIfData { name: n.into() });
    match (sent("sink1"), sent("sink2")) {
        (Ok(ifnet::ioctl::Reply::Data(d1)), Ok(ifnet::ioctl::Reply::Data(d2))) => {
            assert_eq!(d1.opackets, 30_001);
            assert_eq!(d2.opackets, 20_001);
        }
        r => panic!("{r:?}"),
    }
}

#[test]
#[ignore = "throughput figure, not a check"]
fn forwarding_rate() {
    let k = kernel(4);
    let (p0, p1) = (k.port("sink0").unwrap(), k.port("sink1").unwrap());
    let (a, b) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
    let (ab, ba) = (frame(b, a), frame(a, b));
    let [ab, ba] = [&ab, &ba].map(|f| Frame::new(f).unwrap());
    p1.input(&ba);
    let n = 2_000_000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        p0.input(&ab);
    }
    let dt = t.elapsed();
    println!(
        "known unicast: {:.0} frames/s ({:?} per frame)",
        n as f64 / dt.as_secs_f64(),
        dt / n
    );
}

/// A TCP super-frame (IPv4, 4000 payload bytes) as a host TAP with
/// offloads hands it over, and its offload header.
fn super_frame(dst: [u8; 6], src: [u8; 6]) -> (Vec<u8>, ifnet::offload::Offload) {
    let mut f = [dst, src].concat();
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&4040u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
    f.extend_from_slice(&ip);
    let mut tcp = [0u8; 20];
    tcp[12] = 0x50;
    tcp[13] = 0x18;
    f.extend_from_slice(&tcp);
    f.resize(f.len() + 4000, 0x5a);
    let off = ifnet::offload::Offload {
        flags: 1,
        gso_type: 1,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    (f, off)
}

#[test]
fn segmenting_in_the_bridge_does_not_allocate() {
    let k = kernel(2);
    let (p0, p1) = (k.port("sink0").unwrap(), k.port("sink1").unwrap());
    let (a, b) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
    p0.input(&Frame::new(&frame([0xff; 6], a)).unwrap());
    p1.input(&Frame::new(&frame(a, b)).unwrap());
    let (sf, off) = super_frame(b, a);
    let sf = Frame::with_offload(&sf, off).unwrap();
    COUNTING.with(|c| c.set(true));
    for _ in 0..1000 {
        p0.input(&sf);
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCS.load(Relaxed), 0);
    match k.ioctl(Request::GetIfData {
        name: "sink1".into(),
    }) {
        // Three segments per super-frame, and the first broadcast.
        Ok(ifnet::ioctl::Reply::Data(d)) => assert_eq!(d.opackets, 3001),
        r => panic!("{r:?}"),
    }
}

const MAC0: [u8; 6] = [0xb2, 0xa0, 0, 0, 0, 1];
const MAC1: [u8; 6] = [0xb2, 0xa0, 0, 0, 0, 2];
const PEER: [u8; 6] = [2, 0, 0, 0, 0, 9];

fn router_kernel() -> Kernel {
    let k = Kernel::new(
        KernelEnv::default(),
        Cloners::new(vec![Box::new(LoClone), Box::new(SinkClone)]),
    );
    for (n, v4, v6) in [
        (0u8, [10, 1, 0, 1], "2001:db8:1::1"),
        (1, [10, 2, 0, 1], "2001:db8:2::1"),
    ] {
        let name = format!("sink{n}");
        k.ioctl(Request::IfCreate { name: name.clone() }).unwrap();
        let req = InAliasReq {
            addr: v4.into(),
            mask: Some([255, 255, 255, 0].into()),
            broadcast: None,
            dst: None,
            flags: 0,
        };
        k.ioctl(Request::AifAddr {
            name: name.clone(),
            req,
        })
        .unwrap();
        let req = In6AliasReq {
            addr: v6.parse().unwrap(),
            prefixlen: 64,
            dst: None,
            flags: 0,
            pltime: u32::MAX,
            vltime: u32::MAX,
        };
        k.ioctl(Request::AifAddrIn6 { name, req }).unwrap();
    }
    let Ok(Reply::Knobs(knobs)) = k.ioctl(Request::GetKnobs) else {
        panic!("no knobs")
    };
    let knobs = Knobs {
        ip_forwarding: true,
        ip6_forwarding: true,
        ..knobs
    };
    k.ioctl(Request::SetKnobs(knobs)).unwrap();
    k
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// A 100-byte UDP packet from A (10.1.0.2) to B (10.2.0.2), TTL 64.
fn packet4() -> Vec<u8> {
    let mut f = [MAC0, [2, 0, 0, 0, 0, 7]].concat();
    f.extend_from_slice(&[8, 0, 0x45, 0, 0, 100, 0, 1, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[10, 1, 0, 2, 10, 2, 0, 2]);
    let c = checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.resize(14 + 100, 0xab);
    f
}

/// The same from 2001:db8:1::2 to 2001:db8:2::2, hop limit 64.
fn packet6() -> Vec<u8> {
    let mut f = [MAC0, [2, 0, 0, 0, 0, 7]].concat();
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 60, 17, 64]);
    for a in ["2001:db8:1::2", "2001:db8:2::2"] {
        f.extend_from_slice(&a.parse::<std::net::Ipv6Addr>().unwrap().octets());
    }
    f.resize(14 + 100, 0xab);
    f
}

/// B's answers to our ARP request and neighbour solicitation: the next
/// hops are resolved.
fn resolve(k: &Kernel) {
    let p1 = k.port("sink1").unwrap();
    let mut arp = [MAC1, PEER].concat();
    arp.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 2]);
    arp.extend_from_slice(&PEER);
    arp.extend_from_slice(&[10, 2, 0, 2]);
    arp.extend_from_slice(&MAC1);
    arp.extend_from_slice(&[10, 2, 0, 1]);
    p1.input(&Frame::new(&arp).unwrap());
    // A neighbour advertisement for 2001:db8:2::2 with its link address.
    let (src, dst): (std::net::Ipv6Addr, std::net::Ipv6Addr) = (
        "2001:db8:2::2".parse().unwrap(),
        "2001:db8:2::1".parse().unwrap(),
    );
    let mut icmp = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
    icmp.extend_from_slice(&src.octets());
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(&PEER);
    let mut pseudo = [src.octets(), dst.octets()].concat();
    pseudo.extend_from_slice(&[0, 0, 0, icmp.len() as u8, 0, 0, 0, 58]);
    pseudo.extend_from_slice(&icmp);
    let c = checksum(&pseudo);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut na = [MAC1, PEER].concat();
    na.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, icmp.len() as u8, 58, 255]);
    na.extend_from_slice(&src.octets());
    na.extend_from_slice(&dst.octets());
    na.extend_from_slice(&icmp);
    p1.input(&Frame::new(&na).unwrap());
}

#[test]
fn routing_does_not_allocate() {
    let k = router_kernel();
    let p0 = k.port("sink0").unwrap();
    let (f4, f6) = (packet4(), packet6());
    let (f4, f6) = (Frame::new(&f4).unwrap(), Frame::new(&f6).unwrap());
    // The first packets are held while the next hops resolve; then one
    // of each warms the per-thread buffer.
    p0.input(&f4);
    p0.input(&f6);
    resolve(&k);
    p0.input(&f4);
    p0.input(&f6);
    let sent = |k: &Kernel| match k.ioctl(Request::GetIfData {
        name: "sink1".into(),
    }) {
        Ok(Reply::Data(d)) => d.opackets,
        r => panic!("{r:?}"),
    };
    let before = sent(&k);
    COUNTING.with(|c| c.set(true));
    for _ in 0..10_000 {
        p0.input(&f4);
        p0.input(&f6);
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCS.load(Relaxed), 0);
    // All forwarded (the host side may announce itself meanwhile).
    let n = sent(&k) - before;
    assert!((20_000..20_010).contains(&n), "{n}");
}
