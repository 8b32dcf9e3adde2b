//! A neighbour flood: ARP requests and neighbour solicitations for the
//! daemon's addresses, each from a new source address and MAC, sent by a
//! real client on a tap's control socket into a real ifnetd. The daemon's
//! memory must stay bounded whatever arrives (issue 12, item 1: it used to
//! grow by 65-115 bytes a frame, without end).
//!
//! `FLOOD=N` sets the number of frames (default 200,000);
//! `bash bench/neighflood.sh` runs 5,000,000 and records the figures.

use crate::common::*;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Address, Ipv6Address, Ipv6Packet,
    Ipv6Repr, NdiscRepr, RawHardwareAddress,
};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const V4: Ipv4Address = Ipv4Address::new(10, 77, 0, 1);
const V6: Ipv6Address = Ipv6Address::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1);

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A cheap generator of distinct sources (xorshift).
struct Sources(u64);

impl Sources {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn arp_request(mac: EthernetAddress, ip: Ipv4Address, buf: &mut Vec<u8>) {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: V4,
    };
    let eth = EthernetRepr {
        src_addr: mac,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    buf.resize(14 + arp.buffer_len(), 0);
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
}

fn neighbour_solicitation(mac: EthernetAddress, ip: Ipv6Address, buf: &mut Vec<u8>) {
    let dst = Ipv6Address::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 1);
    let icmp = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr: V6,
        lladdr: Some(RawHardwareAddress::from(mac)),
    });
    let ip6 = Ipv6Repr {
        src_addr: ip,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: 255,
    };
    let eth = EthernetRepr {
        src_addr: mac,
        dst_addr: EthernetAddress([0x33, 0x33, 0xff, 0, 0, 1]),
        ethertype: EthernetProtocol::Ipv6,
    };
    buf.resize(14 + ip6.buffer_len() + icmp.buffer_len(), 0);
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    let mut p = Ipv6Packet::new_unchecked(f.payload_mut());
    ip6.emit(&mut p);
    icmp.emit(
        &ip,
        &dst,
        &mut Icmpv6Packet::new_unchecked(p.payload_mut()),
        &ChecksumCapabilities::default(),
    );
}

/// Frames tap0 received less those dropped at the IP presence's queue.
fn taken_in(d: &Daemon) -> u64 {
    let (out, _, _) = d.ifconfig(&["-v", "tap0"]);
    let line = out
        .lines()
        .find(|l| l.contains("input:"))
        .unwrap_or_default();
    let words: Vec<&str> = line.split_whitespace().collect();
    let before = |what: &str| {
        words
            .iter()
            .position(|w| w.starts_with(what))
            .and_then(|i| words[i - 1].parse::<u64>().ok())
            .unwrap_or(0)
    };
    before("packets") - before("queue")
}

#[test]
fn memory_stays_bounded_under_a_neighbour_flood() {
    let n: u64 = std::env::var("FLOOD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let d = Daemon::start();
    let pid = d.child.as_ref().unwrap().id();
    d.ok(&["tap0", "create"]);
    // A small client queue: the 4 MiB default, its pages touched as the
    // replies queue up, would be growth of its own, bounded but not the
    // kind measured here.
    d.ok(&["tap0", "txqueue", "65536"]);
    let mut c = UnixStream::connect(d.run_dir().join("tap0")).unwrap();
    wait_until(5, "tap0 up on open", || {
        d.ifconfig(&["tap0"]).0.contains("RUNNING")
    });
    d.ok(&["tap0", "inet", "10.77.0.1/16"]);
    d.ok(&["tap0", "inet6", "fd00:77::1/64"]);
    d.ok(&["-w", "5"]);
    // A first round fills every bounded table, so that what is measured
    // after it is growth, not the tables' first use.
    let mut src = Sources(0x9e37_79b9_7f4a_7c15);
    let mut buf = Vec::with_capacity(128);
    let mut send = |src: &mut Sources, count: u64| {
        let mut out = Vec::with_capacity(1 << 16);
        for i in 0..count {
            let r = src.next();
            let mut m = r.to_be_bytes();
            m[2] = 0x02; // locally administered, unicast
            let mac = EthernetAddress([m[2], m[3], m[4], m[5], m[6], m[7]]);
            if i % 2 == 0 {
                let ip = Ipv4Address::new(10, 77, (r >> 8) as u8 | 1, r as u8 | 2);
                arp_request(mac, ip, &mut buf);
            } else {
                let ip = Ipv6Address::from_bits(0xfd00_0077_u128 << 96 | u128::from(r));
                neighbour_solicitation(mac, ip, &mut buf);
            }
            out.extend_from_slice(&(buf.len() as u32).to_be_bytes());
            out.extend_from_slice(&buf);
            // Paced at about 100,000 frames/s, so that the IP presence
            // takes in most of them rather than dropping them at its queue:
            // memory is measured per frame that reached it.
            if i % 1000 == 999 {
                c.write_all(&out).unwrap();
                out.clear();
                // Take the replies as they come: tap's client queue (4 MiB)
                // filling up is not the growth measured here.
                let mut junk = [0u8; 65536];
                while nix::sys::socket::recv(
                    c.as_raw_fd(),
                    &mut junk,
                    nix::sys::socket::MsgFlags::MSG_DONTWAIT,
                )
                .is_ok_and(|n| n > 0)
                {}
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        c.write_all(&out).unwrap();
    };
    send(&mut src, 50_000);
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(pid);
    let taken_before = taken_in(&d);
    let t = Instant::now();
    send(&mut src, n);
    let took = t.elapsed();
    // Let the daemon drain what is queued before measuring.
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(pid);
    let taken = taken_in(&d) - taken_before;
    eprintln!(
        "neighbour flood: {n} frames in {:.2} s ({:.0} frames/s), {taken} taken in by the IP presence; RSS {before} KiB -> {after} KiB",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    // Still a host: a neighbour asking now is answered.
    c.set_nonblocking(true).unwrap();
    let mut junk = [0u8; 65536];
    while std::io::Read::read(&mut c, &mut junk).is_ok_and(|n| n > 0) {}
    c.set_nonblocking(false).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = EthernetAddress([0x02, 0, 0, 0, 0x77, 0x77]);
    arp_request(me, Ipv4Address::new(10, 77, 7, 7), &mut buf);
    c.write_all(&(buf.len() as u32).to_be_bytes()).unwrap();
    c.write_all(&buf).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let answered = loop {
        assert!(Instant::now() < deadline, "no ARP reply after the flood");
        let mut len = [0u8; 4];
        std::io::Read::read_exact(&mut c, &mut len).unwrap();
        let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
        std::io::Read::read_exact(&mut c, &mut f).unwrap();
        let Ok(e) = EthernetFrame::new_checked(&f[..]) else {
            continue;
        };
        if e.dst_addr() == me && e.ethertype() == EthernetProtocol::Arp {
            break true;
        }
    };
    assert!(answered);
    // The old pool grew 65-115 bytes for every new neighbour it took in;
    // allow 16 (allocator noise) and 256 KiB of slack.
    assert!(
        taken >= 10_000,
        "only {taken} of {n} frames reached the IP presence"
    );
    let grown = after.saturating_sub(before) * 1024;
    assert!(
        grown <= 256 * 1024 + taken * 16,
        "RSS grew {grown} bytes for {taken} frames taken in ({before} -> {after} KiB)"
    );
}
