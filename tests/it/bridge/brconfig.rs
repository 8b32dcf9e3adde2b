//! brconfig(8): output, error messages and exit status, byte for byte.

use super::*;
use proptest::prelude::*;

const USAGE: &str = "\
usage: brconfig -a
       brconfig <bridge>
       brconfig <bridge> up|down
       brconfig <bridge> addr
       brconfig <bridge> add <interface>
       brconfig <bridge> delete <interface>
       brconfig <bridge> maxaddr <size>
       brconfig <bridge> timeout <time>
       brconfig <bridge> static <interface> <address>
       brconfig <bridge> deladdr <address>
       brconfig <bridge> flush
       brconfig <bridge> flushall
       brconfig <bridge> ipf|-ipf
       brconfig <bridge> discover|-discover <interface>
       brconfig <bridge> learn|-learn <interface>
       brconfig <bridge> stp|-stp <interface>
       brconfig <bridge> maxage <time>
       brconfig <bridge> fwddelay <time>
       brconfig <bridge> hellotime <time>
       brconfig <bridge> priority <value>
       brconfig <bridge> ifpriority <interface> <value>
       brconfig <bridge> ifpathcost <interface> <value>
       brconfig <bridge> protect|-protect <interface>
";

#[test]
fn status_of_a_fresh_bridge() {
    let net = Net::new();
    net.ifconfig_create("bridge0");
    assert_eq!(
        net.ok("bridge0"),
        "bridge0: flags=0<>
\tConfiguration:
\t\tpriority 32768 hellotime 2 fwddelay 15 maxage 20
\t\tipfilter disabled flags 0x0
\tInterfaces:
\tAddress cache (max cache: 100, timeout: 1200):
"
    );
}

/// `-v` (ours) appends the spanning tree; the rest is NetBSD's status.
#[test]
fn verbose_status_adds_the_spanning_tree() {
    let net = Net::bridged(2);
    let plain = net.ok("bridge0");
    let v = net.ok("-v bridge0");
    assert_eq!(v, format!("{plain}\tSpanning tree: not running\n"));
    assert_eq!(net.ok("-av"), v);
    net.ok("bridge0 stp shmif0 stp shmif1");
    let v = net.ok("-v bridge0");
    // The bridge id: default priority, the lower member MAC (shmif0's).
    assert!(
        v.contains(
            "\tSpanning tree:\n\t\tbridge id 8000.b2:a0:10:00:00:01\n\
             \t\troot id 8000.b2:a0:10:00:00:01 root path cost 0 root port none\n"
        ),
        "{v}"
    );
    net.down("bridge0");
    assert!(
        net.ok("-v bridge0")
            .ends_with("\tSpanning tree: not running\n")
    );
    assert!(net.ok("bridge0").contains("path cost 55 disabled"));
}

#[test]
fn status_with_members_and_addresses() {
    let net = Net::bridged(2);
    net.inject("shmif0", &frame(BCAST, mac_of(4), 1));
    net.advance(3);
    net.inject("shmif1", &frame(BCAST, mac_of(5), 1));
    net.advance(3);
    let out = net.ok("bridge0");
    assert_eq!(
        out,
        "bridge0: flags=41<UP,RUNNING>
\tConfiguration:
\t\tpriority 32768 hellotime 2 fwddelay 15 maxage 20
\t\tipfilter disabled flags 0x0
\tInterfaces:
\t\tshmif1 flags=3<LEARNING,DISCOVER>
\t\t\tport 4 priority 128
\t\tshmif0 flags=3<LEARNING,DISCOVER>
\t\t\tport 3 priority 128
\tAddress cache (max cache: 100, timeout: 1200):
\t\tb2:a0:60:00:00:01 shmif1 1197 flags=0<>
\t\tb2:a0:50:00:00:01 shmif0 1194 flags=0<>
"
    );
    // What NetBSD's tests grep for.
    assert!(out.contains("max cache: 100"));
    assert!(out.contains("timeout: 1200"));
}

#[test]
fn configuration_commands_show_up() {
    let net = Net::bridged(2);
    net.ok("bridge0 maxaddr 0x10 timeout 010 priority 4096 hellotime 1 fwddelay 4 maxage 6 ipf");
    net.ok("bridge0 stp shmif0 ifpriority shmif0 16 ifpathcost shmif0 200 ifpriority shmif1 255");
    let out = net.ok("bridge0");
    assert!(
        out.contains("\t\tpriority 4096 hellotime 1 fwddelay 4 maxage 6\n"),
        "{out}"
    );
    assert!(out.contains("\t\tipfilter enabled flags 0x1\n"), "{out}");
    assert!(out.contains("max cache: 16, timeout: 8"), "{out}");
    assert!(out.contains(
        "\t\tshmif1 flags=3<LEARNING,DISCOVER>\n\t\t\tport 4 priority 255\n\
         \t\tshmif0 flags=7<LEARNING,DISCOVER,STP>\n\t\t\tport 3 priority 16 path cost 200 listening\n"
    ), "{out}");
    net.ok("bridge0 -ipf -stp shmif0 down");
    let out = net.ok("bridge0");
    assert!(out.contains("ipfilter disabled flags 0x0"), "{out}");
    assert!(
        out.contains("shmif0 flags=3<LEARNING,DISCOVER>\n\t\t\tport 3 priority 16\n"),
        "{out}"
    );
    net.ok("bridge0 stp shmif0");
    assert!(net.ok("bridge0").contains("path cost 200 disabled"));
}

#[test]
fn static_entry_line() {
    let net = Net::bridged(3);
    assert_eq!(net.ok("bridge0 static shmif2 00:aa:aa:aa:aa:aa"), "");
    let out = net.addr();
    assert_eq!(out, "\t00:aa:aa:aa:aa:aa shmif2 0 flags=1<STATIC>\n");
    assert!(out.contains("flags=1<STATIC>"));
}

#[test]
fn addr_counts_entries() {
    let net = Net::bridged(2);
    for n in 1..=5 {
        net.inject("shmif0", &frame(BCAST, host(n), n));
    }
    assert_eq!(net.addr().lines().count(), 5);
    net.ok("bridge0 flush");
    assert_eq!(net.addr().lines().count(), 0);
}

#[test]
fn dash_a_shows_every_bridge() {
    let net = Net::new();
    net.ifconfig_create("bridge0");
    net.ifconfig_create("shmif0");
    net.ifconfig_create("bridge1");
    net.ok("bridge1 add shmif0");
    let out = net.ok("-a");
    let b0 = net.ok("bridge0");
    let b1 = net.ok("bridge1");
    assert_eq!(out, format!("{b0}{b1}"));
    assert!(b1.contains("\t\tshmif0 flags=3<LEARNING,DISCOVER>\n\t\t\tport 3 priority 128\n"));
    // Nothing but -a.
    let (rc, out, err) = net.brconfig("-a bridge0");
    assert_eq!((rc, out.as_str(), err.as_str()), (1, "", USAGE));
}

#[test]
fn usage() {
    let net = Net::new();
    for line in ["", "--"] {
        let (rc, out, err) = net.brconfig(line);
        assert_eq!((rc, out.as_str(), err.as_str()), (1, "", USAGE), "{line:?}");
    }
    let (rc, _, err) = net.brconfig("-x bridge0");
    assert_eq!(
        (rc, err),
        (1, format!("brconfig: unknown option -- x\n{USAGE}"))
    );
}

#[test]
fn errors() {
    let net = Net::bridged(2);
    net.ifconfig_create("shmif2");
    net.ifconfig_create("bridge1");
    net.ifconfig_create("shmif3");
    net.ok("bridge1 add shmif3");
    let cases: &[(&str, &str)] = &[
        ("foo0", "brconfig: foo0 is not a bridge\n"),
        ("shmif0 add shmif1", "brconfig: shmif0 is not a bridge\n"),
        ("bridge", "brconfig: bridge is not a bridge\n"),
        (
            "bridge7",
            "brconfig: unable to get interface flags: Device not configured\n",
        ),
        (
            "bridge7 add shmif0",
            "brconfig: unable to get interface flags: Device not configured\n",
        ),
        ("bridge0 foo", "brconfig: unknown command: foo\n"),
        ("bridge0 add", "brconfig: command add requires 1 argument\n"),
        (
            "bridge0 static shmif0",
            "brconfig: command static requires 2 arguments\n",
        ),
        (
            "bridge0 add shmif9",
            "brconfig: add shmif9: No such file or directory\n",
        ),
        ("bridge0 add shmif0", "brconfig: add shmif0: File exists\n"),
        ("bridge0 add shmif3", "brconfig: add shmif3: Device busy\n"),
        ("bridge0 add lo0", "brconfig: add lo0: Invalid argument\n"),
        (
            "bridge0 add bridge1",
            "brconfig: add bridge1: Invalid argument\n",
        ),
        (
            "bridge0 add bridge0",
            "brconfig: add bridge0: Invalid argument\n",
        ),
        (
            "bridge0 delete shmif5",
            "brconfig: delete shmif5: No such file or directory\n",
        ),
        (
            "bridge0 delete shmif2",
            "brconfig: delete shmif2: No such file or directory\n",
        ),
        (
            "bridge0 learn shmif2",
            "brconfig: unable to get bridge flags: No such file or directory\n",
        ),
        (
            "bridge0 -protect shmif9",
            "brconfig: unable to get bridge flags: No such file or directory\n",
        ),
        (
            "bridge0 static shmif0 XX",
            "brconfig: static: invalid address: XX\n",
        ),
        (
            "bridge0 deladdr 1:2:3",
            "brconfig: deladdr: invalid address: 1:2:3\n",
        ),
        (
            "bridge0 deladdr 00:aa:aa:aa:aa:aa",
            "brconfig: deladdr 00:aa:aa:aa:aa:aa: No such file or directory\n",
        ),
        (
            "bridge0 static shmif2 00:aa:aa:aa:aa:aa",
            "brconfig: static shmif2 00:aa:aa:aa:aa:aa: No such file or directory\n",
        ),
        ("bridge0 maxage 0", "brconfig: maxage 0: Invalid argument\n"),
        (
            "bridge0 fwddelay 0",
            "brconfig: fwddelay 0: Invalid argument\n",
        ),
        (
            "bridge0 hellotime 0",
            "brconfig: hellotime 0: Invalid argument\n",
        ),
        (
            "bridge0 maxage 256",
            "brconfig: maxage: invalid value: 256\n",
        ),
        (
            "bridge0 priority 65536",
            "brconfig: priority: invalid value: 65536\n",
        ),
        (
            "bridge0 maxaddr -1",
            "brconfig: maxaddr: invalid value: -1\n",
        ),
        (
            "bridge0 timeout 1x",
            "brconfig: timeout: invalid value: 1x\n",
        ),
        (
            "bridge0 ifpriority shmif0 256",
            "brconfig: ifpriority: invalid value: 256\n",
        ),
        (
            "bridge0 ifpathcost shmif0 x",
            "brconfig: ifpathcost: invalid value: x\n",
        ),
        (
            "bridge0 ifpriority shmif9 1",
            "brconfig: ifpriority shmif9: No such file or directory\n",
        ),
        (
            "bridge0 ifpathcost shmif9 1",
            "brconfig: ifpathcost shmif9: No such file or directory\n",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(net.fails(line), *want, "brconfig {line}");
    }
    // The failures changed nothing.
    assert!(!net.ok("bridge0").contains("shmif2"));
}

#[test]
fn mtu_must_match() {
    let net = Net::bridged(0);
    net.ifconfig_create("shmif0");
    net.k
        .ioctl(ifnet::ioctl::Request::SetIfMtu {
            name: "shmif0".into(),
            mtu: 1400,
        })
        .unwrap();
    assert_eq!(
        net.fails("bridge0 add shmif0"),
        "brconfig: add shmif0: Invalid argument\n"
    );
}

#[test]
fn cache_full_on_static() {
    let net = Net::bridged(1);
    net.ok("bridge0 maxaddr 1 static shmif0 00:aa:aa:aa:aa:aa");
    assert_eq!(
        net.fails("bridge0 static shmif0 00:bb:bb:bb:bb:bb"),
        "brconfig: static shmif0 00:bb:bb:bb:bb:bb: No space left on device\n"
    );
}

#[test]
fn commands_run_left_to_right_until_one_fails() {
    let net = Net::bridged(0);
    net.ifconfig_create("shmif0");
    net.ifconfig_create("shmif1");
    net.ok("bridge0 down");
    // add shmif0 happens, the bad one stops everything after it, and
    // the flags (set at the end) are not touched.
    let (rc, _, err) = net.brconfig("bridge0 add shmif0 add shmif9 add shmif1 up");
    assert_eq!(
        (rc, err.as_str()),
        (1, "brconfig: add shmif9: No such file or directory\n")
    );
    let out = net.ok("bridge0");
    assert!(out.starts_with("bridge0: flags=0<>\n"), "{out}");
    assert!(out.contains("shmif0") && !out.contains("shmif1"), "{out}");
    // addr prints where it stands in the line.
    let out = net.ok("bridge0 addr up addr");
    assert_eq!(out, "");
    assert_eq!(net.flags("bridge0"), 0x41);
}

/// Extension: a list of members after `add` and `delete`, as people write
/// `brconfig bridge0 add virt0 tap0`; a keyword ends the list.
#[test]
fn add_and_delete_take_a_list() {
    let net = Net::bridged(0);
    for i in ["shmif0", "shmif1", "shmif2"] {
        net.ifconfig_create(i);
    }
    net.ok("bridge0 add shmif0 shmif1 up");
    let out = net.ok("bridge0");
    assert!(
        out.contains("shmif0 flags") && out.contains("shmif1 flags"),
        "{out}"
    );
    assert_eq!(
        net.flags("bridge0") & 1,
        1,
        "up after the list is a command"
    );
    // A missing member in the list: those before it are added, then
    // NetBSD's error for a missing interface and exit 1.
    let (rc, _, err) = net.brconfig("bridge0 add shmif2 nosuch0");
    assert_eq!(
        (rc, err.as_str()),
        (1, "brconfig: add nosuch0: No such file or directory\n")
    );
    assert!(net.ok("bridge0").contains("shmif2 flags"));
    net.ok("bridge0 delete shmif0 shmif2 learn shmif1");
    let out = net.ok("bridge0");
    assert!(!out.contains("shmif0") && !out.contains("shmif2"), "{out}");
    assert!(out.contains("shmif1 flags"), "{out}");
}

#[test]
fn member_flags_as_netbsd_greps_them() {
    let net = Net::bridged(2);
    net.ok("bridge0 protect shmif0");
    let out = net.ok("bridge0");
    assert!(
        out.lines()
            .any(|l| l.contains("shmif0") && l.contains("PROTECTED")),
        "{out}"
    );
    net.ok("bridge0 -protect shmif0 -discover shmif1 -learn shmif1");
    assert!(net.ok("bridge0").contains("\t\tshmif1 flags=0<>\n"));
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "bridge0",
            "bridge1",
            "shmif0",
            "shmif1",
            "shmif9",
            "lo0",
            "add",
            "delete",
            "up",
            "down",
            "addr",
            "maxaddr",
            "timeout",
            "static",
            "deladdr",
            "flush",
            "flushall",
            "learn",
            "-learn",
            "discover",
            "-discover",
            "protect",
            "-protect",
            "stp",
            "-stp",
            "ipf",
            "-ipf",
            "maxage",
            "fwddelay",
            "hellotime",
            "priority",
            "ifpriority",
            "ifpathcost",
            "-a",
            "--",
            "-",
            "0",
            "1",
            "0x",
            "-1",
            "256",
            "99999999999999999999",
            "00:aa:aa:aa:aa:aa",
            "b2:a0:10:00:00:01",
            "ff:ff:ff:ff:ff:ff",
        ])
        .prop_map(String::from),
        "\\PC{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_argv_never_panics(words in prop::collection::vec(word(), 0..8)) {
        let net = Net::bridged(2);
        net.ifconfig_create("bridge1");
        let (rc, _, err) = net.brconfig_args(&words);
        prop_assert!(rc == 0 || rc == 1);
        prop_assert_eq!(rc == 1, !err.is_empty());
        // The kernel still answers sanely afterwards.
        let (rc, _, _) = net.brconfig("bridge0");
        prop_assert_eq!(rc, 0);
        let f = frame(BCAST, host(1), 1);
        net.inject("shmif0", &f);
    }
}
