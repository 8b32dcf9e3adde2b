//! The few frames the IP presence writes itself (smoltcp does not do
//! duplicate address detection): gratuitous ARP, the DAD neighbor
//! solicitation, and the neighbor advertisement that defends an address.

use crate::ioctl::Mac;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv6Packet, Ipv6Repr, NdiscNeighborFlags,
    NdiscRepr, RawHardwareAddress,
};
use std::net::{Ipv4Addr, Ipv6Addr};

const ETH_HDR: usize = 14;

/// The Ethernet group address of an IPv6 multicast address (33:33 + low 32 bits).
pub fn ipv6_multicast_mac(a: Ipv6Addr) -> Mac {
    let o = a.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// ff02::1:ffXX:XXXX for `a`.
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

fn ethernet(buf: &mut [u8], src: Mac, dst: Mac, ethertype: EthernetProtocol) {
    let repr = EthernetRepr {
        src_addr: EthernetAddress(src),
        dst_addr: EthernetAddress(dst),
        ethertype,
    };
    repr.emit(&mut EthernetFrame::new_unchecked(buf));
}

/// `Request who-has IP tell IP` from `mac`, to broadcast: the RFC 5227
/// announcement (NetBSD's arpannounce), after DAD and in defence.
pub fn gratuitous_arp(mac: Mac, ip: Ipv4Addr) -> Vec<u8> {
    arp_who_has(mac, ip, ip)
}

/// `Request who-has IP tell 0.0.0.0`: the RFC 5227 probe, as NetBSD's
/// arp_dad_output sends it; a sender address of zero claims nothing.
pub fn arp_probe(mac: Mac, ip: Ipv4Addr) -> Vec<u8> {
    arp_who_has(mac, Ipv4Addr::UNSPECIFIED, ip)
}

fn arp_who_has(mac: Mac, sender: Ipv4Addr, ip: Ipv4Addr) -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(mac),
        source_protocol_addr: sender,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: ip,
    };
    let mut buf = vec![0u8; ETH_HDR + arp.buffer_len()];
    ethernet(&mut buf, mac, [0xff; 6], EthernetProtocol::Arp);
    arp.emit(&mut ArpPacket::new_unchecked(&mut buf[ETH_HDR..]));
    buf
}

fn icmpv6(mac: Mac, dst_mac: Mac, src: Ipv6Addr, dst: Ipv6Addr, icmp: Icmpv6Repr) -> Vec<u8> {
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: 255,
    };
    let mut buf = vec![0u8; ETH_HDR + ip.buffer_len() + icmp.buffer_len()];
    ethernet(&mut buf, mac, dst_mac, EthernetProtocol::Ipv6);
    let mut pkt = Ipv6Packet::new_unchecked(&mut buf[ETH_HDR..]);
    ip.emit(&mut pkt);
    icmp.emit(
        &src,
        &dst,
        &mut Icmpv6Packet::new_unchecked(pkt.payload_mut()),
        &ChecksumCapabilities::default(),
    );
    buf
}

/// The DAD probe for `target`: a neighbor solicitation from `::` to the
/// target's solicited-node group (RFC 4862 5.4.2).
pub fn dad_solicit(mac: Mac, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let ns = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr: target,
        lladdr: None,
    });
    icmpv6(
        mac,
        ipv6_multicast_mac(group),
        Ipv6Addr::UNSPECIFIED,
        group,
        ns,
    )
}

/// An unsolicited advertisement of `target` to all nodes: the answer to
/// another host's DAD probe for an address we hold.
pub fn defend_advert(mac: Mac, target: Ipv6Addr) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let na = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
        flags: NdiscNeighborFlags::OVERRIDE,
        target_addr: target,
        lladdr: Some(RawHardwareAddress::from_bytes(&mac)),
    });
    icmpv6(mac, ipv6_multicast_mac(all_nodes), target, all_nodes, na)
}

/// `who-has target tell ip`, to broadcast.
pub fn arp_request(mac: Mac, ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(mac),
        source_protocol_addr: ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let mut buf = vec![0u8; ETH_HDR + arp.buffer_len()];
    ethernet(&mut buf, mac, [0xff; 6], EthernetProtocol::Arp);
    arp.emit(&mut ArpPacket::new_unchecked(&mut buf[ETH_HDR..]));
    buf
}

/// A neighbour solicitation for `target` from `src`, with our link-layer
/// address, to the target's solicited-node group.
pub fn neighbor_solicit(mac: Mac, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let ns = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr: target,
        lladdr: Some(RawHardwareAddress::from_bytes(&mac)),
    });
    icmpv6(mac, ipv6_multicast_mac(group), src, group, ns)
}

/// `from_ip is-at from_mac`, addressed to us: fed to smoltcp to put a
/// known neighbour back into its cache.
pub fn arp_reply(from_mac: Mac, from_ip: Ipv4Addr, to_mac: Mac, to_ip: Ipv4Addr) -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: EthernetAddress(from_mac),
        source_protocol_addr: from_ip,
        target_hardware_addr: EthernetAddress(to_mac),
        target_protocol_addr: to_ip,
    };
    let mut buf = vec![0u8; ETH_HDR + arp.buffer_len()];
    ethernet(&mut buf, from_mac, to_mac, EthernetProtocol::Arp);
    arp.emit(&mut ArpPacket::new_unchecked(&mut buf[ETH_HDR..]));
    buf
}

/// The IPv6 counterpart of [`arp_reply`]: an overriding advertisement of
/// `from_ip` at `from_mac`, addressed to us.
pub fn neighbor_advert(from_mac: Mac, from_ip: Ipv6Addr, to_mac: Mac, to_ip: Ipv6Addr) -> Vec<u8> {
    let na = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
        flags: NdiscNeighborFlags::OVERRIDE | NdiscNeighborFlags::SOLICITED,
        target_addr: from_ip,
        lladdr: Some(RawHardwareAddress::from_bytes(&from_mac)),
    });
    icmpv6(from_mac, to_mac, from_ip, to_ip, na)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solicited_node_group() {
        let a: Ipv6Addr = "fc00::12:3456".parse().unwrap();
        assert_eq!(
            solicited_node(a),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            ipv6_multicast_mac(solicited_node(a)),
            [0x33, 0x33, 0xff, 0x12, 0x34, 0x56]
        );
    }

    #[test]
    fn garp_layout() {
        let f = gratuitous_arp([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[..6], &[0xff; 6]);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[28..32], &[10, 0, 0, 1], "sender protocol address");
        assert_eq!(&f[38..42], &[10, 0, 0, 1], "target protocol address");
    }
}
