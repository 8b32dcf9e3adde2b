//! ifconfig against an in-process kernel: exact stdout, stderr and exit
//! code. A small test-only Ethernet class stands in for the real drivers,
//! so the Ethernet status lines (address, linkstr, media, capabilities)
//! are covered too.

use ifnet::Kernel;
use ifnet::cloner::{Cloners, DadTimers, IfClone, KernelEnv};
use ifnet::drivers::lo::LoClone;
use ifnet::ifconfig::{USAGE, main_with};
use ifnet::ifnet::{Driver, IfState, IfType};
use ifnet::ioctl::{Errno, IfMedia, LinkState, Reply, Request, iff};
use std::net::IpAddr;

/// An Ethernet-like interface with a linkstr and media, shmif-style:
/// the linkstr is set once, and only while down.
struct EthClone;

struct Eth {
    linkstr: Option<String>,
    media: String,
}

impl IfClone for EthClone {
    fn name(&self) -> &'static str {
        "eth"
    }

    fn create(&self, _env: &KernelEnv, ifs: &mut IfState) -> Result<Box<dyn Driver>, Errno> {
        ifs.kind = IfType::Ethernet;
        ifs.flags = iff::BROADCAST | iff::SIMPLEX | iff::MULTICAST;
        ifs.set_lladdr([0xb2, 0xa0, 0x75, 0x3e, 0x19, 0x0c + ifs.unit as u8]);
        ifs.capabilities = Some((0x7ff80, 0));
        ifs.ec_capabilities = Some((0x1, 0));
        Ok(Box::new(Eth {
            linkstr: None,
            media: "autoselect".into(),
        }))
    }
}

impl Driver for Eth {
    fn init(&mut self, ifs: &mut IfState) -> Result<(), Errno> {
        ifs.set_flags(ifs.flags | iff::RUNNING);
        ifs.link_state = LinkState::Up;
        Ok(())
    }

    fn set_linkstr(&mut self, ifs: &mut IfState, linkstr: Option<&str>) -> Result<(), Errno> {
        if ifs.flags & iff::UP != 0 || (linkstr.is_some() && self.linkstr.is_some()) {
            return Err(Errno::EBUSY);
        }
        self.linkstr = linkstr.map(str::to_string);
        Ok(())
    }

    fn linkstr(&self) -> Option<String> {
        self.linkstr.clone()
    }

    fn media(&self, ifs: &IfState) -> Option<IfMedia> {
        Some(IfMedia {
            current: format!("Ethernet {}", self.media),
            active: Some(ifs.link_state == LinkState::Up),
            supported: vec!["Ethernet autoselect".into(), "Ethernet none".into()],
        })
    }

    fn set_media(&mut self, _ifs: &mut IfState, media: &str) -> Result<(), Errno> {
        match media {
            "autoselect" | "none" => {
                self.media = media.to_string();
                Ok(())
            }
            _ => Err(Errno::EINVAL),
        }
    }
}

fn kernel() -> Kernel {
    // A 100 ms RetransTimer, not 1 s: `-w` waits less.
    let dad = DadTimers {
        retrans: std::time::Duration::from_millis(100),
        ..DadTimers::default()
    };
    Kernel::new(
        KernelEnv {
            dad,
            ..KernelEnv::default()
        },
        Cloners::new(vec![Box::new(LoClone), Box::new(EthClone)]),
    )
}

/// Run `ifconfig ARGS` against `k`: (exit code, stdout, stderr).
fn run(k: &Kernel, args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = main_with(&args, &mut &*k, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn ifconfig(k: &Kernel, args: &str) -> (i32, String, String) {
    run(k, &args.split_whitespace().collect::<Vec<_>>())
}

/// Run and insist on success with no diagnostics; return stdout.
fn ok(k: &Kernel, args: &str) -> String {
    let (code, out, err) = ifconfig(k, args);
    assert_eq!((code, err.as_str()), (0, ""), "ifconfig {args}");
    out
}

/// Run and insist on failure with `err` and nothing on stdout.
fn fails(k: &Kernel, args: &str, err: &str) {
    assert_eq!(
        ifconfig(k, args),
        (1, String::new(), err.to_string()),
        "ifconfig {args}"
    );
}

const LO0: &str = "\
lo0: flags=0x8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 33624
\tinet 127.0.0.1/8 flags 0x0
\tinet6 ::1/128 flags 0x20<NODAD>
\tinet6 fe80::1%lo0/64 flags 0x0 scopeid 0x1
";

#[test]
fn lo0_status() {
    let k = kernel();
    assert_eq!(ok(&k, "lo0"), LO0);
    assert_eq!(ok(&k, "-a"), LO0);
    assert_eq!(ok(&k, ""), LO0);
    // A number is an index to the kernel (if.c ifunit) but names no
    // interface that the listing prints: NetBSD prints nothing, and an
    // unknown index is an unknown interface. Configuring by index works.
    assert_eq!(ok(&k, "1"), "");
    fails(&k, "9", "ifconfig: SIOCGIFFLAGS 9: Device not configured\n");
    ok(&k, "1 mtu 1500");
    assert!(ok(&k, "lo0").contains("mtu 1500"));
    ok(&k, "1 mtu 33624");
    assert_eq!(
        ok(&k, "lo0 inet"),
        "lo0: flags=0x8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 33624\n\tinet 127.0.0.1/8 flags 0x0\n"
    );
    assert_eq!(
        ok(&k, "-a inet6"),
        "lo0: flags=0x8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 33624\n\
         \tinet6 ::1/128 flags 0x20<NODAD>\n\tinet6 fe80::1%lo0/64 flags 0x0 scopeid 0x1\n"
    );
    // -b: lo0 is not a broadcast interface, so nothing, even by name.
    assert_eq!(ok(&k, "-b lo0"), "");
}

#[test]
fn lists() {
    let k = kernel();
    assert_eq!(ok(&k, "-C"), "lo eth\n");
    assert_eq!(ok(&k, "-l"), "lo0\n");
    ok(&k, "lo1 create");
    ok(&k, "eth0 create");
    assert_eq!(ok(&k, "-l"), "lo0 lo1 eth0\n");
    assert_eq!(ok(&k, "-l -u"), "lo0\n");
    assert_eq!(ok(&k, "-l -d"), "lo1 eth0\n");
    assert_eq!(ok(&k, "-l -b"), "eth0\n");
    assert_eq!(ok(&k, "-lbu"), "\n");
}

#[test]
fn create_with_address() {
    let k = kernel();
    assert_eq!(ok(&k, "lo1 create inet 10.1.0.1/24"), "");
    assert_eq!(
        ok(&k, "lo1"),
        "lo1: flags=0x8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 33624
\tinet 10.1.0.1/24 flags 0x0
\tinet6 ::1/128 flags 0x20<NODAD>
\tinet6 fe80::1%lo1/64 flags 0x0 scopeid 0x2
"
    );
    ok(&k, "lo1 destroy");
    fails(
        &k,
        "lo1",
        "ifconfig: SIOCGIFFLAGS lo1: Device not configured\n",
    );
}

fn inet_lines(k: &Kernel, ifname: &str) -> Vec<String> {
    ok(k, &format!("{ifname} inet"))
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn alias_replace_delete() {
    let k = kernel();
    ok(&k, "lo1 create inet 10.1.0.1/24");
    ok(&k, "lo1 inet 10.1.0.2/24 alias");
    assert_eq!(
        inet_lines(&k, "lo1"),
        [
            "\tinet 10.1.0.1/24 flags 0x0",
            "\tinet 10.1.0.2/24 flags 0x0"
        ]
    );
    // Without alias the first address is replaced; no mask means classful.
    ok(&k, "lo1 inet 172.16.0.1");
    assert_eq!(
        inet_lines(&k, "lo1"),
        [
            "\tinet 10.1.0.2/24 flags 0x0",
            "\tinet 172.16.0.1/16 flags 0x0"
        ]
    );
    ok(&k, "lo1 inet 10.1.0.2 -alias");
    assert_eq!(inet_lines(&k, "lo1"), ["\tinet 172.16.0.1/16 flags 0x0"]);
    ok(&k, "lo1 inet 172.16.0.9 netmask 255.0.255.0 alias");
    assert_eq!(
        inet_lines(&k, "lo1"),
        [
            "\tinet 172.16.0.1/16 flags 0x0",
            "\tinet 172.16.0.9 netmask 0xff00ff00 flags 0x0"
        ]
    );
    fails(
        &k,
        "lo1 inet 10.9.9.9 delete",
        "ifconfig: SIOCDIFADDR: Can't assign requested address\n",
    );
    // delete alone takes the first address.
    ok(&k, "lo1 delete");
    ok(&k, "lo1 delete");
    assert!(inet_lines(&k, "lo1").is_empty());
    fails(
        &k,
        "lo1 delete",
        "ifconfig: SIOCGIFADDR: Can't assign requested address\n",
    );
    fails(
        &k,
        "lo1 inet6 delete",
        "ifconfig: SIOCGIFADDR_IN6: Can't assign requested address\n",
    );
}

#[test]
fn inet6_addresses() {
    let k = kernel();
    ok(&k, "lo0 inet6 fc00::1 prefixlen 70");
    // inet6 never replaces: the kernel has no "first address" for it.
    ok(&k, "lo0 inet6 fc00::2 anycast");
    ok(&k, "lo0 inet6 fc00::3/48 pltime 100 vltime 200");
    assert_eq!(
        ok(&k, "lo0 inet6"),
        "lo0: flags=0x8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 33624
\tinet6 ::1/128 flags 0x20<NODAD>
\tinet6 fe80::1%lo0/64 flags 0x0 scopeid 0x1
\tinet6 fc00::1/70 flags 0x0
\tinet6 fc00::2/64 flags 0x1<ANYCAST>
\tinet6 fc00::3/48 flags 0x0
"
    );
    let lifetimes = ok(&k, "-L lo0 inet6");
    assert!(
        lifetimes.contains("\tinet6 fc00::3/48 flags 0x0 pltime 100 vltime 200\n"),
        "{lifetimes}"
    );
    assert!(
        lifetimes.contains("\tinet6 fc00::2/64 flags 0x1<ANYCAST>\n"),
        "{lifetimes}"
    );
    ok(&k, "lo0 inet6 fc00::2 delete");
    assert!(!ok(&k, "lo0").contains("fc00::2"));
    fails(
        &k,
        "lo0 inet6 fc00::2 -alias",
        "ifconfig: SIOCDIFADDR_IN6: Can't assign requested address\n",
    );
    ok(&k, "lo0 inet6 fc00:1:: eui64");
    assert!(ok(&k, "lo0").contains("\tinet6 fc00:1::1/64 flags 0x0\n"));
    fails(
        &k,
        "lo0 inet6 fc00:2::5 eui64",
        "ifconfig: interface index is already filled, ::%0 | fc00:2::5%0\n",
    );
}

#[test]
fn error_lines() {
    let k = kernel();
    fails(
        &k,
        "foo0",
        "ifconfig: SIOCGIFFLAGS foo0: Device not configured\n",
    );
    fails(
        &k,
        "-s foo0",
        "ifconfig: SIOCGIFFLAGS foo0: Device not configured\n",
    );
    fails(
        &k,
        "foo0 up",
        "ifconfig: exec_matches: Device not configured\n",
    );
    fails(
        &k,
        "foo0 10.0.0.1",
        "ifconfig: exec_matches: Device not configured\n",
    );
    fails(
        &k,
        "lo0 create",
        "ifconfig: clone_command: File exists\nifconfig: exec_matches: File exists\n",
    );
    fails(
        &k,
        "lo7 destroy",
        "ifconfig: clone_command: Device not configured\nifconfig: exec_matches: Device not configured\n",
    );
    fails(
        &k,
        "foo0 create",
        "ifconfig: clone_command: Invalid argument\nifconfig: exec_matches: Invalid argument\n",
    );
    fails(
        &k,
        "lo0 10.0.0.1/33",
        "ifconfig: paddr_match: prefixlen_to_mask(2, 33): Invalid argument\n",
    );
    fails(
        &k,
        "lo0 inet6 fc00::1/129",
        "ifconfig: paddr_match: prefixlen_to_mask(24, 129): Invalid argument\n",
    );
    fails(
        &k,
        "lo0 inet6 fc00::1 prefixlen 200",
        "ifconfig: prefixlen_to_mask: Invalid argument\n",
    );
    fails(
        &k,
        "lo0 broadcast 127.255.255.255",
        "ifconfig: not a broadcast interface\n",
    );
    fails(
        &k,
        "lo0 atalk",
        "ifconfig: status: getsock: Address family not supported by protocol family\n",
    );
    fails(
        &k,
        "lo0 ip4csum",
        "ifconfig: SIOCSIFCAP: Invalid argument\n",
    );
    fails(
        &k,
        "lo0 media auto",
        "ifconfig: SIOCGIFMEDIA: Inappropriate ioctl for device\n",
    );
    fails(
        &k,
        "lo0 linkstr x",
        "ifconfig: SIOCSLINKSTR: Inappropriate ioctl for device\n",
    );
    fails(&k, "-w x", "ifconfig: x: not a number\n");
    // Nothing changed on the way.
    assert_eq!(ok(&k, "lo0"), LO0);
}

#[test]
fn usage_errors() {
    let k = kernel();
    for args in [
        "lo0 bogus",
        "lo0 mtu",
        "-l lo0",
        "-a -l",
        "-C -w 1",
        "lo0 alias alias",
        "-s",
        "lo0 up down 1.2.3.4 5.6.7.8 9.9.9.9 1.1.1.1",
    ] {
        fails(&k, args, USAGE);
    }
    fails(&k, "-x", &format!("ifconfig: unknown option -- x\n{USAGE}"));
    fails(
        &k,
        "-w",
        &format!("ifconfig: option requires an argument -- w\n{USAGE}"),
    );
    assert!(USAGE.starts_with("usage: ifconfig [-h] [-m] [-v] [-z] [-L] interface\n"));
}

#[test]
fn mtu_metric_warnings() {
    let k = kernel();
    assert_eq!(
        ifconfig(&k, "lo0 mtu 99999"),
        (
            0,
            String::new(),
            "ifconfig: SIOCSIFMTU: Invalid argument\n".into()
        )
    );
    assert_eq!(
        ifconfig(&k, "lo0 mtu -1"),
        (
            0,
            String::new(),
            "ifconfig: SIOCSIFMTU: Invalid argument\n".into()
        )
    );
    ok(&k, "lo0 mtu 1500 metric 10");
    assert!(
        ok(&k, "lo0")
            .starts_with("lo0: flags=0x8049<UP,LOOPBACK,RUNNING,MULTICAST> metric 10 mtu 1500\n")
    );
    // A missing interface only warns too, as NetBSD.
    assert_eq!(
        ifconfig(&k, "foo0 mtu 1500"),
        (
            0,
            String::new(),
            "ifconfig: SIOCSIFMTU: Device not configured\n".into()
        )
    );
}

#[test]
fn flags_and_description() {
    let k = kernel();
    ok(&k, "lo0 down -arp debug link0 link2");
    assert!(
        ok(&k, "lo0").starts_with(
            "lo0: flags=0xd08c<DEBUG,LOOPBACK,NOARP,LINK0,LINK2,MULTICAST> mtu 33624\n"
        )
    );
    ok(&k, "lo0 up arp -debug -link0 -link2");
    assert_eq!(ok(&k, "lo0"), LO0);
    assert_eq!(run(&k, &["lo0", "description", "the loopback"]).0, 0);
    assert!(ok(&k, "lo0").contains("\n\tdescription: \"the loopback\"\n"));
    ok(&k, "lo0 -descr");
    assert_eq!(ok(&k, "lo0"), LO0);
    let long = "x".repeat(64);
    let (code, out, err) = run(&k, &["lo0", "descr", &long]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            1,
            "",
            "ifconfig: description too long: File name too long\n"
        )
    );
    assert_eq!(run(&k, &["lo0", "descr", &long[..63]]).0, 0);
    assert_eq!(
        ifconfig(&k, "lo0 trailers"),
        (
            0,
            "Note: trailers are no longer sent, but always received\n".into(),
            String::new()
        )
    );
}

#[test]
fn counters() {
    let k = kernel();
    k.send("lo0", &[0x02; 60]).unwrap();
    let v = ok(&k, "-v lo0 inet");
    assert_eq!(
        v,
        "lo0: flags=0x8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 33624
\tlinkstate: unknown
\tinput: 1 packet, 60 bytes, 1 unknown protocol
\toutput: 1 packet, 60 bytes
\tinet 127.0.0.1/8 flags 0x0
"
    );
    for _ in 0..20 {
        k.send("lo0", &[0x01; 100]).unwrap();
    }
    let h = ok(&k, "-vh lo0 inet");
    assert!(
        h.contains(
            "\tinput: 21 packets, 2.0K bytes, 21 unknown protocol\n\toutput: 21 packets, 2.0K bytes, 20 multicasts\n"
        ),
        "{h}"
    );
    // -z shows, then zeroes.
    let z = ok(&k, "-z lo0");
    assert!(
        z.contains("\tinput: 21 packets, 2060 bytes, 21 unknown protocol\n"),
        "{z}"
    );
    assert!(
        ok(&k, "-v lo0").contains("\tinput: 0 packets, 0 bytes\n\toutput: 0 packets, 0 bytes\n")
    );
}

#[test]
fn carrier_and_wait() {
    let k = kernel();
    assert_eq!(ifconfig(&k, "-s lo0"), (0, String::new(), String::new()));
    ok(&k, "eth0 create");
    // Link down until the driver starts.
    assert_eq!(ifconfig(&k, "-s eth0"), (0, String::new(), String::new()));
    ok(&k, "eth0 up");
    assert_eq!(ifconfig(&k, "-s eth0"), (0, String::new(), String::new()));
    assert_eq!(ok(&k, "-w 0"), "");
    ok(&k, "lo0 inet6 fc00::7 tentative");
    let start = std::time::Instant::now();
    fails(&k, "-w 1", "ifconfig: timed out\n");
    assert!(start.elapsed() >= std::time::Duration::from_secs(1));
}

const ETH0_CAPS: &str = "\
\tcapabilities=7ff80<TSO4,IP4CSUM_Rx,IP4CSUM_Tx,TCP4CSUM_Rx>
\tcapabilities=7ff80<TCP4CSUM_Tx,UDP4CSUM_Rx,UDP4CSUM_Tx,TCP6CSUM_Rx>
\tcapabilities=7ff80<TCP6CSUM_Tx,UDP6CSUM_Rx,UDP6CSUM_Tx,TSO6>
";

#[test]
fn ethernet_like() {
    let k = kernel();
    ok(&k, "eth0 create");
    ok(&k, "eth0 linkstr bus1");
    ok(&k, "eth0 inet 10.0.0.1 netmask 0xffffff00");
    ok(&k, "eth0 inet6 fc00::1");
    ok(&k, "eth0 up");
    // The first address brought eth0 up and is usable at once (in_ifinit
    // tries DAD only on an interface up and running); the next one is
    // TENTATIVE until duplicate address detection passes.
    assert!(ok(&k, "eth0").contains("inet 10.0.0.1/24 broadcast 10.0.0.255 flags 0x0\n"));
    assert!(ok(&k, "eth0").contains("inet6 fc00::1/64 flags 0x2<TENTATIVE>\n"));
    ok(&k, "-w 5");
    let want = format!(
        "eth0: flags=0x8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500
{ETH0_CAPS}\tenabled=0
\tec_capabilities=1<VLAN_MTU>
\tec_enabled=0
\taddress: b2:a0:75:3e:19:0c
\tlinkstr: bus1
\tmedia: Ethernet autoselect
\tstatus: active
\tinet 10.0.0.1/24 broadcast 10.0.0.255 flags 0x0
\tinet6 fe80::b0a0:75ff:fe3e:190c%eth0/64 flags 0x0 scopeid 0x2
\tinet6 fc00::1/64 flags 0x0
"
    );
    assert_eq!(ok(&k, "eth0"), want);
    let address: Vec<&str> = want.lines().filter(|l| l.contains("address")).collect();
    assert_eq!(
        address[0].split_whitespace().nth(1),
        Some("b2:a0:75:3e:19:0c")
    );

    fails(
        &k,
        "eth0 linkstr bus2",
        "ifconfig: SIOCSLINKSTR: Device busy\n",
    );
    ok(&k, "eth0 ip4csum tso6");
    assert!(ok(&k, "eth0").contains("\tenabled=40300<IP4CSUM_Rx,IP4CSUM_Tx,TSO6>\n"));
    ok(&k, "eth0 -ip4csum-rx -tso6");
    assert!(ok(&k, "eth0").contains("\tenabled=200<IP4CSUM_Tx>\n"));

    // Positional netmask and broadcast; then the -v and -m additions.
    ok(&k, "eth0 inet 10.0.1.1 255.255.0.0 10.0.255.254");
    ok(&k, "-w 5");
    assert!(ok(&k, "eth0 inet").ends_with("\tinet 10.0.1.1/16 broadcast 10.0.255.254 flags 0x0\n"));
    ok(&k, "eth0 inet 10.0.1.2/24 broadcast 10.0.1.128 alias");
    ok(&k, "-w 5");
    assert!(ok(&k, "eth0 inet").ends_with("\tinet 10.0.1.2/24 broadcast 10.0.1.128 flags 0x0\n"));
    let vm = ok(&k, "-v -m eth0 link");
    assert!(vm.contains(
        "\tlinkstr: bus1\n\tlinkstate: up\n\tmedia: Ethernet autoselect\n\tstatus: active\n\
         \tsupported Ethernet media:\n\t\tmedia autoselect\n\t\tmedia none\n\tinput: 0 packets, 0 bytes\n"
    ), "{vm}");
    assert!(!vm.contains("inet"));

    ok(&k, "eth0 media none");
    assert!(ok(&k, "eth0").contains("\tmedia: Ethernet none\n"));
    fails(
        &k,
        "eth0 media 10baseQ",
        "ifconfig: unknown Ethernet media subtype: 10baseQ\n",
    );
    fails(
        &k,
        "eth0 media auto mediaopt fdx,bogus",
        "ifconfig: unknown Ethernet media option: bogus\n",
    );
    fails(
        &k,
        "eth0 media 100baseTX",
        "ifconfig: SIOCSIFMEDIA: Invalid argument\n",
    );

    // Link addresses: an inactive one prints as `link`, last.
    ok(&k, "eth0 link b2:a0:75:00:00:01");
    assert!(ok(&k, "eth0").ends_with("\tinet6 fc00::1/64 flags 0x0\n\tlink b2:a0:75:00:00:01\n"));
    let link_only = ok(&k, "eth0 link");
    assert!(
        link_only.ends_with("\tstatus: active\n\tlink b2:a0:75:00:00:01\n"),
        "{link_only}"
    );
    ok(&k, "eth0 link b2:a0:75:00:00:01 active");
    let s = ok(&k, "eth0");
    assert!(
        s.contains("\taddress: b2:a0:75:00:00:01\n") && s.contains("\tlink b2:a0:75:3e:19:0c\n")
    );
    fails(
        &k,
        "eth0 link b2:a0:75:00:00:01 delete",
        "ifconfig: SIOCDLIFADDR: Device busy\n",
    );
    ok(&k, "eth0 link b2:a0:75:3e:19:0c delete");
    assert!(!ok(&k, "eth0").contains("\tlink "));

    ok(&k, "eth0 down");
    assert!(
        ok(&k, "eth0").starts_with("eth0: flags=0x8802<BROADCAST,SIMPLEX,MULTICAST> mtu 1500\n")
    );
    ok(&k, "eth0 -linkstr");
    assert!(!ok(&k, "eth0").contains("linkstr"));
    ok(&k, "eth0 destroy");
    assert_eq!(ok(&k, "-l"), "lo0\n");
}

mod fuzz {
    use super::{kernel, run};
    use proptest::prelude::*;

    const WORDS: &[&str] = &[
        "lo0",
        "lo1",
        "eth0",
        "create",
        "destroy",
        "inet",
        "inet6",
        "link",
        "atalk",
        "up",
        "down",
        "alias",
        "-alias",
        "delete",
        "netmask",
        "broadcast",
        "prefixlen",
        "mtu",
        "metric",
        "linkstr",
        "-linkstr",
        "descr",
        "media",
        "mediaopt",
        "-mediaopt",
        "instance",
        "active",
        "eui64",
        "anycast",
        "pltime",
        "ip4csum",
        "-tso6",
        "10.0.0.1/24",
        "fc00::1/64",
        "fe80::1%lo0",
        "b2:a0:75:00:00:01",
        "255.255.255.0",
        "0",
        "-1",
        "1500",
        "-a",
        "-l",
        "-v",
        "-z",
        "-L",
        "-m",
        "-s",
        "-b",
        "-C",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// No command line makes ifconfig panic, parsing or running, and
        /// every run ends with 0 or 1.
        #[test]
        fn never_panics(args in prop::collection::vec(
            prop_oneof![
                "[-a-z0-9:./%]{0,10}",
                prop::sample::select(WORDS).prop_map(str::to_string),
            ],
            0..7,
        )) {
            let k = kernel();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, _, _) = run(&k, &args);
            prop_assert!(code == 0 || code == 1);
        }
    }
}

#[test]
fn resolve_names() {
    let k = kernel();
    // Names come from the host's resolver; the shape stays the same.
    let out = ok(&k, "-N lo0 inet");
    let line = out.lines().nth(1).unwrap();
    assert!(
        line.starts_with("\tinet ") && line.ends_with("/8 flags 0x0"),
        "{out}"
    );
    // Scoped addresses are never looked up.
    assert!(ok(&k, "-N lo0 inet6").contains("\tinet6 fe80::1%lo0/64 flags 0x0 scopeid 0x1\n"));
}

/// Issue 13 item 6: pings of the kernel's own addresses go through lo0,
/// which counts the request and the reply both ways, as NetBSD's
/// looutput and if_input do; `-z` reads and clears them.
#[test]
fn lo0_counts_local_pings() {
    let k = kernel();
    ok(&k, "eth0 create");
    ok(&k, "eth0 inet 10.0.0.1/24");
    for dst in [IpAddr::from([127, 0, 0, 1]), IpAddr::from([10, 0, 0, 1])] {
        let r = k.ioctl(Request::Echo {
            dst,
            scope: None,
            ident: 1,
            seq: 1,
            len: 56,
            timeout_ms: 1000,
        });
        assert!(matches!(r, Ok(Reply::Echo { .. })), "{r:?}");
    }
    // Four packets of 84 bytes (20 + 8 + 56) each way.
    let counted = "\tinput: 4 packets, 336 bytes\n\toutput: 4 packets, 336 bytes\n";
    assert!(ok(&k, "-v lo0").contains(counted), "{}", ok(&k, "-v lo0"));
    assert!(ok(&k, "-z lo0").contains(counted));
    assert!(ok(&k, "-v lo0").contains("\tinput: 0 packets, 0 bytes\n"));
    assert!(!ok(&k, "-v eth0").contains("input: 4 packets"));
}

/// Issue 13 item 5: lifetimes count down in `ifconfig -L`; past pltime the
/// address is DEPRECATED, past vltime it is gone (nd6_timer).
#[test]
fn lifetimes_run_out() {
    let k = kernel();
    ok(&k, "eth0 create");
    ok(&k, "eth0 inet6 fc00::9 pltime 1 vltime 2");
    let line = || {
        ok(&k, "-L eth0")
            .lines()
            .find(|l| l.contains("fc00::9"))
            .map(str::to_string)
    };
    assert_eq!(
        line().as_deref(),
        Some("\tinet6 fc00::9/64 flags 0x0 pltime 1 vltime 2")
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !line().unwrap().contains("DEPRECATED") {
        assert!(std::time::Instant::now() < deadline, "{:?}", line());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        line().as_deref(),
        Some("\tinet6 fc00::9/64 flags 0x10<DEPRECATED> pltime 0 vltime 1")
    );
    while line().is_some() {
        assert!(std::time::Instant::now() < deadline, "{:?}", line());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Issue 13 item 4: down marks every address DETACHED (in_if_link_down,
/// in6_if_link_down; IN_IFF_DETACHED 0x4, IN6_IFF_DETACHED 0x8); up
/// clears it, and on lo0 tries nothing (if_do_dad).
#[test]
fn down_detaches_addresses() {
    let k = kernel();
    ok(&k, "lo0 down");
    assert_eq!(
        ok(&k, "lo0"),
        "lo0: flags=0x8008<LOOPBACK,MULTICAST> mtu 33624
\tinet 127.0.0.1/8 flags 0x4<DETACHED>
\tinet6 ::1/128 flags 0x28<DETACHED,NODAD>
\tinet6 fe80::1%lo0/64 flags 0x8<DETACHED> scopeid 0x1
"
    );
    ok(&k, "lo0 up");
    assert_eq!(ok(&k, "lo0"), LO0);
}

/// Issue 13 item 1: when DAD starts, as NetBSD's in_ifinit and
/// in6_update_ifa1 decide it (if_do_dad: up and running): the first
/// address, which brings the interface up, is usable at once; one added
/// while up is TENTATIVE, with or without a prefix length; an interface
/// brought up again tries its addresses again (in_if_link_up).
#[test]
fn dad_starts_when_netbsd_starts_it() {
    let k = kernel();
    let flags = |ifname: &str, addr: &str| -> String {
        let out = ok(&k, ifname);
        let line = out
            .lines()
            .find(|l| l.contains(&format!(" {addr}/")))
            .unwrap_or_else(|| panic!("{addr} in {out}"))
            .to_string();
        line[line.find("flags").unwrap()..].to_string()
    };
    for i in 0..4 {
        ok(&k, &format!("eth{i} create"));
    }
    // Added before up: brings eth0 up, usable at once.
    ok(&k, "eth0 inet 10.0.0.1/24");
    assert_eq!(flags("eth0", "10.0.0.1"), "flags 0x0");
    // An alias, added while up.
    ok(&k, "eth0 inet 10.0.0.2/24 alias");
    assert_eq!(flags("eth0", "10.0.0.2"), "flags 0x1<TENTATIVE>");
    // inet6 while up, without and with a prefix length.
    ok(&k, "eth0 inet6 fc00::1");
    assert_eq!(flags("eth0", "fc00::1"), "flags 0x2<TENTATIVE>");
    ok(&k, "eth0 inet6 fc00::2 prefixlen 64");
    assert_eq!(flags("eth0", "fc00::2"), "flags 0x2<TENTATIVE>");
    // inet6 first: brings eth1 up, usable at once.
    ok(&k, "eth1 inet6 fc00:1::1");
    assert_eq!(flags("eth1", "fc00:1::1"), "flags 0x0");
    // Up first, then an address: tried.
    ok(&k, "eth2 up");
    ok(&k, "eth2 inet 10.0.2.1/24");
    assert_eq!(flags("eth2", "10.0.2.1"), "flags 0x1<TENTATIVE>");
    // Up after down: detached, then tried again.
    ok(&k, "-w 5");
    ok(&k, "eth0 down");
    assert_eq!(flags("eth0", "10.0.0.1"), "flags 0x4<DETACHED>");
    assert_eq!(flags("eth0", "fc00::1"), "flags 0x8<DETACHED>");
    ok(&k, "eth0 up");
    assert_eq!(flags("eth0", "10.0.0.1"), "flags 0x1<TENTATIVE>");
    assert_eq!(flags("eth0", "fc00::1"), "flags 0x2<TENTATIVE>");
    ok(&k, "-w 5");
    assert_eq!(flags("eth0", "10.0.0.1"), "flags 0x0");
    // As ifconfig.c, the flags go before the address: this address
    // brings eth3 up again, untried.
    ok(&k, "eth3 inet 10.0.3.1/24 down");
    assert_eq!(flags("eth3", "10.0.3.1"), "flags 0x0");
}
