//! The kernel/user API: requests named after the BSD ioctls, their replies,
//! and the types they carry. `ifnetd` is the kernel; `ifconfig` and
//! `brconfig` are its clients. Every request is answered with a reply or an
//! [`Errno`], so every error message falls out of one code path.

mod errno;
pub mod wire;

pub use errno::Errno;

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Interface flags (`IFF_*`, sys/net/if.h), in the order ifconfig prints them.
pub mod iff {
    pub const UP: u32 = 0x1;
    pub const BROADCAST: u32 = 0x2;
    pub const DEBUG: u32 = 0x4;
    pub const LOOPBACK: u32 = 0x8;
    pub const POINTOPOINT: u32 = 0x10;
    pub const UNNUMBERED: u32 = 0x20;
    pub const RUNNING: u32 = 0x40;
    pub const NOARP: u32 = 0x80;
    pub const PROMISC: u32 = 0x100;
    pub const ALLMULTI: u32 = 0x200;
    pub const OACTIVE: u32 = 0x400;
    pub const SIMPLEX: u32 = 0x800;
    pub const LINK0: u32 = 0x1000;
    pub const LINK1: u32 = 0x2000;
    pub const LINK2: u32 = 0x4000;
    pub const MULTICAST: u32 = 0x8000;

    /// Bits a user may not set or clear with SIOCSIFFLAGS (IFF_CANTCHANGE).
    pub const CANTCHANGE: u32 =
        BROADCAST | POINTOPOINT | RUNNING | OACTIVE | SIMPLEX | MULTICAST | ALLMULTI | PROMISC;

    pub const NAMES: [&str; 16] = [
        "UP",
        "BROADCAST",
        "DEBUG",
        "LOOPBACK",
        "POINTOPOINT",
        "UNNUMBERED",
        "RUNNING",
        "NOARP",
        "PROMISC",
        "ALLMULTI",
        "OACTIVE",
        "SIMPLEX",
        "LINK0",
        "LINK1",
        "LINK2",
        "MULTICAST",
    ];
}

/// Per-address flags of inet addresses (`IN_IFF_*`).
pub mod in_iff {
    pub const TENTATIVE: u32 = 0x1;
    pub const DUPLICATED: u32 = 0x2;
    pub const DETACHED: u32 = 0x4;
    pub const NAMES: [&str; 3] = ["TENTATIVE", "DUPLICATED", "DETACHED"];
}

/// Per-address flags of inet6 addresses (`IN6_IFF_*`).
pub mod in6_iff {
    pub const ANYCAST: u32 = 0x1;
    pub const TENTATIVE: u32 = 0x2;
    pub const DUPLICATED: u32 = 0x4;
    pub const DETACHED: u32 = 0x8;
    pub const DEPRECATED: u32 = 0x10;
    pub const NODAD: u32 = 0x20;
    pub const AUTOCONF: u32 = 0x40;
    pub const TEMPORARY: u32 = 0x80;
    pub const NAMES: [&str; 8] = [
        "ANYCAST",
        "TENTATIVE",
        "DUPLICATED",
        "DETACHED",
        "DEPRECATED",
        "NODAD",
        "AUTOCONF",
        "TEMPORARY",
    ];
}

/// Interface capabilities (`IFCAP_*`), as NetBSD 10 numbers them.
pub mod ifcap {
    pub const TSO4: u32 = 0x80;
    pub const IP4CSUM_RX: u32 = 0x100;
    pub const IP4CSUM_TX: u32 = 0x200;
    pub const TCP4CSUM_RX: u32 = 0x400;
    pub const TCP4CSUM_TX: u32 = 0x800;
    pub const UDP4CSUM_RX: u32 = 0x1000;
    pub const UDP4CSUM_TX: u32 = 0x2000;
    pub const TCP6CSUM_RX: u32 = 0x4000;
    pub const TCP6CSUM_TX: u32 = 0x8000;
    pub const UDP6CSUM_RX: u32 = 0x10000;
    pub const UDP6CSUM_TX: u32 = 0x20000;
    pub const TSO6: u32 = 0x40000;
}

/// Flags of a bridge member (`IFBIF_*`, net/if_bridgevar.h).
pub mod ifbif {
    pub const LEARNING: u32 = 0x1;
    pub const DISCOVER: u32 = 0x2;
    pub const STP: u32 = 0x4;
    pub const PROTECTED: u32 = 0x8;
}

/// Route flags (`RTF_*`, net/route.h), as NetBSD numbers them.
pub mod rtf {
    pub const UP: u32 = 0x1;
    pub const GATEWAY: u32 = 0x2;
    pub const HOST: u32 = 0x4;
    pub const REJECT: u32 = 0x8;
    pub const DYNAMIC: u32 = 0x10;
    pub const MODIFIED: u32 = 0x20;
    pub const DONE: u32 = 0x40;
    pub const MASK: u32 = 0x80;
    pub const CONNECTED: u32 = 0x100;
    pub const LLDATA: u32 = 0x400;
    pub const STATIC: u32 = 0x800;
    pub const BLACKHOLE: u32 = 0x1000;
    pub const PROTO2: u32 = 0x4000;
    pub const PROTO1: u32 = 0x8000;
    pub const ANNOUNCE: u32 = 0x20000;
    pub const LOCAL: u32 = 0x40000;
    pub const BROADCAST: u32 = 0x80000;

    /// netstat's letters (sbin/route/rtutil.c), in its order, and the
    /// names route(8) prints (`routeflags`).
    pub const NAMES: [(u32, char, &str); 17] = [
        (UP, 'U', "UP"),
        (GATEWAY, 'G', "GATEWAY"),
        (HOST, 'H', "HOST"),
        (REJECT, 'R', "REJECT"),
        (DYNAMIC, 'D', "DYNAMIC"),
        (MODIFIED, 'M', "MODIFIED"),
        (DONE, 'd', "DONE"),
        (MASK, 'm', "MASK_PRESENT"),
        (CONNECTED, 'C', "CONNECTED"),
        (LLDATA, 'L', "LLINFO"),
        (STATIC, 'S', "STATIC"),
        (BLACKHOLE, 'B', "BLACKHOLE"),
        (PROTO2, '2', "PROTO2"),
        (PROTO1, '1', "PROTO1"),
        (ANNOUNCE, 'p', "PROXY"),
        (LOCAL, 'l', "LOCAL"),
        (BROADCAST, 'b', "BROADCAST"),
    ];

    /// netstat's flags column for `flags`.
    pub fn letters(flags: u32) -> String {
        NAMES
            .iter()
            .filter(|(b, _, _)| flags & b != 0)
            .map(|(_, c, _)| *c)
            .collect()
    }
}

/// Lifetime value meaning "forever" (ND6_INFINITE_LIFETIME).
pub const INFINITE_LIFETIME: u32 = 0xffff_ffff;

/// An Ethernet address.
pub type Mac = [u8; 6];

/// Link state as `if_link_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum LinkState {
    #[default]
    Unknown,
    Down,
    Up,
}

/// An inet address of an interface (`struct in_ifaddr`, as SIOCAIFADDR fills it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InAliasReq {
    pub addr: Ipv4Addr,
    /// `None`: keep the existing mask, or the classful default for a new address.
    pub mask: Option<Ipv4Addr>,
    pub broadcast: Option<Ipv4Addr>,
    /// Destination of a point-to-point link.
    pub dst: Option<Ipv4Addr>,
    pub flags: u32,
}

/// An inet6 address of an interface (`struct in6_aliasreq`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct In6AliasReq {
    pub addr: Ipv6Addr,
    pub prefixlen: u8,
    pub dst: Option<Ipv6Addr>,
    pub flags: u32,
    pub pltime: u32,
    pub vltime: u32,
}

/// An inet address as the interface holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InAddr {
    pub addr: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub broadcast: Option<Ipv4Addr>,
    pub dst: Option<Ipv4Addr>,
    pub flags: u32,
}

/// An inet6 address as the interface holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct In6Addr {
    pub addr: Ipv6Addr,
    pub prefixlen: u8,
    pub dst: Option<Ipv6Addr>,
    pub flags: u32,
    pub pltime: u32,
    pub vltime: u32,
    /// Scope zone (the interface index) for link-local addresses, else 0.
    pub scopeid: u32,
}

/// Interface statistics (`struct if_data` counters).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfData {
    pub ipackets: u64,
    pub ierrors: u64,
    pub opackets: u64,
    pub oerrors: u64,
    pub collisions: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imcasts: u64,
    pub omcasts: u64,
    pub iqdrops: u64,
    pub noproto: u64,
}

/// What SIOCGIFMEDIA reports: current media word, whether the link is active,
/// and the media words the driver supports (ifconfig -m).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfMedia {
    /// e.g. "Ethernet autoselect", "Ethernet none".
    pub current: String,
    /// `Some(true)` active, `Some(false)` no carrier, `None` no status.
    pub active: Option<bool>,
    pub supported: Vec<String>,
}

/// Everything ifconfig prints about one interface: the answer to
/// `SIOCGIFCONF` (our getifaddrs(3) plus the per-interface SIOCG* requests,
/// in one round trip).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfStatus {
    pub name: String,
    pub index: u32,
    pub flags: u32,
    pub mtu: u32,
    pub metric: u32,
    /// (capabilities, enabled) when the driver has any.
    pub capabilities: Option<(u32, u32)>,
    /// (ec_capabilities, ec_enabled) for Ethernet drivers that have them.
    pub ec_capabilities: Option<(u32, u32)>,
    pub description: Option<String>,
    /// The active link address, `None` for interfaces without one (lo, bridge).
    pub lladdr: Option<Mac>,
    /// Every link address, active first.
    pub lladdrs: Vec<Mac>,
    pub linkstr: Option<String>,
    /// Bytes queued for the peer at most, where settable (tap).
    #[serde(default)]
    pub txqueue: Option<u32>,
    pub link_state: LinkState,
    pub media: Option<IfMedia>,
    pub data: IfData,
    pub inet: Vec<InAddr>,
    pub inet6: Vec<In6Addr>,
    /// What the driver adds about its link (a vxlan's configuration).
    pub link: Option<LinkStatus>,
}

/// Link-specific status a driver adds to its interface's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkStatus {
    Vxlan(VxlanConfig),
}

/// A driver-specific request (SIOCSDRVSPEC/SIOCGDRVSPEC): the driver that
/// does not know it answers EINVAL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DrvSpec {
    Bridge(BridgeReq),
    Vxlan(VxlanReq),
}

impl From<BridgeReq> for DrvSpec {
    fn from(r: BridgeReq) -> DrvSpec {
        DrvSpec::Bridge(r)
    }
}

impl From<VxlanReq> for DrvSpec {
    fn from(r: VxlanReq) -> DrvSpec {
        DrvSpec::Vxlan(r)
    }
}

/// The largest VXLAN network identifier, plus one (FreeBSD's VXLAN_VNI_MAX).
pub const VXLAN_VNI_MAX: u32 = 1 << 24;

/// A vxlan request (FreeBSD's `VXLAN_CMD_*`). Every set is refused with
/// EBUSY while the interface is running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VxlanReq {
    /// VXLAN_CMD_GET_CONFIG
    GetConfig,
    SetVni(u32),
    SetLocalAddr(IpAddr),
    /// The default destination: a unicast remote or a multicast group.
    SetRemoteAddr(IpAddr),
    SetLocalPort(u16),
    SetRemotePort(u16),
    SetPortRange {
        min: u16,
        max: u16,
    },
    SetFtableTimeout(u32),
    SetFtableMax(u32),
    /// The interface that joins the group (`vxlandev`).
    SetMulticastIf(String),
    SetTtl(u32),
    SetLearn(bool),
    /// Forget the learnt entries (`all`: the static ones too).
    Flush {
        all: bool,
    },
}

/// A vxlan's configuration and forwarding table size (`struct ifvxlancfg`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanConfig {
    /// `None` until set.
    pub vni: Option<u32>,
    pub local: SocketAddr,
    /// The default destination: unicast remote or multicast group.
    pub remote: SocketAddr,
    pub dev: Option<String>,
    pub ftable_cnt: u32,
    pub ftable_max: u32,
    pub ftable_timeout: u32,
    pub port_min: u16,
    pub port_max: u16,
    pub learn: bool,
    pub ttl: u32,
}

/// A bridge request carried by SIOCSDRVSPEC/SIOCGDRVSPEC (`BRDG*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BridgeReq {
    /// BRDGADD
    Add { member: String },
    /// BRDGDEL
    Del { member: String },
    /// BRDGGIFFLGS / BRDGSIFFLGS on one member: set and clear `IFBIF_*` bits.
    SetIfFlags {
        member: String,
        set: u32,
        clear: u32,
    },
    /// BRDGSIFPRIO
    SetIfPriority { member: String, priority: u32 },
    /// BRDGSIFCOST
    SetIfCost { member: String, cost: u32 },
    /// BRDGSCACHE
    SetCacheSize(u32),
    /// BRDGSTO
    SetTimeout(u32),
    /// BRDGSADDR
    AddStatic { member: String, mac: Mac },
    /// BRDGDADDR
    DelAddr { mac: Mac },
    /// BRDGFLUSH: all entries or only the dynamic ones.
    Flush { all: bool },
    /// BRDGSPRI
    SetPriority(u32),
    /// BRDGSHT
    SetHelloTime(u32),
    /// BRDGSFD
    SetFwdDelay(u32),
    /// BRDGSMA
    SetMaxAge(u32),
    /// BRDGSFILT
    SetFilter(bool),
    /// BRDGGCACHE, BRDGGTO, BRDGGIFS, BRDGRTS, BRDGGPRI…: everything at once.
    Get,
}

/// One bridge member as `struct ifbreq` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeMember {
    pub name: String,
    pub flags: u32,
    pub port: u32,
    pub priority: u32,
    pub path_cost: u32,
    /// STP port state name ("disabled", "forwarding", …).
    pub state: String,
}

/// One address cache entry as `struct ifbareq` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeRoute {
    pub mac: Mac,
    pub member: String,
    /// Seconds left; 0 for static entries.
    pub expire: u64,
    pub flags: u32,
}

/// A bridge's whole configuration and state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeStatus {
    pub priority: u32,
    pub hello_time: u32,
    pub fwd_delay: u32,
    pub max_age: u32,
    pub filter: bool,
    pub filter_flags: u32,
    /// Newest first.
    pub members: Vec<BridgeMember>,
    pub max_cache: u32,
    pub timeout: u32,
    /// Newest first.
    pub routes: Vec<BridgeRoute>,
    pub stp: BridgeStp,
}

/// A bridge's spanning tree as `brconfig -v` shows it. Ids are priority
/// << 48 | MAC; 0 while the tree does not run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeStp {
    pub bridge_id: u64,
    pub root_id: u64,
    pub root_path_cost: u32,
    /// The member toward the root; `None` on the root itself.
    pub root_port: Option<String>,
    pub topology_change: bool,
    pub config_in: u64,
    pub tcn_in: u64,
    pub config_out: u64,
    pub tcn_out: u64,
    /// Frames to the BPDU address on a spanning tree member that were no
    /// BPDU we take (truncated, another protocol or version…).
    pub bad_in: u64,
}

/// One entry of an interface's ARP or neighbour cache (`struct llentry`
/// as NET_RT_FLAGS RTF_LLDATA dumps it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlEntry {
    pub ifname: String,
    pub index: u32,
    pub addr: IpAddr,
    pub mac: Mac,
    /// Seconds until it expires.
    pub expire: u32,
}

/// One route, as a routing message carries it (`struct rt_msghdr` with
/// its destination, gateway, netmask, interface and interface address).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtEntry {
    /// The destination, its host bits clear.
    pub dst: IpAddr,
    /// Netmask length; the family's full length for a host route.
    pub prefix: u8,
    /// The next hop (`RTF_GATEWAY`), or for an interface route the
    /// address of the interface it was added with.
    pub gateway: Option<IpAddr>,
    /// The interface the route leaves by (`-ifp`, or found from the
    /// gateway); in answers, the one it resolves to now.
    pub ifname: Option<String>,
    /// In answers to RTM_GET: the interface address packets leave with.
    pub ifa: Option<IpAddr>,
    /// `RTF_*`.
    pub flags: u32,
    /// Path MTU metric (`-mtu`); 0 for the interface's.
    pub mtu: u32,
    /// Packets sent along it (rt_use).
    pub used: u64,
}

/// A routing-socket request (RTM_*), as route(8) sends them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteReq {
    /// RTM_ADD: EEXIST if the same destination and mask are there.
    Add(RtEntry),
    /// RTM_CHANGE: gateway, interface, flags or metrics of a route.
    Change(RtEntry),
    /// RTM_DELETE of the route with this destination and mask (ESRCH).
    Delete { dst: IpAddr, prefix: u8 },
    /// RTM_GET: the route a packet to `dst` takes (ESRCH for none).
    Get { dst: IpAddr },
    /// Delete every static route of one family, or of both; answered
    /// with the routes deleted.
    Flush { v6: Option<bool> },
    /// Every route the kernel holds: connected, local and static.
    Dump,
}

/// Counters of the forwarding path, by NetBSD's names (`struct ipstat`,
/// `icmpstat`, `ip6stat`, `icmp6stat` fields for what ifnet counts).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtoStats {
    /// (name, value) in netstat -s order, per protocol section.
    pub ip: Vec<(String, u64)>,
    pub icmp: Vec<(String, u64)>,
    pub ip6: Vec<(String, u64)>,
    pub icmp6: Vec<(String, u64)>,
}

/// The kernel's knobs that `sysctl` reads and sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knobs {
    /// net.inet.ip.dad_count
    pub ip_dad_count: u8,
    /// net.inet6.ip6.dad_count
    pub ip6_dad_count: u8,
    /// net.inet6.ip6.auto_linklocal
    pub auto_linklocal: bool,
    /// net.inet.ip.forwarding
    #[serde(default)]
    pub ip_forwarding: bool,
    /// net.inet6.ip6.forwarding
    #[serde(default)]
    pub ip6_forwarding: bool,
    /// net.inet.ip.redirect: send ICMP redirects.
    #[serde(default = "yes")]
    pub ip_redirect: bool,
    /// net.inet.ip.allowsrcrt: take source-routed packets at all (else
    /// an administratively prohibited unreachable).
    #[serde(default)]
    pub ip_allowsrcrt: bool,
    /// net.inet.ip.forwsrcrt: forward along a source route.
    #[serde(default)]
    pub ip_forwsrcrt: bool,
}

fn yes() -> bool {
    true
}

/// A request to the virtual kernel. Names follow the BSD ioctls they model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Create an interface; `params` is handed to the cloner (unused so far).
    IfCreate {
        name: String,
    },
    IfDestroy {
        name: String,
    },
    /// Every interface's status, or one interface's (getifaddrs + SIOCG*).
    GetIfConf {
        name: Option<String>,
    },
    GetIfFlags {
        name: String,
    },
    /// Set the changeable flags to `flags` (SIOCSIFFLAGS).
    SetIfFlags {
        name: String,
        flags: u32,
    },
    GetIfMtu {
        name: String,
    },
    /// Set the most bytes queued for the interface's peer (ifnet's own).
    SetIfTxQueue {
        name: String,
        bytes: u32,
    },
    SetIfMtu {
        name: String,
        mtu: u32,
    },
    SetIfMetric {
        name: String,
        metric: u32,
    },
    AifAddr {
        name: String,
        req: InAliasReq,
    },
    DifAddr {
        name: String,
        addr: Ipv4Addr,
    },
    AifAddrIn6 {
        name: String,
        req: In6AliasReq,
    },
    DifAddrIn6 {
        name: String,
        addr: Ipv6Addr,
    },
    /// Add a link address; `active` makes it the interface's MAC.
    ALifAddr {
        name: String,
        mac: Mac,
        active: bool,
    },
    DLifAddr {
        name: String,
        mac: Mac,
    },
    /// `None` detaches (`-linkstr`).
    SetLinkStr {
        name: String,
        linkstr: Option<String>,
    },
    GetLinkStr {
        name: String,
    },
    /// `None` clears the description.
    SetIfDescr {
        name: String,
        descr: Option<String>,
    },
    GetIfMedia {
        name: String,
    },
    /// A media word as ifconfig's `media` keyword takes it.
    SetIfMedia {
        name: String,
        media: String,
    },
    /// Set the enabled capabilities (SIOCSIFCAP).
    SetIfCap {
        name: String,
        enabled: u32,
    },
    /// The interface cloners, in registration order.
    IfGCloners,
    GetIfData {
        name: String,
    },
    /// Read and zero the counters.
    ZIfData {
        name: String,
    },
    /// Driver-specific set request (bridge, vxlan configuration).
    SetDrvSpec {
        name: String,
        req: DrvSpec,
    },
    /// Driver-specific get request.
    GetDrvSpec {
        name: String,
        req: DrvSpec,
    },
    /// One ICMP echo request to `dst` through the interface that reaches
    /// it (`scope` names the interface for link-local addresses); answered
    /// with the reply, or ETIMEDOUT after `timeout_ms`. The ping tool.
    Echo {
        dst: IpAddr,
        scope: Option<String>,
        ident: u16,
        seq: u16,
        len: u16,
        timeout_ms: u32,
    },
    /// An echo request as `Echo`, sent along the routing table with a
    /// chosen source address (ping -S, -I) and TTL or hop limit (ping -T,
    /// ping6 -h; 0 for the default 64).
    EchoFrom {
        dst: IpAddr,
        src: Option<IpAddr>,
        ttl: u8,
        ident: u16,
        seq: u16,
        len: u16,
        timeout_ms: u32,
        /// IPv4 options for the request's header (IP_OPTIONS; ping -R,
        /// -g): at most 40 bytes, padded to a word with EOL here.
        #[serde(default)]
        opts: Vec<u8>,
    },
    /// Stop the daemon, destroying every interface.
    Shutdown,
    /// TAPGIFNAME: the tap whose control device's client socket has the
    /// abstract address `peer` (see `client::tap::connect`).
    TapGIfName {
        peer: Vec<u8>,
    },
    /// Every interface's ARP and neighbour cache entries (the routing
    /// socket's NET_RT_FLAGS dump of RTF_LLDATA).
    GetLlTable,
    /// RTM_DELETE of cache entries: the one for `addr` (on interface
    /// `ifname` only, if given: a link-local address's zone), or with
    /// `None` every entry of the family (`v6`). Answered with the entries
    /// gone.
    DelLlEntry {
        addr: Option<IpAddr>,
        v6: bool,
        ifname: Option<String>,
    },
    /// Read the knobs.
    GetKnobs,
    /// Set the knobs (CTL_NET sysctl writes).
    SetKnobs(Knobs),
    /// A routing-socket request (route(8)).
    Route(RouteReq),
    /// The protocol statistics (netstat -s).
    GetProtoStats,
}

/// An ICMP or ICMPv6 error that quotes one of our echo requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcmpError {
    /// Type and code, in the family's numbering.
    pub typ: u8,
    pub code: u8,
    /// The second word of the ICMP header: the next hop's MTU, the
    /// parameter problem's pointer.
    pub info: u32,
    /// The start of the request as it came back: its IP header (with
    /// options) and the 8 bytes after it.
    pub quote: Vec<u8>,
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Ok,
    Flags(u32),
    Mtu(u32),
    IfConf(Vec<IfStatus>),
    LinkStr(Option<String>),
    Media(IfMedia),
    Cloners(Vec<String>),
    Data(IfData),
    Bridge(BridgeStatus),
    Vxlan(VxlanConfig),
    /// An echo reply: who answered, ICMP length, TTL/hop limit, round trip.
    Echo {
        from: IpAddr,
        bytes: u32,
        ttl: u8,
        rtt_us: u64,
        /// The reply's IPv4 options, as they arrived (ping prints a
        /// record route's addresses).
        #[serde(default)]
        opts: Vec<u8>,
    },
    /// Instead of an echo reply, an ICMP error about the request: who sent
    /// it, its length, and the error (ICMP or ICMPv6 as `from`).
    EchoError {
        from: IpAddr,
        bytes: u32,
        error: IcmpError,
    },
    /// An interface's name.
    IfName(String),
    LlTable(Vec<LlEntry>),
    Knobs(Knobs),
    /// One route (RTM_GET).
    Route(RtEntry),
    /// Routes (a dump, or those a flush deleted).
    Routes(Vec<RtEntry>),
    ProtoStats(ProtoStats),
}

impl Request {
    /// Whether the request changes the configuration that `ifnetd -S`
    /// keeps (interfaces, flags, addresses, bridges…), as opposed to one
    /// that only reads, pings, zeroes counters or stops the daemon.
    pub fn changes_config(&self) -> bool {
        matches!(
            self,
            Request::IfCreate { .. }
                | Request::IfDestroy { .. }
                | Request::SetIfFlags { .. }
                | Request::SetIfMtu { .. }
                | Request::SetIfTxQueue { .. }
                | Request::SetIfMetric { .. }
                | Request::AifAddr { .. }
                | Request::DifAddr { .. }
                | Request::AifAddrIn6 { .. }
                | Request::DifAddrIn6 { .. }
                | Request::ALifAddr { .. }
                | Request::DLifAddr { .. }
                | Request::SetLinkStr { .. }
                | Request::SetIfDescr { .. }
                | Request::SetIfMedia { .. }
                | Request::SetIfCap { .. }
                | Request::SetDrvSpec { .. }
                | Request::SetKnobs(_)
                | Request::Route(
                    RouteReq::Add(_)
                        | RouteReq::Change(_)
                        | RouteReq::Delete { .. }
                        | RouteReq::Flush { .. }
                )
        )
    }
}

pub type Response = Result<Reply, Errno>;

/// Anything that answers requests: the in-process [`crate::Kernel`] or a
/// connection to an `ifnetd` ([`crate::client::Client`]).
pub trait Ioctl {
    fn ioctl(&mut self, req: Request) -> Response;
}
